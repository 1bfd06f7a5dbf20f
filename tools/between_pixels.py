"""Count the pixels a frame that lie between off and on, in a model's clips and in real ones.

The Shapes world draws hard edges, so a pixel whose brightest channel lies in (40, 215) of 255 is
a blurred edge: the codec's reconstructions of real clips hold about one a frame, the few-step
students ten or more. The model's clips are its distillation rollouts (`framecast.train.dmd.rollout`:
its steps for every frame, the first too, its sampler, no guidance beyond its config's) for 96
training scenes `framecast.train.dmd` never uses; the real clips are the same scenes rendered and
passed through the model's codec.

    python tools/between_pixels.py shapes-hybrid-fast
    python tools/between_pixels.py runs/hybrid-gan/snapshots/it-00200 --threads 2
"""

from __future__ import annotations

import argparse

import torch

from framecast.generators import from_pretrained
from framecast.pipeline import resolve_model
from framecast.train import dmd

FIRST = 7 * 10**5  # scene offset: past every scene a distillation run reads


def between(frames_BTCHW: torch.Tensor) -> float:
    """Mean count a frame of pixels whose brightest channel is in (40, 215) of 255."""
    v = ((frames_BTCHW.clamp(-1, 1) + 1) * 127.5).amax(dim=2)
    return ((v > 40) & (v < 215)).float().sum(dim=(2, 3)).mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a bundled diffusion or hybrid model, or a model folder")
    p.add_argument("--batches", type=int, default=4, help="batches of 24 scenes")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = from_pretrained(resolve_model(args.model)).float().eval()
    made, real = [], []
    with torch.no_grad():
        for k in range(args.batches):
            start = FIRST + 24 * k
            captions = dmd.scene_captions(24, start)
            rollout = dmd.rollout(model, captions, torch.Generator().manual_seed(k))
            r, f = dmd.real_and_fake(model, start, rollout)
            real.append(between(r))
            made.append(between(f))
    print(f"{args.model}: {sum(made) / len(made):.2f} pixels between off and on a frame; "
          f"real clips through its codec {sum(real) / len(real):.2f} ({24 * args.batches} clips)")


if __name__ == "__main__":
    main()
