"""Reconstruction quality of a codec on held-out Shapes clips.

    python -m framecast.eval.codec --model shapes-vae --num 200 --output benchmarks/results/codec-shapes-vae.json
    python -m framecast.eval.codec --model runs/a/model,runs/b/model --output codecs.json   # several codecs, one table

Held-out clips are the train split's clips of seeds 0 .. num-1 (training draws its seeds from
a 2^62 range, so these are unseen). PSNR is over the whole clip in [0, 255]; also the judge's
scene accuracy on the reconstructions (does the codec keep shapes, colours and motion?). For a
tokenizer, codebook usage and perplexity, and how local its codes are: of all the patches (the
pixels one code covers) that recur, the share coded as their content's most common code (1.0 when
a code is a function of its own patch; a token model has to predict whatever the rest is).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

from framecast.data.shapes import render_clip
from framecast.eval.metrics import psnr
from framecast.eval.results import write_result
from framecast.eval.shapes import judge_clip, summarize
from framecast.generators import from_pretrained
from framecast.pipeline import resolve_model
from framecast.video import from_uint8, to_uint8


def measure(name: str, num: int, frames: int) -> dict:
    codec = from_pretrained(resolve_model(name))
    scores, verdicts, seconds, all_codes = [], [], 0.0, []
    codes_of_patch: dict[bytes, Counter] = defaultdict(Counter)
    for i in range(num):
        clip = render_clip(i, frames=frames)
        x = from_uint8(clip.video)[None]
        t = time.perf_counter()
        with torch.no_grad():
            z = codec.encode(x)
            rec = to_uint8(codec.decode(z).clamp(-1, 1))
        if z.dtype == torch.long:  # a tokenizer: keep the codes for usage statistics
            all_codes.append(z.flatten())
            d = codec.downsample
            patches = clip.video.reshape(frames, 32 // d, d, 32 // d, d, 3).transpose(0, 1, 3, 2, 4, 5).reshape(z[0].numel(), -1)
            for patch, code in zip(patches, z.flatten().tolist()):
                codes_of_patch[patch.tobytes()][code] += 1
        seconds += time.perf_counter() - t
        scores.append(psnr(rec, clip.video))
        verdicts.append(judge_clip(rec, clip.caption))
    s = summarize(verdicts)
    result = {"model": str(name), "clips": num, "frames": frames, "psnr_db": float(np.mean(scores)),
              "psnr_db_min": float(np.min(scores)), "scene_accuracy_of_reconstructions": s.scene_accuracy,
              "latent_shape_per_frame": [codec.latent_channels, 32 // codec.downsample, 32 // codec.downsample],
              "ms_per_clip": 1e3 * seconds / num}
    if all_codes:
        codes = torch.cat(all_codes)
        counts = torch.bincount(codes, minlength=codec.codebook_size).double()
        p = counts / counts.sum()
        result["quantizer"] = codec.config.quantizer
        result["codebook_size"] = codec.codebook_size
        result["codebook_usage"] = float((counts > 0).double().mean())
        result["perplexity"] = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
        recurring = [c for c in codes_of_patch.values() if sum(c.values()) > 1]
        result["distinct_patches"] = len(codes_of_patch)
        result["patch_determinism"] = sum(c.most_common(1)[0][1] for c in recurring) / max(1, sum(sum(c.values()) for c in recurring))
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-vae", help="a codec (bundled name or folder); several, comma-separated, make one table")
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--output", type=Path, default=Path("codec.json"))
    args = ap.parse_args(argv)
    results = [measure(name, args.num, args.frames) for name in args.model.split(",")]
    table = [("| codec | latent per frame | PSNR dB (mean / min) | scene acc. of reconstructions | codebook usage | perplexity "
             "| patch determinism | ms / clip |"),
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        usage = f"{100 * r['codebook_usage']:.0f}% of {r['codebook_size']}" if "codebook_size" in r else "-"
        perplexity = f"{r['perplexity']:.0f}" if "perplexity" in r else "-"
        determinism = f"{r['patch_determinism']:.3f}" if "patch_determinism" in r else "-"
        table.append(f"| {r['model']} | {'x'.join(map(str, r['latent_shape_per_frame']))} | {r['psnr_db']:.1f} / {r['psnr_db_min']:.1f} | "
                     f"{r['scene_accuracy_of_reconstructions']:.2f} | {usage} | {perplexity} | {determinism} | {r['ms_per_clip']:.0f} |")
    result = results[0] if len(results) == 1 else {"codecs": results}
    write_result(args.output, result, table)
    return result


if __name__ == "__main__":
    main()
