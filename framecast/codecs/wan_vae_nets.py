"""The Wan 2.1 VAE's encoder and decoder stacks, built from `wan_vae_layers`. Module names follow
diffusers' `AutoencoderKLWan` (conv_in, down_blocks, mid_block, up_blocks, norm_out, conv_out)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from framecast.codecs.wan_vae_layers import CausalConv3d, Downsample, FeatureCache, MidBlock, ResidualBlock, RMSNorm, Upsample


class WanEncoder(nn.Module):
    """Video (B, 3, T, H, W) -> (B, out_channels, 1 + (T-1)/tf, H/s, W/s), s = 2 ** (stages - 1),
    tf = 2 ** (temporal downsamples). Stage i: `num_res_blocks` residual blocks at
    base_dim * dim_mult[i] channels, then a downsampler (temporal where temporal[i]) except last."""

    def __init__(self, base_dim: int, out_channels: int, dim_mult: list[int], num_res_blocks: int,
                 temporal: list[bool], dropout: float = 0.0):
        super().__init__()
        dims = [base_dim * m for m in [1, *dim_mult]]
        self.conv_in = CausalConv3d(3, dims[0], 3)
        blocks: list[nn.Module] = []
        for i, cout in enumerate(dims[1:]):
            cin = dims[i]
            for _ in range(num_res_blocks):
                blocks.append(ResidualBlock(cin, cout, dropout))
                cin = cout
            if i < len(dim_mult) - 1:
                blocks.append(Downsample(cout, temporal[i]))
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = MidBlock(dims[-1], dropout)
        self.norm_out = RMSNorm(dims[-1])
        self.conv_out = CausalConv3d(dims[-1], out_channels, 3)

    def forward(self, x_BCTHW: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        x_BCTHW = self.conv_in(x_BCTHW, cache)
        for block in self.down_blocks:
            x_BCTHW = block(x_BCTHW, cache)
        x_BCTHW = self.mid_block(x_BCTHW, cache)
        return self.conv_out(F.silu(self.norm_out(x_BCTHW)), cache)


class UpBlock(nn.Module):
    """`n` residual blocks, then (unless the last stage) an upsampler that halves the channels."""

    def __init__(self, cin: int, cout: int, n: int, upsample: bool, temporal: bool, dropout: float = 0.0):
        super().__init__()
        self.resnets = nn.ModuleList([ResidualBlock(cin if j == 0 else cout, cout, dropout) for j in range(n)])
        self.upsamplers = nn.ModuleList([Upsample(cout, temporal)]) if upsample else None

    def forward(self, x_BCTHW: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        for resnet in self.resnets:
            x_BCTHW = resnet(x_BCTHW, cache)
        return x_BCTHW if self.upsamplers is None else self.upsamplers[0](x_BCTHW, cache)


class WanDecoder(nn.Module):
    """Latents (B, z, T, h, w) -> video (B, 3, 1 + tf (T-1), h s, w s): the encoder mirrored, with one
    more residual block per stage; `temporal` lists the stages (from the lowest resolution) that
    double time."""

    def __init__(self, base_dim: int, z_dim: int, dim_mult: list[int], num_res_blocks: int,
                 temporal: list[bool], dropout: float = 0.0):
        super().__init__()
        dims = [base_dim * m for m in [dim_mult[-1], *dim_mult[::-1]]]
        last = len(dim_mult) - 1
        self.conv_in = CausalConv3d(z_dim, dims[0], 3)
        self.mid_block = MidBlock(dims[0], dropout)
        # Every stage after the first receives the previous upsampler's output: half its channels.
        self.up_blocks = nn.ModuleList([
            UpBlock(dims[i] if i == 0 else dims[i] // 2, dims[i + 1], num_res_blocks + 1,
                    upsample=i < last, temporal=i < last and temporal[i], dropout=dropout)
            for i in range(len(dim_mult))
        ])
        self.norm_out = RMSNorm(dims[-1])
        self.conv_out = CausalConv3d(dims[-1], 3, 3)

    def forward(self, z_BCTHW: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        x_BCTHW = self.mid_block(self.conv_in(z_BCTHW, cache), cache)
        for block in self.up_blocks:
            x_BCTHW = block(x_BCTHW, cache)
        return self.conv_out(F.silu(self.norm_out(x_BCTHW)), cache)
