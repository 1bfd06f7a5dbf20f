"""Training checkpoints: a folder per step, written to a temporary name and renamed when whole.

    checkpoints/step_000200/
        config.json, model.safetensors   the EMA model (a model folder: loadable by framecast.load)
        raw.safetensors                  the trained weights
        optimizer.safetensors            AdamW state, "<parameter name>::<key>"
        state.json                       step, the train config, optimizer hyper-parameters

A folder only gets its final name after every file in it is written and synced, so a killed run
never leaves a checkpoint that looks whole; `latest_checkpoint` only considers final names. A
checkpoint damaged afterwards (a truncated file, NaN weights) is refused with one sentence that
names the file and, when the run has one, its last whole checkpoint to give instead: framecast
does not fall back to it on its own, because resuming there rewrites the run's later log. State dicts
go through torch.distributed.checkpoint's helpers, so one format serves a single process, DDP
and FSDP2 (full tensors gathered on rank 0, loaded back on every rank).

A packed checkpoint (`pack_checkpoint`, `framecast pack`) is what moves a run to a machine that
has nothing of it, through a git commit: the EMA and trained weights in bf16 and no optimizer
state, a quarter of the size (38 MB instead of 150 for a 9.7M-parameter model), with the run's
config and log beside them. Resuming from it rebuilds AdamW's moments from zero and warms the
learning rate up again over `optim.warmup_steps` (`lr_at`'s `rewarm_from`, kept in the run's
later checkpoints so that resuming one of them is exact again); everything else continues as from
a full checkpoint. A pack never deletes its source: a destination that is the run, holds it or
lies inside it is refused, an existing destination is replaced only if it is itself a pack, and
it is written beside its destination, under a lock, and renamed into place.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from framecast.generators.io import read_json, save_pretrained
from framecast.generators.weights import read_tensors, tensor_shapes
from framecast.train.folders import destination_lock, refuse_overlap, replace_folder, sync_folder, temporary_sibling

STEP_DIR = re.compile(r"^step_(\d{6,})$")
FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
TENSOR_FILES = ("model.safetensors", "raw.safetensors")  # every checkpoint; a full one adds optimizer.safetensors


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


def save_checkpoint(run_dir: Path, step: int, *, model, ema, optimizer, train_config: dict, keep_last: int, main: bool = True,
                    extra_state: dict | None = None) -> Path:
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
        (tmp / "state.json").write_text(json.dumps({"step": step, "train_config": train_config, "param_groups": osd["param_groups"], **(extra_state or {})},
                                                   indent=2))
        sync_folder(tmp)
        replace_folder(tmp, final)
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


def read_state(ckpt: Path) -> dict:
    """A checkpoint's state.json: its step and train config (and optimizer groups when full)."""
    path = Path(ckpt) / "state.json"
    if not path.is_file():
        raise ValueError(f"checkpoint '{ckpt}' is incomplete: it has no state.json")
    state = read_json(path, "the checkpoint is damaged")
    step = state.get("step") if isinstance(state, dict) else None
    if not isinstance(step, int) or isinstance(step, bool) or step < 0 or not isinstance(state.get("train_config"), dict):
        raise ValueError(f"'{path}' is not a checkpoint's state (it needs a step >= 0 and a train_config); the checkpoint is damaged")
    if not state.get("packed") and not isinstance(state.get("param_groups"), list):
        raise ValueError(f"'{path}' has no optimizer param_groups; the checkpoint is damaged")
    return state


def check_whole(ckpt: Path) -> dict:
    """A checkpoint's state, after every file it needs was found whole (readable headers whose
    tensors cover each file exactly): what resume and pack take. Returns the state."""
    state = read_state(ckpt)
    names = TENSOR_FILES + ("config.json",) + (() if state.get("packed") else ("optimizer.safetensors",))
    for name in names:
        if not (ckpt / name).is_file():
            raise ValueError(f"checkpoint '{ckpt}' is incomplete: it has no {name}")
        if name.endswith(".safetensors"):
            tensor_shapes(ckpt / name)
    return state


def _earlier_whole(ckpt: Path) -> Path | None:
    """The newest checkpoint of the same run before `ckpt` that is whole, if any."""
    root = ckpt.parent
    if root.name != "checkpoints":
        return None
    for p in sorted((p for p in root.iterdir() if STEP_DIR.match(p.name) and p.name < ckpt.name), reverse=True):
        try:
            check_whole(p)
            return p
        except ValueError:
            continue
    return None


def find_checkpoint(source: Path, verb: str) -> tuple[Path, dict]:
    """The checkpoint `source` names (itself, or a run folder's latest) and its state, checked
    whole; a damaged one is refused naming the file, and the run's last whole checkpoint if any."""
    source = Path(source)
    ckpt = source if (source / "state.json").is_file() else latest_checkpoint(source)
    if ckpt is None:
        raise ValueError(f"nothing to {verb} in '{source}': give a run folder with a complete checkpoint, or a checkpoint folder")
    try:
        return ckpt, check_whole(ckpt)
    except ValueError as e:
        earlier = _earlier_whole(ckpt)
        hint = (f"; the run's last whole checkpoint is '{earlier}': give that folder to {verb} from it (and delete '{ckpt}')"
                if earlier else "")
        raise ValueError(f"{str(e).rstrip('.')}{hint}") from None


def truncate_log(path: Path, step: int) -> None:
    """Drop what a run's JSONL log holds after `step`: a resumed run forgets what was logged after
    its checkpoint, so the log reads as one run; a packed checkpoint holds the log up to its step.
    A line that is not a whole record (a run killed while writing it) is dropped too."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept))


def run_of(ckpt: Path) -> Path | None:
    """The run folder a checkpoint belongs to (RUN/checkpoints/step_N), or None for one that
    stands alone (a pack)."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" and STEP_DIR.match(ckpt.name) else None


def _check_pack_destination(source: Path, ckpt: Path, dest: Path) -> None:
    """What `pack_checkpoint` may replace: nothing of its source, and no folder that is not a pack."""
    sources = {"source": source, "checkpoint": ckpt}
    if run_of(ckpt) is not None:
        sources["run"] = run_of(ckpt)
    refuse_overlap(dest, sources, "pack")
    if dest.is_file() or dest.is_symlink():
        raise ValueError(f"cannot pack into '{dest}': it is a file; give a folder name")
    if dest.is_dir() and any(dest.iterdir()):
        state = dest / "state.json"
        try:
            packed = state.is_file() and json.loads(state.read_text()).get("packed") is True
        except (ValueError, AttributeError):
            packed = False
        if not packed:
            raise ValueError(f"cannot pack into '{dest}': it exists and is not a packed checkpoint, and a pack replaces only "
                             "an earlier pack; give a new folder")


def _write_pack(ckpt: Path, state: dict, tmp: Path) -> None:
    for name in TENSOR_FILES:
        tensors = read_tensors(ckpt / name, fix="pack an earlier checkpoint")
        save_file({k: (v.to(torch.bfloat16) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()},
                  str(tmp / name), metadata={"format": "pt"})
    shutil.copy(ckpt / "config.json", tmp / "config.json")
    (tmp / "state.json").write_text(json.dumps({"step": state["step"], "train_config": state["train_config"], "packed": True}, indent=2))
    (tmp / "train_config.json").write_text(json.dumps(state["train_config"], indent=2))
    log = run_of(ckpt) / "log.jsonl" if run_of(ckpt) is not None else None
    if log is not None and log.is_file():
        shutil.copy(log, tmp / "log.jsonl")
        truncate_log(tmp / "log.jsonl", state["step"])
    sync_folder(tmp)


def pack_checkpoint(source: Path, dest: Path) -> Path:
    """Write `source` (a checkpoint folder, or a run folder: its latest checkpoint) to `dest` as a
    packed checkpoint. `dest` is written beside itself under a lock and renamed into place; it
    may replace an earlier pack, never the source or a folder that is not a pack."""
    source, dest = Path(source), Path(dest)
    ckpt, state = find_checkpoint(source, "pack")
    if state.get("packed"):
        raise ValueError(f"'{ckpt}' is already packed")
    _check_pack_destination(source, ckpt, dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot pack into '{dest}': its folder cannot be made ({e.strerror or e})") from None
    with destination_lock(dest, "framecast pack"):
        _check_pack_destination(source, ckpt, dest)  # again, now that no other pack can change it
        tmp = temporary_sibling(dest)
        try:
            _write_pack(ckpt, state, tmp)
            replace_folder(tmp, dest)
        except OSError as e:
            raise ValueError(f"cannot write the pack '{dest}': {e.strerror or e}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def pack_out_dir(pack: Path, out_dir: str) -> str:
    """The out_dir a run resumed from the packed checkpoint `pack` (or any checkpoint folder
    outside a run) goes on in. A pack is data from elsewhere, so the out_dir its train_config.json names is kept only if it stays inside
    the current folder; one that leads outside it (absolute, or through '..') is ignored, with a
    warning, for `runs/<pack name>` (`--out` names another)."""
    here = Path.cwd().absolute()
    target = Path(os.path.abspath(out_dir))
    if target == here or here in target.parents:
        return out_dir
    name = Path(pack).absolute().name or "run"
    safe = str(Path("runs") / name)
    warnings.warn(f"the packed checkpoint '{pack}' names out_dir '{out_dir}', outside the current folder; framecast does not "
                  f"write where a pack alone says, so the run goes on in '{safe}' (give --out to choose)", stacklevel=2)
    return safe


def _optimizer_state(tensors: dict[str, torch.Tensor], state: dict, path: Path) -> dict:
    opt_state: dict = {}
    try:
        for key, val in tensors.items():
            if "::" in key:
                name, field = key.split("::", 1)
            else:  # checkpoints written before parameter names were used: "<index>.<key>"
                idx, field = key.split(".", 1)
                name = int(idx)
            opt_state.setdefault(name, {})[field] = val
    except ValueError:
        raise ValueError(f"'{path}' holds a tensor named {key!r}, not an optimizer state; the checkpoint is damaged") from None
    return {"state": opt_state, "param_groups": state["param_groups"]}


def load_checkpoint(path: Path, *, model, ema, optimizer) -> dict:
    """Load a checkpoint into model, EMA and optimizer; returns its state (step, train config).
    A packed one leaves the optimizer fresh (state["packed"] is true). Each file's header is
    checked against the model before a tensor is read, and every tensor must be finite."""
    path = Path(path)
    state = check_whole(path)
    own = get_model_state_dict(model, options=FULL)
    expected = {k: tuple(v.shape) for k, v in own.items()}
    fix = "resume from an earlier checkpoint"
    try:
        raw = read_tensors(path / "raw.safetensors", expected, fix=fix)
        ema_state = read_tensors(path / "model.safetensors", expected, fix=fix)
    except ValueError as e:
        if "belong to another model" in str(e) or "do not fit" in str(e):
            raise ValueError(f"checkpoint '{path}' belongs to another model than the one this config builds ({e})") from None
        raise

    def fit(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # a packed checkpoint's bf16 back to the model's dtypes
        return {k: v.to(own[k].dtype) for k, v in tensors.items()}

    set_model_state_dict(model, fit(raw), options=StateDictOptions(full_state_dict=True))
    set_model_state_dict(ema, fit(ema_state), options=StateDictOptions(full_state_dict=True))
    if state.get("packed"):
        return state
    opt_path = path / "optimizer.safetensors"
    osd = _optimizer_state(read_tensors(opt_path, fix=fix), state, opt_path)
    try:
        if osd["state"] and isinstance(next(iter(osd["state"])), int):
            optimizer.load_state_dict(osd)  # the older index-keyed format, single process
        else:
            set_optimizer_state_dict(model, optimizer, osd, options=StateDictOptions(full_state_dict=True))
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise ValueError(f"the optimizer state in '{opt_path}' does not fit this model ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return state
