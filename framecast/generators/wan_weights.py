"""Reading the weights of a Wan-architecture transformer or VAE, in either key layout.

- `"diffusers"`: diffusers' WanTransformer3DModel / AutoencoderKLWan keys (`blocks.0.attn1.to_q.weight`,
  `encoder.conv_in.weight`), one safetensors file or shards with an index json;
- `"wan-original"`: the Wan repository's keys (`blocks.0.self_attn.q.weight`, `encoder.conv1.weight`),
  which CausVid, Self-Forcing and SkyReels-V2 checkpoints use too: safetensors, or a `.pt`/`.pth`
  state dict, often nested under `generator_ema`, `generator` or `model` and with a `model.` prefix.

    state, layout = read_wan_weights("self_forcing_dmd.pt", part="transformer")
    # layout == "wan-original": rename the keys to framecast's before loading them

Safetensors go through framecast.generators.weights (header checked, every tensor finite). A
`.pt`/`.pth`/`.bin` file is opened only with `torch.load(weights_only=True)`, whose unpickler builds
tensors and plain containers and refuses anything else before it runs.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch

from framecast.generators.weights import check_finite, read_tensors

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# where training code keeps the weights inside a checkpoint dict, most preferred first: the EMA
# generator (Self-Forcing's and CausVid's inference uses it), the generator, then common wrappers
NEST_KEYS = ("generator_ema", "generator", "ema", "model_ema", "state_dict", "model", "module", "net")
# prefixes that wrappers add to every key (DDP, torch.compile, FSDP, the causal models' wrapper)
PREFIXES = ("module.", "_orig_mod.", "model.", "generator.")
INNER_WRAPPERS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")
# one key that only each layout of each part has
MARKERS = {
    ("transformer", "diffusers"): ("attn1.to_q.weight", "condition_embedder."),
    ("transformer", "wan-original"): ("self_attn.q.weight", "text_embedding.0.weight"),
    ("vae", "diffusers"): ("encoder.conv_in.weight", "encoder.down_blocks."),
    ("vae", "wan-original"): ("encoder.conv1.weight", "encoder.downsamples."),
}
FIX = "re-download the checkpoint"


def detect_layout(keys, part: str = "transformer", where: str = "the weights") -> str:
    """`"diffusers"` or `"wan-original"` from the tensor names, or one sentence saying they are not
    a Wan `part` ("transformer" or "vae")."""
    keys = list(keys)
    for (p, layout), markers in MARKERS.items():
        if p == part and any(m in k for k in keys for m in markers):
            return layout
    example = f" (e.g. '{sorted(keys)[0]}')" if keys else " (it holds no tensors)"
    raise ValueError(f"{where} are not a Wan {part} in diffusers' or the Wan repository's key layout{example}")


def strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the names FSDP and activation checkpointing insert inside keys, then prefixes that
    every key shares (`module.`, `model.`, ...), repeatedly."""
    for inner in INNER_WRAPPERS:
        if any(inner in k for k in state):
            state = {k.replace(inner, ""): v for k, v in state.items()}
    while state:
        prefix = next((p for p in PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            return state
        state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def unnest(obj, path: Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: `obj[key]` when given, else the first of NEST_KEYS
    that holds one (searched level by level); tensors only, wrapper prefixes stripped."""
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            found = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__
            raise ValueError(f"'{path}' has no entry '{key}'; it holds: {found}")
        obj = obj[key]
    while isinstance(obj, dict) and not _is_state_dict(obj):
        inner = next((obj[k] for k in NEST_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if len(tensors) > len(obj) // 2:  # a state dict with a few non-tensor entries (a step count)
                return strip_wrappers(tensors)
            raise ValueError(f"'{path}' holds no state dict that framecast recognises (top-level entries: "
                             f"{', '.join(map(str, list(obj)[:8]))}); name the entry that holds the weights")
        obj = inner
    if not _is_state_dict(obj):
        raise ValueError(f"'{path}' does not hold a state dict of tensors (found {type(obj).__name__})")
    return strip_wrappers(obj)


def load_pickled_state(path: Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """A `.pt`/`.pth` state dict through `torch.load(weights_only=True)` only: a pickle that asks
    for any other object (the way a malicious file runs code) is refused before it builds it."""
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:  # files of the legacy (non-zip) format cannot be memory-mapped
            if "mmap" not in str(e):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0][:160]
        raise ValueError(f"'{path}' was refused: it holds Python objects other than tensors ({first}), and framecast "
                         "loads checkpoints only with torch.load(weights_only=True); convert a copy you trust to safetensors") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"'{path}' does not read as a torch checkpoint ({str(e).splitlines()[0][:160]}); {FIX}") from None
    state = unnest(obj, path, key)
    check_finite(path, state, FIX)
    return state


def index_file(folder: Path) -> Path | None:
    found = sorted(folder.glob("*.safetensors.index.json"))
    return found[0] if found else None


def read_sharded(index: Path) -> dict[str, torch.Tensor]:
    """Every shard an index json names (plain file names inside its folder only), all keys present."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"'{index}' is not a safetensors index (a json with a weight_map): {e}; {FIX}") from None
    shards = sorted(set(weight_map.values()))
    for name in shards:
        if not isinstance(name, str) or Path(name).name != name:
            raise ValueError(f"'{index}' names a shard outside its folder ({name!r}); {FIX}")
    state = {}
    for name in shards:
        state.update(read_tensors(index.parent / name, fix=FIX))
    missing = sorted(set(weight_map) - set(state))
    if missing:
        raise ValueError(f"the shards of '{index}' lack {len(missing)} tensors it lists (e.g. '{missing[0]}'); {FIX}")
    return state


def weight_files(path: Path) -> list[Path]:
    """The files a weights path stands for: itself, an index's shards, or a folder's one weights file."""
    if path.is_file():
        return [path]
    index = index_file(path)
    if index is not None:
        return [index]
    found = sorted(path.glob("*.safetensors")) or sorted(p for s in PICKLE_SUFFIXES for p in path.glob(f"*{s}"))
    if len(found) != 1:
        what = "no weights file" if not found else f"{len(found)} weights files ({', '.join(p.name for p in found[:4])})"
        raise ValueError(f"'{path}' holds {what}; point at one file or a folder with one file or an index json")
    return found


def read_state_dict(path: str | Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a weights file or folder (safetensors, sharded safetensors or a torch state
    dict), with wrapper prefixes stripped; `key` picks an entry of a nested `.pt` checkpoint."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"'{path}' does not exist; give a Wan model folder or a checkpoint file")
    (file,) = weight_files(path)
    if file.name.endswith(".index.json"):
        return strip_wrappers(read_sharded(file))
    if file.suffix in PICKLE_SUFFIXES:
        return load_pickled_state(file, key)
    if file.suffix != ".safetensors":
        raise ValueError(f"'{file}' is neither safetensors nor a torch state dict ({', '.join(PICKLE_SUFFIXES)})")
    return strip_wrappers(read_tensors(file, fix=FIX))


def read_wan_weights(path: str | Path, part: str = "transformer", key: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, layout) of a Wan transformer or VAE (`part`) at `path`: a component folder,
    one weights file or an index json; layout is "diffusers" or "wan-original"."""
    state = read_state_dict(path, key)
    return state, detect_layout(state, part, f"the weights in '{path}'")
