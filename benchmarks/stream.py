"""Streaming a long clip with the rolling KV window: time per frame, memory, and drift.

    python benchmarks/stream.py --frames 256 --num 10 --output benchmarks/results/stream.json

Per clip: seconds per frame over the first and the last 16 frames, memory after each
chunk (resident set on a CPU, CUDA's allocator on a GPU), and the judge on frames 1-16, 113-128 and 241-256 (presence, colour, shape, speed).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from report import result_path, write_report

from framecast.eval.arena import memory_mb
from framecast.eval.drift import judge_windows, summarize_windows
from framecast.eval.evaluate import eval_prompts
from framecast.pipeline import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-hybrid")
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--num", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--sheet", type=Path, default=None, help="also write a PNG: one row a clip (first 6), every 16th frame")
    ap.add_argument("--output", type=Path, default=None,
                    help="default: benchmarks/results/stream.json for shapes-hybrid, stream-MODEL.json for another model")
    args = ap.parse_args()
    args.output = args.output or result_path("stream", args.model)
    pipe = load(args.model, device=args.device)
    prompts = eval_prompts("train", args.num)
    T = args.frames
    windows = [(0, 16), (T // 2 - 16, T // 2), (T - 16, T)]
    clips, first, last, mem, sheets = [], [], [], [], []
    for i, p in enumerate(prompts):
        times, chunks, mems = [], [], []
        t = time.perf_counter()
        for chunk in pipe.stream(p, num_frames=T, generator=torch.Generator().manual_seed(args.seed + i)):
            now = time.perf_counter()
            times += [(now - t) / chunk.shape[0]] * chunk.shape[0]
            t = now
            chunks.append(chunk)
            mems.append(memory_mb(pipe.device))
        frames = np.concatenate(chunks)
        sheets.append(frames[::16])  # every 16th frame, for --sheet
        clips.append(judge_windows(frames, p, windows))
        first.append(float(np.mean(times[:16])))
        last.append(float(np.mean(times[-16:])))
        mem.append(mems)
        print(f"clip {i}: {first[-1] * 1e3:.0f} ms/frame first 16, {last[-1] * 1e3:.0f} ms/frame last 16, "
              f"memory {mems[0]:.0f} -> {max(mems):.0f} MB; windows {[round(w['present_colour_shape'], 2) for w in clips[-1]]}", flush=True)
    drift = summarize_windows(clips)
    if args.sheet is not None:
        from PIL import Image

        from framecast.video import contact_sheet

        rows = sheets[:6]
        Image.fromarray(contact_sheet(np.concatenate(rows), columns=rows[0].shape[0], scale=2)).save(args.sheet)
    result = {
        "model": pipe.name, "frames": T, "clips": args.num, "seed": args.seed,
        "ms_per_frame_first16": 1e3 * float(np.mean(first)), "ms_per_frame_last16": 1e3 * float(np.mean(last)),
        "last_over_first": float(np.mean(last) / np.mean(first)),
        "device": str(pipe.device),
        "memory_mb_after_first_chunk": float(np.mean([m[0] for m in mem])), "memory_mb_peak": float(np.max([max(m) for m in mem])),
        "drift": drift,
    }
    table = ["| frames | present | colour | shape | present+colour+shape (objects) | clips with every object right | speed error | teleports |",
             "|---|---|---|---|---|---|---|---|"]
    for w in drift:
        table.append(f"| {w['window'][0]}-{w['window'][1]} | {w['present']:.2f} | {w['colour']:.2f} | {w['shape']:.2f} | "
                     f"{w['present_colour_shape']:.2f} | {w['clip_right']:.2f} | {w['speed_error']:.2f} | {w['teleports']:.2f} |")
    table.append("")
    table.append(f"ms/frame: first 16 {result['ms_per_frame_first16']:.0f}, last 16 {result['ms_per_frame_last16']:.0f} "
                 f"(ratio {result['last_over_first']:.2f}); memory on {result['device']} after the first chunk {result['memory_mb_after_first_chunk']:.0f} MB, "
                 f"largest after any chunk {result['memory_mb_peak']:.0f} MB")
    write_report(args.output, result, table, device=str(pipe.device))


if __name__ == "__main__":
    main()
