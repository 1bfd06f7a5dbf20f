"""The judge: ground truth scores 100 %, each kind of broken clip is caught."""

import numpy as np

from framecast.data.shapes import COLOURS, render_clip
from framecast.eval.shapes import judge_clip, summarize


def test_ground_truth_scores_full_marks():
    verdicts = []
    for S in (32, 64):
        for split in ("train", "compositional"):
            for seed in range(40):
                c = render_clip(seed, split=split, size=S, frames=16 if seed % 2 else 33)
                verdicts.append(judge_clip(c.video, c.caption))
    s = summarize(verdicts)
    assert s.scene_accuracy == 1.0 and s.object_accuracy == 1.0
    assert s.shape == s.colour == s.direction == s.presence == 1.0
    assert s.speed_error == 0.0 and s.teleports_per_clip == 0 and s.extra_object_rate == 0


def _single(seed_start=0, shape=None):
    for seed in range(seed_start, 500):
        c = render_clip(seed)
        if len(c.scene.objects) == 1 and (shape is None or c.scene.objects[0].shape == shape):
            return c
    raise AssertionError


def test_wrong_colour_is_caught():
    c = _single()
    video = c.video.copy()
    obj = c.scene.objects[0]
    other = next(n for n in COLOURS if n != obj.colour)
    video[(video == COLOURS[obj.colour]).all(-1)] = COLOURS[other]
    v = judge_clip(video, c.caption)
    assert not v.right and not v.objects[0].colour_ok and not v.objects[0].present


def test_wrong_direction_is_caught():
    c = next(render_clip(s) for s in range(500) if len(render_clip(s).scene.objects) == 1 and render_clip(s).scene.objects[0].direction in ("left", "right"))
    v = judge_clip(c.video[:, :, ::-1].copy(), c.caption)  # mirrored left-right
    assert not v.objects[0].direction_ok and not v.right


def test_teleport_is_caught():
    c = _single()
    video = c.video.copy()
    video[8:] = np.roll(video[8:], 10, axis=2)  # jump 10 px sideways at frame 8
    v = judge_clip(video, c.caption)
    assert v.teleports >= 1


def test_extra_object_is_caught():
    c = _single()
    video = c.video.copy()
    used = c.scene.objects[0].colour
    extra = next(n for n in COLOURS if n != used)
    video[:, 0:6, 0:6] = COLOURS[extra]
    v = judge_clip(video, c.caption)
    assert v.extra_colours == [extra] and not v.right


def test_wrong_shape_and_absence_are_caught():
    c = _single(shape="circle")
    video = c.video.copy()
    for t in range(video.shape[0]):
        ys, xs = np.nonzero(video[t].max(-1))
        video[t, ys.min(): ys.max() + 1, xs.min(): xs.max() + 1] = COLOURS[c.scene.objects[0].colour]  # fill the box: a square
    v = judge_clip(video, c.caption)
    assert v.objects[0].shape == "square" and not v.right
    blank = np.zeros_like(c.video)
    v = judge_clip(blank, c.caption)
    assert v.objects[0].presence == 0 and not v.right
