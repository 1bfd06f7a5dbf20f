"""Where does sampling lose what the denoiser knows? Real clips, noised to a level s and denoised
again by a full-sequence diffusion model:

    python -m framecast.eval.renoise --models shapes-diffusion --num 60 --shape square

For every level s, the real clips' latents are noised to s (one noise draw per clip, the same for
every row) and either predicted clean in one step ("one step") or sampled from s down to 0 with the
remaining steps of the model's schedule and a sampler. Each result is decoded and judged against
the clip's caption. The real clips decoded without noise are the ceiling (the codec's own share).
A sampler that ends below its one-step prediction from the same level loses, over its steps,
what the model could already tell: its errors add up (exposure bias).
Clips come from the train split at seeds 70000 and up, apart from the evaluation's and the tuning prompts'.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from framecast.data.shapes import render_clip
from framecast.eval.results import write_result
from framecast.eval.shapes import judge_clip
from framecast.pipeline import load
from framecast.rng import randn
from framecast.sampling import flow_sigmas, get_sampler
from framecast.text.encoder import TextEmbedding, encode_for_guidance
from framecast.video import from_uint8, to_uint8


def real_clips(num: int, shape: str | None, frames: int) -> list:
    clips, seed = [], 70000
    while len(clips) < num:
        clip = render_clip(seed, frames=frames)
        seed += 1
        if shape is None or shape in clip.caption:
            clips.append(clip)
    return clips


def judged(model, z: torch.Tensor, captions: list[str]) -> float:
    videos = model.from_latent(z).float().clamp(-1, 1)
    return float(np.mean([judge_clip(to_uint8(v), c).right for v, c in zip(videos, captions)]))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["shapes-diffusion"])
    ap.add_argument("--num", type=int, default=60)
    ap.add_argument("--shape", choices=["circle", "square", "triangle"], default=None, help="only clips with this shape")
    ap.add_argument("--levels", type=float, nargs="+", default=[0.1, 0.3, 0.5])
    ap.add_argument("--samplers", nargs="+", default=["euler-stochastic", "euler"])
    ap.add_argument("--guidance", type=float, default=None, help="default: each model's own")
    ap.add_argument("--output", type=Path, default=Path("renoise.json"))
    args = ap.parse_args(argv)
    rows = []
    for name in args.models:
        pipe = load(name)
        model, c = pipe.model, pipe.config
        if model.family != "diffusion":
            raise SystemExit(f"{name} is a {model.family} model; this benchmark takes full-sequence diffusion models")
        clips = real_clips(args.num, args.shape, c.frames)
        captions = [clip.caption for clip in clips]
        scale = args.guidance if args.guidance is not None else c.guidance
        schedule = flow_sigmas(c.steps, shift=c.shift)
        with torch.no_grad(), pipe._autocast():
            z = model.to_latent(torch.stack([from_uint8(clip.video) for clip in clips])).float()
            ceiling = judged(model, z, captions)
            text, uncond = encode_for_guidance(model.text, captions, None, scale != 1.0)
            denoise = model.guided_denoiser(text if uncond is None else TextEmbedding.cat([text, uncond]), scale)
            for level in args.levels:
                sigmas = schedule[schedule <= level + 1e-6]
                gens = [torch.Generator().manual_seed(i) for i in range(len(clips))]
                z_s = (1 - sigmas[0]) * z + sigmas[0] * randn(z.shape, gens)
                row = {"model": name, "level": float(sigmas[0]), "steps": len(sigmas) - 1, "guidance": scale, "ceiling": ceiling,
                       "one_step": judged(model, denoise(z_s, sigmas[0]), captions)}
                for sampler in args.samplers:
                    row[sampler] = judged(model, get_sampler(sampler)(denoise, z_s, sigmas, generator=gens), captions)
                rows.append(row)
                print(json.dumps(row), flush=True)
    table = ["| model | level | steps | codec alone | one step | " + " | ".join(args.samplers) + " |",
             "|---|---|---|---|---|" + "---|" * len(args.samplers)]
    table += [f"| {r['model']} | {r['level']:.2f} | {r['steps']} | {r['ceiling']:.2f} | {r['one_step']:.2f} | "
              + " | ".join(f"{r[s]:.2f}" for s in args.samplers) + " |" for r in rows]
    result = {"clips": args.num, "shape": args.shape, "results": rows}
    write_result(args.output, result, table)
    return result


if __name__ == "__main__":
    main()
