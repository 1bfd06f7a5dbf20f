"""Draw the three families side by side: one prompt, one seed, one row a bundled model.

    python tools/families_figure.py --output docs/images/families.png

Each row is a contact sheet (framecast.video.contact_sheet) of every other frame of the clip,
captioned with the model's name and family. The README shows the result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import framecast
from framecast.video import contact_sheet

MODELS = [("shapes-diffusion", "diffusion"), ("shapes-hybrid", "hybrid"), ("shapes-ar", "autoregressive")]
PROMPT = "a big red circle moves right and a small blue square moves left"


def model_row(name: str, prompt: str, seed: int, scale: int, every: int) -> np.ndarray:
    """One clip of `name` at `seed`, every `every`-th frame in one row, (H, W, 3) uint8."""
    pipe = framecast.load(name, precision="fp32")
    frames_THW3 = pipe(prompt, generator=torch.Generator().manual_seed(seed)).frames[0][::every]
    return contact_sheet(frames_THW3, columns=len(frames_THW3), scale=scale)


def captioned(rows: list[tuple[str, np.ndarray]], title: str, label_width: int = 170) -> Image.Image:
    """Stack the rows under a title, each with its caption to the left."""
    height = 28 + sum(r.shape[0] + 6 for _, r in rows)
    width = label_width + max(r.shape[1] for _, r in rows) + 6
    canvas = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 8), title, fill=(235, 235, 235))
    y = 28
    for caption, row in rows:
        canvas.paste(Image.fromarray(row), (label_width, y))
        for i, line in enumerate(caption.split("\n")):
            draw.text((6, y + row.shape[0] // 2 - 12 + 14 * i), line, fill=(235, 235, 235))
        y += row.shape[0] + 6
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, default=3, help="pixels a Shapes pixel")
    parser.add_argument("--every", type=int, default=2, help="show every n-th frame")
    parser.add_argument("--output", type=Path, default=Path("docs/images/families.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [(f"{name}\n{family}", model_row(name, args.prompt, args.seed, args.scale, args.every)) for name, family in MODELS]
    title = f'"{args.prompt}", seed {args.seed}; frames 0, {args.every}, {2 * args.every}, ... left to right'
    args.output.parent.mkdir(parents=True, exist_ok=True)
    captioned(rows, title).save(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
