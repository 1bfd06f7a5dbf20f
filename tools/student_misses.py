"""Where a few-step student's misses come from: two checks on the 100 evaluation clips.

    python tools/student_misses.py snap shapes-hybrid-fast --first-steps 0
    python tools/student_misses.py finish shapes-diffusion-fast --teacher shapes-diffusion --at 2 --teacher-steps 12

`snap`: the student's clips judged as they are, then with every channel snapped to off or on at
96, 128 and 160 of 255. A miss that snapping fixes is a rendering fault (soft pixels); one it
does not fix is in what the model drew.

`finish`: the student samples down to the state after its step `--at` (level 0.25 after step 2 of
4), then the teacher finishes from there, guided, in `--teacher-steps` Euler steps of its ODE (1:
its one-step prediction of the clean clip). If the teacher cannot rescue the clip, the miss was
settled by that level. Full-sequence (diffusion) students only.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from framecast.eval.evaluate import eval_prompts
from framecast.eval.shapes import judge_clip, summarize
from framecast.generators import GenerationRequest, from_pretrained
from framecast.generators.base import guidance_text, resolve
from framecast.pipeline import load, resolve_model
from framecast.sampling.samplers import get_sampler
from framecast.video import to_uint8


def judged(clips: list[np.ndarray], prompts: list[str]) -> dict:
    d = summarize([judge_clip(c, p) for c, p in zip(clips, prompts)]).to_dict(with_clips=False)
    return {"scene accuracy": d["scene_accuracy"], "shape": d["shape"]}


def snap(args, prompts: list[str]) -> None:
    from framecast.eval.evaluate import evaluate

    pipe = load(args.model, precision="fp32")
    options = {} if args.first_steps is None else {"first_steps": args.first_steps}
    clips = evaluate(pipe, prompts, seed=args.seed, batch_size=25, progress=False, **options)["frames"]
    print(f"as drawn: {judged(clips, prompts)}")
    for at in (96, 128, 160):
        print(f"snapped at {at}: {judged([np.where(c >= at, 255, 0).astype(np.uint8) for c in clips], prompts)}")


@torch.no_grad()
def finish(args, prompts: list[str]) -> None:
    student = from_pretrained(resolve_model(args.model)).float().eval()
    teacher = from_pretrained(resolve_model(args.teacher)).float().eval()
    if student.family != "diffusion" or teacher.family != "diffusion":
        raise ValueError("finish compares full-sequence (diffusion) models; give a diffusion student and teacher")
    drawn, finished, level = [], [], None
    for start in range(0, len(prompts), 25):
        batch = prompts[start : start + 25]
        kept = {}

        def keep(step, levels, x, x0):
            if step == args.at:
                kept["x"], kept["level"] = x.clone(), levels

        gens = [torch.Generator().manual_seed(args.seed + start + j) for j in range(len(batch))]
        z = student.generate_latents(GenerationRequest(prompts=batch, generator=gens, callback=keep))
        r = resolve(GenerationRequest(prompts=batch), "diffusion", teacher.request_defaults())
        denoise = teacher.guided_denoiser(guidance_text(teacher.text, r)[0], r.guidance)
        level = float(kept["level"].reshape(-1)[0])
        x = get_sampler("euler")(denoise, kept["x"], torch.linspace(level, 0.0, args.teacher_steps + 1))
        drawn += [to_uint8(c) for c in teacher.from_latent(z).clamp(-1, 1)]
        finished += [to_uint8(c) for c in teacher.from_latent(x).clamp(-1, 1)]
    print(f"student alone: {judged(drawn, prompts)}")
    print(f"teacher from the student's state at level {level:.3f}, {args.teacher_steps} steps: {judged(finished, prompts)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("check", choices=("snap", "finish"))
    ap.add_argument("model", help="the student: a bundled name or a folder")
    ap.add_argument("--teacher", default="shapes-diffusion", help="finish: the teacher that takes over")
    ap.add_argument("--at", type=int, default=2, help="finish: the student's step after which the teacher takes over")
    ap.add_argument("--teacher-steps", type=int, default=1, help="finish: the teacher's Euler steps from there")
    ap.add_argument("--first-steps", type=int, default=None, help="snap, hybrid students: the first frame's steps")
    ap.add_argument("--num", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    prompts = eval_prompts("train", args.num)
    try:
        (snap if args.check == "snap" else finish)(args, prompts)
    except ValueError as e:  # a wrong model kind: one line and exit code 2, as the CLI does
        ap.error(str(e))


if __name__ == "__main__":
    main()
