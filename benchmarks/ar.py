"""Decoding orders of the autoregressive family: forward passes, tokens/s, wall time per clip and
scene accuracy, and how the cost of new tokens grows with the clip (KV cache vs recomputing).

    python benchmarks/ar.py --set shapes-ar --raster shapes-ar-raster --num 20 --no-cache-num 1 --growth-num 1 \\
        --no-cache-frames 16 --output benchmarks/results/ar.json
    python benchmarks/ar.py --set shapes-ar --num 20 --output ar-set.json   # the set order alone

Recomputing the prefix for every token (raster, no cache) costs minutes a clip on a CPU, so
`--raster-num`, `--no-cache-num` and `--no-cache-frames` can make those rows smaller (decoding
without the cache makes the same tokens as with it, so its accuracy is the cached row's). The
"trained steps" column says which model each row decoded.

Every row makes the same prompts with the same seeds (clip i with seed + i), one clip at a time,
on the CPU's threads (or the GPU with `--device`). The growth table times clips of 16, 32 and 64 frames and divides by
the tokens made: flat with the cache, growing with the clip without it. Without `--raster` the
raster and diagonal rows are left out (say so in any table you quote).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from report import timed_clips, write_report

from framecast.eval.evaluate import eval_prompts
from framecast.generators.io import read_config
from framecast.pipeline import load


def run(pipe, prompts, frames, seed, **kw) -> dict:
    r = timed_clips(pipe, prompts, frames, seed, **kw)
    r["tokens_per_s"] = frames * pipe.model.grid_hw[0] * pipe.model.grid_hw[1] / r["seconds_per_clip"]
    r["trained_steps"] = read_config(pipe.path).get("trained_steps") if pipe.path else None
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", dest="set_model", default="shapes-ar", help="a model trained with the set objective")
    ap.add_argument("--raster", default="", help="a model trained with the raster objective (raster and diagonal rows)")
    ap.add_argument("--num", type=int, default=20)
    ap.add_argument("--raster-num", type=int, default=0, help="clips for the raster and diagonal rows (0: --num)")
    ap.add_argument("--no-cache-num", type=int, default=0, help="clips for the rows that recompute the prefix (0: as their cached row)")
    ap.add_argument("--growth-num", type=int, default=2, help="clips per point of the growth table")
    ap.add_argument("--no-cache-frames", type=int, nargs="*", default=[16, 32, 64],
                    help="clip lengths at which the growth table also times recomputing (the others show '-')")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/ar.json"))
    args = ap.parse_args()
    setm = load(args.set_model, device=args.device)
    raster = load(args.raster, device=args.device) if args.raster else None
    prompts = eval_prompts("train", args.num)
    c = setm.model.config
    K = c.set_steps

    def set_label(steps=None, refine=None, cache=True):
        first = c.first_set_steps if steps is None and c.first_set_steps else None
        sweeps = c.set_refine if refine is None else refine
        return (f"set, {steps or K} passes a token-frame" + (f" ({first} for the first)" if first else "")
                + (f", {sweeps} Gibbs sweep{'s' if sweeps > 1 else ''}" if sweeps else "") + (", KV cache" if cache else ", no cache"))

    plan = [(set_label() + " (default)", setm, {}),
            (set_label(cache=False), setm, {"use_cache": False})]
    if c.first_set_steps or c.set_refine:  # the plain MaskGIT schedule, for what the extra passes buy
        plan.append((set_label(K, 0), setm, {"num_inference_steps": K, "refine": 0}))
    plan += [(set_label(4), setm, {"num_inference_steps": 4}), (set_label(2), setm, {"num_inference_steps": 2})]
    if raster is not None:
        plan = [("raster, KV cache", raster, {"decode": "raster"}),
                ("raster, no cache", raster, {"decode": "raster", "use_cache": False}),
                (f"diagonal (DiagD, delay {raster.model.config.diagonal_delay})", raster, {"decode": "diagonal"})] + plan
    rows = []
    for label, pipe, kw in plan:
        n = (args.raster_num or None) if pipe is raster else None
        n = (args.no_cache_num or n) if kw.get("use_cache") is False else n
        r = run(pipe, prompts[:n], 16, args.seed, **kw)
        r.update(method=label, model=pipe.name)
        rows.append(r)
        print({k: r[k] for k in ("method", "forward_passes", "seconds_per_clip", "scene_accuracy")}, flush=True)
    growth = []
    for name, pipe, kw in ([("raster", raster, {"decode": "raster"})] if raster is not None else []) + [("set", setm, {})]:
        for frames in (16, 32, 64):
            for label, extra in (("cache", {}), ("no cache", {"use_cache": False})):
                if label == "no cache" and frames not in args.no_cache_frames:
                    continue
                r = run(pipe, prompts[: args.growth_num], frames, args.seed, **kw, **extra)
                growth.append({"model": name, "frames": frames, "cache": label, "ms_per_token": 1e3 / r["tokens_per_s"],
                               "seconds_per_clip": r["seconds_per_clip"]})
                print(growth[-1], flush=True)
    base = rows[0]["seconds_per_clip"]
    table = [(f"| decoding | model (trained steps) | clips | forward passes / clip | tokens/s | s / clip | speed vs {rows[0]['method']} "
             "| scene acc. |"), "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['method']} | {r['model']} ({r['trained_steps']}) | {r['clips']} | {r['forward_passes']:.0f} | {r['tokens_per_s']:.0f} | "
              f"{r['seconds_per_clip']:.2f} | {base / r['seconds_per_clip']:.1f}x | {r['scene_accuracy']:.2f} |" for r in rows]
    table += ["", f"Clips of 16 frames, one at a time; growth: {args.growth_num} clip{'s' if args.growth_num != 1 else ''} a point.", "",
              "| model | frames | ms per token, KV cache | ms per token, recomputing |", "|---|---|---|---|"]
    for name in dict.fromkeys(g["model"] for g in growth):
        for f in (16, 32, 64):
            c, n = (next((f"{g['ms_per_token']:.2f}" for g in growth if g["model"] == name and g["frames"] == f and g["cache"] == k), "-")
                    for k in ("cache", "no cache"))
            table.append(f"| {name} | {f} | {c} | {n} |")
    write_report(args.output, {"num_clips": args.num, "seed": args.seed, "decoding": rows, "growth": growth}, table,
                 device=args.device)


if __name__ == "__main__":
    main()
