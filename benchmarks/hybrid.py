"""Full-sequence diffusion vs autoregressive diffusion with and without the KV cache, and the
hybrid model under its three schedules, on clips of 16 and 64 frames.

    python benchmarks/hybrid.py --num 20 --output benchmarks/results/hybrid.json

Reports forward passes (backbone calls, context encodings included), tokens pushed through the
backbone, wall time per clip and the Shapes judge's scene accuracy. Writes JSON and a Markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from report import timed_clips, write_report

from framecast.eval.evaluate import eval_prompts
from framecast.pipeline import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hybrid", default="shapes-hybrid")
    ap.add_argument("--diffusion", default="shapes-diffusion")
    ap.add_argument("--num", type=int, default=20)
    ap.add_argument("--frames", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/hybrid.json"))
    args = ap.parse_args()
    hybrid, diffusion = load(args.hybrid), load(args.diffusion)
    prompts = eval_prompts("train", args.num)
    runs = [
        ("full-sequence diffusion", diffusion.name, diffusion, {}),
        ("hybrid, autoregressive, KV cache", hybrid.name, hybrid, {"schedule": "autoregressive", "use_cache": True}),
        ("hybrid, autoregressive, no cache", hybrid.name, hybrid, {"schedule": "autoregressive", "use_cache": False}),
        ("hybrid, pyramid, KV cache", hybrid.name, hybrid, {"schedule": "pyramid", "use_cache": True}),
        ("hybrid, full", hybrid.name, hybrid, {"schedule": "full"}),
    ]
    rows = []
    for frames in args.frames:
        for label, model_name, pipe, kw in runs:
            r = timed_clips(pipe, prompts, frames, args.seed, **kw)
            r.update(method=label, model=model_name, frames=frames)
            rows.append(r)
            print(f"{frames:3d} frames  {label:34s} {r['forward_passes']:6.1f} passes  {r['tokens_through_backbone']:7.1f} tokens  "
                  f"{r['seconds_per_clip']:6.2f} s/clip  scene {r['scene_accuracy']:.2f}", flush=True)
    table = ["| frames | method | forward passes | tokens through backbone | s / clip | scene acc. | object acc. |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['frames']} | {r['method']} | {r['forward_passes']:.0f} | {r['tokens_through_backbone']:.0f} | "
                     f"{r['seconds_per_clip']:.2f} | {r['scene_accuracy']:.2f} | {r['object_accuracy']:.2f} |")
    write_report(args.output, {"num_clips": args.num, "seed": args.seed, "results": rows}, table, device=str(hybrid.device))


if __name__ == "__main__":
    main()
