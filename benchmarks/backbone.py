"""Speed of the shared backbone: training step and sampling step, next to the CPU's matmul peak.

    python benchmarks/backbone.py --output benchmarks/results/backbone.json

For each precision (fp32, and bf16 autocast where the CPU has bf16 kernels: elsewhere a 2048 x 2048
bf16 matmul alone takes a minute, so it is left out unless `--precisions` asks for it) it reports milliseconds, tokens/s, achieved GFLOP/s
(FLOPs counted by torch.utils.flop_counter) and the process's peak resident memory. Each
measurement runs in a fresh process so peaks do not mix. Writes JSON and a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import resource
import time
from dataclasses import asdict
from pathlib import Path

import torch
from report import write_report
from torch.utils.flop_counter import FlopCounterMode

from framecast.precision import has_fast_bf16
from framecast.text.encoder import TextEmbedding
from framecast.threads import choose_threads


def _autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def matmul_peak(precision: str, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n x n matmul in the given precision (the ceiling for everything else)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def _timed(fn, repeats: int) -> tuple[float, float]:
    """(seconds per call, FLOPs per call)."""
    fn()  # warm-up
    with FlopCounterMode(display=False) as counter:
        fn()
    flops = counter.get_total_flops()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats, flops


def _measure(kind: str, recipe: str, precision: str, batch: int, repeats: int, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    from framecast.data.shapes import shapes_batches
    from framecast.generators import ModelSpec, build_generator
    from framecast.train.recipes import get_recipe
    from framecast.train.trainer import component_configs

    cfg = get_recipe(recipe)
    component_configs(cfg)  # a latent recipe's codec config
    if cfg.model.generator.get("codec"):
        cfg.model.generator["latent_scale"] = 1.0  # the scale does not change the cost
    torch.manual_seed(0)
    model = build_generator(ModelSpec(**asdict(cfg.model)))
    video = next(shapes_batches(batch_size=batch, frames=cfg.data.frames, size=cfg.data.size))
    # The backbone's work only: a latent model's clips go in as latents, as from the latent pool.
    data = {"latent": model.to_latent(video["video"]), "caption": video["caption"]}
    side = cfg.data.size // model.codec.downsample
    grid = model.backbone.grid(cfg.data.frames, side, side)
    tokens = batch * grid[0] * grid[1] * grid[2]
    if kind == "train":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            with _autocast(precision):
                loss = model.loss(data, generator=torch.Generator().manual_seed(0))
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:  # one sampling step with classifier-free guidance: the model runs on 2 x batch clips
        model.eval()
        text = model.text.encode(data["caption"])
        uncond = model.text.encode_null(batch)
        denoise = model.guided_denoiser(TextEmbedding.cat([text, uncond]), 4.0)
        x = torch.randn_like(data["latent"])
        tokens *= 2

        def step():
            with torch.no_grad(), _autocast(precision):
                denoise(x, torch.tensor(0.5))

    seconds, flops = _timed(step, repeats)
    queue.put(
        {
            "kind": kind, "recipe": recipe, "precision": precision, "batch": batch, "threads": threads,
            "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            "ms": seconds * 1e3, "tokens_per_s": tokens / seconds, "gflop": flops / 1e9,
            "gflop_per_s": flops / seconds / 1e9, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def run(kind, recipe, precision, batch, repeats, threads) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(kind, recipe, precision, batch, repeats, threads, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="shapes-diffusion-small")
    ap.add_argument("--train-batch", type=int, default=16)
    ap.add_argument("--sample-batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="default: FRAMECAST_THREADS, else framecast.threads' choice")
    ap.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"] if has_fast_bf16("cpu") else ["fp32"])
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/backbone.json"))
    args = ap.parse_args()
    args.threads = choose_threads(args.threads)[0]
    torch.set_num_threads(args.threads)
    peaks = {p: matmul_peak(p) for p in args.precisions}
    rows = []
    for kind, batch in (("train", args.train_batch), ("sample", args.sample_batch)):
        for precision in args.precisions:
            r = run(kind, args.recipe, precision, batch, args.repeats, args.threads)
            r["share_of_peak"] = r["gflop_per_s"] / peaks[precision]
            rows.append(r)
            print(f"{kind:6s} {precision}: {r['ms']:8.1f} ms  {r['tokens_per_s']:9.0f} tok/s  {r['gflop_per_s']:6.1f} GFLOP/s "
                  f"({100 * r['share_of_peak']:.0f}% of {peaks[precision]:.0f})  peak {r['peak_rss_mb']:.0f} MB", flush=True)
    result = {"recipe": args.recipe, "matmul_peak_gflop_per_s": peaks, "results": rows}
    table = ["| step | precision | batch | ms | tokens/s | GFLOP/s | share of matmul peak | peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['kind']} | {r['precision']} | {r['batch']} | {r['ms']:.0f} | {r['tokens_per_s']:.0f} | {r['gflop_per_s']:.0f} | "
                     f"{100 * r['share_of_peak']:.0f}% of {peaks[r['precision']]:.0f} | {r['peak_rss_mb']:.0f} |")
    write_report(args.output, result, table, precision=" and ".join(args.precisions))


if __name__ == "__main__":
    main()
