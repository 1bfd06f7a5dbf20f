"""Steps against quality: few-step students against their teacher sampled with as few steps.

    python benchmarks/students.py --pair shapes-hybrid:shapes-hybrid-fast --num 100 --seeds 0,1000 \\
        --plot docs/images/students.png --output benchmarks/results/students.json
    python benchmarks/students.py --pair "shapes-diffusion:runs/diffusion-dmd=distribution matching:runs/diffusion-cd=consistency"

For each TEACHER:STUDENT[=METHOD][:STUDENT[=METHOD]...], each method is sampled at 1, 2, 4 and 8
steps on the same `train` prompts and noise seeds: the teacher with its own sampler and guidance
(training-free: the same model asked for fewer steps), each student with its own (no guidance,
one model call a step). A hybrid student whose config gives its first frame more steps
(`first_steps`) is sampled twice: with N steps for every frame, and with its first frame's own
steps and N for the rest. The teacher at its default steps is the reference row. Each row has
scene accuracy (the Shapes judge, mean over the seeds), FVD against real clips of the same
prompts (the shipped Shapes features, first seed) and seconds per clip (batched, one run).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from report import write_report

from framecast.eval.evaluate import eval_prompts, evaluate
from framecast.eval.fvd import shapes_fvd
from framecast.pipeline import load


def score(pipe, prompts: list[str], seeds: list[int], steps: int | None, **options) -> dict:
    """Scene accuracy per seed (and their mean), FVD of the first seed's clips, seconds per clip."""
    accs, seconds, fvd = [], [], None
    for k, seed in enumerate(seeds):
        s = evaluate(pipe, prompts, seed=seed, batch_size=10, progress=False, num_inference_steps=steps, **options)
        accs.append(s["scene_accuracy"])
        seconds.append(s["seconds_per_clip"])
        if k == 0:
            fvd = shapes_fvd(s["frames"], split="train")["fvd"]
    return {"steps": steps or pipe.model.config.steps, "scene_accuracy": float(np.mean(accs)), "draws": accs, "fvd": fvd,
            "seconds_per_clip": float(np.mean(seconds))}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    for method in dict.fromkeys(r["method"] for r in rows if not r["reference"]):
        pts = sorted((r["steps"], r["scene_accuracy"], r["fvd"]) for r in rows if r["method"] == method and not r["reference"])
        ax[0].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=method)
        ax[1].plot([p[0] for p in pts], [p[2] for p in pts], "o-", label=method)
    for r in rows:
        if r["reference"]:
            ax[0].axhline(r["scene_accuracy"], ls="--", c="grey", lw=1, label=f"{r['model']}, {r['steps']} steps")
            ax[1].axhline(r["fvd"], ls="--", c="grey", lw=1)
    for a, name in zip(ax, ("scene accuracy", "FVD (Shapes features)")):
        a.set_xscale("log", base=2)
        a.set_xlabel("sampling steps")
        a.set_ylabel(name)
    ax[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", action="append", required=True,
                    help="TEACHER:STUDENT[=METHOD][:STUDENT[=METHOD]...] (bundled names or folders); repeatable")
    ap.add_argument("--steps", default="1,2,4,8")
    ap.add_argument("--num", type=int, default=100)
    ap.add_argument("--seeds", default="0,1000")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/students.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    prompts, seeds = eval_prompts("train", args.num), [int(s) for s in args.seeds.split(",")]
    steps_list = [int(s) for s in args.steps.split(",")]
    rows = []
    for pair in args.pair:
        teacher_name, *students = pair.split(":")
        runs = [(teacher_name, "teacher, fewer steps")] + [(*st.split("=", 1),) if "=" in st else (st, "student") for st in students]
        for name, label in runs:
            pipe = load(name)
            first = getattr(pipe.model.config, "first_steps", 0)
            if label.startswith("teacher"):
                rows.append({"method": f"{pipe.name} (its own steps)", "model": pipe.name, "reference": True, **score(pipe, prompts, seeds, None)})
            variants = [(label, {"first_steps": 0} if first else {})] + ([(f"{label}, first frame {first} steps", {})] if first else [])
            for method, options in variants:
                for steps in steps_list:
                    rows.append({"method": f"{pipe.name} ({method})", "model": pipe.name, "reference": False,
                                 **score(pipe, prompts, seeds, steps, **options)})
                    print(rows[-1], flush=True)
    table = ["| model | method | steps | scene accuracy (mean of draws) | draws | FVD | s / clip |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        kind = "reference" if r["reference"] else r["method"].split("(")[-1].rstrip(")")
        table.append(f"| {r['model']} | {kind} | {r['steps']} | {r['scene_accuracy']:.3f} | {', '.join(f'{a:.2f}' for a in r['draws'])} | "
                     f"{r['fvd']:.1f} | {r['seconds_per_clip']:.3f} |")
    table += ["", f"{args.num} `train` prompts, noise seeds {args.seeds}; FVD on the first seed's clips."]
    if args.plot is not None:
        plot(rows, args.plot)
    write_report(args.output, {"rows": rows, "num": args.num, "seeds": seeds}, table)
    print("\n".join(table))


if __name__ == "__main__":
    main()
