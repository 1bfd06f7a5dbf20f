"""Do generated objects stick to the codec's grid? Where an object's edge falls inside the codec's
4-pixel cell, in generated clips against the real clips of the same captions:

    python -m framecast.eval.grid --models shapes-diffusion shapes-hybrid shapes-ar --num 100

In the Shapes world an object's top-left corner lies on whole pixels, drawn uniformly, so its
left and top edges fall on every offset 0-3 inside a 4-pixel codec cell about equally often.
A generator whose latents or tokens cannot place an edge between the codec's own sub-grid
positions draws objects on a coarser grid (texture sticking, in the words of Alias-Free GAN),
and the edges it leaves in between come out half lit, which is how the Shapes judge loses
squares. For every object, in frame 0: the first column (row) holding at least half as many
of the object's pixels as its fullest column (row) is its edge; the "static" axis is the one the
object does not move along, the "moving" axis the other. Clips come from the train split at seeds
70000 and up (clip i sampled with seed 70000 + i), apart from the evaluation's and the tuning prompts'.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from framecast.data.shapes import SIZES, expected_area_px, parse_caption, render_clip
from framecast.eval.results import write_result
from framecast.eval.shapes import PRESENCE_SHARE, colour_code, colour_codes, judge_clip
from framecast.pipeline import load

FIRST_SEED = 70000
CELL = 4  # the bundled codecs' downsampling


def edge_offsets(video: np.ndarray, caption: str) -> list[dict]:
    """Per object of the caption, its left and top edge in frame 0 modulo CELL (None if absent)."""
    codes = colour_codes(video[:1])[0]
    S = video.shape[1]
    out = []
    for obj in parse_caption(caption):
        mask = codes == colour_code(obj["colour"])
        side = SIZES[obj["size"]] * S
        row = {"shape": obj["shape"], "static": None, "moving": None}
        if mask.sum() >= PRESENCE_SHARE * expected_area_px(obj["shape"], side):
            cols, rows = mask.sum(0), mask.sum(1)
            left = int(np.nonzero(cols >= cols.max() / 2)[0][0]) % CELL
            top = int(np.nonzero(rows >= rows.max() / 2)[0][0]) % CELL
            horizontal = obj["direction"] in ("left", "right")
            row["static"], row["moving"] = (top, left) if horizontal else (left, top)
        out.append(row)
    return out


def histogram(objects: list[dict], axis: str) -> list[int]:
    return np.bincount([o[axis] for o in objects if o[axis] is not None], minlength=CELL).tolist()


def tv_distance(h: list[int], ref: list[int]) -> float:
    p, q = np.asarray(h, float), np.asarray(ref, float)
    return float(0.5 * np.abs(p / max(p.sum(), 1) - q / max(q.sum(), 1)).sum())


def odd_share(h: list[int]) -> float:
    return float((h[1] + h[3]) / max(sum(h), 1))


def summarise(name: str, videos, captions, real: dict | None, seconds: float) -> dict:
    objects, right, squares, squares_right = [], 0, 0, 0
    for v, c in zip(videos, captions):
        verdict = judge_clip(v, c)
        right += verdict.right
        for o, ov in zip(edge_offsets(v, c), verdict.objects):
            objects.append(o)
            if o["shape"] == "square":
                squares += 1
                squares_right += ov.shape_ok
    row = {"model": name, "clips": len(captions), "scene_accuracy": right / len(captions),
           "square_shape_accuracy": squares_right / max(squares, 1), "seconds_per_clip": seconds}
    for axis in ("static", "moving"):
        h = histogram(objects, axis)
        row[f"{axis}_offsets"] = h
        row[f"{axis}_odd_share"] = odd_share(h)
        row[f"{axis}_tv_to_real"] = tv_distance(h, real[f"{axis}_offsets"]) if real else 0.0
    return row


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["shapes-diffusion"])
    ap.add_argument("--num", type=int, default=100)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--output", type=Path, default=Path("grid.json"))
    args = ap.parse_args(argv)
    clips = [render_clip(FIRST_SEED + i) for i in range(args.num)]
    captions = [c.caption for c in clips]
    real = summarise("real clips", [c.video for c in clips], captions, None, 0.0)
    rows = [real]
    print(json.dumps(real), flush=True)
    for name in args.models:
        pipe = load(name)
        videos, t = [], time.perf_counter()
        for b in range(0, args.num, args.batch):
            gens = [torch.Generator().manual_seed(FIRST_SEED + i) for i in range(b, min(b + args.batch, args.num))]
            videos += list(pipe(captions[b : b + args.batch], generator=gens).frames)
        rows.append(summarise(name, videos, captions, real, (time.perf_counter() - t) / args.num))
        print(json.dumps(rows[-1]), flush=True)
    table = [("| clips | static-axis edge offsets 0/1/2/3 | odd share | TV to real | moving-axis offsets 0/1/2/3 | odd share | TV to real "
             "| scene acc. | squares right |"),
             "|---|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['model']} | {'/'.join(map(str, r['static_offsets']))} | {r['static_odd_share']:.2f} | {r['static_tv_to_real']:.2f} | "
              f"{'/'.join(map(str, r['moving_offsets']))} | {r['moving_odd_share']:.2f} | {r['moving_tv_to_real']:.2f} | "
              f"{r['scene_accuracy']:.2f} | {r['square_shape_accuracy']:.2f} |" for r in rows]
    result = {"clips": args.num, "first_seed": FIRST_SEED, "cell": CELL, "results": rows}
    write_result(args.output, result, table)
    return result


if __name__ == "__main__":
    main()
