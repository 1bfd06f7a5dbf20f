"""The Shapes world (spec v1, docs/shapes.md): scenes, captions, exact states, renderer.

Every clip is a pure function of (seed, split, size S, frames T). Positions are
kept on the integer pixel grid (bounding-box corners on whole pixels) so that
every rendered shape is exact and every step is exactly S/32 pixels long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.25, "big": 0.375}  # side as a share of S
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
# (colour, shape) pairs never seen in training; they are the whole compositional split.
HELD_OUT_PAIRS = frozenset({("green", "triangle"), ("magenta", "circle"), ("white", "square")})
SPLITS = ("train", "compositional")
MIN_MOVES_BEFORE_BOUNCE = 4

VOCABULARY = sorted(
    {"a", "moves", "and", *SIZES, *COLOURS, *SHAPES, *DIRECTIONS}
)


@dataclass(frozen=True)
class ShapeObject:
    """One object of a scene, at frame 0."""

    size: str
    colour: str
    shape: str
    direction: str
    x0: float  # centre at frame 0, pixels
    y0: float

    def caption(self) -> str:
        return f"a {self.size} {self.colour} {self.shape} moves {self.direction}"


@dataclass(frozen=True)
class Scene:
    objects: tuple[ShapeObject, ...]
    size: int  # S
    split: str

    @property
    def caption(self) -> str:
        return " and ".join(o.caption() for o in self.objects)


def side_px(size: str, S: int) -> float:
    return SIZES[size] * S


def speed_px_per_frame(S: int) -> float:
    return S / 32


def expected_area_px(shape: str, side: float) -> float:
    """Area a shape of this side covers (continuous, what the judge compares against)."""
    if shape == "circle":
        return float(np.pi * (side / 2) ** 2)
    if shape == "square":
        return float(side * side)
    return float(side * side / 2)


def parse_caption(caption: str) -> list[dict[str, str]]:
    """Caption -> list of {size, colour, shape, direction}. Raises ValueError if not in the grammar."""
    objects = []
    for part in caption.strip().lower().split(" and "):
        words = part.split()
        if (
            len(words) != 6
            or words[0] != "a"
            or words[4] != "moves"
            or words[1] not in SIZES
            or words[2] not in COLOURS
            or words[3] not in SHAPES
            or words[5] not in DIRECTIONS
        ):
            raise ValueError(
                f"'{part}' is not a Shapes caption; expected 'a {{small|big}} {{colour}} {{shape}} moves {{direction}}'"
            )
        objects.append(dict(size=words[1], colour=words[2], shape=words[3], direction=words[5]))
    if len(objects) > 2:
        raise ValueError(f"a Shapes caption has one or two objects, got {len(objects)}")
    return objects


def _pair_allowed(colour: str, shape: str, split: str) -> bool:
    held_out = (colour, shape) in HELD_OUT_PAIRS
    return not held_out if split == "train" else True


def _draw_start(rng: np.random.Generator, side: int, direction: str, S: int,
                lane: tuple[int, int, int, int]) -> tuple[float, float]:
    """Top-left corner on the integer grid, inside `lane` (x_lo, x_hi, y_lo, y_hi), with
    MIN_MOVES_BEFORE_BOUNCE moves before the first bounce."""
    v = speed_px_per_frame(S)
    dx, dy = DIRECTIONS[direction]
    reach = MIN_MOVES_BEFORE_BOUNCE * v
    x_lo, x_hi, y_lo, y_hi = lane
    # The bounce margin only constrains the axis of motion and only against the wall ahead.
    left_min = x_lo + (reach if dx < 0 else 0)
    left_max = x_hi - side - (reach if dx > 0 else 0)
    top_min = y_lo + (reach if dy < 0 else 0)
    top_max = y_hi - side - (reach if dy > 0 else 0)
    step = int(v)  # positions on a grid of the speed, so every frame stays on whole pixels
    left = step * rng.integers(int(np.ceil(left_min / step)), int(left_max // step) + 1)
    top = step * rng.integers(int(np.ceil(top_min / step)), int(top_max // step) + 1)
    return left + side / 2, top + side / 2


def sample_scene(seed: int, *, split: str = "train", size: int = 32) -> Scene:
    """The scene of one seed. Deterministic: same (seed, split, size) -> same scene."""
    if split not in SPLITS:
        raise ValueError(f"unknown Shapes split '{split}'; choose one of {', '.join(SPLITS)}")
    if size < 32 or size % 32:
        raise ValueError(f"Shapes canvas size must be a multiple of 32 (32, 64, ...), got {size}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    S = size
    n_objects = int(rng.integers(1, 3))
    while True:
        colours = rng.choice(list(COLOURS), size=n_objects, replace=False)
        shapes = rng.choice(SHAPES, size=n_objects)
        pairs = list(zip(colours, shapes))
        if split == "train" and all(_pair_allowed(c, s, split) for c, s in pairs):
            break
        if split == "compositional" and any(p in HELD_OUT_PAIRS for p in pairs):
            break
    sizes = rng.choice(list(SIZES), size=n_objects)
    if n_objects == 1:
        directions = [rng.choice(list(DIRECTIONS))]
        lanes = [(0, S, 0, S)]
    else:
        horizontal = bool(rng.integers(0, 2))
        directions = list(rng.choice(["left", "right"] if horizontal else ["up", "down"], size=2))
        half = S // 2
        # left/right: first object in the top half, second in the bottom half; up/down: left, right.
        lanes = [(0, S, 0, half), (0, S, half, S)] if horizontal else [(0, half, 0, S), (half, S, 0, S)]
    objects = []
    for i in range(n_objects):
        side = int(round(side_px(str(sizes[i]), S)))
        cx, cy = _draw_start(rng, side, str(directions[i]), S, lanes[i])
        objects.append(
            ShapeObject(size=str(sizes[i]), colour=str(colours[i]), shape=str(shapes[i]), direction=str(directions[i]),
                        x0=cx, y0=cy)
        )
    return Scene(objects=tuple(objects), size=S, split=split)


def trajectory(obj: ShapeObject, S: int, frames: int) -> np.ndarray:
    """(T, 4) float array of centre x, y and velocity vx, vy per frame, with elastic bounces."""
    side = side_px(obj.size, S)
    v = speed_px_per_frame(S)
    dx, dy = DIRECTIONS[obj.direction]
    pos = np.array([obj.x0, obj.y0], dtype=np.float64)
    vel = np.array([dx * v, dy * v], dtype=np.float64)
    out = np.zeros((frames, 4))
    for t in range(frames):
        out[t] = (*pos, *vel)
        new = pos + vel
        for axis in range(2):
            lo, hi = new[axis] - side / 2, new[axis] + side / 2
            if lo < 0:  # mirror at the wall, flip that velocity component
                new[axis] = -lo + side / 2
                vel[axis] = -vel[axis]
            elif hi > S:
                new[axis] = (2 * S - hi) - side / 2
                vel[axis] = -vel[axis]
        pos = new
    return out


def shape_mask(shape: str, side: float, cx: np.ndarray, cy: np.ndarray, S: int) -> np.ndarray:
    """(T, S, S) bool: pixels whose centre lies inside the shape centred at (cx[t], cy[t])."""
    centres = np.arange(S) + 0.5
    px = centres[None, None, :] - cx[:, None, None]  # (T, 1, S) offsets from the centre
    py = centres[None, :, None] - cy[:, None, None]  # (T, S, 1)
    h = side / 2
    if shape == "circle":
        return px**2 + py**2 <= h * h
    if shape == "square":
        return (np.abs(px) <= h) & (np.abs(py) <= h)
    # Isosceles triangle, apex up at (0, -h), base from (-h, h) to (h, h): half-width grows by 1/2 per row.
    depth = py + h
    return (depth >= 0) & (py <= h) & (np.abs(px) <= depth / 2)


@dataclass(frozen=True)
class Clip:
    video: np.ndarray  # (T, S, S, 3) uint8
    caption: str
    scene: Scene
    states: list[np.ndarray]  # per object, (T, 4): x, y, vx, vy


def render(scene: Scene, frames: int = 16) -> Clip:
    if frames <= 0:
        raise ValueError(f"frames must be > 0, got {frames}")
    S = scene.size
    video = np.zeros((frames, S, S, 3), dtype=np.uint8)
    states = []
    for obj in scene.objects:
        traj = trajectory(obj, S, frames)
        mask = shape_mask(obj.shape, side_px(obj.size, S), traj[:, 0], traj[:, 1], S)
        video[mask] = COLOURS[obj.colour]
        states.append(traj)
    return Clip(video=video, caption=scene.caption, scene=scene, states=states)


def render_clip(seed: int, *, split: str = "train", size: int = 32, frames: int = 16) -> Clip:
    return render(sample_scene(seed, split=split, size=size), frames)


class ShapesDataset(torch.utils.data.Dataset):
    """Clips of the Shapes world as (B, T, C, H, W)-ready tensors in [-1, 1] with captions.

    Item i is the clip of seed `seed + i`, so a dataset is a fixed, reproducible list.
    """

    def __init__(self, *, split: str = "train", size: int = 32, frames: int = 16, length: int = 10_000, seed: int = 0):
        if frames <= 0:
            raise ValueError(f"frames must be > 0, got {frames}")
        sample_scene(seed, split=split, size=size)  # validates split and size early
        self.split, self.size, self.frames, self.length, self.seed = split, size, frames, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        clip = render_clip(self.seed + i, split=self.split, size=self.size, frames=self.frames)
        video = torch.from_numpy(clip.video).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (T, C, H, W)
        return {"video": video, "caption": clip.caption}


def shapes_batches(*, batch_size: int, split: str = "train", size: int = 32, frames: int = 16, seed: int = 0,
                   start_step: int = 0) -> Iterator[dict]:
    """Endless training batches. Batch k holds the clips of seeds derived from (seed, k), so a
    run resumed at step k sees exactly the data the uninterrupted run would have seen."""
    step = start_step
    while True:
        seeds = np.random.default_rng([seed, step, 7]).integers(0, 2**62, size=batch_size)
        clips = [render_clip(int(s), split=split, size=size, frames=frames) for s in seeds]
        video = torch.from_numpy(np.stack([c.video for c in clips])).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
        yield {"video": video, "caption": [c.caption for c in clips], "step": step}
        step += 1
