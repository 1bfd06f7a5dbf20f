"""The layers of the Wan 2.1 video VAE (Wan, arXiv 2503.20314, section 3.1): causal 3-D convolutions
whose state between chunks lives in a `FeatureCache`, channel RMS norms, residual blocks, per-frame
spatial attention and the spatial / temporal resamplers. Tensors here are (B, C, T, H, W), the
layout the convolutions want; `WanVAE` converts from framecast's (B, T, C, H, W) at its edge.

Parameter names and shapes follow diffusers' `AutoencoderKLWan`, so its state dicts load as they are."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FeatureCache:
    """What a causal stack must remember between chunks of one clip: for each causal convolution its
    last input frames (`frames`), and the temporal resamplers that have already seen the clip's first
    frame (`started`). A fresh cache is the start of a clip; one cache per clip being streamed."""

    def __init__(self) -> None:
        self.frames: dict[nn.Module, torch.Tensor] = {}
        self.started: set[nn.Module] = set()


def per_frame(fn, x_BCTHW: torch.Tensor) -> torch.Tensor:
    """Apply a 2-D (image) layer to every frame: (B, C, T, H, W) -> (B, C', T, H', W')."""
    B, _, T = x_BCTHW.shape[:3]
    y = fn(x_BCTHW.transpose(1, 2).flatten(0, 1))
    return y.unflatten(0, (B, T)).transpose(1, 2)


class CausalConv3d(nn.Conv3d):
    """A 3-D convolution padded in time on the left only, so output frame t sees input frames <= t.
    The `history = kernel_t - 1` frames before a chunk come from the cache (zeros at the clip's start),
    so a clip fed in chunks of any size gives the output it gives in one go."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int, int]):
        kt, kh, kw = (kernel,) * 3 if isinstance(kernel, int) else kernel
        super().__init__(cin, cout, (kt, kh, kw), padding=(0, kh // 2, kw // 2))
        self.history = kt - 1

    def forward(self, x_BCTHW: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        if self.history:
            past = cache.frames.get(self)
            if past is None:
                past = x_BCTHW.new_zeros((*x_BCTHW.shape[:2], self.history, *x_BCTHW.shape[3:]))
            x_BCTHW = torch.cat([past, x_BCTHW], dim=2)
            cache.frames[self] = x_BCTHW[:, :, -self.history :].clone()
        return super().forward(x_BCTHW)


class RMSNorm(nn.Module):
    """RMS norm over channels (dim 1) with a learned per-channel gain, computed in fp32 for half
    precision inputs. `gamma` is (C, 1, 1, 1) for video and (C, 1, 1) for images, as checkpoints store it."""

    def __init__(self, channels: int, video: bool = True):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels, *((1,) * (3 if video else 2))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x / ||x|| * sqrt(C) is x / rms(x); F.normalize guards the zero vector.
        y = F.normalize(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x, dim=1).to(x.dtype)
        return y * (x.shape[1] ** 0.5) * self.gamma


class ResidualBlock(nn.Module):
    """norm -> SiLU -> causal conv -> norm -> SiLU -> dropout -> causal conv, plus a (1x1x1) shortcut."""

    def __init__(self, cin: int, cout: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = RMSNorm(cin), CausalConv3d(cin, cout, 3)
        self.norm2, self.conv2 = RMSNorm(cout), CausalConv3d(cout, cout, 3)
        self.dropout = nn.Dropout(dropout)
        self.conv_shortcut = CausalConv3d(cin, cout, 1) if cin != cout else None

    def forward(self, x_BCTHW: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        skip = x_BCTHW if self.conv_shortcut is None else self.conv_shortcut(x_BCTHW, cache)
        h = self.conv1(F.silu(self.norm1(x_BCTHW)), cache)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))), cache)
        return h + skip


class FrameAttention(nn.Module):
    """Single-head self-attention over the pixels of each frame (no attention across time, so it is
    causal and chunk-independent), with a residual connection."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = RMSNorm(channels, video=False)
        self.to_qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def attend(self, x_NCHW: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x_NCHW.shape
        qkv_NL3C = self.to_qkv(self.norm(x_NCHW)).flatten(2).transpose(1, 2)
        q, k, v = (t.unsqueeze(1) for t in qkv_NL3C.chunk(3, dim=-1))  # (N, 1 head, H*W, C)
        out_NLC = F.scaled_dot_product_attention(q, k, v).squeeze(1)
        return self.proj(out_NLC.transpose(1, 2).reshape(N, C, H, W))

    def forward(self, x_BCTHW: torch.Tensor) -> torch.Tensor:
        return x_BCTHW + per_frame(self.attend, x_BCTHW)


class MidBlock(nn.Module):
    """residual block -> frame attention -> residual block, at the lowest resolution."""

    def __init__(self, channels: int, dropout: float = 0.0):
        super().__init__()
        self.resnets = nn.ModuleList([ResidualBlock(channels, channels, dropout) for _ in range(2)])
        self.attentions = nn.ModuleList([FrameAttention(channels)])

    def forward(self, x_BCTHW: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        x_BCTHW = self.resnets[0](x_BCTHW, cache)
        return self.resnets[1](self.attentions[0](x_BCTHW), cache)


class NearestUp2d(nn.Module):
    """2x nearest ('nearest-exact') spatial upsampling, computed in fp32 (bf16 lacks the kernel on some devices)."""

    def forward(self, x_NCHW: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x_NCHW.float(), scale_factor=2.0, mode="nearest-exact").type_as(x_NCHW)


class Downsample(nn.Module):
    """Halve H and W (pad right/bottom, stride-2 3x3 conv); with `temporal`, then halve time with a
    stride-2 kernel-3 conv that keeps the clip's first frame alone: frames 1 + 2k -> 1 + k.
    Between chunks it remembers the chunk's last frame, the left edge of the next window."""

    def __init__(self, channels: int, temporal: bool):
        super().__init__()
        self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(channels, channels, 3, stride=2))
        self.time_conv = nn.Conv3d(channels, channels, (3, 1, 1), stride=(2, 1, 1)) if temporal else None

    def forward(self, x_BCTHW: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        x_BCTHW = per_frame(self.resample, x_BCTHW)
        if self.time_conv is None:
            return x_BCTHW
        past = cache.frames.get(self)
        cache.frames[self] = x_BCTHW[:, :, -1:].clone()
        if past is not None:  # windows (2k, 2k+1, 2k+2) continue from the previous chunk's last frame
            return self.time_conv(torch.cat([past, x_BCTHW], dim=2))
        first = x_BCTHW[:, :, :1]
        return torch.cat([first, self.time_conv(x_BCTHW)], dim=2) if x_BCTHW.shape[2] >= 3 else first


class Upsample(nn.Module):
    """With `temporal`, double time first: a causal conv makes two frames out of each latent frame
    (channels split into the pair), except the clip's very first frame, which stays one frame; so
    frames 1 + k -> 1 + 2k. The temporal conv starts from zeros at the second frame, as Wan does.
    Then double H and W (nearest) and halve the channels with a 3x3 conv."""

    def __init__(self, channels: int, temporal: bool):
        super().__init__()
        self.resample = nn.Sequential(NearestUp2d(), nn.Conv2d(channels, channels // 2, 3, padding=1))
        self.time_conv = CausalConv3d(channels, 2 * channels, (3, 1, 1)) if temporal else None

    def double_time(self, x_BCTHW: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        first = None
        if self not in cache.started:
            cache.started.add(self)
            first, x_BCTHW = x_BCTHW[:, :, :1], x_BCTHW[:, :, 1:]
        if x_BCTHW.shape[2]:
            B, C, T, H, W = x_BCTHW.shape
            pair = self.time_conv(x_BCTHW, cache).view(B, 2, C, T, H, W)
            x_BCTHW = pair.permute(0, 2, 3, 1, 4, 5).reshape(B, C, 2 * T, H, W)  # (t, 0), (t, 1), (t+1, 0), ...
        return x_BCTHW if first is None else torch.cat([first, x_BCTHW], dim=2)

    def forward(self, x_BCTHW: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        if self.time_conv is not None:
            x_BCTHW = self.double_time(x_BCTHW, cache)
        return per_frame(self.resample, x_BCTHW)
