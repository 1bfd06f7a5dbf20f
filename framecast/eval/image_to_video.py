"""Image to video: does the first generated frame match the given one, and does the rest follow
the prompt?

    python -m framecast.eval.image_to_video --models shapes-diffusion shapes-hybrid --num 50

For clip i: the first frame of the train split's clip of seed i is given with its caption; we
report the PSNR of generated frame 0 against it, PSNR of frame 1 against the real frame 1
(how well the motion continues), and the judge's scene accuracy on the generated clip.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from framecast.data.shapes import render_clip
from framecast.eval.metrics import psnr
from framecast.eval.results import write_result
from framecast.eval.shapes import judge_clip, summarize
from framecast.pipeline import load


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["shapes-diffusion", "shapes-hybrid"])
    ap.add_argument("--num", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", type=Path, default=Path("image_to_video.json"))
    args = ap.parse_args(argv)
    rows = []
    for name in args.models:
        pipe = load(name)
        first, second, verdicts = [], [], []
        for i in range(args.num):
            clip = render_clip(i, frames=pipe.config.frames)
            out = pipe(clip.caption, image=clip.video[0], generator=torch.Generator().manual_seed(args.seed + i)).frames[0]
            first.append(psnr(out[0], clip.video[0]))
            second.append(psnr(out[1], clip.video[1]))
            verdicts.append(judge_clip(out, clip.caption))
        s = summarize(verdicts)
        row = {"model": name, "clips": args.num, "psnr_frame0_db": float(np.mean(first)), "psnr_frame1_db": float(np.mean(second)),
               "scene_accuracy": s.scene_accuracy, "object_accuracy": s.object_accuracy}
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = ["| model | PSNR frame 0 (given) dB | PSNR frame 1 dB | scene acc. | object acc. |", "|---|---|---|---|---|"]
    table += [f"| {r['model']} | {r['psnr_frame0_db']:.1f} | {r['psnr_frame1_db']:.1f} | {r['scene_accuracy']:.2f} | {r['object_accuracy']:.2f} |" for r in rows]
    result = {"clips": args.num, "seed": args.seed, "results": rows}
    write_result(args.output, result, table)
    return result


if __name__ == "__main__":
    main()
