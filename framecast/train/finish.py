"""Few-step students that finish a clip as the teacher's own sampler does (full-sequence diffusion).

    python -m framecast.train.finish --teacher shapes-diffusion --student shapes-diffusion-fast \\
        --output runs/diffusion-finish --clips 1000 --iterations 600

A consistency student copies the teacher's ODE, and the ODE is weaker than the teacher's own
sampler (`euler-stochastic`, fresh noise at each step). A 4-step student's first two steps already
make the right layout: finished by the teacher's own sampler from the student's clip at level 0.5,
its clips are judged as well as the teacher's (docs/distillation.md). What the student lacks is the
teacher's many small steps near the clean end, which put each edge on a whole pixel.

The teacher's finishes from one state differ little from each other (the mean of four is judged as
well as one), so a regression can learn them. This recipe trains the student's late steps onto
them, on the student's own states (as Self-Forcing trains on the student's rollouts):

1. **Target bank** (`--clips` training scenes, written in chunks of `--chunk` that a resumed run keeps).
   The student makes each clip with its own sampler, and for each of its steps j the bank holds the
   state x_j it starts from and a target:
   - j < `--from-step`: the student's own clean clip (an anchor that keeps the layout it makes);
   - j = `--from-step`: the teacher's finish from x_j: its own sampler, guided, over its own
     schedule's levels below x_j's;
   - j > `--from-step`: the state is the step before's target noised again to x_j's level (what the
     trained student's step before hands on), and the target the teacher's finish from there.
2. **Regression.** Each iteration takes `--batch` bank rows, each at a random step (as often as
   `--step-weights` says, evenly by default), and pulls the student's clean clip for the state
   towards the target (mean squared error in the latent space). The student reads the canonical caption or, with probability `--paraphrase`, the same scene in
   other words. The student is written atomically every `--save-every` iterations (`--snapshots`
   keeps each), and a run resumes from it.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from framecast.generators import from_pretrained
from framecast.generators.io import write_atomic
from framecast.precision import autocast
from framecast.sampling.samplers import get_sampler
from framecast.train.dmd import (
    add_run_arguments,
    clipped_step,
    encode,
    folder_metadata,
    load_state,
    log_iteration,
    paraphrase_share,
    rollout,
    save_state,
    scene_captions,
    start_run,
    student_caption,
    trainable,
    x0_of,
)

CHECKPOINT = "finish_checkpoint.safetensors"  # the iteration a run stopped at (the student is the folder's model)


def teacher_finish(teacher, x: torch.Tensor, level: float, text_g, gens: list[torch.Generator]) -> torch.Tensor:
    """The teacher's clean clip from `x` at `level`: its own sampler, guided at its own scale, over
    the levels of its own schedule below `level` (at least one step)."""
    c = teacher.config
    steps = max(1, round(level * c.steps))
    denoise = teacher.guided_denoiser(text_g, c.guidance)
    return get_sampler(c.sampler)(denoise, x, torch.linspace(level, 0.0, steps + 1), generator=gens).float()


@torch.no_grad()
def bank_chunk(student, teacher, captions: list[str], from_step: int, seed: int) -> dict[str, torch.Tensor]:
    """states (J, B, ...) and targets (J, B, ...) for one chunk of captions (see the module's text)."""
    gen = torch.Generator().manual_seed(seed)
    gens = [torch.Generator().manual_seed(seed * 1000 + i) for i in range(len(captions))]
    text_s, _, text_g = encode(student, teacher, captions, captions)
    r = rollout(student, captions, gen)
    states, targets = [], []
    for j, level in enumerate(r.levels.tolist()):
        if j < from_step:
            x = r.states[j]
            target = x0_of(student, x[:, :0], x, torch.full((len(captions),), level), text_s).float()
        else:
            x = r.states[j] if j == from_step else (1 - level) * targets[-1] + level * torch.randn(targets[-1].shape, generator=gen)
            target = teacher_finish(teacher, x, level, text_g, gens)
        states.append(x.float())
        targets.append(target)
    return {"states": torch.stack(states).contiguous(), "targets": torch.stack(targets).contiguous(), "levels": r.levels.float().contiguous()}


def build_bank(student, teacher, args, folder: Path) -> None:
    """Chunks of `args.chunk` clips in `folder`, each written atomically; chunks already there are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in tqdm(range(-(-args.clips // args.chunk)), desc="teacher's finishes", unit="chunk"):
        path = folder / f"chunk-{k:05d}.safetensors"
        if path.exists():
            continue
        captions = scene_captions(args.chunk, k * args.chunk)
        with autocast(args.precision):
            chunk = bank_chunk(student, teacher, captions, args.from_step, args.seed + k)
        meta = {"captions": json.dumps(captions), "from_step": str(args.from_step)}
        write_atomic(path, lambda p, c=chunk, m=meta: save_file(c, p, metadata=m))


def load_bank(folder: Path, args) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """(states (J, N, ...), targets (J, N, ...), levels (J,), captions (N,)) of the bank's chunks
    for `args.clips` clips, refused when they were made with another --from-step or --chunk."""
    states, targets, captions, levels = [], [], [], None
    for k in range(-(-args.clips // args.chunk)):
        path = folder / f"chunk-{k:05d}.safetensors"
        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
            made = (int(meta["from_step"]), len(json.loads(meta["captions"])))
            if made != (args.from_step, args.chunk):
                raise SystemExit(f"{path} was made with --from-step {made[0]} --chunk {made[1]}; "
                                 f"give those or another --output")
            states.append(f.get_tensor("states"))
            targets.append(f.get_tensor("targets"))
            levels = f.get_tensor("levels")
            captions += json.loads(meta["captions"])
    return torch.cat(states, 1), torch.cat(targets, 1), levels, captions


def regression_loss(student, states, targets, levels, rows: torch.Tensor, steps: torch.Tensor, text_s) -> torch.Tensor:
    """The squared distance of the student's clean clip for each row's state at its step to the target."""
    x, goal = states[steps, rows], targets[steps, rows]
    pred = x0_of(student, x[:, :0], x, levels[steps], text_s).float()
    return ((pred - goal) ** 2).mean()


def run(args) -> Path:
    out, teacher = start_run(args)
    if teacher.family != "diffusion":
        raise SystemExit(f"'{args.teacher}' is a {teacher.family} model; this recipe is for full-sequence diffusion students "
                         "(a hybrid student spends its steps on the first frame instead: --first-steps)")
    student = from_pretrained(args.student_dir).float()
    if not 0 <= args.from_step < student.config.steps:
        raise SystemExit(f"--from-step must be a step of the student's {student.config.steps}, from 0 to {student.config.steps - 1}")
    build_bank(student.eval(), teacher, args, out / "bank")
    states, targets, levels, captions = load_bank(out / "bank", args)
    weights = torch.tensor(args.step_weights or [1.0] * len(levels), dtype=torch.float)
    if len(weights) != len(levels) or (weights < 0).any() or weights.sum() <= 0:
        raise SystemExit(f"--step-weights takes {len(levels)} numbers >= 0, one a step of the student, not all 0; got {args.step_weights}")
    start = load_state(out, student, None, CHECKPOINT)
    student.train()
    dtype, extra = folder_metadata(args.teacher_dir)
    opt = torch.optim.AdamW(trainable(student), lr=args.lr, betas=(0.9, 0.999), weight_decay=0.0)
    paraphrase = paraphrase_share(student, args.paraphrase)
    rng, gen = random.Random(args.seed + start), torch.Generator().manual_seed(args.seed + start)
    log_path, t0 = out / "finish_log.jsonl", time.time()
    bar = tqdm(range(start, args.iterations), desc="finish", unit="it", initial=start, total=args.iterations)
    for it in bar:
        rows = torch.randint(states.shape[1], (args.batch,), generator=gen)
        steps = torch.multinomial(weights, args.batch, replacement=True, generator=gen)
        said = [student_caption(captions[i], rng, paraphrase) for i in rows.tolist()]
        with torch.no_grad():
            text_s = student.text.encode(said)
        with autocast(args.precision):
            loss = regression_loss(student, states.float(), targets.float(), levels, rows, steps, text_s)
        clipped_step(opt, student, loss)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        log_iteration(log_path, it, {"loss": loss.item()}, t0)
        if (it + 1) % args.save_every == 0 or it + 1 == args.iterations:
            save_state(out, student, None, it + 1, dtype, extra, args.snapshots, CHECKPOINT)
    return out


def main(argv: list[str] | None = None) -> None:
    from framecast.pipeline import resolve_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True, help="a bundled model name or folder (full-sequence diffusion)")
    p.add_argument("--student", required=True, help="the few-step student to go on from (its steps and sampler are kept)")
    p.add_argument("--output", required=True,
                   help="the new student's folder (its log and its target bank, made once for this teacher, student and --from-step, are kept there)")
    p.add_argument("--clips", type=int, default=1000, help="training scenes in the target bank")
    p.add_argument("--chunk", type=int, default=50, help="clips a bank file holds")
    p.add_argument("--from-step", type=int, default=2, help="the student's first step trained onto the teacher's finishes")
    p.add_argument("--step-weights", type=float, nargs="+", help="how often each of the student's steps is drawn (default: evenly)")
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-5)
    add_run_arguments(p, save_every=100)
    args = p.parse_args(argv)
    args.teacher_dir, args.student_dir = resolve_model(args.teacher), resolve_model(args.student)
    run(args)


if __name__ == "__main__":
    main()
