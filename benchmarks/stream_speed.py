"""Where a streamed frame's time goes, and what two changes to the stream loop buy.

    python benchmarks/stream_speed.py --output benchmarks/results/stream_speed.json [--precision fp32]

For each hybrid model (default: shapes-hybrid-fast and its teacher shapes-hybrid), in one run, the
settings compared in turns (medians of `--repeats` turns; the gains are medians of each turn's ratio):
- streaming frames per second (32 frames, median of `--repeats`) with every KV-cache write a pass
  of its own (`StreamDenoiser.fuse_writes = False`, as CausVid and Self-Forcing sample) and with
  the write riding on the next chunk's first pass (the default);
- the codec's time per emitted frame: decoding each new chunk again with the `receptive_frames`
  before it (`Codec.decode_frames`) against the stream decoder that keeps each causal temporal
  convolution's last inputs (`Codec.stream_decoder`), over the same latents.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from report import write_report

from framecast.generators.hybrid import StreamDenoiser
from framecast.pipeline import load
from framecast.precision import resolve_precision

PROMPT = "a small blue square moves down and a big red circle moves left"


def stream_fps(pipe, frames: int, seed: int) -> float:
    t, n = time.perf_counter(), 0
    for chunk in pipe.stream(PROMPT, num_frames=frames, generator=torch.Generator().manual_seed(seed)):
        n += chunk.shape[0]
    return n / (time.perf_counter() - t)


def decode_ms(model, z: torch.Tensor, chunk: int, kept: bool) -> float:
    """ms per frame to decode latents z (1, T, ...) chunk by chunk, as a stream emits them."""
    t = time.perf_counter()
    with torch.no_grad():
        if kept:
            decode = model.stream_decoder()
            for a in range(0, z.shape[1], chunk):
                decode(z[:, a : a + chunk])
        else:
            for a in range(0, z.shape[1], chunk):
                model.decode_frames(z, a, a + chunk)
    return 1e3 * (time.perf_counter() - t) / z.shape[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["shapes-hybrid-fast", "shapes-hybrid"])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="auto", help="auto (bf16 where the CPU has it, else fp32), bf16 or fp32")
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/stream_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    precision = resolve_precision(args.precision, "cpu")
    rows = []
    for name in args.models:
        pipe = load(name, device="cpu", precision=precision)
        model = pipe.model
        C, side = model.latent_shape
        z = torch.randn(1, args.frames, C, side, side, generator=torch.Generator().manual_seed(0))
        stream_fps(pipe, args.frames, 0)  # warm-up
        runs = []
        for seed in range(args.repeats):  # the two settings in turns, so a machine that speeds up or slows down favours neither
            r = {}
            for fused in (False, True):
                StreamDenoiser.fuse_writes = fused
                r["fps_fused" if fused else "fps_own_pass"] = stream_fps(pipe, args.frames, seed)
            for kept in (False, True):
                r["decode_ms_kept_state" if kept else "decode_ms_window"] = decode_ms(model, z, model.patch_frames, kept)
            runs.append(r)
        row = {"model": pipe.name, **{k: statistics.median(r[k] for r in runs) for k in runs[0]},
               "fused_gain": statistics.median(r["fps_fused"] / r["fps_own_pass"] for r in runs),
               "decode_gain": statistics.median(r["decode_ms_window"] / r["decode_ms_kept_state"] for r in runs)}
        rows.append(row)
        print(row, flush=True)
    StreamDenoiser.fuse_writes = True
    table = ["| model | fps, each write its own pass | fps, write fused (default) | gain | decode ms / frame, window again | "
             "decode ms / frame, kept state (default) | gain |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['model']} | {r['fps_own_pass']:.1f} | {r['fps_fused']:.1f} | {r['fused_gain']:.2f}x | "
                     f"{r['decode_ms_window']:.1f} | {r['decode_ms_kept_state']:.1f} | {r['decode_gain']:.1f}x |")
    write_report(args.output, {"frames": args.frames, "threads": args.threads, "rows": rows}, table, precision=precision)
    print("\n".join(table))


if __name__ == "__main__":
    main()
