"""Draw the three named noise-level matrices K[step, frame] for docs/sampling.md.

    python tools/matrix_figures.py --output-dir docs/images

Writes matrix-full.png, matrix-autoregressive.png and matrix-pyramid.png: rows are sampling steps
(top = first), columns are token-frames, white = pure noise, black = clean
(framecast.sampling.noise_matrix.build_matrix + matrix_image), each captioned with its size and
the number of model calls it costs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from framecast.sampling.noise_matrix import build_matrix, matrix_image

SCHEDULES = ("full", "autoregressive", "pyramid")


def figure(name: str, frames: int, steps: int, offset: int) -> Image.Image:
    """One matrix as a captioned picture."""
    m = build_matrix(name, frames, steps, offset=offset if name == "pyramid" else None)
    rows, cols = m.levels.shape
    grid = Image.fromarray(matrix_image(m, cell=max(3, min(24, 480 // rows)), cell_width=max(12, min(48, 480 // cols))))
    pad_top, pad_left = 24, 8
    canvas = Image.new("RGB", (max(grid.width, 300) + 2 * pad_left, grid.height + pad_top + 8), (40, 40, 40))
    canvas.paste(grid, (pad_left, pad_top))
    caption = f"{name}: {m.steps} rows (steps) x {m.frames} columns (frames), {m.model_calls()} model calls"
    ImageDraw.Draw(canvas).text((pad_left, 6), caption, fill=(230, 230, 230))
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="token-frames (columns)")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps a frame")
    parser.add_argument("--offset", type=int, default=3, help="pyramid: rows between neighbouring columns")
    parser.add_argument("--output-dir", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name in SCHEDULES:
        path = args.output_dir / f"matrix-{name}.png"
        figure(name, args.frames, args.steps, args.offset).save(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
