"""Few-step students by distribution matching on their own rollouts.

    python -m framecast.train.dmd --teacher shapes-hybrid --output runs/hybrid-dmd --iterations 600
    python -m framecast.train.dmd --teacher shapes-diffusion --output runs/diffusion-dmd --iterations 600

The student (the generator, initialised from the teacher) samples in `--student-steps` steps with
fresh noise between steps and no guidance. Each iteration:

1. rollout (no gradient, one every `--reuse` iterations): the student makes whole clips with its own
   sampler and KV cache, and the state of every token-frame before each of its steps is kept
   (Self-Forcing, Huang et al. 2025: the context a frame is learned on is the student's own, as at
   sampling time). A unit is a random token-frame f at a random step j, after the clean frames
   before it; for a full-sequence student the unit is the whole clip at step j. j is drawn from
   `--train-steps` (all the student's steps by default; `2 3` leaves a 4-step student's first two
   steps, which lay the scene out, as they are and trains its steps from level 0.5). With
   `--whole-clip` a hybrid update takes every token-frame of the rollout at once, each at its own
   random step after the clean frames before it (Self-Forcing's per-frame steps), in one pass of
   the teacher-forcing layout: the frames of a clip give the gradient together.
2. generator step: the student's x0 for the unit, with the gradient. Noised again to a random
   level t (`--score-levels`), the teacher's guided x0 (the real score) and the critic's x0 (the
   fake score) at that point give the distribution-matching gradient (DMD, Yin et al. 2024):
   grad = (fake - real) / mean|x0 - real|, applied as 0.5 ||x0 - sg(x0 - grad)||^2.
3. critic steps (`--critic-steps`, two time-scale updates as in DMD2): the critic, also
   initialised from the teacher, learns the student's frames with the teacher's own denoising
   objective, so it tracks the distribution the student makes now.
4. with `--gan-weight` w > 0 (DMD2's adversarial term, here on pixels): the student's x0 is
   decoded and a discriminator of small neighbourhoods (framecast.nn.discriminator) scores its
   frames; the generator's gradient in x0 becomes g_dmd + w |g_dmd| / |g_gan| g_gan, so w is the
   adversarial share of its size whatever the two losses' scales. The discriminator tells the
   student's rollouts from the codec's reconstructions of the same scenes' real clips,
   `--disc-steps` non-saturating steps (`--r1` penalty on the real frames) an iteration, after
   `--disc-warmup` steps on a pool of the first student's rollouts (a discriminator that does
   not yet tell them apart only adds noise to the generator's gradient). It works on whole clips: a full-sequence
   student, or a hybrid with `--whole-clip`.

Guidance is distilled with the steps: the real score is the teacher guided at its own scale. The
teacher and the critic read the canonical caption; the student reads it, or with probability
`--paraphrase` the same scene in other words (framecast.data.phrasing). Checkpoints (the student
and the critic) are written atomically every `--save-every` iterations and a run resumes from them.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from framecast.data.phrasing import describe
from framecast.data.shapes import parse_caption, render_clip, sample_scene
from framecast.generators import from_pretrained, save_pretrained
from framecast.generators.base import GenerationRequest
from framecast.generators.io import write_atomic
from framecast.nn.discriminator import PatchDiscriminator
from framecast.precision import autocast, resolve_precision
from framecast.sampling.guidance import guided
from framecast.sampling.schedules import flow_sigmas, sample_training_sigmas
from framecast.text.encoder import TextEmbedding, encode_for_guidance
from framecast.video import from_uint8

STUDENT_SAMPLER = "euler-stochastic"
SCENE_SEED = 2 * 10**7  # scenes the student learns from: far from the evaluation's seeds


def scene_captions(n: int, start: int) -> list[str]:
    return [sample_scene(SCENE_SEED + start + i).caption for i in range(n)]


def clean_latents(model, seeds: list[int]) -> tuple[torch.Tensor, list[str]]:
    """Shapes clips of these scene seeds as the model's latents, with their captions."""
    clips = [render_clip(s, size=model.config.size, frames=model.config.frames) for s in seeds]
    video = torch.stack([from_uint8(c.video) for c in clips])
    with torch.no_grad():
        return model.to_latent(video), [c.caption for c in clips]


def student_caption(caption: str, rng: random.Random, paraphrase: float) -> str:
    """The caption, or with probability `paraphrase` the same scene in other words (every
    attribute said, so the words mean exactly the caption)."""
    if rng.random() >= paraphrase:
        return caption
    return describe(parse_caption(caption), rng, drop=0.0, canonical=0.0)[0]


def x0_of(model, ctx: torch.Tensor, x: torch.Tensor, level: torch.Tensor, text: TextEmbedding, scale: float = 1.0) -> torch.Tensor:
    """The model's x0 for `x` (B, n, ...) at `level` (B,), after the clean frames `ctx` (hybrid;
    (B, 0, ...) for none), guided at `scale` with text [cond; uncond] when scale != 1."""

    def fn(ctx_, x_, lv_):
        if model.family != "hybrid":
            return model.predict_x0(x_, lv_, text)
        pf = model.patch_frames
        B, k, n = x_.shape[0], ctx_.shape[1] // pf, x_.shape[1] // pf
        levels = torch.cat([torch.zeros(B, k, device=x_.device), lv_[:, None].expand(B, n)], 1)
        return model.predict_x0(torch.cat([ctx_, x_], 1), levels, text, mask=model.config.mask_spec())[:, ctx_.shape[1]:]

    return guided(fn, scale)(ctx, x, level)


def x0_every_frame(model, clip: torch.Tensor, x: torch.Tensor, levels_BF: torch.Tensor, text: TextEmbedding,
                   scale: float = 1.0) -> torch.Tensor:
    """A hybrid model's x0 for every token-frame of `x` (B, T, ...), each at its own level
    (levels_BF), after the clean frames of `clip` before it: one pass of the teacher-forcing layout
    shows each frame what frame-by-frame sampling with the KV cache shows it."""
    block = model.config.chunk if model.config.mask == "block-causal" else 1

    def fn(clip_, x_, lv_):
        out = model.backbone.forward_teacher_forced(clip_, x_, torch.zeros_like(lv_), lv_, text, block=block)
        return out if model.config.prediction == "x0" else x_ - model.per_pixel(lv_, x_.shape[1]) * out

    return guided(fn, scale)(clip, x, levels_BF)


def per_unit(level_BF: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, F) levels, one a token-frame -> (B, T, 1, 1, 1) against a clip `like` (B, T, ...)."""
    return level_BF.repeat_interleave(like.shape[1] // level_BF.shape[1], 1).view(*like.shape[:2], *([1] * (like.dim() - 2)))


@dataclass
class Rollout:
    """One whole clip the student made with its own sampler: `states[j]` is the clip as it stood
    before the student's step j (each token-frame at the schedule's level j, `levels[j]`), and
    `clip` the clean result. A training unit is token-frame f at step j after the clean frames
    before it (hybrid), or the whole clip at step j (full-sequence)."""

    states: list[torch.Tensor]
    clip: torch.Tensor
    levels: torch.Tensor
    pf: int  # video frames a token-frame (the whole clip for a full-sequence model)

    def unit(self, f: int, j: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(clean context, the unit at step j, its (B,) level)."""
        now = slice(f * self.pf, (f + 1) * self.pf)
        return self.clip[:, : f * self.pf], self.states[j][:, now], self.levels[j].expand(self.clip.shape[0]).clone()

    def every_frame(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Every token-frame at its own random step: (the clip as those states, (B, F) levels)."""
        B, T = self.clip.shape[:2]
        j_BF = torch.randint(len(self.levels), (B, T // self.pf), generator=gen)
        stacked = torch.stack(self.states)  # (J, B, T, ...)
        pick = j_BF.repeat_interleave(self.pf, 1)  # (B, T)
        x = stacked[pick, torch.arange(B)[:, None], torch.arange(T)[None]]
        return x, self.levels[j_BF]


@torch.no_grad()
def rollout(student, captions: list[str], gen: torch.Generator) -> Rollout:
    """The student's clip for `captions` (its steps, sampler and KV cache), recorded step by step."""
    c = student.config
    C, side = student.latent_shape
    z = torch.randn(len(captions), c.frames, C, side, side, generator=gen)
    levels = flow_sigmas(c.steps, shift=c.shift)[:-1]
    states = [z] + [torch.zeros_like(z) for _ in levels[1:]]
    hybrid = student.family == "hybrid"
    pf = student.patch_frames if hybrid else c.frames

    def record(i, sigma, x, x0):
        row = sigma.reshape(-1).tolist() if sigma.dim() else [float(sigma)]
        for f, s in enumerate(row):
            hit = [j for j, lv in enumerate(levels.tolist()) if j and abs(lv - s) < 1e-6]
            if hit:
                states[hit[0]][:, f * pf : (f + 1) * pf] = x[:, f * pf : (f + 1) * pf].float()

    # every token-frame takes the student's own steps, the first too (whatever `first_steps` its
    # folder samples with), so each of its states lies at one of the recorded levels
    request = GenerationRequest(prompts=captions, latents=z, generator=gen, callback=record, **({"first_steps": 0} if hybrid else {}))
    clip = student.generate_latents(request).float()
    return Rollout(states, clip, levels, pf)


def dmd_loss(x0: torch.Tensor, ctx: torch.Tensor, teacher, critic, text_guided: TextEmbedding, text: TextEmbedding, scale: float,
             gen: torch.Generator, units: int = 1, levels: tuple[float, float] = (0.02, 0.98)) -> torch.Tensor:
    """The distribution-matching surrogate: its gradient in x0 is the normalised score difference.
    `units` 1: x0 is one unit a clip, after the clean frames `ctx`; more: x0 is every token-frame of
    the clip `ctx` (B, T, ...), each noised to its own level and normalised on its own."""
    B = x0.shape[0]
    t = levels[0] + (levels[1] - levels[0]) * torch.rand(B, units, generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    t_px = per_unit(t, x0)
    xt = (1 - t_px) * x0.detach() + t_px * eps
    with torch.no_grad():
        if units == 1:
            real = x0_of(teacher, ctx, xt, t[:, 0], text_guided if scale != 1.0 else text, scale)
            fake = x0_of(critic, ctx, xt, t[:, 0], text)
        else:
            real = x0_every_frame(teacher, ctx, xt, t, text_guided if scale != 1.0 else text, scale)
            fake = x0_every_frame(critic, ctx, xt, t, text)
        gap = (x0.detach() - real).abs().unflatten(1, (units, -1))
        weight = 1.0 / per_unit(gap.mean(dim=tuple(range(2, gap.dim()))).clamp(min=1e-4), x0)
        grad = (fake - real) * weight
    return 0.5 * ((x0.float() - (x0.detach().float() - grad)) ** 2).mean()


def critic_loss(critic, x0: torch.Tensor, ctx: torch.Tensor, text: TextEmbedding, gen: torch.Generator, units: int = 1) -> torch.Tensor:
    """The teacher's own objective on the student's frames: ((x0 - x0_hat) / s)^2, s >= 0.05;
    `units` as in `dmd_loss` (more: every token-frame at its own level after the clean clip `ctx`)."""
    B = x0.shape[0]
    s = sample_training_sigmas((B, units), generator=gen).clamp(0.01, 0.99)
    eps = torch.randn(x0.shape, generator=gen)
    s_px = per_unit(s, x0)
    xs = (1 - s_px) * x0 + s_px * eps
    out = x0_of(critic, ctx, xs, s[:, 0], text) if units == 1 else x0_every_frame(critic, ctx, xs, s, text)
    return (((out - x0) / s_px.clamp(min=0.05)) ** 2).mean()


def pixels_of(model, z: torch.Tensor) -> torch.Tensor:
    """The frames a model's clip representation `z` decodes to, with the gradient (the codec is frozen)."""
    return z if model.config.codec is None else model.codec.decode(z.float() / model.config.latent_scale)


def adversarial_grad(x0: torch.Tensor, student, disc: PatchDiscriminator) -> tuple[torch.Tensor, float]:
    """The non-saturating generator loss's gradient in x0: softplus(-D(frames)), frames decoded from x0."""
    adv = F.softplus(-disc(pixels_of(student, x0))).mean()
    return torch.autograd.grad(adv, x0, retain_graph=True)[0], adv.item()


@torch.no_grad()
def real_and_fake(student, start: int, r: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
    """(the codec's reconstruction of the real clips of the rollout's scenes, those of
    `scene_captions(len(r.clip), start)`; the student's rollout decoded)."""
    z, _ = clean_latents(student, [SCENE_SEED + start + i for i in range(len(r.clip))])
    real = pixels_of(student, z)
    return real.float(), pixels_of(student, r.clip).float()


def discriminator_steps(disc: PatchDiscriminator, opt, frames: tuple[torch.Tensor, torch.Tensor], steps: int, r1: float,
                        gen: torch.Generator) -> float:
    """`steps` discriminator steps, each on 64 random frames of the real clips and 64 of the
    student's (frames: (real, fake), each (B, T, C, H, W)); the last step's loss. Many small steps
    learn faster than few large ones: the evidence is a few pixels a frame."""
    real, fake = (f.flatten(0, 1)[:, None] for f in frames)
    for _ in range(steps):
        loss = discriminator_loss(disc, fake[torch.randint(len(fake), (64,), generator=gen)],
                                  real[torch.randint(len(real), (64,), generator=gen)], r1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return loss.item()


def warm_discriminator(disc: PatchDiscriminator, opt, student, args, gen: torch.Generator) -> None:
    """`args.disc_warmup` discriminator steps on a pool of 8 rollouts of the student as it starts."""
    pool = []
    for k in tqdm(range(8), desc="discriminator pool", unit="rollout"):
        start = 9 * 10**5 + k * args.batch
        captions = scene_captions(args.batch, start)
        with autocast(args.precision):
            pool.append(real_and_fake(student, start, rollout(student, captions, gen)))
    frames = torch.cat([p[0] for p in pool]), torch.cat([p[1] for p in pool])
    for done in tqdm(range(0, args.disc_warmup, 100), desc="discriminator warm-up", unit="100 steps"):
        discriminator_steps(disc, opt, frames, min(100, args.disc_warmup - done), args.r1, gen)


def discriminator_loss(disc: PatchDiscriminator, fake: torch.Tensor, real: torch.Tensor, r1: float) -> torch.Tensor:
    """softplus(D(fake)) + softplus(-D(real)) + r1 / 2 E|grad_real D|^2 (Mescheder et al. 2018)."""
    real = real.detach().requires_grad_(r1 > 0)
    d_real = disc(real)
    loss = F.softplus(disc(fake.detach())).mean() + F.softplus(-d_real).mean()
    if r1 > 0:
        (g,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
        loss = loss + 0.5 * r1 * g.pow(2).sum(dim=(2, 3, 4)).mean()
    return loss


CHECKPOINT = "dmd_checkpoint.safetensors"


def save_state(out: Path, student, other, it: int, dtype: torch.dtype | None, extra: dict, snapshot: bool = False,
               checkpoint: str = CHECKPOINT) -> None:
    """The student as a model folder (usable at once; with `snapshot` also kept as
    snapshots/it-NNNNN, to pick from on held-out prompts) and the recipe's other network (the
    critic, or a consistency run's target; None for a recipe without one) in `checkpoint` with the
    iteration (to resume)."""
    save_pretrained(student, out, dtype=dtype, extra=extra)
    if snapshot:
        save_pretrained(student, out / "snapshots" / f"it-{it:05d}", dtype=dtype, extra=extra)
    state = {} if other is None else {k: v.detach().contiguous() for k, v in other.state_dict().items()}
    write_atomic(out / checkpoint, lambda p: save_file(state, p, metadata={"iteration": str(it)}))


def load_state(out: Path, student, other, checkpoint: str = CHECKPOINT) -> int:
    """The iteration a run stopped at (0 for a new run), with its student and other network loaded."""
    from safetensors import safe_open

    if not (out / checkpoint).exists():
        return 0
    student.load_state_dict({k: v.float() for k, v in load_file(out / "model.safetensors").items()})
    if other is not None:
        other.load_state_dict(load_file(out / checkpoint))
    with safe_open(out / checkpoint, "pt") as f:
        return int(f.metadata()["iteration"])


def clipped_step(opt: torch.optim.Optimizer, model, loss: torch.Tensor) -> None:
    """One optimiser step on `loss`, `model`'s gradient clipped to norm 1 (every student recipe's update)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def log_iteration(path: Path, it: int, record: dict, t0: float) -> None:
    """Append iteration `it`'s record, with the seconds since `t0`, to a run's JSON-lines log."""
    with open(path, "a") as fh:
        fh.write(json.dumps({"iteration": it, **record, "seconds": time.time() - t0}) + "\n")


def frozen_teacher(args):
    """The teacher (fp32, no gradients), refused unless a diffusion or hybrid model."""
    teacher = from_pretrained(args.teacher_dir).float().eval()
    if teacher.family not in ("diffusion", "hybrid"):
        raise SystemExit(f"'{args.teacher}' is a {teacher.family} model; few-step distillation is for diffusion and hybrid models")
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def start_run(args):
    """A recipe's set-up: seeds, threads, the output folder, the precision resolved, and the frozen
    teacher. Returns (output folder, teacher)."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    args.precision = resolve_precision(args.precision)
    return out, frozen_teacher(args)


def add_run_arguments(p: argparse.ArgumentParser, save_every: int) -> None:
    """The options every student recipe takes: captions in other words, saves, precision, seed, threads."""
    p.add_argument("--paraphrase", type=float, default=0.3, help="share of captions the student reads in other words")
    p.add_argument("--save-every", type=int, default=save_every)
    p.add_argument("--snapshots", action="store_true", help="keep the student of every save in snapshots/ (to pick one on held-out scenes)")
    p.add_argument("--precision", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)


def new_student(args):
    """A copy of the teacher set to sample in `args.student_steps` unguided steps with the
    students' sampler."""
    student = from_pretrained(args.teacher_dir).float()
    student.config.steps, student.config.guidance, student.config.sampler = args.student_steps, 1.0, STUDENT_SAMPLER
    return student


def paraphrase_share(student, share: float) -> float:
    """The share of captions the student reads in other words: none for a word encoder, which
    reads the canonical grammar only."""
    return share if student.text.kind == "pretrained" else 0.0


def folder_metadata(teacher_dir: str | Path) -> tuple[torch.dtype | None, dict]:
    """(the dtype of the teacher's weights, the teacher's config keys a student folder keeps)."""
    from framecast.train.connector import weights_dtype

    config = json.loads((Path(teacher_dir) / "config.json").read_text())
    return weights_dtype(Path(teacher_dir)), {k: v for k, v in config.items() if k in ("trained_steps", "recipe")}


def update(models, opts, args, r: Rollout, texts: tuple, gen: torch.Generator, student_step: bool = True,
           frames: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """One generator step on a random unit of the rollout (skipped without `student_step`: the
    critic's warm-up), then the critic's steps and, with a discriminator (models[3]), its steps
    on `frames` (real, the rollout's)."""
    student, teacher, critic = models[:3]
    disc = models[3] if len(models) > 3 else None
    text_s, text_t, text_g = texts
    units = r.clip.shape[1] // r.pf
    if args.whole_clip and student.family == "hybrid":
        f, j, n = -1, -1, units
        ctx = r.clip
        x, levels = r.every_frame(gen)
        with autocast(args.precision):
            x0 = x0_every_frame(student, ctx, x, levels, text_s)
    else:
        steps = args.train_steps or list(range(len(r.levels)))
        f, n = int(torch.randint(units, (1,), generator=gen)), 1
        j = steps[int(torch.randint(len(steps), (1,), generator=gen))]
        ctx, x, level = r.unit(f, j)
        with autocast(args.precision):
            x0 = x0_of(student, ctx, x, level, text_s)
    with autocast(args.precision):
        g_loss = dmd_loss(x0, ctx, teacher, critic, text_g, text_t, args.guidance, gen, units=n, levels=tuple(args.score_levels))
    rec = {}
    opts[0].zero_grad(set_to_none=True)
    if student_step:
        if disc is None:
            g_loss.backward()
        else:
            (g_dmd,) = torch.autograd.grad(g_loss, x0, retain_graph=True)
            g_adv, rec["adversarial"] = adversarial_grad(x0, student, disc)
            scale = args.gan_weight * g_dmd.norm() / g_adv.norm().clamp(min=1e-12)
            x0.backward(g_dmd + scale * g_adv)
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opts[0].step()
    c_losses = []
    for _ in range(args.critic_steps):
        with autocast(args.precision):
            c_loss = critic_loss(critic, x0.detach().float(), ctx, text_t, gen, units=n)
        clipped_step(opts[1], critic, c_loss)
        c_losses.append(c_loss.item())
    if disc is not None:
        rec["discriminator"] = discriminator_steps(disc, opts[2], frames, args.disc_steps, args.r1, gen)
    return {"generator": g_loss.item(), "critic": sum(c_losses) / len(c_losses), "frame": f, "step": j, **rec}


def encode(student, teacher, captions: list[str], said: list[str]) -> tuple[TextEmbedding, TextEmbedding, TextEmbedding]:
    """(the student's text, the teacher's, the teacher's [cond; uncond] for guidance)."""
    with torch.no_grad():
        text_t, uncond = encode_for_guidance(teacher.text, captions, None, guided=True)
        return student.text.encode(said), text_t, TextEmbedding.cat([text_t, uncond])


def trainable(model) -> list[torch.nn.Parameter]:
    """The backbone's parameters: the text encoder and the codec stay as they are."""
    for part in (model.text, model.codec):
        for p in part.parameters():
            p.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def run(args) -> Path:
    out, teacher = start_run(args)
    args.guidance = teacher.config.guidance if args.guidance is None else args.guidance
    student, critic = new_student(args), from_pretrained(args.teacher_dir).float()
    adversarial = args.gan_weight > 0
    if adversarial and student.family == "hybrid" and not args.whole_clip:
        raise SystemExit("--gan-weight needs whole clips: add --whole-clip for a hybrid teacher")
    disc = PatchDiscriminator(channels=3, width=32, kernel=args.disc_kernel) if adversarial else None
    other = torch.nn.ModuleDict({"critic": critic, "discriminator": disc}) if adversarial else critic
    if args.student_shift is not None:  # where the student's levels lie (< 1: more of them near the clean end)
        student.config.shift = args.student_shift
    paraphrase = paraphrase_share(student, args.paraphrase)
    start = load_state(out, student, other)
    if start == 0 and args.init_student:
        student.load_state_dict({k: v.float() for k, v in load_file(Path(args.init_student) / "model.safetensors").items()})
    dtype, extra = folder_metadata(args.teacher_dir)
    opts = (torch.optim.AdamW(trainable(student), lr=args.lr, betas=(0.0, 0.999), weight_decay=0.0),
            torch.optim.AdamW(trainable(critic), lr=args.critic_lr, betas=(0.0, 0.999), weight_decay=0.0))
    if adversarial:
        opts += (torch.optim.AdamW(disc.parameters(), lr=args.disc_lr, betas=(0.9, 0.999), weight_decay=0.0),)
    rng, gen = random.Random(args.seed + start), torch.Generator().manual_seed(args.seed + start)
    if adversarial and start == 0:
        warm_discriminator(disc, opts[2], student, args, gen)
    log_path, t0 = out / "dmd_log.jsonl", time.time()
    bar = tqdm(range(start, args.iterations), desc="dmd", unit="it", initial=start, total=args.iterations)
    r = texts = frames = None
    models = (student, teacher, critic) + ((disc,) if adversarial else ())
    for it in bar:
        if r is None or it % args.reuse == 0:  # a fresh rollout every `reuse` generator steps
            first = (it * args.batch) % 10**6
            captions = scene_captions(args.batch, first)
            said = [student_caption(cap, rng, paraphrase) for cap in captions]
            texts = encode(student, teacher, captions, said)
            with autocast(args.precision):
                r = rollout(student, said, gen)
            if adversarial:  # real frames as the codec gives them back: what a perfect latent decodes to
                frames = real_and_fake(student, first, r)
        rec = update(models, opts, args, r, texts, gen, student_step=it >= args.critic_warmup, frames=frames)
        bar.set_postfix(g=f"{rec['generator']:.4f}", critic=f"{rec['critic']:.3f}")
        log_iteration(log_path, it, rec, t0)
        if (it + 1) % args.save_every == 0 or it + 1 == args.iterations:
            save_state(out, student, other, it + 1, dtype, extra, args.snapshots)
    return out


def main(argv: list[str] | None = None) -> None:
    from framecast.pipeline import resolve_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True, help="a bundled model name or folder (diffusion or hybrid)")
    p.add_argument("--output", required=True, help="the student's folder (its checkpoint and log are kept there)")
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--student-steps", type=int, default=4)
    p.add_argument("--student-shift", type=float, help="the shift of the student's levels (default: the teacher's)")
    p.add_argument("--guidance", type=float, help="the teacher's guidance for the real score (default: its own)")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--critic-lr", type=float, default=2e-5)
    p.add_argument("--score-levels", type=float, nargs=2, default=[0.02, 0.98], metavar=("LO", "HI"),
                   help="the levels the student's x0 is noised to for the two scores (uniform between LO and HI)")
    p.add_argument("--critic-steps", type=int, default=2, help="critic updates per generator update")
    p.add_argument("--train-steps", type=int, nargs="+", metavar="J",
                   help="one-unit updates: the student's steps an update is taken on (0 is its first; default: all); "
                        "e.g. 2 3 for the steps from level 0.5 of 4 (--whole-clip draws every frame's step from all)")
    p.add_argument("--reuse", type=int, default=4, help="generator updates per rollout (each on another frame and step)")
    p.add_argument("--whole-clip", action="store_true",
                   help="hybrid: each update on every token-frame of the rollout, each at its own step (one teacher-forcing pass)")
    p.add_argument("--init-student", help="a student folder to go on from (its critic starts from the teacher)")
    p.add_argument("--critic-warmup", type=int, default=0,
                   help="first iterations that train the critic alone (with --init-student: it learns the student's frames first)")
    p.add_argument("--gan-weight", type=float, default=0.0,
                   help="the adversarial term's share of the generator's gradient in x0, from a patch discriminator on decoded frames (0: none)")
    p.add_argument("--disc-lr", type=float, default=3e-3, help="the discriminator's learning rate")
    p.add_argument("--disc-kernel", type=int, default=1, help="the discriminator's kernel: 1 judges each pixel's colour, 3 its 3x3 neighbourhood")
    p.add_argument("--disc-steps", type=int, default=4, help="discriminator steps an iteration, each on 64 frames")
    p.add_argument("--disc-warmup", type=int, default=3000, help="discriminator steps on the first student's rollouts before the student learns")
    p.add_argument("--r1", type=float, default=0.0, help="the R1 penalty's weight on the discriminator's real frames")
    add_run_arguments(p, save_every=25)
    args = p.parse_args(argv)
    if not 0 < args.score_levels[0] < args.score_levels[1] < 1:
        p.error(f"--score-levels {args.score_levels[0]} {args.score_levels[1]}: give two levels with 0 < LO < HI < 1")
    if args.train_steps and not all(0 <= j < args.student_steps for j in args.train_steps):
        p.error(f"--train-steps {' '.join(map(str, args.train_steps))}: give steps from 0 to {args.student_steps - 1} (the student takes {args.student_steps})")
    args.teacher_dir = resolve_model(args.teacher)
    args.init_student = resolve_model(args.init_student) if args.init_student else None
    run(args)


if __name__ == "__main__":
    main()
