"""Interactive streaming: a prompt switch mid-clip, with and without LongLive's KV re-cache.

    python benchmarks/prompt_switch.py --num 20 --frames 48 --switch 24 \
        --sheet docs/images/prompt-switch.png --output benchmarks/results/prompt_switch.json

Switch cases come from one-object Shapes scenes (framecast.eval.switch): the object's colour or
direction changes at frame `--switch`. Each clip is generated with its own seed (seed + i), the
same seeds for every row, in one batch a row; the judge reads windows of 5 frames after the switch
(frames to take effect, object lost around the switch, largest step of its centre). The Shapes
world's own rendering of each switch is judged too, as the judge's floor.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from report import result_path, write_report

from framecast.eval.switch import judge_switch, render_switch, summarize_switches, switch_cases
from framecast.pipeline import load

ROWS = {"re-cache": {"recache": True}, "no re-cache": {"recache": False}}


def run(pipe, cases, args, **options) -> tuple[list[np.ndarray], float]:
    """One batch: every case's clip with its switch; -> the clips and the seconds it took."""
    start = time.perf_counter()
    out = pipe([c.before for c in cases], num_frames=args.frames, prompt_at=[(args.switch, [c.after for c in cases])],
               generator=[torch.Generator().manual_seed(args.seed + i) for i in range(len(cases))], **options)
    return out.frames, time.perf_counter() - start


def sheet(path: Path, rows: list[np.ndarray], switch: int) -> None:
    """Every 4th frame from 8 before the switch on, one clip a row (first case of each kind, each row kind)."""
    from PIL import Image

    from framecast.video import contact_sheet

    picked = [r[max(0, switch - 8)::4][:8] for r in rows]
    Image.fromarray(contact_sheet(np.concatenate(picked), columns=picked[0].shape[0], scale=2)).save(path)


def table(result: dict) -> list[str]:
    lines = ["| run | followed the first prompt | in effect within 8 frames | in effect at all | median frames to effect | "
             "object lost at the switch | centre step at the switch, median / largest (px) | seconds |", "|---|---|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        s = r["summary"]
        lines.append(f"| {name} | {s['before_ok']:.2f} | {s['effect_within_8']:.2f} | {s['effect_ever']:.2f} | "
                     f"{s['median_effect_frames']:.1f} | {s['lost']:.2f} | {s['median_jump_px']:.1f} / {s['max_jump_px']:.1f} | {r['seconds']:.0f} |")
    kinds = [f"{k}: within 8 frames {r['by_kind'][k]['effect_within_8']:.2f}, lost {r['by_kind'][k]['lost']:.2f}, "
             f"median step {r['by_kind'][k]['median_jump_px']:.1f} px" for r in [result["rows"][n] for n in ROWS] for k in ("colour", "direction")]
    lines += ["", f"`{result['model']}`, {result['cases']} switch cases (half colour, half a quarter turn), {result['frames']} frames, "
              f"switch at frame {result['switch']}; shares of cases. By kind, re-cache: {'; '.join(kinds[:2])}. "
              f"No re-cache: {'; '.join(kinds[2:])}."]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-hybrid")
    ap.add_argument("--num", type=int, default=20)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--switch", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sheet", type=Path, default=None, help="also write a PNG contact sheet around the switch")
    ap.add_argument("--output", type=Path, default=None,
                    help="default: benchmarks/results/prompt_switch.json for shapes-hybrid, prompt_switch-MODEL.json for another model")
    args = ap.parse_args()
    args.output = args.output or result_path("prompt_switch", args.model)
    torch.set_num_threads(args.threads)
    pipe = load(args.model, device=args.device)
    cases = switch_cases(args.num, size=pipe.model.config.size)
    truth = [render_switch(c, args.switch, args.frames, pipe.model.config.size) for c in cases]
    rows, clips = {"Shapes world (judge's floor)": ([judge_switch(t, c, args.switch) for t, c in zip(truth, cases)], 0.0)}, {}
    for name, options in ROWS.items():
        clips[name], seconds = run(pipe, cases, args, **options)
        rows[name] = ([judge_switch(f, c, args.switch) for f, c in zip(clips[name], cases)], seconds)
        print(f"{name}: {summarize_switches(rows[name][0])} in {seconds:.0f} s", flush=True)
    result = {"model": pipe.name, "cases": len(cases), "frames": args.frames, "switch": args.switch, "seed": args.seed, "rows": {
        name: {"summary": summarize_switches(v), "seconds": s,
               "by_kind": {k: summarize_switches([x for x in v if x["kind"] == k]) for k in ("colour", "direction")}, "per_case": v}
        for name, (v, s) in rows.items()}}
    if args.sheet is not None:  # the first colour and the first direction case: truth, re-cache, no re-cache
        sheet(args.sheet, [src[i] for i in (0, 1) for src in (truth, clips["re-cache"], clips["no re-cache"])], args.switch)
    write_report(args.output, result, table(result), device=str(pipe.device))


if __name__ == "__main__":
    main()
