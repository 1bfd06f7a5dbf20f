"""Decoding orders of the autoregressive family: forward passes, tokens/s, wall time per clip and
scene accuracy, and the cost of a new token as the clip grows (KV cache vs recomputing).

    python benchmarks/ar.py --raster shapes-ar-raster --set shapes-ar --num 20 --output benchmarks/results/ar.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from report import timed_clips, write_report

from framecast.eval.evaluate import eval_prompts
from framecast.pipeline import load


def run(pipe, prompts, frames, seed, **kw) -> dict:
    r = timed_clips(pipe, prompts, frames, seed, **kw)
    tokens = frames * pipe.model.grid_hw[0] * pipe.model.grid_hw[1]
    r["tokens_per_s"] = tokens / r["seconds_per_clip"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raster", default="shapes-ar-raster", help="a model trained with the raster objective")
    ap.add_argument("--set", dest="set_model", default="shapes-ar", help="a model trained with the set objective")
    ap.add_argument("--num", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/ar.json"))
    args = ap.parse_args()
    raster, setm = load(args.raster), load(args.set_model)
    prompts = eval_prompts("train", args.num)
    rows = []
    for label, pipe, kw in [("raster, KV cache", raster, {"decode": "raster"}),
                            ("raster, no cache", raster, {"decode": "raster", "use_cache": False}),
                            ("diagonal (DiagD)", raster, {"decode": "diagonal"}),
                            ("set (K passes a frame)", setm, {"decode": "set"})]:
        r = run(pipe, prompts, 16, args.seed, **kw)
        r["method"] = label
        rows.append(r)
        print(r, flush=True)
    growth = []
    for frames in (16, 32, 64):
        for label, kw in (("cache", {}), ("no cache", {"use_cache": False})):
            r = run(raster, prompts[:2], frames, args.seed, decode="raster", **kw)
            growth.append({"frames": frames, "cache": label, "ms_per_token": 1e3 / r["tokens_per_s"]})
            print(growth[-1], flush=True)
    base = rows[0]["seconds_per_clip"]
    table = ["| decoding | forward passes / clip | tokens/s | s / clip | speed-up vs cached raster | scene acc. |", "|---|---|---|---|---|---|"]
    table += [f"| {r['method']} | {r['forward_passes']:.0f} | {r['tokens_per_s']:.0f} | {r['seconds_per_clip']:.2f} | "
              f"{base / r['seconds_per_clip']:.1f}x | {r['scene_accuracy']:.2f} |" for r in rows]
    table += ["", "| frames | ms per token, KV cache | ms per token, recomputing |", "|---|---|---|"]
    for f in (16, 32, 64):
        c = next(g for g in growth if g["frames"] == f and g["cache"] == "cache")["ms_per_token"]
        n = next(g for g in growth if g["frames"] == f and g["cache"] == "no cache")["ms_per_token"]
        table.append(f"| {f} | {c:.1f} | {n:.1f} |")
    write_report(args.output, {"num_clips": args.num, "seed": args.seed, "decoding": rows, "growth": growth}, table)


if __name__ == "__main__":
    main()
