"""Convolutional encoder and decoder shared by the VAE and the tokenizers: 2-D convolutions per
frame (downsampling by 2 per stage) and temporal convolutions padded on the past side only, so
latent frame t depends on frames <= t (the causal 3-D convolutions of MAGVIT-v2, factorised).

A stream decodes chunk after chunk with a `past` (ConvStreamDecoder): every temporal convolution
keeps its last kernel - 1 input frames there and reads them before the next chunk, so a new frame
costs the decoding of one frame, and the frames equal those of decoding the whole clip at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def per_frame(fn, x_BTCHW: torch.Tensor) -> torch.Tensor:
    """Apply a 2-D module to every frame."""
    B = x_BTCHW.shape[0]
    y = fn(rearrange(x_BTCHW, "b t c h w -> (b t) c h w"))
    return rearrange(y, "(b t) c h w -> b t c h w", b=B)


class CausalTemporalConv(nn.Module):
    """Residual conv over time with left padding only: output t sees inputs t - k + 1 .. t."""

    def __init__(self, ch: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(ch, ch, kernel)
        nn.init.zeros_(self.conv.weight)  # starts as a per-frame image codec
        nn.init.zeros_(self.conv.bias)

    def forward(self, x_BTCHW: torch.Tensor, past: dict | None = None) -> torch.Tensor:
        """`past`: one clip's decoding state (this module -> its last kernel - 1 input frames), read
        before x and renewed; without it, or at the clip's first chunk, the first frame is repeated
        before x."""
        B, T, C, H, W = x_BTCHW.shape
        h = rearrange(x_BTCHW, "b t c h w -> (b h w) c t")
        before = None if past is None else past.get(self)
        h = F.pad(h, (self.kernel - 1, 0), mode="replicate") if before is None else torch.cat([before, h], 2)
        if past is not None and self.kernel > 1:
            past[self] = h[:, :, h.shape[2] - (self.kernel - 1):]
        return x_BTCHW + rearrange(self.conv(h), "(b h w) c t -> b t c h w", b=B, h=H, w=W)


class ResBlock(nn.Module):
    def __init__(self, ch: int, temporal_kernel: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, ch), nn.Conv2d(ch, ch, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(8, ch), nn.Conv2d(ch, ch, 3, padding=1)
        self.time = CausalTemporalConv(ch, temporal_kernel)

    def forward(self, x_BTCHW: torch.Tensor, past: dict | None = None) -> torch.Tensor:
        B = x_BTCHW.shape[0]
        x = rearrange(x_BTCHW, "b t c h w -> (b t) c h w")
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.time(rearrange(x + h, "(b t) c h w -> b t c h w", b=B), past)


class ConvEncoder(nn.Module):
    def __init__(self, channels: int, width: int, stages: int, temporal_kernel: int, out_channels: int):
        super().__init__()
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.ModuleList(ResBlock(width, temporal_kernel) for _ in range(stages))
        self.down = nn.ModuleList(nn.Conv2d(width, width, 3, stride=2, padding=1) for _ in range(stages))
        self.mid = ResBlock(width, temporal_kernel)
        self.out = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, out_channels, 3, padding=1))

    def forward(self, x_BTCHW: torch.Tensor) -> torch.Tensor:
        h = per_frame(self.inp, x_BTCHW)
        for block, down in zip(self.blocks, self.down):
            h = per_frame(down, block(h))
        return per_frame(self.out, self.mid(h))


class ConvDecoder(nn.Module):
    def __init__(self, in_channels: int, width: int, stages: int, temporal_kernel: int, channels: int):
        super().__init__()
        self.inp = nn.Conv2d(in_channels, width, 3, padding=1)
        self.mid = ResBlock(width, temporal_kernel)
        self.up = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(stages))
        self.blocks = nn.ModuleList(ResBlock(width, temporal_kernel) for _ in range(stages))
        self.out = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, channels, 3, padding=1))

    def forward(self, z_BTChw: torch.Tensor, past: dict | None = None) -> torch.Tensor:
        """`past`: a stream's state (see CausalTemporalConv), for decoding a clip chunk by chunk."""
        h = self.mid(per_frame(self.inp, z_BTChw), past)
        for up, block in zip(self.up, self.blocks):
            h = block(per_frame(lambda t: up(F.interpolate(t, scale_factor=2, mode="nearest")), h), past)
        return per_frame(self.out, h)


class ConvStreamDecoder:
    """Decodes one clip chunk by chunk as its latent frames are made, each frame once: `decode_chunk`
    hands the decoder the new frames with the temporal convolutions' kept inputs (its `past`).
    `prepare` maps what the stream is given (latents, or a tokenizer's codes) to the decoder's input."""

    def __init__(self, decoder: ConvDecoder, prepare=None):
        self.decoder, self.prepare, self.past = decoder, prepare, {}

    def decode_chunk(self, z_BTChw: torch.Tensor) -> torch.Tensor:
        """The clip's next latent frames (B, n, ...) -> their n video frames."""
        return self.decoder(z_BTChw if self.prepare is None else self.prepare(z_BTChw), self.past)
