"""Prompt switches judged: does a stream follow a new prompt, how soon, and does the scene go on?

A switch case is one object from the Shapes world (a scene's caption) whose colour or direction
changes at a frame; everything else in the caption stays. A direction switch turns the object a
quarter turn (left/right <-> up/down): along its own axis, a reversal is what a bounce off the
wall does, so the judge could not tell a switch from a bounce.

Each case is judged on windows of `WINDOW` frames (the judge's direction window,
framecast.eval.shapes) sliding one frame at a time:
- `effect_frames`: frames from the switch to the first window that shows the new prompt (the
  object present in its new colour, or moving along its new axis; the sign may flip at a wall, as
  objects bounce in the Shapes world); None if no window after the switch shows it.
- `lost`: the object is missing in some window around the switch, frames [switch - WINDOW,
  switch + AROUND), by the judge's rule (present in >= PRESENCE_MIN of the window's frames, each
  with >= PRESENCE_SHARE of its expected area lit). Any lit colour counts: the scene holds one
  object, and one that passes through a third colour on its way to the new one (blue, white for
  two frames, yellow) is still there; the detour shows in `effect_frames` instead.
- `jump_px`: the largest step of the object's centre around the switch (a cut moves it far; the
  world moves it S/32 px a frame, and the judge counts a step over 3 of those and 1 px as a
  teleport).
- `before_ok`: the window just before the switch shows the old prompt (the stream followed it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from framecast.data.shapes import (COLOURS, DIRECTIONS, HELD_OUT_PAIRS, SIZES, Scene, expected_area_px, parse_caption, render,
                                   sample_scene, trajectory)
from framecast.eval.shapes import DIRECTION_FRAMES, PRESENCE_MIN, PRESENCE_SHARE, colour_code, colour_codes

WINDOW = DIRECTION_FRAMES  # frames a window holds
AROUND = 16  # frames after the switch in which the object must stay
EFFECT_WITHIN = 8  # frames: the acceptance bound for a switch to take effect
AXIS = {"left": "horizontal", "right": "horizontal", "up": "vertical", "down": "vertical"}


@dataclass(frozen=True)
class SwitchCase:
    before: str  # caption of one object
    after: str  # the same object with its colour or direction changed
    kind: str  # "colour" or "direction"
    seed: int  # the Shapes scene it comes from (train split)


def switch_cases(n: int, *, seed: int = 50_000, size: int = 32) -> list[SwitchCase]:
    """`n` cases from one-object Shapes scenes of seeds seed, seed + 1, ...: colour and direction
    switches alternating. The new colour keeps the pair within the training split's pairs."""
    rng = np.random.default_rng(seed)
    cases, s = [], seed
    while len(cases) < n:
        scene = sample_scene(s, split="train", size=size)
        s += 1
        if len(scene.objects) != 1:
            continue
        o = scene.objects[0]
        if len(cases) % 2 == 0:
            allowed = [c for c in COLOURS if c != o.colour and (c, o.shape) not in HELD_OUT_PAIRS]
            after = f"a {o.size} {rng.choice(allowed)} {o.shape} moves {o.direction}"
            cases.append(SwitchCase(o.caption(), after, "colour", s - 1))
        else:
            turns = [d for d in DIRECTIONS if AXIS[d] != AXIS[o.direction]]
            after = f"a {o.size} {o.colour} {o.shape} moves {rng.choice(turns)}"
            cases.append(SwitchCase(o.caption(), after, "direction", s - 1))
    return cases


def render_switch(case: SwitchCase, switch: int, frames: int, size: int = 32) -> np.ndarray:
    """The case as the Shapes world would play it, (T, S, S, 3) uint8: the scene's object until
    `switch`, then from where it is the same object with the new colour or direction (the
    judge's reference: a perfect switch)."""
    scene = sample_scene(case.seed, split="train", size=size)
    obj = scene.objects[0]
    x, y = trajectory(obj, size, switch + 1)[switch, :2]
    new = parse_caption(case.after)[0]
    turned = replace(obj, colour=new["colour"], direction=new["direction"], x0=float(x), y0=float(y))
    head = render(scene, switch).video
    tail = render(Scene(objects=(turned,), size=size, split="train"), frames - switch).video
    return np.concatenate([head, tail])


def _presence(codes_THW: np.ndarray, colours: list[str] | None, obj: dict, S: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: present (bool) and centre (x, y; NaN when absent) of the object in any of
    `colours` (None: any lit colour)."""
    mask = codes_THW > 0 if colours is None else np.isin(codes_THW, [colour_code(c) for c in colours])
    area = expected_area_px(obj["shape"], SIZES[obj["size"]] * S)
    present = mask.sum(axis=(1, 2)) >= PRESENCE_SHARE * area
    centre = np.full((len(mask), 2), np.nan)
    for t in np.nonzero(present)[0]:
        ys, xs = np.nonzero(mask[t])
        centre[t] = xs.mean(), ys.mean()
    return present, centre


def _axis(centre_W2: np.ndarray) -> str | None:
    """The axis the object moves along in a window (None: absent or still)."""
    ok = ~np.isnan(centre_W2[:, 0])
    if ok.sum() < 2:
        return None
    dx, dy = centre_W2[ok][-1] - centre_W2[ok][0]
    if max(abs(dx), abs(dy)) < 0.5:
        return None
    return "horizontal" if abs(dx) >= abs(dy) else "vertical"


def _shows(case: SwitchCase, caption: str, codes: np.ndarray, t: int, S: int) -> bool:
    """Window [t, t + WINDOW) shows `caption`'s object: present in its colour and, for a colour
    switch, (nearly) gone in the other caption's colour; for a direction switch, moving along
    its axis."""
    obj = parse_caption(caption)[0]
    present, centre = _presence(codes[t : t + WINDOW], [obj["colour"]], obj, S)
    if present.mean() < PRESENCE_MIN:
        return False
    if case.kind == "direction":
        return _axis(centre) == AXIS[obj["direction"]]
    other = parse_caption(case.before if caption == case.after else case.after)[0]
    return bool(_presence(codes[t : t + WINDOW], [other["colour"]], other, S)[0].mean() <= 1 - PRESENCE_MIN)


def judge_switch(frames_THW3: np.ndarray, case: SwitchCase, switch: int) -> dict:
    """One generated clip against its switch case (see the module's docstring)."""
    T, S = frames_THW3.shape[0], frames_THW3.shape[1]
    if not WINDOW <= switch <= T - WINDOW:
        raise ValueError(f"the switch at frame {switch} leaves less than a window of {WINDOW} frames on one side of a {T}-frame clip")
    codes = colour_codes(frames_THW3)
    effect = next((t - switch for t in range(switch, T - WINDOW + 1) if _shows(case, case.after, codes, t, S)), None)
    obj = parse_caption(case.before)[0]
    present, centre = _presence(codes[switch - WINDOW : min(T, switch + AROUND)], None, obj, S)
    windows = [present[i : i + WINDOW].mean() for i in range(len(present) - WINDOW + 1)]
    steps = np.linalg.norm(np.diff(centre, axis=0), axis=1)
    return {
        "before": case.before, "after": case.after, "kind": case.kind,
        "before_ok": bool(_shows(case, case.before, codes, switch - WINDOW, S)),
        "effect_frames": effect,
        "lost": bool(min(windows) < PRESENCE_MIN),
        "jump_px": float(np.nanmax(steps)) if np.isfinite(steps).any() else float("nan"),
    }


def summarize_switches(verdicts: list[dict]) -> dict:
    """Shares over cases: in effect within EFFECT_WITHIN frames, ever in effect, object lost; the
    median frames to effect (over cases where it took effect), the median and the largest of the
    cases' largest centre steps."""
    effects = [v["effect_frames"] for v in verdicts if v["effect_frames"] is not None]
    share = lambda xs: float(np.mean(xs)) if len(xs) else float("nan")  # noqa: E731
    return {
        "cases": len(verdicts),
        "before_ok": share([v["before_ok"] for v in verdicts]),
        "effect_within_8": share([v["effect_frames"] is not None and v["effect_frames"] <= EFFECT_WITHIN for v in verdicts]),
        "effect_ever": share([v["effect_frames"] is not None for v in verdicts]),
        "median_effect_frames": float(np.median(effects)) if effects else float("nan"),
        "lost": share([v["lost"] for v in verdicts]),
        "median_jump_px": float(np.nanmedian([v["jump_px"] for v in verdicts])),
        "max_jump_px": float(np.nanmax([v["jump_px"] for v in verdicts])),
    }
