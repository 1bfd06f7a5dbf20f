"""Finding the parts of a Wan-architecture model on disk, without reading a tensor.

Three shapes of input:

- a diffusers-format folder: `model_index.json` naming WanPipeline, and `transformer/`, `vae/`,
  `text_encoder/`, `tokenizer/`, `scheduler/`, each with its config (Wan-AI/Wan2.1-T2V-1.3B-Diffusers);
- a folder in the Wan repository's layout: `config.json` of a `WanModel`, the transformer's
  `diffusion_pytorch_model*.safetensors`, `Wan2.1_VAE.pth`, the T5 encoder as a `.pth` of the Wan
  repository's own layout and its tokenizer in `google/umt5-xxl/` (Wan-AI/Wan2.1-T2V-1.3B);
- one checkpoint file (`.safetensors`, `.pt`, `.pth`) holding a transformer, as CausVid,
  Self-Forcing and SkyReels-V2 ship theirs; the other parts then come from a base folder.

    wan = find_wan(path)              # WanSource: layout, paths and configs of every part found
    state, layout = wan.transformer_weights()
    print(describe(path))             # what `framecast models PATH` shows
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from framecast.generators.wan_weights import PICKLE_SUFFIXES, read_wan_weights
from framecast.sampling.external import SchedulerSpec, read_scheduler_config
from framecast.text.umt5 import HFTextEncoder

# SkyReels-V2's text-to-video pipelines are Wan 2.1's transformer with a frame-rate embedding
WAN_PIPELINES = ("WanPipeline", "SkyReelsV2DiffusionForcingPipeline", "SkyReelsV2Pipeline")
CLASSES = {"transformer": ("WanTransformer3DModel", "SkyReelsV2Transformer3DModel"), "vae": ("AutoencoderKLWan",)}
PARTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
ORIGINAL_CLASS = "WanModel"  # the Wan repository's config.json names its transformer so
IMAGE_MODEL_TYPES = ("i2v", "flf2v", "vace", "ti2v")  # its model_type values with image inputs framecast lacks
WAN_MODEL_TYPES = ("t2v", *IMAGE_MODEL_TYPES)


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"'{path}' is not valid JSON ({e}); re-download the model") from None
    except OSError as e:
        raise ValueError(f"cannot read '{path}': {e.strerror or e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"'{path}' is not a JSON object; re-download the model")
    return data


@dataclass
class WanSource:
    """Where each part of a Wan model is. `layout` is the transformer's key layout when known from
    the files ("diffusers" for a diffusers folder, "wan-original" for the Wan repository's folder),
    None for a lone checkpoint file (read_wan_weights tells it from the keys)."""

    path: Path
    kind: str  # "diffusers-folder" | "wan-folder" | "checkpoint"
    layout: str | None
    parts: dict[str, Path] = field(default_factory=dict)  # part name -> its folder or file
    configs: dict[str, dict] = field(default_factory=dict)  # part name -> its config.json
    model_index: dict = field(default_factory=dict)

    def part(self, name: str) -> Path:
        if name not in self.parts:
            raise ValueError(f"'{self.path}' has no {name.replace('_', ' ')}; "
                             f"give a full Wan model folder (diffusers format) or name one for the {name.replace('_', ' ')}")
        return self.parts[name]

    def transformer_weights(self, key: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
        """(state dict, "diffusers" | "wan-original") of the transformer; `key` picks an entry of a nested .pt."""
        return read_wan_weights(self.part("transformer"), "transformer", key)

    def vae_weights(self) -> tuple[dict[str, torch.Tensor], str]:
        return read_wan_weights(self.part("vae"), "vae")

    def text_encoder(self, *, dtype: torch.dtype | None = None, device: str | torch.device = "cpu", **kw) -> HFTextEncoder:
        """The folder's transformers text encoder and tokenizer (keywords as HFTextEncoder.from_folder)."""
        if "text_encoder" not in self.parts and "text_encoder_original" in self.parts:
            raise ValueError(f"'{self.parts['text_encoder_original']}' is a T5 encoder in the Wan repository's own layout, "
                             "which framecast does not read; use the text_encoder/ and tokenizer/ of a diffusers-format Wan folder")
        return HFTextEncoder.from_folder(self.part("text_encoder"), self.part("tokenizer"), dtype=dtype, device=device, **kw)

    def scheduler(self) -> SchedulerSpec:
        """The default sampling of a diffusers folder (scheduler/scheduler_config.json)."""
        return read_scheduler_config(self.configs.get("scheduler") or self.part("scheduler"))


def _check_class(config: dict, part: str, where: Path) -> None:
    name = config.get("_class_name")
    if name not in CLASSES[part]:
        raise ValueError(f"'{where}' holds a {name or 'model of unknown class'}, not a Wan {part} "
                         f"({' or '.join(CLASSES[part])}); framecast reads Wan-architecture models only")


def _diffusers_folder(path: Path) -> WanSource:
    index = read_json(path / "model_index.json")
    name = index.get("_class_name")
    if name not in WAN_PIPELINES:
        raise ValueError(f"'{path}' is a {name or 'pipeline of unknown class'} folder, not a Wan model "
                         f"({', '.join(WAN_PIPELINES)}); framecast reads Wan-architecture models only")
    missing = [p for p in PARTS if not (path / p).is_dir()]
    if missing:
        raise ValueError(f"'{path}' lacks the {', '.join(missing)} folder{'s' * (len(missing) > 1)} that a Wan model "
                         "in diffusers format has; re-download the whole model")
    wan = WanSource(path=path, kind="diffusers-folder", layout="diffusers", model_index=index,
                    parts={p: path / p for p in PARTS})
    for part, config_name in (("transformer", "config.json"), ("vae", "config.json"), ("text_encoder", "config.json"),
                              ("scheduler", "scheduler_config.json")):
        config_path = path / part / config_name
        if not config_path.is_file():
            raise ValueError(f"'{path / part}' has no {config_name}; re-download the model")
        wan.configs[part] = read_json(config_path)
    _check_class(wan.configs["transformer"], "transformer", path / "transformer")
    _check_class(wan.configs["vae"], "vae", path / "vae")
    return wan


def _wan_repository_folder(path: Path, config: dict) -> WanSource:
    """The Wan repository's layout: the transformer's files at the top, the others by their names."""
    name, model_type = config.get("_class_name"), config.get("model_type")
    if name != ORIGINAL_CLASS and not (name is None and model_type in WAN_MODEL_TYPES and {"dim", "num_layers"} <= set(config)):
        what = name or (f"model of type '{model_type}'" if model_type else "model of unknown class")
        raise ValueError(f"'{path / 'config.json'}' describes a {what}, not a Wan transformer "
                         f"({ORIGINAL_CLASS}); framecast reads Wan-architecture models only")
    if model_type in IMAGE_MODEL_TYPES:
        raise ValueError(f"'{path}' holds a Wan '{model_type}' model (conditioned on images); "
                         "framecast runs the text-to-video (t2v) models only")
    wan = WanSource(path=path, kind="wan-folder", layout="wan-original", parts={"transformer": path},
                    configs={"transformer": config})
    vae = sorted(p for p in path.iterdir() if "vae" in p.name.lower() and p.suffix in (*PICKLE_SUFFIXES, ".safetensors"))
    t5 = sorted(p for p in path.iterdir() if "t5" in p.name.lower() and p.suffix in PICKLE_SUFFIXES)
    if vae:
        wan.parts["vae"] = vae[0]
    elif (path / "vae" / "config.json").is_file():  # a diffusers vae/ folder copied beside the Wan layout
        wan.parts["vae"], wan.configs["vae"] = path / "vae", read_json(path / "vae" / "config.json")
    if t5:
        wan.parts["text_encoder_original"] = t5[0]  # the Wan repository's own T5 layout, not a transformers folder
    for tok in (path / "google" / "umt5-xxl", path / "tokenizer"):
        if tok.is_dir():
            wan.parts["tokenizer"] = tok
    for part in ("text_encoder", "scheduler"):  # diffusers-format parts copied beside the Wan layout
        if (path / part).is_dir():
            wan.parts[part] = path / part
    if "scheduler" in wan.parts:
        wan.configs["scheduler"] = read_json(path / "scheduler" / "scheduler_config.json")
    return wan


def find_wan(path: str | Path) -> WanSource:
    """Where the parts of the Wan model at `path` are; a folder of another architecture, a part
    missing or a file of an unknown kind is one sentence."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"'{path}' does not exist; give a Wan model folder or a checkpoint file")
    if path.is_file():
        if path.suffix not in (".safetensors", *PICKLE_SUFFIXES):
            raise ValueError(f"'{path}' is not a checkpoint (.safetensors, {', '.join(PICKLE_SUFFIXES)}) nor a model folder")
        return WanSource(path=path, kind="checkpoint", layout=None, parts={"transformer": path})
    if (path / "model_index.json").is_file():
        return _diffusers_folder(path)
    if (path / "config.json").is_file():
        config = read_json(path / "config.json")
        if config.get("_class_name") in CLASSES["transformer"]:  # a diffusers transformer/ folder alone
            return WanSource(path=path, kind="checkpoint", layout="diffusers", parts={"transformer": path},
                             configs={"transformer": config})
        return _wan_repository_folder(path, config)
    raise ValueError(f"'{path}' is not a Wan model folder: it has neither model_index.json (diffusers format) "
                     "nor config.json (the Wan repository's layout)")
