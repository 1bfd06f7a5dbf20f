"""A small folder of example videos to try training on your own data: coloured balls that roll
and fall over grass, captioned with words the Shapes world does not have ("an orange ball rolls
left"). Each clip is a .mp4 with a sidecar .txt caption.

    python -m framecast.data.example my_videos
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from framecast.video import export_to_video

COLOURS = {"orange": (255, 140, 0), "purple": (140, 40, 200), "pink": (255, 105, 180), "brown": (150, 90, 40)}
MOTIONS = {"rolls left": (-1, 0), "rolls right": (1, 0), "bounces up": (0, -1), "falls down": (0, 1)}
CLIPS = [("orange", "rolls left"), ("purple", "rolls right"), ("pink", "bounces up"), ("brown", "falls down"),
         ("orange", "rolls right"), ("purple", "falls down")]


def ball_clip(colour: str, motion: str, *, frames: int = 24, size: int = 64, radius: int = 9) -> np.ndarray:
    """(frames, size, size, 3) uint8: a ball of `colour` crossing the frame as `motion` says."""
    dx, dy = MOTIONS[motion]
    yy, xx = np.mgrid[:size, :size]
    speed = size / (2 * frames)
    clip = np.empty((frames, size, size, 3), np.uint8)
    clip[:] = (30, 90, 40)
    for t in range(frames):
        cx = size / 2 + dx * speed * (t - frames / 2)
        cy = size / 2 + dy * speed * (t - frames / 2)
        clip[t][(xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2] = COLOURS[colour]
    return clip


def caption(colour: str, motion: str) -> str:
    return f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} ball {motion}"


def write_example_folder(root: str | Path, *, clips: int = 4, frames: int = 24) -> Path:
    """`clips` (at most 6) example videos with sidecar captions in `root`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i, (colour, motion) in enumerate(CLIPS[:clips]):
        export_to_video(ball_clip(colour, motion, frames=frames), root / f"ball{i}.mp4")
        (root / f"ball{i}.txt").write_text(caption(colour, motion) + "\n")
    return root


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m framecast.data.example FOLDER")
    print(f"wrote {len(CLIPS[:4])} clips with captions to {write_example_folder(sys.argv[1])}")
