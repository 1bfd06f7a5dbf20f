"""The training loop: one process or many (`torchrun`, DDP or FSDP2), AdamW, warm-up + cosine,
EMA, clipping, bf16 autocast, gradient accumulation, atomic checkpoints, exact resume, a progress
bar, JSONL and TensorBoard logs, periodic samples, and a dry run.

Every clip's randomness (noise level, noise, condition dropout) comes from a generator seeded by
(seed, step, index in the global batch), and the data of step k is a function of (seed, k). So a
resumed run repeats the uninterrupted one, and N processes with a global batch B take the steps
one process with batch B would.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from framecast.generators.diffusion import ModelSpec
from framecast.generators.io import build_generator
from framecast.precision import autocast as precision_autocast
from framecast.precision import resolve_precision
from framecast.train import distributed
from framecast.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, save_model, truncate_log
from framecast.train.config import TrainConfig
from framecast.train.data import LatentPool, process_batches


def lr_at(step: int, cfg: TrainConfig, rewarm_from: int | None = None) -> float:
    """Linear warm-up then cosine. `rewarm_from`: the step a run resumed at without its optimizer
    state (a packed checkpoint); the learning rate warms up again from there, over the same
    number of steps, while AdamW's moments fill."""
    o = cfg.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    progress = min(1.0, (step - o.warmup_steps) / max(1, cfg.steps - o.warmup_steps))
    lr = o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
    if rewarm_from is not None and step - rewarm_from < o.warmup_steps:
        lr *= (step - rewarm_from + 1) / o.warmup_steps
    return lr


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """Parameters are averaged; buffers are copied (a VQ codebook is already its own moving
    average, and it must match the encoder it is used with)."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def write_samples(model, path: Path, cfg: TrainConfig, autocast, n: int = 4) -> None:
    """A contact sheet (rows = clips) of the EMA model on fixed captions and seeds, to watch training."""
    import numpy as np
    from PIL import Image

    from framecast.data.shapes import render_clip
    from framecast.generators.diffusion import GenerationRequest
    from framecast.video import contact_sheet, to_uint8

    if not hasattr(model, "generate"):
        return
    prompts = [render_clip(i, split=cfg.data.split).caption for i in range(n)]
    gens = [torch.Generator().manual_seed(i) for i in range(n)]
    with autocast:
        clips = model.generate(GenerationRequest(prompts=prompts, num_frames=cfg.data.frames, generator=gens))
    frames = np.concatenate([to_uint8(c) for c in clips])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(contact_sheet(frames, columns=cfg.data.frames, scale=2)).save(path)


def init_weights(model: torch.nn.Module, folder: str, partial: bool = False, components: tuple[str, ...] = ()) -> dict:
    """Start from another model's weights (safetensors only). Architectures must match; the
    families may differ: CausVid initialises its causal student from a bidirectional teacher.
    `partial`: take every tensor whose name and shape fit and start the others fresh (a token
    transformer from a diffusion model's trunk, a tokenizer from a VAE); at least half of the
    model's tensors (not counting `components`, loaded from their own folders) must fit.
    Returns the folder's config."""
    from safetensors.torch import load_file

    from framecast.generators.io import WEIGHTS_NAME, read_config
    from framecast.pipeline import resolve_model

    path = resolve_model(folder)
    config = read_config(path)
    state = load_file(str(path / WEIGHTS_NAME))
    if hasattr(model, "adapt_init_state"):  # e.g. a model gaining self-conditioning inputs
        state = model.adapt_init_state(state)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    if not partial:
        if set(state) != set(own) or len(fits) != len(own):
            raise ValueError(f"cannot start from '{folder}': its weights do not fit this recipe's architecture "
                             "(set init_partial=true to take only the tensors that fit)")
    else:
        own_here = [k for k in own if not k.startswith(tuple(f"{c}." for c in components))]
        if 2 * len(fits) < len(own_here):
            raise ValueError(f"cannot start from '{folder}': only {len(fits)} of this model's {len(own_here)} tensors fit its weights")
        fresh = sorted(set(own_here) - set(fits))
        print(f"init from {folder}: {len(fits)} of {len(own)} tensors taken; fresh: {', '.join(fresh) or 'none'}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in fits.items()}, strict=not partial)
    return config


def component_configs(cfg: TrainConfig) -> None:
    """A component loaded from a folder (a tokenizer under a token transformer) brings its config."""
    from framecast.generators.io import read_config
    from framecast.pipeline import resolve_model

    for name, folder in cfg.init_components.items():
        if cfg.model.generator.get(name) is None:
            cfg.model.generator[name] = read_config(resolve_model(folder))["generator"]


def _inherit_latent_scale(cfg: TrainConfig, model: torch.nn.Module, init_config: dict) -> None:
    """A run started from a latent model keeps that model's latent scale: its weights were
    trained on latents at that scale (a CausVid student starts from its teacher)."""
    scale = init_config.get("generator", {}).get("latent_scale")
    if scale and hasattr(getattr(model, "config", None), "latent_scale") and not cfg.model.generator.get("latent_scale"):
        cfg.model.generator["latent_scale"] = scale


def _pool_codec(model: torch.nn.Module) -> torch.nn.Module | None:
    """The frozen codec whose output a training pool can hold: a latent model's VAE, a token
    model's tokenizer (its codes); None for a pixel model."""
    if getattr(getattr(model, "config", None), "codec", None) is not None:
        return model.codec
    return getattr(model, "tokenizer", None)


def _calibrate_latents(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """A model in a codec's latents scales them to unit variance, measured once on the first
    batch of the run (the same on every rank) and kept in the config so a resumed run reuses it."""
    config = getattr(model, "config", None)
    if getattr(config, "codec", None) is None or config.latent_scale:
        return
    if not cfg.model.generator.get("latent_scale"):
        first = next(process_batches(cfg, 0, 0, 1))
        cfg.model.generator["latent_scale"] = model.calibrate(torch.cat([mb.batch["video"] for mb in first]))
    config.latent_scale = cfg.model.generator["latent_scale"]


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's parameters and buffers: which weights a cached result came from."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def _fill_vocabulary(cfg: TrainConfig) -> None:
    """A word encoder for a folder of real videos reads the words of its captions."""
    if cfg.data.source != "folder" or cfg.model.text_kind != "word" or cfg.model.text.get("vocabulary"):
        return
    from framecast.data.folder import find_clips
    from framecast.text.encoder import build_vocabulary

    words = build_vocabulary([e.caption for e in find_clips(cfg.data.path)])
    if not words:
        raise ValueError(f"no captions found in '{cfg.data.path}'; add .txt sidecars, captions.jsonl or captions.csv")
    cfg.model.text["vocabulary"] = words
    cfg.model.text["max_words"] = max(cfg.model.text.get("max_words", 24), 64)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms, positional tables and adaLN offsets."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and "modulation" not in name and not name.endswith("pos") else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional; the JSONL log is always written
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def train(cfg: TrainConfig, *, resume: str | Path | None = None, progress: bool = True, dry_run: bool = False) -> Path:
    """Train to `cfg.steps`; returns the run folder. `resume`: a run folder or a checkpoint folder.
    `dry_run`: build everything, take two steps in a temporary folder, keep nothing."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.accumulate < 1:
        raise ValueError(f"accumulate must be >= 1, got {cfg.accumulate}")
    d = distributed.setup(cfg.device)
    precision = resolve_precision(cfg.precision, d.device)  # bf16 or fp32; an unknown name stops here
    tmp_dir = Path(tempfile.mkdtemp(prefix="framecast-dry-run-")) if dry_run else None
    run_dir = tmp_dir or Path(cfg.out_dir)
    if dry_run:
        cfg.steps, cfg.ckpt_every, cfg.sample_every = 2, 10**9, 0
    _fill_vocabulary(cfg)
    torch.manual_seed(cfg.seed)
    component_configs(cfg)
    model = build_generator(ModelSpec(**asdict(cfg.model)))
    if cfg.init_from and resume is None:
        _inherit_latent_scale(cfg, model, init_weights(model, cfg.init_from, cfg.init_partial, tuple(cfg.init_components)))
    if resume is None:
        for name, folder in cfg.init_components.items():
            init_weights(getattr(model, name), folder)
    _calibrate_latents(model, cfg)
    model.to(d.device)
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    if cfg.activation_checkpointing:
        distributed.activation_checkpointing(model)
    if cfg.compile:
        distributed.compile_blocks(model)
    wrapped = distributed.wrap(model, cfg.parallel, d)
    if cfg.parallel == "fsdp" and d.enabled:
        distributed.shard(ema)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr, betas=cfg.optim.betas)

    start, rewarm_from = 0, None
    if resume is not None:
        resume = Path(resume)
        ckpt = resume if (resume / "state.json").is_file() else latest_checkpoint(resume)
        if ckpt is None:
            raise ValueError(f"nothing to resume in '{resume}': no complete checkpoint found")
        state = load_checkpoint(ckpt, model=model, ema=ema, optimizer=optimizer)
        start = state["step"]
        rewarm_from = state.get("rewarm_from")
        if state.get("packed"):  # carried here without AdamW's moments: the run goes on in its own out_dir
            rewarm_from = start
            if d.main and not (run_dir / "log.jsonl").is_file() and (ckpt / "log.jsonl").is_file():
                run_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy(ckpt / "log.jsonl", run_dir / "log.jsonl")
        elif not dry_run:  # a dry run writes nothing into the run it resumes
            run_dir = ckpt.parent.parent
        if dry_run:  # two steps past the checkpoint, not up to step 2
            cfg.steps = start + 2
    if d.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        truncate_log(run_dir / "log.jsonl", start)
        (run_dir / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    n_params = sum(p.numel() for p in model.parameters())

    autocast = precision_autocast(precision, d.device)
    pool = None
    codec = _pool_codec(model)
    if cfg.data.latent_pool and codec is not None:
        def encode(video):
            with autocast:
                return model.to_latent(video.to(d.device))
        fingerprint = json.dumps({"data": asdict(cfg.data), "seed": cfg.seed, "batch_size": cfg.batch_size,
                                  "codec": weights_digest(codec), "latent_scale": getattr(model.config, "latent_scale", None)},
                                 sort_keys=True)
        size = min(cfg.data.latent_pool, cfg.batch_size) if dry_run else cfg.data.latent_pool  # a dry run checks, it does not encode 20000 clips
        pool = LatentPool(cfg, encode, size, progress=progress and d.main, fingerprint=fingerprint,
                          cache=None if dry_run else run_dir / "latent_pool.safetensors", save_cache=d.main)
    batches = process_batches(cfg, start, d.rank, d.world, pool)
    log = open(run_dir / "log.jsonl", "a") if d.main else None
    tb = _tensorboard(run_dir) if d.main and not dry_run else None
    desc = f"train {cfg.recipe or 'run'} ({n_params / 1e6:.1f}M params, {precision}{f', {d.world} processes' if d.enabled else ''})"
    bar = tqdm(total=cfg.steps, initial=start, disable=not (progress and d.main), desc=desc, dynamic_ncols=True)
    model.train()
    t_last = time.perf_counter()
    try:
        for step in range(start, cfg.steps):
            micro = next(batches)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, cfg, rewarm_from)
            optimizer.zero_grad(set_to_none=True)
            loss_sum = 0.0
            for i, mb in enumerate(micro):
                batch = {k: v.to(d.device) if torch.is_tensor(v) else v for k, v in mb.batch.items()}
                sync = contextlib.nullcontext() if i == len(micro) - 1 or not hasattr(wrapped, "no_sync") else wrapped.no_sync()
                with sync:
                    with autocast:
                        loss = wrapped(batch, mb.generators)
                    if not torch.isfinite(loss):
                        raise RuntimeError(f"the loss became {loss.item()} at step {step}; lower optim.lr or use precision=fp32")
                    (loss * mb.weight).backward()
                loss_sum += loss.item() * mb.weight
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP
                grad_norm = grad_norm.full_tensor()
            optimizer.step()
            ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
            loss_mean = distributed.all_mean(loss_sum, d)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_mean:.4f}")
            done = step + 1
            if d.main and (done % cfg.log_every == 0 or done == cfg.steps):
                now = time.perf_counter()
                rate = cfg.log_every / (now - t_last) if done % cfg.log_every == 0 else float("nan")
                t_last = now
                record = {"step": done, "loss": round(loss_mean, 6), "lr": lr_at(step, cfg, rewarm_from), "grad_norm": round(float(grad_norm), 4),
                          "steps_per_s": round(rate, 4), "time": time.time()}
                log.write(json.dumps(record) + "\n")
                log.flush()
                if tb is not None:
                    for k in ("loss", "lr", "grad_norm", "steps_per_s"):
                        tb.add_scalar(f"train/{k}", record[k], done)
            if cfg.sample_every and done % cfg.sample_every == 0 and d.main and not (cfg.parallel == "fsdp" and d.enabled):
                write_samples(ema, run_dir / "samples" / f"step_{done:06d}.png", cfg, autocast)
            if done % cfg.ckpt_every == 0 or (done == cfg.steps and not dry_run):
                save_checkpoint(run_dir, done, model=model, ema=ema, optimizer=optimizer, train_config=cfg.to_dict(),
                                keep_last=cfg.keep_last, main=d.main, extra_state={"rewarm_from": rewarm_from} if rewarm_from is not None else None)
        if not dry_run:
            save_model(ema, run_dir / "model", extra={"trained_steps": cfg.steps, "recipe": cfg.recipe}, main=d.main)
    finally:
        bar.close()
        if log is not None:
            log.close()
        if tb is not None:
            tb.close()
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        distributed.teardown()
    return run_dir
