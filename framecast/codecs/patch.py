"""A patch codec: every code is a function of its own patch of one frame, and every decoded patch
a function of its own code. The convolutional codec (`conv.py`) sees the whole frame through its
stacked 3x3 convolutions and its group norms, so on the Shapes world a patch of black background
maps to about ten different codes, depending on objects elsewhere in the frame, and the decoder
draws an object's edge from the joint evidence of many codes. A token model has to predict all of
that. With patch codes it predicts the patches themselves: the same patch always gets the same code,
and an edge lies where the codes say it does.

Per frame, so causal in time: the first frame of a clip is coded exactly as an image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from framecast.codecs.conv import per_frame


class PatchEncoder(nn.Module):
    """(B, T, C, H, W) -> (B, T, out, H / p, W / p): a p x p patch, flattened, through an MLP."""

    def __init__(self, channels: int, width: int, patch: int, out_channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, patch, stride=patch), nn.SiLU(),
            nn.Conv2d(width, width, 1), nn.SiLU(),
            nn.Conv2d(width, out_channels, 1),
        )

    def forward(self, x_BTCHW: torch.Tensor) -> torch.Tensor:
        return per_frame(self.net, x_BTCHW)


class PatchDecoder(nn.Module):
    """(B, T, in, h, w) -> (B, T, C, h p, w p): each code through an MLP to its p x p patch."""

    def __init__(self, in_channels: int, width: int, patch: int, channels: int):
        super().__init__()
        self.patch = patch
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 1), nn.SiLU(),
            nn.Conv2d(width, width, 1), nn.SiLU(),
            nn.Conv2d(width, channels * patch * patch, 1),
        )

    def forward(self, z_BTChw: torch.Tensor) -> torch.Tensor:
        return per_frame(lambda z: F.pixel_shuffle(self.net(z), self.patch), z_BTChw)
