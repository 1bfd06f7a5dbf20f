"""Model folders: `config.json` + `model.safetensors` (the Hugging Face hub layout). Never pickle:
weights are read by framecast.generators.weights, configs checked by framecast.generators.spec_check."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from framecast.codecs.tokenizer import VideoTokenizer
from framecast.codecs.vae import CausalVAE
from framecast.generators.autoregressive import TokenTransformer
from framecast.generators.base import ModelSpec
from framecast.generators.diffusion import VideoDiffusion
from framecast.generators.hybrid import CausalVideoDiffusion
from framecast.generators.spec_check import METADATA_KEYS, check_config, check_spec
from framecast.generators.weights import read_tensors

FORMAT_VERSION = 1
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
JSON_LIMIT = 64 * 2**20  # a config (a vocabulary of a million words included) is far smaller
FAMILIES = {"diffusion": VideoDiffusion, "hybrid": CausalVideoDiffusion, "autoregressive": TokenTransformer, "vae": CausalVAE, "tokenizer": VideoTokenizer}


def build_generator(spec: ModelSpec, *, where: str = "the model config") -> torch.nn.Module:
    """The model a spec describes, after `check_spec` (`where` names the config in refusals).
    What a constructor still refuses (a backbone that does not fit its codec) is re-raised as
    one ValueError naming the config."""
    check_spec(asdict(spec), where)
    try:
        return FAMILIES[spec.family].from_spec(spec)
    except (ValueError, TypeError, AssertionError, RuntimeError) as e:
        raise ValueError(f"{where} does not describe a model framecast can build: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


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
    """`state`: the full state dict when the module itself holds only a shard (FSDP). `extra`:
    metadata beside the spec; a generator's or codec's may hold only METADATA_KEYS, what
    `from_pretrained` reads back."""
    directory = Path(directory)
    spec = model.spec()
    config = {"framecast_format": FORMAT_VERSION, **(asdict(spec) if is_dataclass(spec) else spec), **(extra or {})}
    unknown = sorted(set(extra or {}) - set(METADATA_KEYS))
    if config.get("family") in FAMILIES and unknown:
        raise ValueError(f"save_pretrained: {', '.join(unknown)} would make '{directory / CONFIG_NAME}' unloadable; "
                         f"extra metadata may be {', '.join(METADATA_KEYS)}")
    directory.mkdir(parents=True, exist_ok=True)
    state = model.state_dict() if state is None else state
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous() for k, v in state.items()}
    write_atomic(directory / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": "pt", "framecast_format": str(FORMAT_VERSION)}))
    write_atomic(directory / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(config, indent=2) + "\n"))
    return directory


def read_json(path: Path, what: str) -> object:
    """A JSON file's contents; a file that is not UTF-8 JSON (or is too big or too deeply nested
    to be a config) is refused naming it, `what` saying what that means."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > JSON_LIMIT:
            raise ValueError(f"'{path}' is {size / 2**20:.0f} MB, more than a config holds ({JSON_LIMIT // 2**20} MB); {what}")
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"'{path}' is not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x}); {what}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"'{path}' is not valid JSON ({e.msg}, line {e.lineno} column {e.colno}); {what}") from None
    except RecursionError:
        raise ValueError(f"'{path}' nests too deeply to be a config; {what}") from None
    except OSError as e:
        raise ValueError(f"cannot read '{path}': {e.strerror or e}") from None
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        if str(path) in str(e):
            raise
        raise ValueError(f"'{path}' does not read as JSON ({e}); {what}") from None


def read_config(directory: str | Path) -> dict:
    """A model folder's config.json, as a dict: readable JSON in a format this framecast knows.
    The spec inside is checked by `from_pretrained` (this also reads other kinds of folder)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"model folder '{directory}' does not exist; give a bundled model name (see `framecast models`) or a folder with config.json and model.safetensors")
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"'{directory}' is not a framecast model folder: it has no {CONFIG_NAME}")
    config = read_json(path, "the model folder is damaged")
    if not isinstance(config, dict) or "framecast_format" not in config:
        raise ValueError(f"'{directory}' holds a model of another library (its {CONFIG_NAME} has no 'framecast_format'); framecast cannot load it")
    version = config["framecast_format"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"'{path}': framecast_format must be a whole number >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"'{directory}' was saved in framecast format {version}, newer than this framecast reads ({FORMAT_VERSION}); upgrade framecast")
    return config


def from_pretrained(directory: str | Path, *, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A model folder -> its model in eval mode on `device`. The config is checked before the
    model is built (keys, types, ranges, a size that fits in memory), the weights' header before
    a tensor is read, and every tensor is finite; each refusal names the file."""
    directory = Path(directory)
    config = read_config(directory)
    check_config(config, f"'{directory / CONFIG_NAME}'")
    fields = {k: config[k] for k in ("family", "generator", "backbone", "text_kind", "text") if k in config}
    model = build_generator(ModelSpec(**fields), where=f"'{directory / CONFIG_NAME}'")
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise ValueError(f"model folder '{directory}' has no {WEIGHTS_NAME}")
    own = model.state_dict()
    state = read_tensors(weights, {k: tuple(v.shape) for k, v in own.items()}, fix="re-download or re-train the model")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model.to(device).eval()
