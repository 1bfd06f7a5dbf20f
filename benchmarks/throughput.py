"""Sampling throughput of the bundled models on one device, at several batch sizes.

    python benchmarks/throughput.py --device cuda --batch-sizes 1,16,64 --output benchmarks/results/throughput.json
    python benchmarks/throughput.py --device cpu --batch-sizes 1,8 --output throughput-cpu.json

For each model and batch size: seconds per batch (median of --repeats after a warm-up batch),
clips and frames per second, and the peak memory (CUDA's allocator peak on a GPU, the process's
resident peak on a CPU). At the largest batch the clips are also judged, so a device that
computes something different (a wrong kernel, a precision bug) shows up as a drop in accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from report import write_report

from framecast.eval.arena import memory_mb
from framecast.eval.evaluate import eval_prompts
from framecast.eval.shapes import judge_clip, summarize
from framecast.generators.io import read_config
from framecast.pipeline import GENERATOR_FAMILIES, bundled_models, load


def _generators(seed: int, n: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def measure(name: str, device: str, batch_sizes: list[int], repeats: int, seed: int) -> list[dict]:
    pipe = load(name, device=device)
    dev = pipe.device
    rows = []
    for bs in batch_sizes:
        prompts = eval_prompts("train", bs)
        pipe(prompts, generator=_generators(seed, bs))  # warm-up: kernels, allocator, caches
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            out = pipe(prompts, generator=_generators(seed, bs))  # frames come back as uint8 on the CPU: the work is done
            times.append(time.perf_counter() - t)
        sec = statistics.median(times)
        frames = out.frames[0].shape[0]
        row = {"model": name, "family": pipe.model.family, "device": str(dev), "batch_size": bs, "seconds_per_batch": sec,
               "clips_per_second": bs / sec, "frames_per_second": bs * frames / sec, "peak_memory_mb": memory_mb(dev, peak=True)}
        if bs == max(batch_sizes):
            s = summarize([judge_clip(f, p) for f, p in zip(out.frames, prompts)])
            row["scene_accuracy"] = s.scene_accuracy
        rows.append(row)
        print(f"{name} {dev} batch {bs}: {sec:.3f} s, {bs / sec:.1f} clips/s, {row['frames_per_second']:.0f} frames/s, "
              f"peak {row['peak_memory_mb']:.0f} MB", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=None, help="comma-separated (default: every bundled generator)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/throughput.json"))
    args = ap.parse_args()
    names = args.models.split(",") if args.models else [n for n, p in bundled_models().items()
                                                          if read_config(p).get("family") in GENERATOR_FAMILIES]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows = [r for n in names for r in measure(n, args.device, batch_sizes, args.repeats, args.seed)]
    device_name = torch.cuda.get_device_name() if rows and rows[0]["device"].startswith("cuda") else "CPU"
    table = [f"Sampling throughput on {device_name}, each model's default settings.", "",
             "| model | family | batch | s / batch | clips / s | frames / s | peak memory MB | scene acc. (largest batch) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = f"{r['scene_accuracy']:.2f}" if "scene_accuracy" in r else ""
        table.append(f"| {r['model']} | {r['family']} | {r['batch_size']} | {r['seconds_per_batch']:.3f} | {r['clips_per_second']:.1f} | "
                     f"{r['frames_per_second']:.0f} | {r['peak_memory_mb']:.0f} | {acc} |")
    write_report(args.output, {"device_name": device_name, "rows": rows}, table, device=rows[0]["device"] if rows else "cpu")


if __name__ == "__main__":
    main()
