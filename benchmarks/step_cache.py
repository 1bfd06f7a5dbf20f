"""Step caching (First-Block Cache, framecast.nn.step_cache): its speed against its quality.

    python benchmarks/step_cache.py --num 20 --output benchmarks/results/step_cache.json

--num is 10 by default (80 clips): half the 19 minutes that the 20-prompt result in
docs/performance.md took on one thread of a 2-core CPU with a load average of about 4.

For shapes-diffusion (its 50 steps) and shapes-hybrid (20 steps a token-frame, autoregressive,
with the KV cache), one clip of 16 frames per `train` prompt (clip i with seed + i) at every
threshold, threshold 0 (off) included. The thresholds take turns clip by clip, so a neighbour that
slows the machine slows every threshold alike: compare times within one run. Reports seconds per
clip, the speed-up over threshold 0, the share of the backbone's block passes skipped (KV-cache
writes counted among the passes, never skipped), the Shapes judge's scene and object accuracy,
and the PSNR of each clip against the same seed's clip without caching.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from report import write_report

from framecast.eval.arena import PassCounter
from framecast.eval.evaluate import eval_prompts
from framecast.eval.shapes import judge_clip, summarize
from framecast.pipeline import load

MODELS = (("shapes-diffusion", {}), ("shapes-hybrid", {"schedule": "autoregressive", "use_cache": True}))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 clips (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def run_model(name: str, kw: dict, thresholds: list[float], prompts: list[str], frames: int, seed: int) -> list[dict]:
    """Every prompt at every threshold in turn; per-threshold totals -> one row each."""
    pipe = load(name)
    depth = len(pipe.model.backbone.blocks)
    pipe(prompts[0], num_frames=frames, generator=torch.Generator().manual_seed(seed), **kw)  # warm-up, not timed
    acc = {t: {"seconds": 0.0, "skipped": 0, "blocks": 0, "verdicts": [], "psnr": []} for t in thresholds}
    for i, p in enumerate(prompts):
        reference = None
        for t in thresholds:
            with PassCounter(pipe.model) as count:
                start = time.perf_counter()
                out = pipe(p, num_frames=frames, generator=torch.Generator().manual_seed(seed + i), step_cache=t, **kw)
                seconds = time.perf_counter() - start
            a, clip = acc[t], out.frames[0]
            a["seconds"] += seconds
            a["blocks"] += count.calls * depth
            a["skipped"] += out.info.get("step_cache", {}).get("skipped_block_passes", 0)
            a["verdicts"].append(judge_clip(clip, p))
            reference = clip if t == 0 else reference
            a["psnr"].append(psnr(clip, reference))
        print(f"{name} clip {i + 1}/{len(prompts)}", flush=True)
    rows, n = [], len(prompts)
    for t in thresholds:
        a, s = acc[t], summarize(acc[t]["verdicts"])
        finite = [x for x in a["psnr"] if np.isfinite(x)]
        rows.append({"model": name, "steps": int(pipe.model.config.steps), "threshold": t, "clips": n,
                     "seconds_per_clip": a["seconds"] / n, "skipped_share": a["skipped"] / max(a["blocks"], 1),
                     "scene_accuracy": s.scene_accuracy, "object_accuracy": s.object_accuracy,
                     "psnr_vs_off_db": float(np.mean(finite)) if finite else float("inf")})
    off = rows[0]["seconds_per_clip"]
    for r in rows:
        r["speedup"] = off / r["seconds_per_clip"]
    return rows


def table(rows: list[dict]) -> list[str]:
    lines = ["| model | steps | threshold | s / clip | speed-up | block passes skipped | scene acc. | object acc. | PSNR vs off (dB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        label = "0 (off)" if r["threshold"] == 0 else f"{r['threshold']:g}"
        db = "identical" if not np.isfinite(r["psnr_vs_off_db"]) else f"{r['psnr_vs_off_db']:.1f}"
        lines.append(f"| {r['model']} | {r['steps']} | {label} | {r['seconds_per_clip']:.2f} | {r['speedup']:.2f}x | "
                     f"{100 * r['skipped_share']:.0f}% | {r['scene_accuracy']:.2f} | {r['object_accuracy']:.2f} | {db} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=10, help="train prompts, one clip each")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.15, 0.3, 0.5], help="besides 0 (off)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/step_cache.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    thresholds = [0.0, *sorted(t for t in set(args.thresholds) if t > 0)]
    prompts = eval_prompts("train", args.num)
    rows = [r for name, kw in MODELS for r in run_model(name, kw, thresholds, prompts, args.frames, args.seed)]
    note = (f"{args.num} `train` prompts, one {args.frames}-frame clip each at every threshold (in turn, clip by clip); skipped "
            "share of all the backbone's block passes (KV-cache writes included); PSNR against the same seed's clip without caching.")
    write_report(args.output, {"num_clips": args.num, "seed": args.seed, "frames": args.frames, "results": rows}, [*table(rows), "", note])


if __name__ == "__main__":
    main()
