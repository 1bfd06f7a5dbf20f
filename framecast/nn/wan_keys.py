"""Parameter names of Wan 2.1 checkpoints -> framecast's WanTransformer.

Two layouts exist: the original Wan repository's (`blocks.0.self_attn.q.weight`; CausVid,
Self-Forcing, SkyReels-V2 and LongLive checkpoints use it too) and diffusers'
(`blocks.0.attn1.to_q.weight`). Each is a table from module paths to framecast's; a key is renamed
by its module path, so weights and biases follow their layer. The original layout names its FFN
norm `norm2` and its cross-attention norm `norm3`; diffusers and framecast swap them (norm1
self-attention, norm2 cross-attention, norm3 FFN).

Image-to-video checkpoints (an image embedder, extra image keys and values in cross-attention) are
not supported: their keys are refused by name.
"""

from __future__ import annotations

import re

import torch

_ATTN = {"q": "q", "k": "k", "v": "v", "o": "proj", "norm_q": "norm_q", "norm_k": "norm_k"}
_DIFFUSERS_ATTN = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj", "norm_q": "norm_q", "norm_k": "norm_k"}

ORIGINAL_TOP = {
    "patch_embedding": "patch_embed",
    "time_embedding.0": "time_embed.0",
    "time_embedding.2": "time_embed.2",
    "time_projection.1": "time_proj.1",
    "text_embedding.0": "text_embed.0",
    "text_embedding.2": "text_embed.2",
    "head.head": "head",
    "head.modulation": "head_modulation",
    "fps_embedding": "fps_embed",  # SkyReels-V2
    "fps_projection.0": "fps_proj.0",
    "fps_projection.2": "fps_proj.2",
}
ORIGINAL_BLOCK = {
    **{f"self_attn.{a}": f"attn.{b}" for a, b in _ATTN.items()},
    **{f"cross_attn.{a}": f"cross.{b}" for a, b in _ATTN.items()},
    "norm3": "norm2",  # the cross-attention norm
    "ffn.0": "mlp.0",
    "ffn.2": "mlp.2",
    "modulation": "modulation",
}
DIFFUSERS_TOP = {
    "patch_embedding": "patch_embed",
    "condition_embedder.time_embedder.linear_1": "time_embed.0",
    "condition_embedder.time_embedder.linear_2": "time_embed.2",
    "condition_embedder.time_proj": "time_proj.1",
    "condition_embedder.text_embedder.linear_1": "text_embed.0",
    "condition_embedder.text_embedder.linear_2": "text_embed.2",
    "proj_out": "head",
    "scale_shift_table": "head_modulation",
    "fps_embedding": "fps_embed",
    "fps_projection.net.0.proj": "fps_proj.0",
    "fps_projection.net.2": "fps_proj.2",
}
DIFFUSERS_BLOCK = {
    **{f"attn1.{a}": f"attn.{b}" for a, b in _DIFFUSERS_ATTN.items()},
    **{f"attn2.{a}": f"cross.{b}" for a, b in _DIFFUSERS_ATTN.items()},
    "norm2": "norm2",
    "ffn.net.0.proj": "mlp.0",
    "ffn.net.2": "mlp.2",
    "scale_shift_table": "modulation",
}
LAYOUTS = {"original": (ORIGINAL_TOP, ORIGINAL_BLOCK), "diffusers": (DIFFUSERS_TOP, DIFFUSERS_BLOCK)}

# Prefixes that training repositories and UIs put before the model's own keys.
_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.", "module.")
_IMAGE_KEYS = ("img_emb", "image_embedder", "k_img", "v_img", "norm_k_img", "add_k_proj", "add_v_proj", "norm_added_k")
_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.(.+)")
_PARAM_NAMES = ("weight", "bias")


def _rename(key: str, top: dict[str, str], block: dict[str, str]) -> str | None:
    m = _BLOCK_KEY.fullmatch(key)
    table, path, prefix = (block, m.group(2), f"blocks.{m.group(1)}.") if m else (top, key, "")
    if path in table:  # a bare parameter (modulation tables)
        return prefix + table[path]
    module, _, param = path.rpartition(".")
    if param in _PARAM_NAMES and module in table:
        return f"{prefix}{table[module]}.{param}"
    return None


def strip_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a prefix that every key shares (`model.diffusion_model.`, `model.`, `module.`)."""
    for p in _PREFIXES:
        if state_dict and all(k.startswith(p) for k in state_dict):
            return {k[len(p):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def detect_layout(state_dict: dict[str, torch.Tensor]) -> str:
    """'original' or 'diffusers', from the keys of a Wan transformer state dict (prefix stripped)."""
    if any(k.startswith("condition_embedder.") or ".attn1." in k for k in state_dict):
        return "diffusers"
    if any(k.startswith("time_embedding.") or ".self_attn." in k for k in state_dict):
        return "original"
    raise ValueError("these weights are not a Wan transformer's (no time embedding or self-attention keys found)")


def to_framecast(state_dict: dict[str, torch.Tensor], layout: str | None = None) -> dict[str, torch.Tensor]:
    """Rename a Wan 2.1 transformer state dict (original or diffusers layout, detected when `layout`
    is None) to WanTransformer's parameter names. Tensors are not copied."""
    state_dict = strip_prefix(state_dict)
    layout = layout or detect_layout(state_dict)
    top, block = LAYOUTS[layout]
    image = sorted(k for k in state_dict if any(f"{p}." in k or k.startswith(f"{p}.") for p in _IMAGE_KEYS))
    if image:
        raise ValueError(f"these Wan weights are an image-to-video model ({image[0]}, ...); only text-to-video is supported")
    out, unknown = {}, []
    for key, value in state_dict.items():
        new = _rename(key, top, block)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise ValueError(f"unexpected keys in the {layout} Wan layout: {', '.join(sorted(unknown)[:5])}")
    return out


def original_to_framecast(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The Wan repository's key layout (`blocks.0.self_attn.q.weight`) -> WanTransformer's."""
    return to_framecast(state_dict, "original")


def diffusers_to_framecast(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' WanTransformer3DModel key layout (`blocks.0.attn1.to_q.weight`) -> WanTransformer's."""
    return to_framecast(state_dict, "diffusers")


__all__ = ["detect_layout", "diffusers_to_framecast", "original_to_framecast", "strip_prefix", "to_framecast"]
