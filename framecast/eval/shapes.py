"""The Shapes judge: exact measurements of a (T, H, W, 3) clip against its caption (docs/shapes.md,
"Judging a clip"). It reads only pixels and the caption, so it judges any model's output."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from framecast.data.shapes import COLOURS, SIZES, expected_area_px, parse_caption, speed_px_per_frame

ON_THRESHOLD = 80  # brightest channel >= 80 of 255
PRESENCE_SHARE = 0.15  # of the expected area, for a frame to count as present
PRESENCE_MIN = 0.75  # share of frames present for an object to be right
EXTRA_SHARE = 0.30  # of a small object's area, in at least half the frames
DIRECTION_FRAMES = 5  # frames 0-4

_COLOUR_OF_CODE = {(r // 255) * 4 + (g // 255) * 2 + (b // 255): name for name, (r, g, b) in COLOURS.items()}


def colour_codes(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W) int: 0 = off, else the binary RGB triple as 4r + 2g + b."""
    f = frames.astype(np.int16)
    bright = f.max(axis=-1)
    on = bright >= ON_THRESHOLD
    bits = (2 * f >= bright[..., None]).astype(np.int16)  # each channel >= half the brightest
    code = bits[..., 0] * 4 + bits[..., 1] * 2 + bits[..., 2]
    return np.where(on, code, 0)


def colour_code(name: str) -> int:
    r, g, b = COLOURS[name]
    return (r // 255) * 4 + (g // 255) * 2 + (b // 255)


@dataclass
class ObjectVerdict:
    caption: str
    presence: float  # share of frames present
    shape: str | None  # judged shape (majority over whole frames), None if never whole
    direction: str | None
    speed_error: float | None  # median |step - v| / v
    teleports: int
    colour_ok: bool  # the object's colour is the dominant colour where it should be
    shape_ok: bool = False
    direction_ok: bool = False
    present: bool = False
    right: bool = False


@dataclass
class ClipVerdict:
    caption: str
    objects: list[ObjectVerdict]
    extra_colours: list[str]
    right: bool = False
    teleports: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _judge_shape(mask_THW: np.ndarray, present: np.ndarray) -> str | None:
    """Majority vote over frames where the object is whole. Every Shapes object has a square
    bounding box (circle: diameter; triangle: base = height), so a box that is clearly not
    square is an object cut by the canvas edge or a broken blob, and does not vote."""
    votes: dict[str, int] = {}
    T, H, W = mask_THW.shape
    for t in range(T):
        if not present[t]:
            continue
        ys, xs = np.nonzero(mask_THW[t])
        y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
        h, w = y1 - y0 + 1, x1 - x0 + 1
        if abs(h - w) > max(1, 0.15 * max(h, w)):
            continue
        m = mask_THW[t]
        tl, tr, bl, br = m[y0, x0], m[y0, x1], m[y1, x0], m[y1, x1]
        if tl and tr and bl and br:
            kind = "square"
        elif bl and br and not tl and not tr:
            kind = "triangle"
        elif not (tl or tr or bl or br):
            kind = "circle"
        else:
            kind = "other"
        votes[kind] = votes.get(kind, 0) + 1
    if not votes:
        return None
    return max(votes, key=votes.get)


def _centroids(mask_THW: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(T, 2) x, y centroid of the mask (pixel centres), NaN where absent."""
    T = mask_THW.shape[0]
    out = np.full((T, 2), np.nan)
    for t in range(T):
        if present[t]:
            ys, xs = np.nonzero(mask_THW[t])
            out[t] = xs.mean() + 0.5, ys.mean() + 0.5
    return out


def _direction(cent: np.ndarray) -> str | None:
    head = cent[:DIRECTION_FRAMES]
    ok = ~np.isnan(head[:, 0])
    if ok.sum() < 2:
        return None
    first, last = head[ok][0], head[ok][-1]
    dx, dy = last - first
    if max(abs(dx), abs(dy)) < 0.5:
        return None  # not moving
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def _lane(n_objects: int, index: int, direction: str, S: int) -> tuple[slice, slice]:
    if n_objects == 1:
        return slice(0, S), slice(0, S)
    half = S // 2
    if direction in ("left", "right"):
        rows = slice(0, half) if index == 0 else slice(half, S)
        return rows, slice(0, S)
    cols = slice(0, half) if index == 0 else slice(half, S)
    return slice(0, S), cols


def judge_clip(frames: np.ndarray, caption: str) -> ClipVerdict:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"the judge takes (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    T, H, W, _ = frames.shape
    if H != W:
        raise ValueError(f"Shapes clips are square, got {H}x{W}")
    S = H
    v = speed_px_per_frame(S)
    wanted = parse_caption(caption)
    codes = colour_codes(frames)
    verdicts = []
    for i, obj in enumerate(wanted):
        side = SIZES[obj["size"]] * S
        area = expected_area_px(obj["shape"], side)
        mask = codes == colour_code(obj["colour"])
        present = mask.sum(axis=(1, 2)) >= PRESENCE_SHARE * area
        shape = _judge_shape(mask, present)
        cent = _centroids(mask, present)
        steps = np.linalg.norm(np.diff(cent, axis=0), axis=1)
        steps = steps[~np.isnan(steps)]
        speed_error = float(np.median(np.abs(steps - v) / v)) if len(steps) else None
        teleports = int((steps > 3 * v + 1).sum())
        # Colour: in the object's lane, is its colour the most common "on" colour?
        rows, cols = _lane(len(wanted), i, obj["direction"], S)
        lane = codes[:, rows, cols]
        counts = np.bincount(lane[lane > 0].ravel(), minlength=8)
        colour_ok = bool(counts.sum() > 0 and counts.argmax() == colour_code(obj["colour"]))
        ov = ObjectVerdict(
            caption=f"a {obj['size']} {obj['colour']} {obj['shape']} moves {obj['direction']}",
            presence=float(present.mean()),
            shape=shape,
            direction=_direction(cent),
            speed_error=speed_error,
            teleports=teleports,
            colour_ok=colour_ok,
        )
        ov.present = ov.presence >= PRESENCE_MIN
        ov.shape_ok = shape == obj["shape"]
        ov.direction_ok = ov.direction == obj["direction"]
        ov.right = ov.present and ov.shape_ok and ov.direction_ok
        verdicts.append(ov)
    small_area = (SIZES["small"] * S) ** 2
    caption_codes = {colour_code(o["colour"]) for o in wanted}
    extra = []
    for code, name in sorted(_COLOUR_OF_CODE.items()):
        if code in caption_codes:
            continue
        frames_with = ((codes == code).sum(axis=(1, 2)) >= EXTRA_SHARE * small_area).sum()
        if frames_with >= T / 2:
            extra.append(name)
    verdict = ClipVerdict(caption=caption, objects=verdicts, extra_colours=extra)
    verdict.right = all(o.right for o in verdicts) and not extra
    verdict.teleports = sum(o.teleports for o in verdicts)
    return verdict


@dataclass
class JudgeSummary:
    clips: int
    scene_accuracy: float
    object_accuracy: float
    presence: float  # share of objects present (>= 75 % of frames)
    shape: float
    colour: float
    direction: float
    speed_error: float  # mean over objects of the median relative step error
    teleports_per_clip: float
    extra_object_rate: float  # share of clips with an extra object
    per_clip: list[dict] = field(default_factory=list, repr=False)

    def to_dict(self, with_clips: bool = True) -> dict:
        d = asdict(self)
        if not with_clips:
            d.pop("per_clip")
        return d


def summarize(verdicts: list[ClipVerdict]) -> JudgeSummary:
    if not verdicts:
        raise ValueError("nothing to summarize: no clips were judged")
    objs = [o for v in verdicts for o in v.objects]
    speed = [o.speed_error for o in objs if o.speed_error is not None]
    mean = lambda xs: float(np.mean(xs)) if len(xs) else float("nan")  # noqa: E731
    return JudgeSummary(
        clips=len(verdicts),
        scene_accuracy=mean([v.right for v in verdicts]),
        object_accuracy=mean([o.right for o in objs]),
        presence=mean([o.present for o in objs]),
        shape=mean([o.shape_ok for o in objs]),
        colour=mean([o.colour_ok for o in objs]),
        direction=mean([o.direction_ok for o in objs]),
        speed_error=mean(speed),
        teleports_per_clip=mean([v.teleports for v in verdicts]),
        extra_object_rate=mean([bool(v.extra_colours) for v in verdicts]),
        per_clip=[v.to_dict() for v in verdicts],
    )
