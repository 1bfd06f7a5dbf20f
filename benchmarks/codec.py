"""Reconstruction quality of a codec on held-out Shapes clips.

    python benchmarks/codec.py --model runs/shapes-vae-small/model --num 200 --output benchmarks/results/codec.json

Held-out clips are the train split's clips of seeds 0 .. num-1 (training draws its seeds from
a 2^62 range, so these are unseen). PSNR is over the whole clip in [0, 255]; also the judge's
scene accuracy on the reconstructions (does the codec keep shapes, colours and motion?).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from report import write_report

from framecast.data.shapes import render_clip
from framecast.eval.metrics import psnr
from framecast.eval.shapes import judge_clip, summarize
from framecast.generators import from_pretrained
from framecast.pipeline import resolve_model
from framecast.video import from_uint8, to_uint8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-vae")
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/codec.json"))
    args = ap.parse_args()
    vae = from_pretrained(resolve_model(args.model))
    scores, verdicts, seconds, all_codes = [], [], 0.0, []
    for i in range(args.num):
        clip = render_clip(i, frames=args.frames)
        x = from_uint8(clip.video)[None]
        t = time.perf_counter()
        with torch.no_grad():
            z = vae.encode(x)
            rec = to_uint8(vae.decode(z).clamp(-1, 1))
        if z.dtype == torch.long:  # a tokenizer: keep the codes for usage statistics
            all_codes.append(z.flatten())
        seconds += time.perf_counter() - t
        scores.append(psnr(rec, clip.video))
        verdicts.append(judge_clip(rec, clip.caption))
    s = summarize(verdicts)
    result = {"model": str(args.model), "clips": args.num, "frames": args.frames, "psnr_db": float(np.mean(scores)),
              "psnr_db_min": float(np.min(scores)), "scene_accuracy_of_reconstructions": s.scene_accuracy,
              "latent_shape_per_frame": [vae.latent_channels, 32 // vae.downsample, 32 // vae.downsample],
              "ms_per_clip": 1e3 * seconds / args.num}
    if all_codes:
        codes = torch.cat(all_codes)
        counts = torch.bincount(codes, minlength=vae.codebook_size).double()
        p = counts / counts.sum()
        result["codebook_size"] = vae.codebook_size
        result["codebook_usage"] = float((counts > 0).double().mean())
        result["perplexity"] = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
    usage = f"{100 * result['codebook_usage']:.0f}% of {result['codebook_size']}, perplexity {result['perplexity']:.0f}" if all_codes else "-"
    table = ["| codec | latent per frame | PSNR dB (mean / min) | scene acc. of reconstructions | codebook usage | ms / clip |",
             "|---|---|---|---|---|---|",
             f"| {args.model} | {'x'.join(map(str, result['latent_shape_per_frame']))} | {result['psnr_db']:.1f} / {result['psnr_db_min']:.1f} | "
             f"{result['scene_accuracy_of_reconstructions']:.2f} | {usage} | {result['ms_per_clip']:.0f} |"]
    write_report(args.output, result, table)


if __name__ == "__main__":
    main()
