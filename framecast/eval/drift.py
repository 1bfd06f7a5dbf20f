"""Drift over long clips: the judge on windows of a clip (frames 1-16, 113-128, 241-256, ...).

Direction is left out: after bounces an object may move either way inside a late window; what
drifts in long generation is whether the objects are still there, with their colour and shape,
moving at the right speed.
"""

from __future__ import annotations

import numpy as np

from framecast.eval.shapes import judge_clip


def judge_windows(frames: np.ndarray, caption: str, windows: list[tuple[int, int]]) -> list[dict]:
    """windows: (start, stop) frame ranges, 0-based, stop exclusive."""
    out = []
    for start, stop in windows:
        if stop > frames.shape[0] or start < 0 or stop - start < 5:
            raise ValueError(f"window {start}-{stop} does not fit a clip of {frames.shape[0]} frames")
        v = judge_clip(frames[start:stop], caption)
        objs = v.objects
        out.append(
            {
                "window": [start + 1, stop],  # 1-based, inclusive, as people write it
                "present": float(np.mean([o.present for o in objs])),
                "colour": float(np.mean([o.colour_ok for o in objs])),
                "shape": float(np.mean([o.shape_ok for o in objs])),
                "present_colour_shape": float(np.mean([o.present and o.colour_ok and o.shape_ok for o in objs])),
                "clip_right": float(all(o.present and o.colour_ok and o.shape_ok for o in objs)),  # every object
                "speed_error": float(np.mean([o.speed_error for o in objs if o.speed_error is not None])) if any(o.speed_error is not None for o in objs) else float("nan"),
                "teleports": int(v.teleports),
                "extra_objects": bool(v.extra_colours),
            }
        )
    return out


def summarize_windows(per_clip: list[list[dict]]) -> list[dict]:
    """Average the window verdicts of many clips, window by window: object shares are averaged
    over clips; `clip_right` becomes the share of clips in which every object is present with its
    colour and shape."""
    rows = []
    for i in range(len(per_clip[0])):
        ws = [clip[i] for clip in per_clip]
        row = {"window": ws[0]["window"]}
        for key in ("present", "colour", "shape", "present_colour_shape", "clip_right", "speed_error", "teleports", "extra_objects"):
            vals = [float(w[key]) for w in ws if not (isinstance(w[key], float) and np.isnan(w[key]))]
            row[key] = float(np.mean(vals)) if vals else float("nan")
        rows.append(row)
    return rows
