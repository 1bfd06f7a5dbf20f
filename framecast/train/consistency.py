"""Few-step students by consistency distillation, for diffusion and hybrid models.

    python -m framecast.train.consistency --teacher shapes-diffusion --output runs/diffusion-cd --iterations 1200
    python -m framecast.train.consistency --teacher shapes-hybrid --output runs/hybrid-cd --iterations 1200

A consistency model maps any point of the teacher's probability-flow ODE to that trajectory's clean
end (Song et al. 2023); sampled in a few steps, it predicts the clean clip, noises it again with
fresh noise to the next level, and predicts again: the `euler-stochastic` sampler the students of
framecast.train.dmd use, so a consistency student is a model folder like theirs.

Each iteration (consistency distillation, as in LCM, Luo et al. 2023):

1. a batch of Shapes clips x0 (from `--pool` clips encoded once), a level t_n of the teacher's `--grid`-step
   schedule and noise: x_n = (1 - t_n) x0 + t_n eps;
2. one guided Euler step of the teacher's ODE, dx/dt = (x - x0_hat) / t, from t_n to the next level
   t_m: x_m, a point of the same trajectory (guidance is distilled with the steps);
3. the target is the target network's clean clip for x_m (x_m itself at t_m = 0, the boundary);
   the loss is the distance of the student's clean clip for x_n to it. The target network is an
   exponential moving average of the student (`--ema`; 0 makes it the student without gradient).

A hybrid's token-frames each take their own level and see the clean frames before them, in one
pass of the teacher-forcing layout, as they see the frames a stream has finished (the context is
the data's, not the student's own: framecast.train.dmd trains on the student's rollouts).

The student reads the canonical caption or, with probability `--paraphrase` (models with a
pretrained text encoder), the same scene in other words. The student and the target network are
written atomically every `--save-every` iterations, and a run resumes from them.
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
from framecast.sampling.guidance import guided
from framecast.sampling.schedules import flow_sigmas
from framecast.text.encoder import TextEmbedding
from framecast.train.dmd import (
    SCENE_SEED,
    add_run_arguments,
    clean_latents,
    clipped_step,
    encode,
    folder_metadata,
    load_state,
    log_iteration,
    new_student,
    paraphrase_share,
    per_unit,
    save_state,
    start_run,
    student_caption,
    trainable,
    x0_every_frame,
)


def latent_pool(model, size: int, cache: Path) -> tuple[torch.Tensor, list[str]]:
    """The first `size` scenes the students learn from, encoded once (the codec's encoder costs
    more than a transformer pass) and kept in `cache`, which a resumed run reads back when it was
    made for the same size, clip shape and latent scale."""
    c = model.config
    fingerprint = json.dumps([size, c.size, c.frames, c.latent_scale])
    if cache.is_file():
        with safe_open(str(cache), "pt") as f:
            meta = f.metadata() or {}
            if meta.get("fingerprint") == fingerprint:
                return f.get_tensor("latents").float(), json.loads(meta["captions"])
    latents, captions = [], []
    for lo in tqdm(range(0, size, 64), desc="encoding the latent pool", unit="batch"):
        z, caps = clean_latents(model, [SCENE_SEED + i for i in range(lo, min(size, lo + 64))])
        latents.append(z.to(torch.bfloat16))
        captions += caps
    pool = torch.cat(latents)
    write_atomic(cache, lambda p: save_file({"latents": pool.contiguous()}, p, metadata={"captions": json.dumps(captions), "fingerprint": fingerprint}))
    return pool.float(), captions


def ode_step(x: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """One Euler step of the flow ODE dx/dt = (x - x0) / t from level t to t_next (each (B, U):
    one level a unit, units splitting x's frames evenly)."""
    return x0 + per_unit(t_next / t, x) * (x - x0)


def clean_of(model, clip: torch.Tensor, x: torch.Tensor, levels: torch.Tensor, text: TextEmbedding, scale: float = 1.0) -> torch.Tensor:
    """The model's clean clip for `x` at `levels` (B, U): a full-sequence model's one level a clip
    (U = 1); a hybrid's one level a token-frame, each after the clean frames of `clip` before it
    (the teacher-forcing layout: what frame-by-frame sampling with the KV cache shows it)."""
    if model.family == "hybrid":
        return x0_every_frame(model, clip, x, levels, text, scale)
    return guided(lambda x_, lv_: model.predict_x0(x_, lv_, text), scale)(x, levels[:, 0])


def consistency_loss(student, target, teacher, x0: torch.Tensor, grid: torch.Tensor, text_s: TextEmbedding,
                     text_t: TextEmbedding, text_g: TextEmbedding, scale: float, gen: torch.Generator) -> torch.Tensor:
    """The distance of the student's clean clip at a random level t_n of `grid` to the target
    network's at the next level, reached by the teacher's guided ODE step. A hybrid's token-frames
    each take their own level, after the clean frames of x0 before them."""
    B = x0.shape[0]
    units = x0.shape[1] // student.patch_frames if student.family == "hybrid" else 1
    n = torch.randint(len(grid) - 1, (B, units), generator=gen)
    t, t_next = grid[n], grid[n + 1]
    eps = torch.randn(x0.shape, generator=gen)
    x_n = (1 - per_unit(t, x0)) * x0 + per_unit(t, x0) * eps
    with torch.no_grad():
        x0_teacher = clean_of(teacher, x0, x_n, t, text_g if scale != 1.0 else text_t, scale)
        x_m = ode_step(x_n, x0_teacher.float(), t, t_next)
        goal = torch.where(per_unit(t_next, x0) == 0, x_m, clean_of(target, x0, x_m, t_next, text_s).float())
    pred = clean_of(student, x0, x_n, t, text_s).float()
    return ((pred - goal) ** 2).mean()


@torch.no_grad()
def ema_update(target, student, decay: float) -> None:
    for pt, ps in zip(target.parameters(), student.parameters()):
        pt.lerp_(ps.detach(), 1.0 - decay)


CHECKPOINT = "cd_checkpoint.safetensors"


def run(args) -> Path:
    out, teacher = start_run(args)
    scale = teacher.config.guidance if args.guidance is None else args.guidance
    student, target = new_student(args), from_pretrained(args.teacher_dir).float()
    for p in target.parameters():
        p.requires_grad_(False)
    paraphrase = paraphrase_share(student, args.paraphrase)
    start = load_state(out, student, target, CHECKPOINT)
    grid = flow_sigmas(args.grid, shift=teacher.config.shift)
    dtype, extra = folder_metadata(args.teacher_dir)
    opt = torch.optim.AdamW(trainable(student), lr=args.lr, betas=(0.9, 0.999), weight_decay=0.0)
    rng, gen = random.Random(args.seed + start), torch.Generator().manual_seed(args.seed + start)
    log_path, t0 = out / "cd_log.jsonl", time.time()
    pool, pool_captions = latent_pool(teacher, args.pool, out / "latent_pool.safetensors")
    bar = tqdm(range(start, args.iterations), desc="consistency", unit="it", initial=start, total=args.iterations)
    for it in bar:
        rows = torch.randint(len(pool), (args.batch,), generator=gen)
        x0, captions = pool[rows], [pool_captions[i] for i in rows.tolist()]
        said = [student_caption(cap, rng, paraphrase) for cap in captions]
        text_s, text_t, text_g = encode(student, teacher, captions, said)
        with autocast(args.precision):
            loss = consistency_loss(student, target, teacher, x0, grid, text_s, text_t, text_g, scale, gen)
        clipped_step(opt, student, loss)
        ema_update(target, student, args.ema)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        log_iteration(log_path, it, {"loss": loss.item()}, t0)
        if (it + 1) % args.save_every == 0 or it + 1 == args.iterations:
            save_state(out, student, target, it + 1, dtype, extra, args.snapshots, CHECKPOINT)
    return out


def main(argv: list[str] | None = None) -> None:
    from framecast.pipeline import resolve_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True, help="a bundled model name or folder (diffusion or hybrid)")
    p.add_argument("--output", required=True, help="the student's folder (its checkpoint and log are kept there)")
    p.add_argument("--iterations", type=int, default=1500)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--pool", type=int, default=4000, help="Shapes clips encoded once and drawn from")
    p.add_argument("--student-steps", type=int, default=4)
    p.add_argument("--grid", type=int, default=25, help="steps of the teacher's ODE schedule that the targets step along")
    p.add_argument("--guidance", type=float, help="the teacher's guidance in its ODE steps (default: its own)")
    p.add_argument("--ema", type=float, default=0.95, help="decay of the target network (0: the student without gradient)")
    p.add_argument("--lr", type=float, default=2e-5)
    add_run_arguments(p, save_every=100)
    args = p.parse_args(argv)
    args.teacher_dir = resolve_model(args.teacher)
    run(args)


if __name__ == "__main__":
    main()
