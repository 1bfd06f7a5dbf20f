"""The codec interface and the identity codec (pixels, patchified later by the backbone)."""

from __future__ import annotations

import torch
from torch import nn


class Codec(nn.Module):
    """encode: (B, T, 3, H, W) in [-1, 1] -> (B, T, C, h, w); decode: the inverse (approximately).
    Codecs here keep one latent frame per video frame, so frame-causal generators work unchanged."""

    latent_channels: int
    downsample: int
    receptive_frames: int = 0  # earlier frames a decoded frame depends on (the causal window)

    def encode(self, x_BTCHW: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def decode(self, z_BTChw: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class PixelCodec(Codec):
    latent_channels = 3
    downsample = 1

    def encode(self, x_BTCHW: torch.Tensor) -> torch.Tensor:
        return x_BTCHW

    def decode(self, z_BTChw: torch.Tensor) -> torch.Tensor:
        return z_BTChw
