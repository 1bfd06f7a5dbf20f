"""State-dict keys of the Wan repository's VAE (Wan2.1_VAE.pth, also shipped by CausVid,
Self-Forcing and SkyReels-V2) -> the diffusers `AutoencoderKLWan` keys that `WanVAE` uses.

The Wan repository builds each residual block as one `residual` Sequential (norm, SiLU, conv, norm,
SiLU, dropout, conv: indices 0, 2, 3, 6) and each decoder as one flat `upsamples` list: per stage
`num_res_blocks + 1` residual blocks then a resampler (none after the last stage). The quant convs
are the top-level `conv1` / `conv2`; `middle` is (residual, attention, residual); `head` is (norm, SiLU, conv)."""

from __future__ import annotations

import re
from typing import Mapping

import torch

_RESIDUAL = {"residual.0.": "norm1.", "residual.2.": "conv1.", "residual.3.": "norm2.", "residual.6.": "conv2.", "shortcut.": "conv_shortcut."}
_MIDDLE = {"0": "mid_block.resnets.0.", "1": "mid_block.attentions.0.", "2": "mid_block.resnets.1."}
_TOP = {"conv1.": "quant_conv.", "conv2.": "post_quant_conv."}
_HEAD = {"conv1.": "conv_in.", "head.0.": "norm_out.", "head.2.": "conv_out."}


def is_original_layout(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True for the Wan repository's key names (e.g. `encoder.conv1.weight`, `decoder.head.0.gamma`)."""
    return any(k.startswith(("encoder.conv1.", "encoder.downsamples.", "decoder.upsamples.", "decoder.head.")) for k in state_dict)


def _block(rest: str) -> str:
    """Inside a residual block: the Sequential indices -> norm1/conv1/norm2/conv2; other keys unchanged."""
    for old, new in _RESIDUAL.items():
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest


def _rename(key: str, num_res_blocks: int) -> str:
    for old, new in _TOP.items():
        if key.startswith(old):
            return new + key[len(old):]
    side, _, rest = key.partition(".")
    if side not in ("encoder", "decoder"):
        return key
    for old, new in _HEAD.items():
        if rest.startswith(old):
            return f"{side}.{new}{rest[len(old):]}"
    if m := re.match(r"middle\.(\d+)\.(.*)", rest):
        return f"{side}.{_MIDDLE[m[1]]}{_block(m[2])}"
    if m := re.match(r"downsamples\.(\d+)\.(.*)", rest):
        return f"encoder.down_blocks.{m[1]}.{_block(m[2])}"
    if m := re.match(r"upsamples\.(\d+)\.(.*)", rest):
        stage, j = divmod(int(m[1]), num_res_blocks + 2)  # num_res_blocks + 1 residual blocks, then a resampler
        if j <= num_res_blocks:
            return f"decoder.up_blocks.{stage}.resnets.{j}.{_block(m[2])}"
        return f"decoder.up_blocks.{stage}.upsamplers.0.{m[2]}"
    return key


def original_to_diffusers(state_dict: Mapping[str, torch.Tensor], num_res_blocks: int) -> dict[str, torch.Tensor]:
    """A Wan-repository VAE state dict with diffusers' `AutoencoderKLWan` key names (tensors shared,
    not copied); keys it does not know pass through unchanged, for the strict load to report."""
    return {_rename(k, num_res_blocks): v for k, v in state_dict.items()}
