"""One set model, three decoding orders: scene accuracy and speed of raster, diagonal (DiagD at
several delays) and set-by-set decoding, for each model given (e.g. a set model decoded in the
other orders training-free, and the same model fine-tuned on their masks), with the cost of a
raster token as the clip grows.

    python benchmarks/ar_orders.py --models shapes-ar-orders shapes-ar --labels fine-tuned training-free \\
        --num 100 --seeds 0 1000 --raster-seeds 0 --baseline-num 30 --baseline-seeds 0 --sweep-num 30 \\
        --delays 1 2 8 15 --time-num 2 --threads 2 --plot docs/images/ar_orders.png --output benchmarks/results/ar_orders.json

Accuracy: `--num` clips of the `train` split for every seed in `--seeds` (raster, diagonal at the
model's delay, set), and `--sweep-num` clips of the first seed for the other delays; clip i is
drawn with seed + i, in batches of `--batch`. Models after the first are baselines, measured on
`--baseline-num` clips and `--baseline-seeds` where given. Speed: `--time-num` clips made one at a time
(batch 1, guidance on), every order timed in the same run, so the speed-ups are ratios within
one run. Growth: milliseconds per raster token when the KV cache already holds a clip of 16, 32,
64 or 256 frames (the passes of the last token-frame, timed alone).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from report import timed_clips, write_report

from framecast.eval.evaluate import eval_prompts, evaluate
from framecast.pipeline import load
from framecast.sampling.token_orders import order_ranks, ranked_passes
from framecast.threads import apply_threads


def accuracy(pipe, prompts: list[str], seeds: list[int], batch: int, **kw) -> dict:
    accs = [evaluate(pipe, prompts, seed=s, batch_size=batch, progress=False, **kw)["scene_accuracy"] for s in seeds]
    return {"scene_accuracy": float(np.mean(accs)), "draws": accs, "clips": len(prompts), "seeds": seeds}


def with_delay(pipe, delay: int | None):
    """The model's config with another diagonal delay (None: its own)."""
    old = pipe.model.config.diagonal_delay
    pipe.model.config.diagonal_delay = delay or old
    return old


def orders(pipe, delays: list[int]) -> list[tuple[str, dict, int | None]]:
    """(label, call keywords, diagonal delay or None for the model's own) of every row."""
    c = pipe.model.config
    own, sweeps = c.diagonal_delay, c.diagonal_refine
    swept = f" + {sweeps} Gibbs sweep" if sweeps else ""
    rows = [("raster, KV cache", {"decode": "raster"}, None), (f"diagonal, delay {own}{swept}", {"decode": "diagonal"}, None)]
    if sweeps:
        rows.append((f"diagonal, delay {own}", {"decode": "diagonal", "refine": 0}, None))
    rows += [(f"diagonal, delay {d}{swept}", {"decode": "diagonal"}, d) for d in delays if d != own]
    return rows + [("set" + (" (default)" if (c.decode or c.order) == "set" else ""), {"decode": "set"}, None)]


@torch.no_grad()
def ms_per_raster_token(pipe, frames: int, reps: int = 2) -> float:
    """One raster token's cost (ms) when the cache holds the clip's earlier token-frames: the
    passes of a clip's last token-frame, after its earlier ones are committed, divided by its tokens."""
    m = pipe.model
    text = m.text.encode(["a big red circle moves right"] * 2)  # guided: [cond ; uncond]-sized batch
    n, f = m.tokens_per_chunk, frames // m.frames_per_chunk - 1
    ranks = order_ranks("raster", m.frames_per_chunk, m.grid_hw)
    best = float("inf")
    for _ in range(reps):
        fl = m.frame_logits_fn(text, 1.0)
        fl.commit(torch.randint(0, m.tokenizer.codebook_size, (2, f * n)), 0)
        t0 = time.perf_counter()
        ranked_passes(fl, torch.full((2, n), m.mask_id), f, ranks_n=ranks, mask_id=m.mask_id, sample={"temperature": 0})
        best = min(best, (time.perf_counter() - t0) * 1e3 / n)
    return best


def measure(pipe, label: str, args, num: int, seeds_all: list[int]) -> tuple[list[dict], list[dict]]:
    prompts = eval_prompts("train", num)
    rows = []
    for name, kw, delay in orders(pipe, args.delays):
        old = with_delay(pipe, delay)
        n, seeds = (min(args.sweep_num, num), seeds_all[:1]) if delay else (num, seeds_all)
        if kw.get("decode") == "raster" and args.raster_seeds:  # a raster clip costs 128 passes a token-frame
            seeds = [s for s in seeds if s in args.raster_seeds] or seeds[:1]
        r = accuracy(pipe, prompts[:n], seeds, args.batch, **kw)
        t = timed_clips(pipe, prompts[: args.time_num], 16, args.seeds[0], **kw)
        with_delay(pipe, old)
        r.update(model=label, path=str(pipe.path), order=name, seconds_per_clip=t["seconds_per_clip"],
                 forward_passes=t["forward_passes"])
        rows.append(r)
        print(r, flush=True)
    growth = [{"model": label, "frames": fr, "ms_per_token": ms_per_raster_token(pipe, fr)} for fr in args.growth_frames]
    print(growth, flush=True)
    return rows, growth


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        diagonal = [r for r in mine if r["order"].startswith("diagonal")]
        swept = any("Gibbs" in r["order"] for r in diagonal)
        plain = [r for r in diagonal if swept and "Gibbs" not in r["order"]]  # the same delay without the sweep
        diag = sorted((r for r in diagonal if r not in plain), key=lambda r: r["seconds_per_clip"])
        line = ax.plot([r["seconds_per_clip"] for r in diag], [r["scene_accuracy"] for r in diag], "o-",
                       label=f"{model}: diagonal" + (" + Gibbs sweep" if swept else ""))[0]
        for r in plain:
            ax.plot(r["seconds_per_clip"], r["scene_accuracy"], "x", color=line.get_color(), label=f"{model}: {r['order']}")
        for r in diag:
            ax.annotate(r["order"].split("delay ")[1].split(" ")[0], (r["seconds_per_clip"], r["scene_accuracy"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        for r, marker in ((next(r for r in mine if r["order"].startswith("raster")), "s"), (next(r for r in mine if r["order"].startswith("set")), "^")):
            ax.plot(r["seconds_per_clip"], r["scene_accuracy"], marker, color=line.get_color(),
                    label=f"{model}: {r['order'].split(',')[0].split(' (')[0]}")
    ax.set_xscale("log")
    ax.set_xlabel("seconds a 16-frame clip (one at a time)")
    ax.set_ylabel("scene accuracy")
    ax.set_title("decoding orders of one set model (numbers: diagonal delay)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def table(rows: list[dict], growth: list[dict]) -> list[str]:
    out = ["| model | decoding | clips x draws | scene acc. (draws) | forward passes / clip | s / clip | speed vs raster |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        raster = next(x for x in rows if x["model"] == r["model"] and x["order"].startswith("raster"))
        draws = ", ".join(f"{a:.2f}" for a in r["draws"])
        out.append(f"| {r['model']} | {r['order']} | {r['clips']} x {len(r['draws'])} | {r['scene_accuracy']:.3f} ({draws}) | "
                   f"{r['forward_passes']:.0f} | {r['seconds_per_clip']:.2f} | {raster['seconds_per_clip'] / r['seconds_per_clip']:.1f}x |")
    out += ["", "| model | frames in the clip | ms per raster token, KV cache |", "|---|---|---|"]
    out += [f"| {g['model']} | {g['frames']} | {g['ms_per_token']:.2f} |" for g in growth]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["shapes-ar"], help="set models (names or folders)")
    ap.add_argument("--labels", nargs="*", default=None, help="a label a model (default: its folder name)")
    ap.add_argument("--num", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--baseline-num", type=int, default=0, help="clips for the models after the first (0: --num)")
    ap.add_argument("--baseline-seeds", type=int, nargs="*", default=None, help="seeds for the models after the first (default: --seeds)")
    ap.add_argument("--raster-seeds", type=int, nargs="*", default=None, help="seeds of the raster rows (default: --seeds)")
    ap.add_argument("--sweep-num", type=int, default=50, help="clips a point of the delay sweep (first seed)")
    ap.add_argument("--delays", type=int, nargs="*", default=[1, 2, 4, 8, 15])
    ap.add_argument("--time-num", type=int, default=3, help="clips timed one at a time for each order")
    ap.add_argument("--growth-frames", type=int, nargs="*", default=[16, 32, 64, 256])
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: framecast's policy)")
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/ar_orders.json"))
    args = ap.parse_args()
    apply_threads(args.threads)
    labels = args.labels or [Path(m).name for m in args.models]
    rows, growth = [], []
    for i, (name, label) in enumerate(zip(args.models, labels)):
        num, seeds = (args.num, args.seeds) if i == 0 else (args.baseline_num or args.num, args.baseline_seeds or args.seeds)
        pipe = load(name, device="cpu")
        pipe.use_siblings = False  # these weights in every order, whatever sibling the bundle hands an order to
        r, g = measure(pipe, label, args, num, seeds)
        rows += r
        growth += g
    if args.plot:
        plot(rows, args.plot)
    write_report(args.output, {"rows": rows, "growth": growth}, table(rows, growth))


if __name__ == "__main__":
    main()
