"""A small video VAE (KL), causal in time: latent frame t depends on video frames <= t only, so a
single image and a clip share one codec, and frame-by-frame generators can decode as they go.

Spatial 2-D convolutions per frame (downsampling by 2 per stage) and temporal convolutions padded
on the past side only (the causal 3-D convolutions of MAGVIT-v2 / CV-VAE, factorised).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from framecast.codecs.base import Codec


@dataclass(kw_only=True)
class VAEConfig:
    channels: int = 3
    latent_channels: int = 4
    width: int = 32
    stages: int = 2  # spatial downsampling 2 ** stages
    temporal_kernel: int = 3
    kl_weight: float = 1e-4
    size: int = 32  # training canvas
    frames: int = 16  # training clip length


class CausalTemporalConv(nn.Module):
    """Conv over time with left padding only: output t sees inputs t - k + 1 .. t."""

    def __init__(self, ch: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(ch, ch, kernel, groups=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x_BTCHW: torch.Tensor) -> torch.Tensor:
        B, T, C, H, W = x_BTCHW.shape
        h = rearrange(x_BTCHW, "b t c h w -> (b h w) c t")
        h = F.pad(h, (self.kernel - 1, 0), mode="replicate")
        return x_BTCHW + rearrange(self.conv(h), "(b h w) c t -> b t c h w", b=B, h=H, w=W)


class ResBlock(nn.Module):
    def __init__(self, ch: int, temporal_kernel: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, ch), nn.Conv2d(ch, ch, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(8, ch), nn.Conv2d(ch, ch, 3, padding=1)
        self.time = CausalTemporalConv(ch, temporal_kernel)

    def forward(self, x_BTCHW: torch.Tensor) -> torch.Tensor:
        B = x_BTCHW.shape[0]
        x = rearrange(x_BTCHW, "b t c h w -> (b t) c h w")
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.time(rearrange(x + h, "(b t) c h w -> b t c h w", b=B))


def _frames(fn, x_BTCHW: torch.Tensor) -> torch.Tensor:
    """Apply a 2-D module to every frame."""
    B = x_BTCHW.shape[0]
    y = fn(rearrange(x_BTCHW, "b t c h w -> (b t) c h w"))
    return rearrange(y, "(b t) c h w -> b t c h w", b=B)


class CausalVAE(Codec):
    family = "vae"

    def __init__(self, config: VAEConfig):
        super().__init__()
        c = self.config = config
        self.latent_channels, self.downsample = c.latent_channels, 2**c.stages
        self.enc_in = nn.Conv2d(c.channels, c.width, 3, padding=1)
        self.enc_blocks = nn.ModuleList(ResBlock(c.width, c.temporal_kernel) for _ in range(c.stages))
        self.enc_down = nn.ModuleList(nn.Conv2d(c.width, c.width, 3, stride=2, padding=1) for _ in range(c.stages))
        self.enc_mid = ResBlock(c.width, c.temporal_kernel)
        self.enc_out = nn.Conv2d(c.width, 2 * c.latent_channels, 3, padding=1)  # mean and log-variance
        self.dec_in = nn.Conv2d(c.latent_channels, c.width, 3, padding=1)
        self.dec_mid = ResBlock(c.width, c.temporal_kernel)
        self.dec_up = nn.ModuleList(nn.Conv2d(c.width, c.width, 3, padding=1) for _ in range(c.stages))
        self.dec_blocks = nn.ModuleList(ResBlock(c.width, c.temporal_kernel) for _ in range(c.stages))
        self.dec_out = nn.Sequential(nn.GroupNorm(8, c.width), nn.SiLU(), nn.Conv2d(c.width, c.channels, 3, padding=1))

    def moments(self, x_BTCHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = _frames(self.enc_in, x_BTCHW)
        for block, down in zip(self.enc_blocks, self.enc_down):
            h = _frames(down, block(h))
        h = _frames(self.enc_out, self.enc_mid(h))
        mean, logvar = h.chunk(2, dim=2)
        return mean, logvar.clamp(-30, 20)

    def encode(self, x_BTCHW: torch.Tensor, generator: torch.Generator | None = None, sample: bool = False) -> torch.Tensor:
        mean, logvar = self.moments(x_BTCHW)
        if not sample:
            return mean
        return mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=generator).to(mean.device)

    def decode(self, z_BTChw: torch.Tensor) -> torch.Tensor:
        h = self.dec_mid(_frames(self.dec_in, z_BTChw))
        for up, block in zip(self.dec_up, self.dec_blocks):
            h = block(_frames(lambda t: up(F.interpolate(t, scale_factor=2, mode="nearest")), h))
        return _frames(self.dec_out, h)

    def loss(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        x = batch["video"]
        mean, logvar = self.moments(x)
        z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=generator).to(mean.device)
        recon = self.decode(z).float()
        # L1 + L2 reconstruction keeps the hard edges of Shapes; the KL keeps latents near N(0, 1).
        rec = F.l1_loss(recon, x) + F.mse_loss(recon, x)
        kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1 - logvar.float()).mean()
        return rec + self.config.kl_weight * kl

    # model-folder protocol (see generators/io.py)
    @classmethod
    def from_spec(cls, spec) -> "CausalVAE":
        return cls(VAEConfig(**spec.generator))

    def spec(self) -> dict:
        return {"family": self.family, "generator": asdict(self.config), "backbone": {}, "text_kind": "none", "text": {}}
