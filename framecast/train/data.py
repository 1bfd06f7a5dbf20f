"""Training batches: the global batch of step k is a pure function of (seed, k); a process of a
`world` takes its share (rows r::world), split into micro-batches for gradient accumulation. Each
clip carries its own random generator, seeded by (seed, step, global index)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from framecast.data.shapes import shapes_batches
from framecast.train.config import DataConfig, TrainConfig


@dataclass
class MicroBatch:
    batch: dict  # {"video": (b, T, C, H, W), "latent": (b, T, C, h, w) or "codes": (b, T, h, w), "caption": [...]}
    generators: list[torch.Generator]  # one per clip
    weight: float  # share of this process's clips, to weight the micro-batch loss


def clip_generator(seed: int, step: int, index: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, step, index]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


_REPORTS: dict[tuple, object] = {}


def folder_report(d: DataConfig, progress: bool = False):
    """The scan of a data folder (framecast.data.folder.scan), made once per process while the
    folder's files stay as they are; refused when no clip in it is usable."""
    from framecast.data.folder import require_usable, scan

    root = Path(d.path)
    listing = tuple(sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))) if root.is_dir() else ()
    key = (str(root), d.frames, d.stride, d.fps, hash(listing))
    if key not in _REPORTS:
        _REPORTS[key] = scan(root, frames=d.frames, stride=d.stride, fps=d.fps, progress=progress)
    require_usable(_REPORTS[key])
    return _REPORTS[key]


def _folder_loader(cfg: TrainConfig, start_step: int, rank: int, world: int):
    from framecast.data.folder import StepBatchSampler, VideoFolderDataset, collate_clips

    d = cfg.data
    ds = VideoFolderDataset(d.path, size=d.size, frames=d.frames, stride=d.stride, fps=d.fps, seed=cfg.seed, report=folder_report(d))
    sampler = StepBatchSampler(len(ds), cfg.batch_size, seed=cfg.seed, start_step=start_step, rank=rank, world=world)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_clips, num_workers=d.workers)
    for step, batch in enumerate(loader, start=start_step):
        if not batch["caption"]:
            raise ValueError(f"no clip of step {step}'s batch could be read: files in '{d.path}' changed after the scan "
                             f"({', '.join(sorted(ds.skipped)[:3])})")
        batch["step"] = step
        yield batch


def folder_windows(cfg: TrainConfig, size: int) -> Iterator[dict]:
    """Batches {"video", "caption"} of the data folder's training windows, each at most once
    (framecast.data.folder.windows): what a latent pool of a folder encodes."""
    from framecast.data.folder import read_windows, windows

    d = cfg.data
    entries = folder_report(d).entries
    clips = read_windows(entries, windows(entries, d.frames, cap=size, seed=cfg.seed), size=d.size, frames=d.frames)
    while True:
        chunk = [c for _, c in zip(range(cfg.batch_size), clips)]
        if not chunk:
            return
        yield {"video": torch.stack([v for v, _ in chunk]), "caption": [c for _, c in chunk]}


def pool_size(cfg: TrainConfig) -> int:
    """Clips a latent pool holds: `data.latent_pool`, and for a folder no more than the windows it has."""
    if cfg.data.source != "folder" or not cfg.data.latent_pool:
        return cfg.data.latent_pool
    from framecast.data.folder import windows

    return len(windows(folder_report(cfg.data).entries, cfg.data.frames, cap=cfg.data.latent_pool, seed=cfg.seed))


class LatentPool:
    """Training clips encoded once by a model's frozen codec, then drawn at random: the codec's
    encoder would otherwise cost about as much as the transformer at every step. The pool is the
    first `size` clips of the run's data (of a folder: its windows, each once, `folder_windows`)
    and step k's draw is a pure function of (seed, k). With a
    `cache` file (the run folder's), a resumed run reloads the pool instead of encoding it again,
    when its `fingerprint` (data, codec weights, scale) still matches."""

    def __init__(self, cfg: TrainConfig, encode: Callable[[torch.Tensor], torch.Tensor], size: int, progress: bool = True,
                 cache: Path | None = None, fingerprint: str = "", save_cache: bool = True):
        if cache is not None and self._load(cache, fingerprint, size):
            return
        if cfg.data.source == "folder":
            source = folder_windows(cfg, size)
        else:
            source = (mb.batch for (mb,) in process_batches(replace(cfg, accumulate=1), 0))
        latents, self.captions = [], []
        with tqdm(total=size, desc="encoding the latent pool", unit="clip", disable=not progress, dynamic_ncols=True) as bar:
            for batch in source:
                z = encode(batch["video"])
                latents.append((z.to(torch.bfloat16) if z.is_floating_point() else z.to(torch.int32)).cpu())  # bf16 halves the memory
                self.captions += batch["caption"]
                bar.update(len(batch["caption"]))
                if len(self.captions) >= size:
                    break
        self.latents = torch.cat(latents)[:size]
        self.captions = self.captions[:size]
        if cache is not None and save_cache:
            from framecast.generators.io import write_atomic

            meta = {"fingerprint": fingerprint, "captions": json.dumps(self.captions)}
            write_atomic(cache, lambda p: save_file({"latents": self.latents.contiguous()}, p, metadata=meta))

    def _load(self, cache: Path, fingerprint: str, size: int) -> bool:
        if not cache.is_file():
            return False
        try:
            with safe_open(str(cache), "pt") as f:
                meta = f.metadata() or {}
                if meta.get("fingerprint") != fingerprint:
                    return False
                self.latents, self.captions = f.get_tensor("latents"), json.loads(meta["captions"])
        except (SafetensorError, OSError, ValueError, KeyError) as e:  # a cache: damaged, it is encoded again
            warnings.warn(f"the latent pool cache '{cache}' does not read ({e}); encoding the pool again", stacklevel=2)
            return False
        return len(self.captions) == size

    def __len__(self) -> int:
        return len(self.captions)

    def batches(self, cfg: TrainConfig, start_step: int, rank: int, world: int) -> Iterator[dict]:
        step = start_step
        while True:
            rows = np.random.default_rng([cfg.seed, step, 11]).integers(0, len(self), size=cfg.batch_size)
            idx = list(range(rank, cfg.batch_size, world))
            z = self.latents[rows[idx]]
            yield {**({"latent": z.float()} if z.is_floating_point() else {"codes": z.long()}), "caption": [self.captions[rows[i]] for i in idx], "index": idx, "step": step}
            step += 1


def process_batches(cfg: TrainConfig, start_step: int, rank: int = 0, world: int = 1, pool: LatentPool | None = None) -> Iterator[list[MicroBatch]]:
    """Per step, this process's micro-batches: {"video" (pixels), "latent" or "codes" (from a pool), "caption"}."""
    d = cfg.data
    if cfg.batch_size % (world * cfg.accumulate):
        raise ValueError(f"batch_size {cfg.batch_size} must divide by processes x accumulate = {world * cfg.accumulate}")
    if pool is not None:
        source = pool.batches(cfg, start_step, rank, world)
    elif d.source == "shapes":
        source = shapes_batches(batch_size=cfg.batch_size, split=d.split, size=d.size, frames=d.frames, seed=cfg.seed, start_step=start_step)

        def local(batch):
            idx = list(range(rank, cfg.batch_size, world))
            return {"video": batch["video"][idx], "caption": [batch["caption"][i] for i in idx], "index": idx, "step": batch["step"]}

        source = (local(b) for b in source)
    elif d.source == "folder":
        if not d.path:
            raise ValueError("data.source=folder needs data.path=DIR")
        source = _folder_loader(cfg, start_step, rank, world)
    else:
        raise ValueError(f"unknown data source '{d.source}'; framecast trains on: shapes, folder")
    for batch in source:
        n = len(batch["caption"])
        step = batch["step"]
        parts = np.array_split(np.arange(n), cfg.accumulate) if n else []
        micro = []
        for part in parts:
            if len(part) == 0:
                continue
            part = part.tolist()
            micro.append(
                MicroBatch(
                    batch={**{k: batch[k][part] for k in ("video", "latent", "codes") if k in batch}, "caption": [batch["caption"][i] for i in part]},
                    generators=[clip_generator(cfg.seed, step, batch["index"][i]) for i in part],
                    weight=len(part) / n,
                )
            )
        yield micro
