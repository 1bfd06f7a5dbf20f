"""Model folders: `config.json` + `model.safetensors` (the Hugging Face hub layout). Never pickle."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from framecast.codecs.tokenizer import VideoTokenizer
from framecast.codecs.vae import CausalVAE
from framecast.generators.autoregressive import TokenTransformer
from framecast.generators.base import ModelSpec
from framecast.generators.diffusion import VideoDiffusion
from framecast.generators.hybrid import CausalVideoDiffusion

FORMAT_VERSION = 1
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
FAMILIES = {"diffusion": VideoDiffusion, "hybrid": CausalVideoDiffusion, "autoregressive": TokenTransformer, "vae": CausalVAE, "tokenizer": VideoTokenizer}


def build_generator(spec: ModelSpec) -> torch.nn.Module:
    if spec.family not in FAMILIES:
        raise ValueError(f"unknown model family '{spec.family}'; this framecast knows: {', '.join(FAMILIES)}")
    return FAMILIES[spec.family].from_spec(spec)


def write_atomic(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: never a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; a model folder is for everyone
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_pretrained(model: torch.nn.Module, directory: str | Path, *, extra: dict | None = None, dtype: torch.dtype | None = None,
                    state: dict[str, torch.Tensor] | None = None) -> Path:
    """`state`: the full state dict when the module itself holds only a shard (FSDP)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spec = model.spec()
    config = {"framecast_format": FORMAT_VERSION, **(asdict(spec) if is_dataclass(spec) else spec), **(extra or {})}
    state = model.state_dict() if state is None else state
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous() for k, v in state.items()}
    write_atomic(directory / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": "pt", "framecast_format": str(FORMAT_VERSION)}))
    write_atomic(directory / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(config, indent=2) + "\n"))
    return directory


def read_config(directory: str | Path) -> dict:
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"model folder '{directory}' does not exist; give a bundled model name (see `framecast models`) or a folder with config.json and model.safetensors")
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"'{directory}' is not a framecast model folder: it has no {CONFIG_NAME}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"'{path}' is not valid JSON ({e.msg if hasattr(e, 'msg') else e}); the model folder is damaged") from None
    if not isinstance(config, dict) or "framecast_format" not in config:
        raise ValueError(f"'{directory}' holds a model of another library (its {CONFIG_NAME} has no 'framecast_format'); framecast cannot load it")
    if int(config["framecast_format"]) > FORMAT_VERSION:
        raise ValueError(
            f"'{directory}' was saved in framecast format {config['framecast_format']}, newer than this framecast reads ({FORMAT_VERSION}); upgrade framecast"
        )
    return config


def from_pretrained(directory: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    directory = Path(directory)
    config = read_config(directory)
    fields = {k: config[k] for k in ("family", "generator", "backbone", "text_kind", "text") if k in config}
    try:
        model = build_generator(ModelSpec(**fields))
    except TypeError as e:
        raise ValueError(f"the config of '{directory}' does not describe a framecast model ({e})") from None
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise ValueError(f"model folder '{directory}' has no {WEIGHTS_NAME}")
    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as e:
        raise ValueError(f"'{weights}' is not a readable safetensors file ({e}); re-download or re-train the model") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"the weights in '{weights}' belong to another model: {len(missing)} tensors missing (e.g. {missing[:1]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:1]})"
        )
    bad = [k for k in own if own[k].shape != state[k].shape]
    if bad:
        raise ValueError(f"the weights in '{weights}' do not fit the config: '{bad[0]}' is {tuple(state[bad[0]].shape)}, expected {tuple(own[bad[0]].shape)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model.to(device).eval()
