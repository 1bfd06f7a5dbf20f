"""Training configs: typed, keyword-only dataclasses; YAML files and `--set key=value` only override."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

import yaml

from framecast.generators.base import ModelSpec


@dataclass(kw_only=True)
class DataConfig:
    source: str = "shapes"  # shapes (the built-in world) or folder (your videos, see data/folder.py)
    split: str = "train"  # shapes
    path: str = ""  # folder
    stride: int = 1  # folder: take every stride-th frame
    fps: float = 0.0  # folder: sample at this frame rate instead (0 = use stride)
    workers: int = 0  # folder: DataLoader worker processes
    size: int = 32
    frames: int = 16
    latent_pool: int = 0  # models in a codec's latents: encode this many clips once and draw from them (0 = encode every batch)


@dataclass(kw_only=True)
class OptimConfig:
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.01
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0


@dataclass(kw_only=True)
class TrainConfig:
    recipe: str = ""
    model: ModelSpec = field(default_factory=lambda: ModelSpec(family="diffusion"))  # the model folder's config.json
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 1000
    batch_size: int = 16
    ema_decay: float = 0.999
    precision: str = "auto"  # bf16 autocast, fp32, or auto: bf16 where the hardware has it (framecast.precision)
    seed: int = 0
    threads: int = 0  # torch threads; 0 = leave PyTorch's default
    out_dir: str = "runs/run"
    log_every: int = 10
    ckpt_every: int = 250
    keep_last: int = 2
    sample_every: int = 0  # write a sample clip every N steps (0 = never)
    init_from: str = ""  # a model folder whose weights start the run (e.g. a causal student from a bidirectional teacher)
    init_components: dict = field(default_factory=dict)  # submodule -> model folder, e.g. {"tokenizer": "shapes-tokenizer"}
    init_partial: bool = False  # init_from: take the tensors whose names and shapes fit, start the rest fresh
    accumulate: int = 1  # micro-batches per optimizer step (gradient accumulation)
    parallel: str = "ddp"  # under torchrun: ddp or fsdp (FSDP2); ignored in a single process
    device: str = "auto"  # auto (CUDA when present), cpu or cuda
    activation_checkpointing: bool = False
    compile: bool = False  # torch.compile every transformer block

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(value, tp):
    """Turn a string or YAML value into the field's declared type."""
    origin = typing.get_origin(tp)
    if tp is bool or tp == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"'{value}' is not a boolean")
    if tp in (int, float, str):
        return tp(value)
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else yaml.safe_load(str(value))
        return tuple(_coerce(v, a) for v, a in zip(items, typing.get_args(tp)))
    if isinstance(value, str):
        return yaml.safe_load(value)
    return value


def apply_override(cfg, key: str, value) -> None:
    """Set a dotted key (`optim.lr`, `model.backbone.depth`) on nested dataclasses and dicts."""
    parts = key.split(".")
    obj = cfg
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if dataclasses.is_dataclass(obj):
            hints = typing.get_type_hints(type(obj))
            if part not in hints:
                known = ", ".join(f.name for f in dataclasses.fields(obj))
                raise ValueError(f"unknown config key '{key}': '{part}' is not one of {known}")
            if last:
                setattr(obj, part, _coerce(value, hints[part]))
            else:
                obj = getattr(obj, part)
        elif isinstance(obj, dict):
            if last:
                old = obj.get(part)
                obj[part] = _coerce(value, type(old)) if old is not None and not isinstance(old, (list, dict)) else _coerce(value, None)
            else:
                if obj.get(part) is None:  # an optional sub-config, e.g. a codec's, given key by key
                    obj[part] = {}
                obj = obj[part]
        else:
            raise ValueError(f"unknown config key '{key}'")


def apply_overrides(cfg, overrides: list[str]):
    """`key=value` strings, in order (`--set`)."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override '{item}' must look like key=value, e.g. optim.lr=1e-4")
        k, v = item.split("=", 1)
        apply_override(cfg, k.strip(), v.strip())
    return cfg


def flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested dicts as (dotted key, value) pairs, the form `apply_override` takes."""
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out
