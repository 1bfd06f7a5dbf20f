"""What reading plain English costs: the pretrained text encoder against the word encoder, one run.

    python benchmarks/text_encoders.py --models shapes-diffusion,shapes-hybrid --output benchmarks/results/text_encoders.json

A bundle with a pretrained encoder keeps the word encoder it was distilled from (its teacher), so
both encoders drive the same generator here. For each model and encoder: seconds per clip of a
batch of --batch canonical prompts (median of --repeats after a warm-up; new prompts each repeat,
so the encoder's cache does not hide its cost), seconds to encode the batch's prompts alone, and
the resident memory the encoder adds when it loads (the process's RSS before and after).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from report import write_report

from framecast.eval.evaluate import eval_prompts
from framecast.pipeline import load


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _time(fn, repeats: int) -> float:
    times = []
    for r in range(repeats):
        t = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(name: str, batch: int, repeats: int, seed: int) -> list[dict]:
    pipe = load(name, precision="fp32")
    connected = pipe.model.text
    if connected.kind != "pretrained" or connected.teacher is None:
        raise SystemExit(f"'{name}' has no pretrained encoder with its word teacher; nothing to compare")
    before = rss_mb()
    connected.frozen  # loads the pretrained encoder
    loaded_mb = rss_mb() - before
    prompts = eval_prompts("train", batch * (repeats + 1))
    rows = []
    for kind, encoder in (("word", connected.teacher), ("pretrained", connected)):
        pipe.model.text = encoder
        pipe(prompts[:batch], generator=torch.Generator().manual_seed(seed))  # warm-up
        part = lambda r: prompts[(r + 1) * batch: (r + 2) * batch]  # noqa: E731
        if kind == "pretrained":
            connected.frozen.cache.clear()
        encode = _time(lambda r: encoder.encode(part(r)), repeats)
        if kind == "pretrained":
            connected.frozen.cache.clear()
        clip = _time(lambda r: pipe(part(r), generator=torch.Generator().manual_seed(seed)), repeats) / batch
        rows.append({"model": name, "encoder": kind if kind == "word" else connected.config.source, "seconds_per_clip": clip,
                     "encode_seconds_per_batch": encode, "encoder_memory_mb": loaded_mb if kind == "pretrained" else 0.0,
                     "batch": batch})
    pipe.model.text = connected
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="shapes-diffusion,shapes-hybrid")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--output", type=Path, default=Path("benchmarks/results/text_encoders.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = [r for name in args.models.split(",") for r in measure(name.strip(), args.batch, args.repeats, args.seed)]
    table = ["| model | text encoder | s / clip | encode s / batch | encoder memory MB |", "|---|---|---:|---:|---:|"]
    table += [f"| {r['model']} | {r['encoder']} | {r['seconds_per_clip']:.3f} | {r['encode_seconds_per_batch']:.4f} | "
              f"{r['encoder_memory_mb']:.0f} |" for r in rows]
    write_report(args.output, {"rows": rows, "batch": args.batch, "repeats": args.repeats}, table, precision="fp32")


if __name__ == "__main__":
    main()
