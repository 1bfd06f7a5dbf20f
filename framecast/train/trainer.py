"""The single-process training loop: AdamW, warm-up + cosine, EMA, clipping, bf16 autocast,
atomic checkpoints, exact resume, a progress bar and a JSONL log.

Every step's randomness (data, noise levels, noise, condition dropout) is drawn from
generators seeded by (seed, step), so a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from framecast.data.shapes import shapes_batches
from framecast.generators.diffusion import ModelSpec
from framecast.generators.io import build_generator, save_pretrained
from framecast.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from framecast.train.config import TrainConfig


def lr_at(step: int, cfg: TrainConfig) -> float:
    o = cfg.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    progress = min(1.0, (step - o.warmup_steps) / max(1, cfg.steps - o.warmup_steps))
    return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - decay)


def _truncate_log(path: Path, step: int) -> None:
    """A resumed run forgets what was logged after its checkpoint, so the log reads as one run."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def make_batches(cfg: TrainConfig, start_step: int):
    d = cfg.data
    if d.source == "shapes":
        return shapes_batches(batch_size=cfg.batch_size, split=d.split, size=d.size, frames=d.frames, seed=cfg.seed, start_step=start_step)
    raise ValueError(f"unknown data source '{d.source}'; this framecast trains on: shapes")


@torch.no_grad()
def write_samples(model, path: Path, cfg: TrainConfig, autocast, n: int = 4) -> None:
    """A contact sheet (rows = clips) of the EMA model on fixed captions and seeds, to watch training."""
    import numpy as np
    from PIL import Image

    from framecast.data.shapes import render_clip
    from framecast.generators.diffusion import GenerationRequest
    from framecast.video import contact_sheet, to_uint8

    prompts = [render_clip(i, split=cfg.data.split).caption for i in range(n)]
    gens = [torch.Generator().manual_seed(i) for i in range(n)]
    with autocast:
        clips = model.generate(GenerationRequest(prompts=prompts, num_frames=cfg.data.frames, generator=gens))
    frames = np.concatenate([to_uint8(c) for c in clips])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(contact_sheet(frames, columns=cfg.data.frames, scale=2)).save(path)


def init_weights(model: torch.nn.Module, folder: str) -> None:
    """Start from another model's weights (safetensors only). Architectures must match; the
    families may differ: CausVid initialises its causal student from a bidirectional teacher."""
    from safetensors.torch import load_file

    from framecast.generators.io import WEIGHTS_NAME, read_config
    from framecast.pipeline import resolve_model

    path = resolve_model(folder)
    read_config(path)
    state = load_file(str(path / WEIGHTS_NAME))
    own = model.state_dict()
    if set(state) != set(own) or any(state[k].shape != own[k].shape for k in own):
        raise ValueError(f"cannot start from '{folder}': its weights do not fit this recipe's architecture")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms, embeddings of positions and adaLN offsets."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and "modulation" not in name and not name.endswith("pos") else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train(cfg: TrainConfig, *, resume: str | Path | None = None, progress: bool = True) -> Path:
    """Train to `cfg.steps`; returns the run folder. `resume`: a run folder or a checkpoint folder."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be bf16 or fp32, got '{cfg.precision}'")
    run_dir = Path(cfg.out_dir)
    torch.manual_seed(cfg.seed)
    model = build_generator(ModelSpec(**asdict(cfg.model)))
    if cfg.init_from and resume is None:
        init_weights(model, cfg.init_from)
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr, betas=cfg.optim.betas, fused=False)

    start = 0
    if resume is not None:
        resume = Path(resume)
        ckpt = resume if (resume / "state.json").is_file() else latest_checkpoint(resume)
        if ckpt is None:
            raise ValueError(f"nothing to resume in '{resume}': no complete checkpoint found")
        start = load_checkpoint(ckpt, model=model, ema=ema, optimizer=optimizer)["step"]
        run_dir = ckpt.parent.parent
    run_dir.mkdir(parents=True, exist_ok=True)
    _truncate_log(run_dir / "log.jsonl", start)
    (run_dir / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    n_params = sum(p.numel() for p in model.parameters())

    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if cfg.precision == "bf16" else contextlib.nullcontext()
    batches = make_batches(cfg, start)
    log = open(run_dir / "log.jsonl", "a")
    bar = tqdm(total=cfg.steps, initial=start, disable=not progress, desc=f"train {cfg.recipe or 'run'} ({n_params / 1e6:.1f}M params)", dynamic_ncols=True)
    model.train()
    t_last, step = time.perf_counter(), start
    for step in range(start, cfg.steps):
        batch = next(batches)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        with autocast:
            loss = model.loss(batch, generator=gen)
        if not torch.isfinite(loss):
            raise RuntimeError(f"the loss became {loss.item()} at step {step}; lower optim.lr or use precision=fp32")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            now = time.perf_counter()
            rate = cfg.log_every / (now - t_last) if done % cfg.log_every == 0 else float("nan")
            t_last = now
            log.write(json.dumps({"step": done, "loss": round(loss.item(), 6), "lr": lr_at(step, cfg), "grad_norm": round(float(grad_norm), 4), "steps_per_s": round(rate, 4), "time": time.time()}) + "\n")
            log.flush()
        if cfg.sample_every and done % cfg.sample_every == 0:
            write_samples(ema, run_dir / "samples" / f"step_{done:06d}.png", cfg, autocast)
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            save_checkpoint(run_dir, done, model=model, ema=ema, optimizer=optimizer, train_config=cfg.to_dict(), keep_last=cfg.keep_last)
    bar.close()
    log.close()
    save_pretrained(ema, run_dir / "model", extra={"trained_steps": cfg.steps, "recipe": cfg.recipe})
    return run_dir
