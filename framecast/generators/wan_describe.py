"""`describe(path)`: what a Wan model folder or checkpoint holds, for `framecast models PATH`.

Safetensors are summed from their headers (names, shapes, dtypes) without reading a tensor; a
`.pt`/`.pth` state dict is opened memory-mapped through torch.load(weights_only=True).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from safetensors import SafetensorError, safe_open

from framecast.generators.wan_folder import WanSource, find_wan, read_json
from framecast.generators.wan_build import framecast_section, transformer_config
from framecast.generators.wan_settings import settings_for
from framecast.generators.wan_weights import PICKLE_SUFFIXES, detect_layout, index_file, read_state_dict
from framecast.generators.weights import tensor_shapes

DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64", "F8_E4M3": "float8_e4m3fn",
               "F8_E5M2": "float8_e5m2"}


def _safetensors_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix == ".safetensors" else []
    index = index_file(path)
    if index is not None:
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        return [index.parent / s for s in shards if isinstance(s, str) and Path(s).name == s]
    return sorted(path.glob("*.safetensors"))


def weights_summary(path: Path) -> tuple[list[str], int, Counter]:
    """(tensor names, parameter count, dtype -> parameter count) of the weights at `path`."""
    files = _safetensors_files(path)
    names, params, dtypes = [], 0, Counter()
    if files:
        for f in files:
            shapes = tensor_shapes(f)  # checks the header and diagnoses a damaged file
            try:
                with safe_open(str(f), "pt") as h:
                    kinds = {k: h.get_slice(k).get_dtype() for k in shapes}
            except SafetensorError as e:
                raise ValueError(f"'{f}' does not read ({e})") from None
            for k, shape in shapes.items():
                n = 1
                for d in shape:
                    n *= d
                names.append(k)
                params += n
                dtypes[DTYPE_NAMES.get(kinds[k], kinds[k].lower())] += n
        return names, params, dtypes
    state = read_state_dict(path)
    for k, t in state.items():
        names.append(k)
        params += t.numel()
        dtypes[str(t.dtype).removeprefix("torch.")] += t.numel()
    return names, params, dtypes


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _weights_line(path: Path, part: str | None) -> str:
    names, params, dtypes = weights_summary(path)
    dtype = ", ".join(f"{d}" for d, _ in dtypes.most_common())
    layout = f", {detect_layout(names, part, f'the weights in {path}')} keys" if part else ""
    return f"{_count(params)} parameters ({dtype}{layout})"


def _config_line(part: str, config: dict) -> str:
    keys = {"transformer": ("num_layers", "num_attention_heads", "attention_head_dim", "dim", "num_heads", "ffn_dim",
                            "patch_size", "in_channels", "text_dim"),
            "vae": ("base_dim", "z_dim", "dim_mult", "temperal_downsample"),
            "text_encoder": ("model_type", "d_model", "num_layers", "vocab_size")}.get(part, ())
    shown = [f"{k}={config[k]}" for k in keys if k in config]
    return f"; {' '.join(shown)}" if shown else ""


def _part_lines(wan: WanSource) -> list[str]:
    lines = []
    for part, where in wan.parts.items():
        config = wan.configs.get(part, {})
        named = wan.model_index.get(part)
        name = config.get("_class_name") or (named[1] if isinstance(named, list) and len(named) == 2 else "") or ""
        head = f"  {part}: {name + ' ' if name else ''}[{where.relative_to(wan.path) if where != wan.path else where.name}]"
        if part in ("transformer", "vae"):
            head += " " + _weights_line(where, part)
        elif part == "text_encoder":
            head += " " + _weights_line(where, None)
        elif part == "text_encoder_original":
            head += " (the Wan repository's own T5 layout: framecast reads a transformers text_encoder/ folder instead)"
        elif part == "scheduler":
            head = f"  scheduler: {wan.scheduler().describe()}"
        lines.append(head + (_config_line(part, config) if part != "scheduler" else ""))
    return lines


def describe(path: str | Path) -> str:
    """Several lines: what kind of Wan input `path` is, then one line per part found (class, file,
    parameters, dtype, key layout, the configuration's main sizes, the scheduler)."""
    wan = find_wan(path)
    kinds = {"diffusers-folder": "a Wan 2.1 model folder in diffusers format",
             "wan-folder": "a Wan 2.1 model folder in the Wan repository's layout",
             "checkpoint": "a Wan transformer checkpoint (text encoder, VAE and scheduler come from a base model folder)"}
    lines = [f"{wan.path}: {kinds[wan.kind]}"]
    lines += _part_lines(wan)
    missing = [p for p in ("vae", "tokenizer") if wan.kind == "wan-folder" and p not in wan.parts]
    if missing:
        lines.append(f"  not found: {', '.join(missing)}")
    if wan.kind != "checkpoint":
        lines.append(f"  sampling: {sampling_line(wan)}")
    return "\n".join(lines)


def sampling_line(wan: WanSource) -> str:
    """The defaults a load of this folder samples with (docs/wan.md: how a folder says so)."""
    try:
        s = settings_for(transformer_config(wan), framecast_section(wan), {})
    except (ValueError, KeyError, TypeError) as e:  # a partial or foreign config: describe the rest anyway
        return f"not known: the transformer config does not read ({e})"
    how = {"causal": f"causal chunks of {s.block} latent frames with the KV cache",
           "pyramid": f"the pyramid matrix (blocks of {s.block}, ar_step {s.ar_step})"}.get(s.schedule, f"the {s.schedule} schedule")
    steps = f"timesteps {s.denoising_steps}" if s.denoising_steps else f"{s.steps} steps"
    return f"{s.frames} frames of {s.width}x{s.height}, {steps}, guidance {s.guidance:g}, {how}"


__all__ = ["describe", "weights_summary", "PICKLE_SUFFIXES"]
