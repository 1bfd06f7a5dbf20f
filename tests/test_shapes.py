"""The renderer against docs/shapes.md."""

import numpy as np
import pytest

from framecast.data.shapes import (
    COLOURS, DIRECTIONS, HELD_OUT_PAIRS, ShapesDataset, parse_caption, render_clip, sample_scene, shapes_batches,
)


@pytest.mark.parametrize("S", [32, 64])
def test_clips_follow_the_spec(S):
    for seed in range(60):
        clip = render_clip(seed, size=S, frames=24)
        T = clip.video.shape[0]
        assert clip.video.shape == (24, S, S, 3) and clip.video.dtype == np.uint8
        palette = {tuple(c) for c in clip.video.reshape(-1, 3)}
        assert palette <= {(0, 0, 0), *COLOURS.values()}
        objs = clip.scene.objects
        assert 1 <= len(objs) <= 2 and len({o.colour for o in objs}) == len(objs)
        v = S / 32
        for obj, st in zip(objs, clip.states):
            side = {"small": 0.25, "big": 0.375}[obj.size] * S
            # bounding box inside the canvas in every frame
            assert (st[:, 0] - side / 2 >= 0).all() and (st[:, 0] + side / 2 <= S).all()
            assert (st[:, 1] - side / 2 >= 0).all() and (st[:, 1] + side / 2 <= S).all()
            steps = np.abs(np.diff(st[:, :2], axis=0)).sum(1)
            assert np.allclose(steps, v)  # constant speed, bounces included
            dx, dy = DIRECTIONS[obj.direction]
            first_moves = np.diff(st[:5, :2], axis=0)
            assert np.allclose(first_moves, [[dx * v, dy * v]] * 4)  # 4 moves before any bounce
            mask = (clip.video[0] == COLOURS[obj.colour]).all(-1)
            area = mask.sum()
            expected = {"circle": np.pi * side**2 / 4, "square": side**2, "triangle": side**2 / 2}[obj.shape]
            assert abs(area - expected) / expected < 0.2
        assert T == 24


def test_two_object_lanes_and_caption_order():
    seen = 0
    for seed in range(200):
        scene = sample_scene(seed)
        if len(scene.objects) != 2:
            continue
        seen += 1
        a, b = scene.objects
        horizontal = a.direction in ("left", "right")
        assert (b.direction in ("left", "right")) == horizontal
        side_a = {"small": 8, "big": 12}[a.size]
        side_b = {"small": 8, "big": 12}[b.size]
        if horizontal:
            assert a.y0 + side_a / 2 <= 16 and b.y0 - side_b / 2 >= 16
        else:
            assert a.x0 + side_a / 2 <= 16 and b.x0 - side_b / 2 >= 16
        assert scene.caption == f"{a.caption()} and {b.caption()}"
    assert seen > 50


def test_shapes_are_exact():
    """Triangle: apex up, bottom corners filled; circle: no corners; square: all corners."""
    from framecast.data.shapes import shape_mask

    sq = shape_mask("square", 8, np.array([16.0]), np.array([16.0]), 32)[0]
    assert sq.sum() == 64 and sq[12, 12] and sq[19, 19] and not sq[11, 12]
    tri = shape_mask("triangle", 8, np.array([16.0]), np.array([16.0]), 32)[0]
    ys, xs = np.nonzero(tri)
    assert tri[ys.max(), xs.min()] and tri[ys.max(), xs.max()] and not tri[ys.min(), xs.min()]
    circ = shape_mask("circle", 8, np.array([16.0]), np.array([16.0]), 32)[0]
    ys, xs = np.nonzero(circ)
    assert not circ[ys.min(), xs.min()] and xs.max() - xs.min() == 7


def test_deterministic_and_splits():
    a, b = render_clip(5), render_clip(5)
    assert np.array_equal(a.video, b.video) and a.caption == b.caption
    assert not np.array_equal(render_clip(5).video, render_clip(6).video)
    for seed in range(300):
        train = sample_scene(seed, split="train")
        assert not any((o.colour, o.shape) in HELD_OUT_PAIRS for o in train.objects)
        comp = sample_scene(seed, split="compositional")
        assert any((o.colour, o.shape) in HELD_OUT_PAIRS for o in comp.objects)


def test_dataset_and_batches():
    ds = ShapesDataset(length=4, frames=8)
    item = ds[1]
    assert item["video"].shape == (8, 3, 32, 32) and item["video"].min() >= -1 and item["video"].max() <= 1
    b1 = next(shapes_batches(batch_size=3, start_step=7))
    b2 = next(shapes_batches(batch_size=3, start_step=7))
    assert b1["caption"] == b2["caption"] and (b1["video"] == b2["video"]).all()


def test_bad_input():
    with pytest.raises(ValueError, match="split"):
        sample_scene(0, split="test")
    with pytest.raises(ValueError, match="multiple of 32"):
        sample_scene(0, size=48)
    with pytest.raises(ValueError, match="frames"):
        render_clip(0, frames=0)
    with pytest.raises(ValueError, match="not a Shapes caption"):
        parse_caption("a big red hexagon moves right")
    assert parse_caption("a big red circle moves right and a small blue square moves left")[1]["shape"] == "square"
