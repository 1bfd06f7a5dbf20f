"""benchmarks/grid.py reads an object's edge offsets inside the codec cell from pixels alone."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from grid import CELL, edge_offsets, histogram, odd_share, tv_distance  # noqa: E402

from framecast.data.shapes import render_clip, side_px  # noqa: E402


def test_edge_offsets_of_real_squares_are_their_rendered_positions():
    # (a circle's or triangle's measured edge is a fixed distance inside its box: the same in real
    # and generated clips, so the comparison holds, but only a square's is its box)
    for seed in range(80):
        clip = render_clip(seed)
        for obj, got in zip(clip.scene.objects, edge_offsets(clip.video, clip.caption)):
            if obj.shape != "square":
                continue
            half = side_px(obj.size, 32) / 2
            left, top = int(obj.x0 - half) % CELL, int(obj.y0 - half) % CELL
            horizontal = obj.direction in ("left", "right")
            assert (got["static"], got["moving"]) == ((top, left) if horizontal else (left, top))


def test_a_shifted_object_moves_its_offset_and_an_absent_object_has_none():
    clip = render_clip(3)
    first = edge_offsets(clip.video, clip.caption)[0]
    shifted = np.roll(clip.video, 1, axis=2)  # one pixel to the right: the x edge's offset moves by one
    x = "moving" if clip.scene.objects[0].direction in ("left", "right") else "static"
    assert edge_offsets(shifted, clip.caption)[0][x] == (first[x] + 1) % CELL
    assert edge_offsets(np.zeros_like(clip.video), clip.caption)[0]["static"] is None


def test_histogram_measures():
    objs = [{"static": k % CELL, "moving": None} for k in range(8)]
    h = histogram(objs, "static")
    assert h == [2, 2, 2, 2] and odd_share(h) == 0.5
    assert tv_distance(h, h) == 0.0 and tv_distance([4, 0, 0, 0], [0, 4, 0, 0]) == 1.0
