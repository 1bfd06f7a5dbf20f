"""Training checkpoints: a folder per step, written to a temporary name and renamed when whole.

    checkpoints/step_000200/
        config.json, model.safetensors   the EMA model (a model folder: loadable by framecast.load)
        raw.safetensors                  the trained weights
        optimizer.safetensors            AdamW moments, flattened ("<param index>.<key>")
        state.json                       step, the train config, optimizer hyper-parameters

A folder only gets its final name after every file in it is written, so a killed run never
leaves a checkpoint that looks whole; `latest_checkpoint` only considers final names.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from framecast.generators.io import save_pretrained

STEP_DIR = re.compile(r"^step_(\d{6,})$")


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            tensors[f"{idx}.{key}"] = val.detach().clone().contiguous() if torch.is_tensor(val) else torch.tensor(val)
    return tensors, sd["param_groups"]


def save_checkpoint(run_dir: Path, step: int, *, model, ema, optimizer, train_config: dict, keep_last: int) -> Path:
    ckpt_root = Path(run_dir) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:06d}"
    tmp = ckpt_root / f".tmp_step_{step:06d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_pretrained(ema, tmp, extra={"trained_steps": step, "recipe": train_config.get("recipe", "")})
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "raw.safetensors"))
    tensors, groups = _optimizer_tensors(optimizer)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "train_config": train_config, "param_groups": groups}, indent=2))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in sorted(p for p in ckpt_root.iterdir() if STEP_DIR.match(p.name))[:-keep_last]:
        shutil.rmtree(old)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    done = sorted(p for p in root.iterdir() if STEP_DIR.match(p.name) and (p / "state.json").is_file())
    return done[-1] if done else None


def load_checkpoint(path: Path, *, model, ema, optimizer) -> dict:
    path = Path(path)
    for name in ("raw.safetensors", "model.safetensors", "optimizer.safetensors", "state.json"):
        if not (path / name).is_file():
            raise ValueError(f"checkpoint '{path}' is incomplete: it has no {name}")
    state = json.loads((path / "state.json").read_text())
    raw = load_file(str(path / "raw.safetensors"))
    own = model.state_dict()
    if set(raw) != set(own) or any(raw[k].shape != own[k].shape for k in own):
        raise ValueError(f"checkpoint '{path}' belongs to another model than the one this config builds")
    model.load_state_dict(raw)
    ema.load_state_dict(load_file(str(path / "model.safetensors")))
    tensors = load_file(str(path / "optimizer.safetensors"))
    opt_state: dict[int, dict] = {}
    for key, val in tensors.items():
        idx, name = key.split(".", 1)
        opt_state.setdefault(int(idx), {})[name] = val
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    return state
