"""Where a few-step student's misses come from: checks on the 100 evaluation clips and on a finish bank.

    python tools/student_misses.py snap shapes-hybrid-fast --first-steps 0
    python tools/student_misses.py finish shapes-diffusion-fast --teacher shapes-diffusion --at 2 --teacher-steps 12
    python tools/student_misses.py finish shapes-diffusion-fast --at 1 --teacher-steps 25 --teacher-sampler euler-stochastic --draws 4
    python tools/student_misses.py bank runs/diffusion-finish --bank runs/diffusion-finish/bank/chunk-00000.safetensors

`snap`: the student's clips judged as they are, then with every channel snapped to off or on at
96, 128 and 160 of 255. A miss that snapping fixes is a rendering fault (soft pixels); one it
does not fix is in what the model drew.

`finish`: the student samples down to the state after its step `--at` (level 0.25 after step 2 of
4), then the teacher finishes from there, guided, in `--teacher-steps` steps of `--teacher-sampler`
(`euler`, its ODE, by default; 1 step: its one-step prediction of the clean clip). If the teacher
cannot rescue the clip, the miss was settled by that level. With `--draws K` > 1 the teacher
finishes each state K times (each judged), and the mean of the K finishes' latents is judged too:
the target a regression onto the finishes aims at. Full-sequence (diffusion) students only.

`bank`: for each step of a finish bank file (framecast.train.finish), the student's clean clip
from the file's states judged beside the file's targets, with their mean squared distance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
    drawn, finished, level = [], [[] for _ in range(args.draws + (args.draws > 1))], None
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
        outs = []
        for k in range(args.draws):  # draw 0 goes on with the student's generators; later draws with their own
            g = gens if k == 0 else [torch.Generator().manual_seed(10**6 * k + args.seed + start + j) for j in range(len(batch))]
            outs.append(get_sampler(args.teacher_sampler)(denoise, kept["x"], torch.linspace(level, 0.0, args.teacher_steps + 1), generator=g))
        if args.draws > 1:
            outs.append(torch.stack(outs).mean(0))
        drawn += [to_uint8(c) for c in teacher.from_latent(z).clamp(-1, 1)]
        for k, x in enumerate(outs):
            finished[k] += [to_uint8(c) for c in teacher.from_latent(x).clamp(-1, 1)]
    print(f"student alone: {judged(drawn, prompts)}")
    for k, clips in enumerate(finished):
        who = f"draw {k}" if k < args.draws else f"the mean of the {args.draws} draws' latents"
        print(f"teacher from the student's state at level {level:.3f}, {args.teacher_steps} {args.teacher_sampler} steps, {who}: "
              f"{judged(clips, prompts)}")


@torch.no_grad()
def bank(args) -> None:
    """The student's clean clip from each state of a finish bank's file (framecast.train.finish),
    judged beside the file's target for that step, with their mean squared distance."""
    from safetensors import safe_open

    from framecast.train.dmd import x0_of

    student = from_pretrained(resolve_model(args.model)).float().eval()
    with safe_open(args.bank, "pt") as f:
        states, targets, levels = f.get_tensor("states"), f.get_tensor("targets"), f.get_tensor("levels")
        captions = json.loads(f.metadata()["captions"])
    text = student.text.encode(captions)

    def clips(z):
        return [to_uint8(c) for c in student.from_latent(z).clamp(-1, 1)]

    for j, level in enumerate(levels.tolist()):
        x0 = x0_of(student, states[j][:, :0], states[j], torch.full((len(captions),), level), text)
        print(f"step {j} (level {level:.2f}): student {judged(clips(x0), captions)}, target {judged(clips(targets[j]), captions)}, "
              f"distance {((x0 - targets[j]) ** 2).mean().item():.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("check", choices=("snap", "finish", "bank"))
    ap.add_argument("model", help="the student: a bundled name or a folder")
    ap.add_argument("--teacher", default="shapes-diffusion", help="finish: the teacher that takes over")
    ap.add_argument("--at", type=int, default=2, help="finish: the student's step after which the teacher takes over")
    ap.add_argument("--teacher-steps", type=int, default=1, help="finish: the teacher's steps from there")
    ap.add_argument("--teacher-sampler", default="euler", help="finish: the teacher's sampler (euler: its ODE; euler-stochastic: its own)")
    ap.add_argument("--draws", type=int, default=1, help="finish: the teacher's finishes from each state (more: each judged, and their mean)")
    ap.add_argument("--bank", help="bank: a file of a finish bank (runs/NAME/bank/chunk-00000.safetensors)")
    ap.add_argument("--first-steps", type=int, default=None, help="snap, hybrid students: the first frame's steps")
    ap.add_argument("--num", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    prompts = eval_prompts("train", args.num)
    try:
        if args.check == "bank":
            if not args.bank or not Path(args.bank).is_file():
                ap.error(f"bank needs --bank FILE, a file of a finish bank; got {args.bank!r}")
            bank(args)
        else:
            (snap if args.check == "snap" else finish)(args, prompts)
    except ValueError as e:  # a wrong model kind: one line and exit code 2, as the CLI does
        ap.error(str(e))


if __name__ == "__main__":
    main()
