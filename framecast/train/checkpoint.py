"""Training checkpoints: a folder per step, written to a temporary name and renamed when whole.

    checkpoints/step_000200/
        config.json, model.safetensors   the EMA model (a model folder: loadable by framecast.load)
        raw.safetensors                  the trained weights
        optimizer.safetensors            AdamW state, "<parameter name>::<key>"
        state.json                       step, the train config, optimizer hyper-parameters

A folder only gets its final name after every file in it is written, so a killed run never
leaves a checkpoint that looks whole; `latest_checkpoint` only considers final names. State dicts
go through torch.distributed.checkpoint's helpers, so one format serves a single process, DDP
and FSDP2 (full tensors gathered on rank 0, loaded back on every rank).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions, get_model_state_dict, get_optimizer_state_dict, set_model_state_dict, set_optimizer_state_dict,
)

from framecast.generators.io import save_pretrained

STEP_DIR = re.compile(r"^step_(\d{6,})$")
FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _full_model_state(model) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in get_model_state_dict(model, options=FULL).items()}


def save_model(ema, directory: Path, *, extra: dict, main: bool = True) -> None:
    state = _full_model_state(ema)
    if main:
        save_pretrained(ema, directory, extra=extra, state=state)
    _barrier()


def save_checkpoint(run_dir: Path, step: int, *, model, ema, optimizer, train_config: dict, keep_last: int, main: bool = True) -> Path:
    ckpt_root = Path(run_dir) / "checkpoints"
    final = ckpt_root / f"step_{step:06d}"
    raw, ema_state = _full_model_state(model), _full_model_state(ema)
    osd = get_optimizer_state_dict(model, optimizer, options=FULL)
    if main:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        tmp = ckpt_root / f".tmp_step_{step:06d}"
        if tmp.exists():
            shutil.rmtree(tmp)
        save_pretrained(ema, tmp, extra={"trained_steps": step, "recipe": train_config.get("recipe", "")}, state=ema_state)
        save_file(raw, str(tmp / "raw.safetensors"))
        tensors = {f"{name}::{key}": (val if torch.is_tensor(val) else torch.tensor(val)).contiguous()
                   for name, st in osd["state"].items() for key, val in st.items()}
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "state.json").write_text(json.dumps({"step": step, "train_config": train_config, "param_groups": osd["param_groups"]}, indent=2))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in sorted(p for p in ckpt_root.iterdir() if STEP_DIR.match(p.name))[:-keep_last]:
            shutil.rmtree(old)
    _barrier()
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    done = sorted(p for p in root.iterdir() if STEP_DIR.match(p.name) and (p / "state.json").is_file())
    return done[-1] if done else None


def _optimizer_state(tensors: dict[str, torch.Tensor], state: dict) -> dict:
    opt_state: dict = {}
    for key, val in tensors.items():
        if "::" in key:
            name, field = key.split("::", 1)
        else:  # checkpoints written before parameter names were used: "<index>.<key>"
            idx, field = key.split(".", 1)
            name = int(idx)
        opt_state.setdefault(name, {})[field] = val
    return {"state": opt_state, "param_groups": state["param_groups"]}


def load_checkpoint(path: Path, *, model, ema, optimizer) -> dict:
    path = Path(path)
    for name in ("raw.safetensors", "model.safetensors", "optimizer.safetensors", "state.json"):
        if not (path / name).is_file():
            raise ValueError(f"checkpoint '{path}' is incomplete: it has no {name}")
    state = json.loads((path / "state.json").read_text())
    raw = load_file(str(path / "raw.safetensors"))
    own = get_model_state_dict(model, options=FULL)
    if set(raw) != set(own) or any(raw[k].shape != own[k].shape for k in own):
        raise ValueError(f"checkpoint '{path}' belongs to another model than the one this config builds")
    set_model_state_dict(model, raw, options=StateDictOptions(full_state_dict=True))
    set_model_state_dict(ema, load_file(str(path / "model.safetensors")), options=StateDictOptions(full_state_dict=True))
    osd = _optimizer_state(load_file(str(path / "optimizer.safetensors")), state)
    if osd["state"] and isinstance(next(iter(osd["state"])), int):
        optimizer.load_state_dict(osd)  # the older index-keyed format, single process
    else:
        set_optimizer_state_dict(model, optimizer, osd, options=StateDictOptions(full_state_dict=True))
    return state
