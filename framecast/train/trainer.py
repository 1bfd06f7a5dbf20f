"""The training loop of every generator and codec: one process or many (`torchrun`, DDP or FSDP2),
AdamW, warm-up + cosine, EMA, clipping, bf16 autocast, gradient accumulation, atomic checkpoints,
exact resume, a progress bar, JSONL and TensorBoard logs, periodic samples, and a dry run.

Every clip's randomness (noise level, noise, condition dropout) comes from a generator seeded by
(seed, step, index in the global batch), and the data of step k is a function of (seed, k). So a
resumed run repeats the uninterrupted one, and N processes with a global batch B take the steps
one process with batch B would.

    run_dir = train(load_config("shapes-diffusion-tiny"))       # or Trainer(cfg).train()
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from framecast.generators.base import ModelSpec
from framecast.generators.io import build_generator
from framecast.precision import autocast as precision_autocast
from framecast.precision import resolve_precision
from framecast.train import distributed
from framecast.train.checkpoint import find_checkpoint, load_checkpoint, run_of, save_checkpoint, save_model, truncate_log
from framecast.train.config import TrainConfig
from framecast.data.folder import summary
from framecast.train.data import LatentPool, folder_report, pool_size, process_batches
from framecast.train.finetune import describe
from framecast.train.init import (
    calibrate_latents,
    component_configs,
    fill_vocabulary,
    inherit_latent_scale,
    init_weights,
    pool_codec,
    weights_digest,
)
from framecast.train.loop import TrainLoop, ema_update, progress_bar

__all__ = ["Trainer", "component_configs", "ema_update", "init_weights", "lr_at", "train", "write_samples"]


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
def write_samples(model, path: Path, cfg: TrainConfig, autocast, n: int = 4, prompts: list[str] | None = None) -> None:
    """A contact sheet (rows = clips) of the EMA model on fixed captions and seeds, to watch
    training: `prompts` (a data folder's own captions), else Shapes captions; the prompts are
    written beside the sheets, one a line, in `prompts.txt`."""
    import numpy as np
    from PIL import Image

    from framecast.data.shapes import render_clip
    from framecast.generators.base import GenerationRequest
    from framecast.video import contact_sheet, to_uint8

    if not hasattr(model, "generate"):
        return
    prompts = prompts or [render_clip(i, split=cfg.data.split).caption for i in range(n)]
    n = len(prompts)
    gens = [torch.Generator().manual_seed(i) for i in range(n)]
    with autocast:
        clips = model.generate(GenerationRequest(prompts=prompts, num_frames=cfg.data.frames, generator=gens))
    frames = np.concatenate([to_uint8(c) for c in clips])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(contact_sheet(frames, columns=cfg.data.frames, scale=2)).save(path)
    (path.parent / "prompts.txt").write_text("".join(p + "\n" for p in prompts))


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


class Trainer(TrainLoop):
    """Train `cfg` to `cfg.steps`. `resume`: a run folder or a checkpoint folder. `dry_run`: build
    everything, take two steps in a temporary folder, keep nothing. `train()` returns the run folder."""

    def __init__(self, cfg: TrainConfig, *, resume: str | Path | None = None, progress: bool = True, dry_run: bool = False):
        self.cfg, self.progress, self.dry_run = cfg, progress, dry_run
        self.resume = Path(resume) if resume is not None else None
        self.log_file = self.tb = self.tmp_dir = None
        self.rewarm_from: int | None = None

    @property
    def steps(self) -> int:
        return self.cfg.steps

    # --- build ------------------------------------------------------------------------------
    def build(self) -> None:
        self._setup()
        self._scan_data()
        self._build_model()
        self._build_optimizer()
        if self.resume is not None:
            self._load_resume()
        self._write_run_config()
        self._build_data()
        self._open_logs()

    def _setup(self) -> None:
        cfg = self.cfg
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        if cfg.accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {cfg.accumulate}")
        self.dist = distributed.setup(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.dist.device)  # bf16 or fp32; an unknown name stops here
        self.autocast = precision_autocast(self.precision, self.dist.device)
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="framecast-dry-run-")) if self.dry_run else None
        self.run_dir = self.tmp_dir or Path(cfg.out_dir)
        self.planned = {"steps": cfg.steps, "ckpt_every": cfg.ckpt_every, "sample_every": cfg.sample_every}  # what a dry run shows
        if self.dry_run:
            cfg.steps, cfg.ckpt_every, cfg.sample_every = 2, 10**9, 0

    def _scan_data(self) -> None:
        """A data folder is scanned before anything is built: refused when no clip is usable,
        its skipped files named once, its captions the previews' prompts."""
        cfg = self.cfg
        self.report, self.preview_prompts = None, None
        if cfg.data.source != "folder":
            return
        if not cfg.data.path:
            raise ValueError("data.source=folder needs data.path=DIR, the folder of your videos")
        self.report = folder_report(cfg.data, progress=self.progress and self.dist.main)
        if self.dist.main:
            print("\n".join(summary(self.report)), flush=True)
        self.preview_prompts = list(dict.fromkeys(e.caption for e in self.report.entries))[:4]

    def _build_model(self) -> None:
        """The model from the config, its starting weights, and its EMA copy; compiled,
        checkpointed and wrapped (DDP / FSDP2) from outside."""
        cfg, d = self.cfg, self.dist
        if self.report is not None:
            fill_vocabulary(cfg, [e.caption for e in self.report.entries])
        torch.manual_seed(cfg.seed)
        component_configs(cfg)
        model = build_generator(ModelSpec(**asdict(cfg.model)), where="the training config's model")
        if cfg.init_from and self.resume is None:
            inherit_latent_scale(cfg, model, init_weights(model, cfg.init_from, cfg.init_partial, tuple(cfg.init_components)))
        if self.resume is None:
            for name, folder in cfg.init_components.items():
                init_weights(getattr(model, name), folder)
        calibrate_latents(model, cfg)
        model.to(d.device)
        self.ema = copy.deepcopy(model).requires_grad_(False).eval()
        if cfg.activation_checkpointing:
            distributed.activation_checkpointing(model)
        if cfg.compile:
            distributed.compile_blocks(model)
        self.model = model
        self.wrapped = distributed.wrap(model, cfg.parallel, d)
        if cfg.parallel == "fsdp" and d.enabled:
            distributed.shard(self.ema)

    def _build_optimizer(self) -> None:
        o = self.cfg.optim
        self.optimizer = torch.optim.AdamW(_param_groups(self.model, o.weight_decay), lr=o.lr, betas=o.betas)

    def _load_resume(self) -> None:
        """Model, EMA, optimizer and step from a checkpoint. A packed checkpoint (no AdamW moments)
        re-warms the learning rate and goes on in the config's own out_dir (`load_run_config`
        keeps a pack's only inside the current folder); a run's checkpoint goes on in that run's
        folder, whatever out_dir its config holds."""
        ckpt, _ = find_checkpoint(self.resume, "resume")
        state = load_checkpoint(ckpt, model=self.model, ema=self.ema, optimizer=self.optimizer)
        self.start = state["step"]
        self.rewarm_from = state.get("rewarm_from")
        if state.get("packed"):
            self.rewarm_from = self.start
            if self.dist.main and not (self.run_dir / "log.jsonl").is_file() and (ckpt / "log.jsonl").is_file():
                self.run_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy(ckpt / "log.jsonl", self.run_dir / "log.jsonl")
        elif not self.dry_run and run_of(ckpt) is not None:  # a dry run writes nothing into the run it resumes
            self.run_dir = run_of(ckpt)
        if self.dry_run:  # two steps past the checkpoint, not up to step 2
            self.cfg.steps = self.start + 2

    def _write_run_config(self) -> None:
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            truncate_log(self.run_dir / "log.jsonl", self.start)
            (self.run_dir / "train_config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2))

    def _build_data(self) -> None:
        """This process's micro-batches from step `start` on, drawn from a pool of encoded clips
        when the recipe asks for one."""
        cfg, d, model = self.cfg, self.dist, self.model
        pool = None
        codec = pool_codec(model)
        if cfg.data.latent_pool and codec is not None:
            def encode(video):
                with self.autocast:
                    return model.to_latent(video.to(d.device))
            fingerprint = json.dumps({"data": asdict(cfg.data), "seed": cfg.seed, "batch_size": cfg.batch_size,
                                      "codec": weights_digest(codec), "latent_scale": getattr(model.config, "latent_scale", None),
                                      "clips": [[str(e.path), e.frames] for e in self.report.entries] if self.report else None},
                                     sort_keys=True)
            full = pool_size(cfg)
            self._describe(full)
            # a dry run checks the pool, it does not encode 20000 clips
            size = min(full, cfg.batch_size) if self.dry_run else full
            pool = LatentPool(cfg, encode, size, progress=self.progress and d.main, fingerprint=fingerprint,
                              cache=None if self.dry_run else self.run_dir / "latent_pool.safetensors", save_cache=d.main)
        else:
            self._describe(0)
        self.batches = process_batches(cfg, self.start, d.rank, d.world, pool)

    def _describe(self, pool: int) -> None:
        """The plan of a run on a folder, printed before any clip is encoded or step taken."""
        if self.report is not None and self.dist.main:
            print("\n".join(describe(self.cfg, self.report, pool, **self.planned)), flush=True)

    def _open_logs(self) -> None:
        cfg, d = self.cfg, self.dist
        self.log_file = open(self.run_dir / "log.jsonl", "a") if d.main else None  # noqa: SIM115 (closed in close())
        self.tb = _tensorboard(self.run_dir) if d.main and not self.dry_run else None
        n_params = sum(p.numel() for p in self.model.parameters())
        processes = f", {d.world} processes" if d.enabled else ""
        desc = f"train {cfg.recipe or 'run'} ({n_params / 1e6:.1f}M params, {self.precision}{processes})"
        self.bar = progress_bar(cfg.steps, initial=self.start, desc=desc, enabled=self.progress and d.main)
        self.model.train()
        self.t_last = time.perf_counter()

    # --- one step ---------------------------------------------------------------------------
    def step(self, step: int) -> float:
        """One optimizer step over this step's micro-batches (gradient accumulation); returns the
        loss averaged over micro-batches and processes."""
        cfg, model, optimizer = self.cfg, self.model, self.optimizer
        micro = next(self.batches)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg, self.rewarm_from)
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for i, mb in enumerate(micro):
            loss_sum += self._backward(mb, step, last=i == len(micro) - 1) * mb.weight
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP
            grad_norm = grad_norm.full_tensor()
        self.grad_norm = grad_norm
        optimizer.step()
        ema_update(self.ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
        return distributed.all_mean(loss_sum, self.dist)

    def _backward(self, mb, step: int, *, last: bool) -> float:
        """Loss and gradients of one micro-batch; DDP reduces gradients on the last one only."""
        batch = {k: v.to(self.dist.device) if torch.is_tensor(v) else v for k, v in mb.batch.items()}
        sync = contextlib.nullcontext() if last or not hasattr(self.wrapped, "no_sync") else self.wrapped.no_sync()
        with sync:
            with self.autocast:
                loss = self.wrapped(batch, mb.generators)
            if not torch.isfinite(loss):
                raise RuntimeError(f"the loss became {loss.item()} at step {step}; lower optim.lr or use precision=fp32")
            (loss * mb.weight).backward()
        return loss.item()

    # --- log, checkpoint --------------------------------------------------------------------
    def log(self, done: int, loss: float) -> None:
        """The bar's loss every step; a JSONL (and TensorBoard) record every `log_every` steps and
        at the end; a contact sheet of the EMA model every `sample_every` steps."""
        cfg, d = self.cfg, self.dist
        self.bar.set_postfix(loss=f"{loss:.4f}")
        if d.main and (done % cfg.log_every == 0 or done == cfg.steps):
            now = time.perf_counter()
            rate = cfg.log_every / (now - self.t_last) if done % cfg.log_every == 0 else float("nan")
            self.t_last = now
            record = {"step": done, "loss": round(loss, 6), "lr": lr_at(done - 1, cfg, self.rewarm_from),
                      "grad_norm": round(float(self.grad_norm), 4), "steps_per_s": round(rate, 4), "time": time.time()}
            self.log_file.write(json.dumps(record) + "\n")
            self.log_file.flush()
            if self.tb is not None:
                for k in ("loss", "lr", "grad_norm", "steps_per_s"):
                    self.tb.add_scalar(f"train/{k}", record[k], done)
        if cfg.sample_every and done % cfg.sample_every == 0 and d.main and not (cfg.parallel == "fsdp" and d.enabled):
            write_samples(self.ema, self.run_dir / "samples" / f"step_{done:06d}.png", cfg, self.autocast, prompts=self.preview_prompts)

    def checkpoint(self, done: int) -> None:
        """Every `ckpt_every` steps and at the end of a real run."""
        cfg = self.cfg
        if done % cfg.ckpt_every == 0 or (done == cfg.steps and not self.dry_run):
            extra = {"rewarm_from": self.rewarm_from} if self.rewarm_from is not None else None
            save_checkpoint(self.run_dir, done, model=self.model, ema=self.ema, optimizer=self.optimizer, train_config=cfg.to_dict(),
                            keep_last=cfg.keep_last, main=self.dist.main, extra_state=extra)

    def finish(self) -> Path:
        """The EMA model as a model folder, `run_dir/model` (not for a dry run)."""
        if not self.dry_run:
            save_model(self.ema, self.run_dir / "model", extra={"trained_steps": self.cfg.steps, "recipe": self.cfg.recipe},
                       main=self.dist.main)
        return self.run_dir

    def close(self) -> None:
        super().close()
        if self.log_file is not None:
            self.log_file.close()
        if self.tb is not None:
            self.tb.close()
        if self.tmp_dir is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
        distributed.teardown()


def train(cfg: TrainConfig, *, resume: str | Path | None = None, progress: bool = True, dry_run: bool = False) -> Path:
    """Train to `cfg.steps`; returns the run folder. `resume`: a run folder or a checkpoint folder.
    `dry_run`: build everything, take two steps in a temporary folder, keep nothing."""
    return Trainer(cfg, resume=resume, progress=progress, dry_run=dry_run).train()
