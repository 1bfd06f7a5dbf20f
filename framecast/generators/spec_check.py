"""Checking a model config before anything is built from it: every key known, every value of its
type and range, and a size that fits in memory. A model folder's config.json is data from
anywhere; a bad one must give one sentence naming the file and the key, not a crash deep inside
a constructor, and a huge one must not exhaust memory while the model is built."""

from __future__ import annotations

import math
import os
import types
import typing
from dataclasses import fields

from framecast.codecs.tokenizer import TokenizerConfig
from framecast.codecs.vae import VAEConfig
from framecast.generators.autoregressive import ARConfig
from framecast.generators.diffusion import DiffusionConfig
from framecast.generators.hybrid import HybridConfig
from framecast.nn.transformer import TransformerConfig
from framecast.text.encoder import WordEncoderConfig
from framecast.text.kinds import TEXT_KINDS
from framecast.text.pretrained import ConnectorConfig, PretrainedEncoderConfig

GENERATOR_CONFIGS = {"diffusion": DiffusionConfig, "hybrid": HybridConfig, "autoregressive": ARConfig, "vae": VAEConfig,
                     "tokenizer": TokenizerConfig}
NESTED = {"codec": VAEConfig, "tokenizer": TokenizerConfig}  # sub-configs a generator config holds
SPEC_KEYS = ("family", "generator", "backbone", "text_kind", "text")
# What save_pretrained writes beside the spec (its `extra`), and what a bundle may add.
METADATA_KEYS = ("framecast_format", "trained_steps", "recipe", "decode_with")
DECODING_ORDERS = ("raster", "diagonal", "set")  # decode_with's keys

POSITIVE = {"width", "depth", "heads", "channels", "patch_size", "patch_frames", "context_width", "frames", "size", "latent_channels",
            "temporal_kernel", "codebook_size", "vq_dim", "bits", "max_words", "slots", "max_tokens", "source_width", "steps", "set_steps", "chunk", "mlp_ratio", "shift"}
SIGNED = {"train_sigma_mean"}  # a logit-normal location: any finite number
UNIT = {"cond_dropout", "prefix_share", "top_p", "context_noise", "context_level"}  # shares and noise levels: [0, 1]
MAXIMUM = {"bits": 16}  # LFQ enumerates its 2 ** bits codes

# Building and loading a model holds each value about three times: the model in fp32, the
# tensors read from its file, and a converted copy while they are loaded into it.
BYTES_PER_VALUE = 12


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable on Linux; free pages elsewhere; 8 GiB if unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _kind(tp) -> str:
    """A dataclass field's declared type as the name of the check it gets."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return "mapping or null" if dict in typing.get_args(tp) else "value"
    if typing.get_origin(tp) is list:
        return "list of integers" if typing.get_args(tp) == (int,) else "list of words"
    return {bool: "true or false", int: "integer", float: "number", str: "string", dict: "mapping"}.get(tp, "value")


def _type_ok(value, kind: str) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {
        "true or false": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": number and math.isfinite(value),
        "string": isinstance(value, str),
        "mapping": isinstance(value, dict),
        "mapping or null": value is None or isinstance(value, dict),
        "list of integers": isinstance(value, list) and bool(value) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
        "list of words": isinstance(value, list) and all(isinstance(v, str) for v in value),
    }.get(kind, True)


def _range_problem(name: str, value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if name == "levels" and any(v < 2 for v in value):
            return "must all be >= 2"
        return None
    if name in POSITIVE and value <= 0:
        return "must be > 0"
    if name in UNIT and not 0 <= value <= 1:
        return "must be in [0, 1]"
    if name in MAXIMUM and value > MAXIMUM[name]:
        return f"must be <= {MAXIMUM[name]}"
    if name not in POSITIVE | SIGNED | UNIT and value < 0:
        return "must be >= 0"
    return None


def check_section(section: dict, cls, where: str, prefix: str) -> None:
    """Every key of `section` is a field of the dataclass `cls`, of its type and range."""
    if not isinstance(section, dict):
        raise ValueError(f"{where}: '{prefix.rstrip('.')}' must be a mapping of settings, got {_show(section)}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(section) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"{where}: unknown key{'s' * (len(unknown) > 1)} {', '.join(prefix + k for k in unknown)}; "
                         f"'{prefix.rstrip('.')}' takes {', '.join(f.name for f in fields(cls))}")
    for name, value in section.items():
        kind = _kind(hints[name])
        if not _type_ok(value, kind):
            raise ValueError(f"{where}: {prefix}{name} must be a{'n' * (kind[0] in 'aeiou')} {kind}, got {_show(value)}")
        problem = _range_problem(name, value)
        if problem:
            raise ValueError(f"{where}: {prefix}{name} {problem}, got {_show(value)}")
        if name in NESTED and isinstance(value, dict):
            check_section(value, NESTED[name], where, f"{prefix}{name}.")


def _show(value) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_divisible(section: dict, cls, where: str, prefix: str) -> None:
    """Attention splits a width among heads (and rotary embeddings pair a head's values); the
    convolutional codecs normalise their width in 8 groups."""
    get = lambda k: section.get(k, next(f.default for f in fields(cls) if f.name == k))  # noqa: E731
    if "heads" in {f.name for f in fields(cls)}:
        width, heads = get("width"), get("heads")
        if width % heads or (cls is TransformerConfig and (width // heads) % 2):
            even = " into an even number of values per head" if cls is TransformerConfig else ""
            raise ValueError(f"{where}: {prefix}width ({width}) must split among {prefix}heads ({heads}){even}")
    elif cls in (VAEConfig, TokenizerConfig) and get("width") % 8:
        raise ValueError(f"{where}: {prefix}width ({get('width')}) must be a multiple of 8 (the codec normalises it in 8 groups)")


def check_spec(spec: dict, where: str) -> None:
    """A model spec (family, generator, backbone, text_kind, text) as config.json or a training
    config holds it: every key known and of its type and range, sizes that fit in memory.
    `where` names the config in the message (a file, or "the training config's model")."""
    family = spec.get("family")
    if not isinstance(family, str) or family not in GENERATOR_CONFIGS:
        raise ValueError(f"{where}: unknown model family {_show(family)}; this framecast knows: {', '.join(GENERATOR_CONFIGS)}")
    cls = GENERATOR_CONFIGS[family]
    generator = spec.get("generator", {})
    check_section(generator, cls, where, "generator.")
    _check_divisible(generator, cls, where, "generator.")
    for key, sub in NESTED.items():
        if isinstance(generator.get(key), dict):
            _check_divisible(generator[key], sub, where, f"generator.{key}.")
    if family in ("diffusion", "hybrid", "autoregressive"):
        check_section(spec.get("backbone", {}), TransformerConfig, where, "backbone.")
        _check_divisible(spec.get("backbone", {}), TransformerConfig, where, "backbone.")
        _check_text(spec, where)
    check_memory(spec, where)


def _check_text(spec: dict, where: str) -> None:
    kind, text = spec.get("text_kind", "word"), spec.get("text", {})
    if kind not in TEXT_KINDS:
        raise ValueError(f"{where}: unknown text_kind {_show(kind)}; framecast knows: {', '.join(TEXT_KINDS)}")
    config_class = TEXT_KINDS[kind][0]
    check_section(text, config_class, where, "text.")
    _check_divisible(text, config_class, where, "text.")
    if kind == "pretrained":
        for key, sub in (("connector", ConnectorConfig), ("teacher", WordEncoderConfig)):
            if isinstance(text.get(key), dict):
                check_section(text[key], sub, where, f"text.{key}.")
                _check_divisible(text[key], sub, where, f"text.{key}.")


def check_config(config: dict, where: str) -> None:
    """A model folder's config.json: the spec, and nothing beside it but known metadata."""
    unknown = sorted(set(config) - set(SPEC_KEYS) - set(METADATA_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key{'s' * (len(unknown) > 1)} {', '.join(unknown)}; a model's config.json holds "
                         f"{', '.join(SPEC_KEYS + METADATA_KEYS)}")
    steps = config.get("trained_steps", 0)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"{where}: trained_steps must be an integer >= 0, got {_show(steps)}")
    if not isinstance(config.get("recipe", ""), str):
        raise ValueError(f"{where}: recipe must be a string, got {_show(config.get('recipe'))}")
    siblings = config.get("decode_with", {})
    if not isinstance(siblings, dict) or not all(k in DECODING_ORDERS and isinstance(v, str) for k, v in siblings.items()):
        raise ValueError(f"{where}: decode_with must map decoding orders to model names, got {_show(siblings)}")
    check_spec(config, where)


# --- size ------------------------------------------------------------------------------------
def _merged(section: dict, cls) -> dict:
    return {**{f.name: f.default for f in fields(cls) if not callable(f.default_factory)},
            **{f.name: f.default_factory() for f in fields(cls) if callable(f.default_factory)}, **section}


def _transformer_values(b: dict) -> int:
    """SpaceTimeTransformer: per block self-attention (4 W^2), cross-attention (2 W^2 + 2 W Cw)
    and the MLP (2 r W^2); around them the embeddings, adaLN (8 W^2) and the head."""
    W, D, r, Cw = b["width"], b["depth"], b["mlp_ratio"], b["context_width"]
    patch = b["patch_frames"] * b["patch_size"] ** 2
    per_block = (6 + 2 * r) * W * W + 2 * Cw * W
    return int(D * per_block + 10 * W * W + Cw * W + patch * (b["channels"] + (b["out_channels"] or b["channels"])) * W)


def _word_values(t: dict) -> int:
    """Word embeddings, positions and pre-norm encoder layers (attention 4 w^2, MLP 8 w^2)."""
    w = t["width"]
    return (len(t["vocabulary"]) + 2 + t["max_words"]) * w + 12 * t["depth"] * w * w


def _text_values(spec: dict) -> int:
    """The text encoder's own values; a pretrained encoder's frozen weights are its source's, counted
    there: here its connector (decoder layers of 16 w^2), the teacher and the caption bank."""
    if spec.get("text_kind", "word") == "word":
        return _word_values(_merged(spec.get("text", {}), WordEncoderConfig))
    t = _merged(spec.get("text", {}), PretrainedEncoderConfig)
    c = _merged(t["connector"], ConnectorConfig)
    teacher = _word_values(_merged(t["teacher"], WordEncoderConfig)) if t["teacher"] else 0
    return 16 * c["depth"] * c["width"] ** 2 + (c["slots"] + t["source_width"] + t["width"]) * c["width"] + teacher + len(t["bank"]) * t["source_width"]


def _codec_values(c: dict) -> int:
    """Each side is conv (stages + 1 residual blocks of (18 + k) w^2, a 3x3 conv a stage, 3x3
    convs in and out) or patch (two 1x1 convs around a patch-sized one); a token codec's codebook
    when it is stored (VQ: three buffers, LFQ: every code)."""
    w, s, k, ch = c["width"], c["stages"], c["temporal_kernel"], c["channels"]
    conv = (s + 1) * (18 + k) * w * w + 9 * s * w * w + 9 * w * (ch + 2 * c.get("latent_channels", c.get("vq_dim", 8)))
    patch = w * w + 2 * w * (ch * 4 ** min(s, 64) + 16)
    values = sum(patch if c.get(side, "conv") == "patch" else conv for side in ("encoder", "decoder"))
    if c.get("quantizer") == "vq":
        values += 3 * c["codebook_size"] * c["vq_dim"]
    elif c.get("quantizer") == "lfq":
        values += 2 ** min(c["bits"], 64) * c["bits"]
    return values


def _codebook_size(t: dict) -> int:
    return {"vq": t["codebook_size"], "lfq": 2 ** min(t["bits"], 64)}.get(t["quantizer"], math.prod(t["levels"]))


def estimate_values(spec: dict) -> int:
    """About how many values (parameters and buffers) the model a spec describes holds."""
    family, g = spec["family"], _merged(spec.get("generator", {}), GENERATOR_CONFIGS[spec["family"]])
    if family in ("vae", "tokenizer"):
        return _codec_values(g)
    values = _transformer_values(_merged(spec.get("backbone", {}), TransformerConfig)) + _text_values(spec)
    if family == "autoregressive" and g.get("tokenizer"):
        t = _merged(g["tokenizer"], TokenizerConfig)
        out = spec.get("backbone", {}).get("out_channels", 0)
        values += _codec_values(t) + (out + 1) * (_codebook_size(t) + 2)
    elif g.get("codec"):
        values += _codec_values(_merged(g["codec"], VAEConfig))
    return values


def check_memory(spec: dict, where: str) -> None:
    """Refuse a model that would not fit: its estimated values at BYTES_PER_VALUE each, or one
    clip of its own training length (frames x size x size RGB, fp32), against available memory."""
    available = available_memory()
    bound = available // BYTES_PER_VALUE
    values = estimate_values(spec)
    g = spec.get("generator", {})
    clip = g.get("frames", 16) * g.get("size", 32) ** 2 * 3
    if values > bound or clip * 4 > available:
        what = f"a model of about {values:.2g} values" if values > bound else f"a training clip of {clip:.2g} values"
        raise ValueError(f"{where} describes {what}, more than this machine can hold: {available / 2**30:.1f} GiB available allows "
                         f"about {bound:.2g} ({BYTES_PER_VALUE} bytes a value to build and load); lower its sizes (width, depth, "
                         "frames, size, vocabulary)")
