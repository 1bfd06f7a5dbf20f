"""framecast.eval.grid reads an object's edge offsets inside the codec cell from pixels alone."""

import numpy as np

from framecast.data.shapes import render_clip, side_px
from framecast.eval.grid import CELL, edge_offsets, histogram, odd_share, tv_distance


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


def test_the_script_compares_a_model_with_the_real_clips(tmp_path):
    from framecast.eval.grid import main

    r = main(["--models", "shapes-hybrid", "--num", "1", "--batch", "1", "--output", str(tmp_path / "grid.json")])
    real, model = r["results"]
    assert real["model"] == "real clips" and real["static_tv_to_real"] == 0.0
    assert model["model"] == "shapes-hybrid" and sum(model["static_offsets"]) == sum(real["static_offsets"])
    assert (tmp_path / "grid.md").is_file()
