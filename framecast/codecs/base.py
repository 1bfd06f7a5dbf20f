"""The codec interface and the identity codec (pixels, patchified later by the backbone)."""

from __future__ import annotations

import torch
from torch import nn


class Codec(nn.Module):
    """encode: (B, T, 3, H, W) in [-1, 1] -> (B, T, C, h, w); decode: the inverse (approximately).
    Codecs here keep one latent frame per video frame, so frame-causal generators work unchanged;
    the Wan VAE (`temporal_downsample` 4) makes one latent frame of the first frame and of each later 4."""

    latent_channels: int
    downsample: int
    temporal_downsample: int = 1  # video frames per latent frame (after the first)
    receptive_frames: int = 0  # earlier frames a decoded frame depends on (the causal window)

    def encode(self, x_BTCHW: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def decode(self, z_BTChw: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def decode_frames(self, z_BTChw: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Frames [start, stop) of the decoded clip, decoding only what they depend on: the decoder
        is causal, so `receptive_frames` earlier frames make them exact (for streaming)."""
        lo = max(0, start - self.receptive_frames)
        return self.decode(z_BTChw[:, lo:stop])[:, start - lo :]

    def stream_decoder(self) -> "StreamDecoder":
        """A decoder for one clip whose latent frames arrive in order (a stream): give it each new
        chunk with `decode_chunk`."""
        return StreamDecoder(self)


class StreamDecoder:
    """One clip decoded chunk by chunk: `decode_chunk(z)` -> the video frames of its next latent
    frames z, equal to those of decoding the whole clip at once. This one decodes each chunk again
    with the `receptive_frames` latent frames before it; a codec whose decoder can keep its own
    state (the causal conv decoder, the Wan VAE) decodes every frame once instead."""

    def __init__(self, codec: Codec):
        if codec.temporal_downsample != 1:
            raise ValueError("a codec that packs several video frames in a latent frame needs its own stream decoder")
        self.codec, self.before = codec, None

    def decode_chunk(self, z_BTChw: torch.Tensor) -> torch.Tensor:
        z = z_BTChw if self.before is None else torch.cat([self.before, z_BTChw], 1)
        keep = self.codec.receptive_frames
        self.before = z[:, z.shape[1] - keep:] if keep else None
        return self.codec.decode(z)[:, z.shape[1] - z_BTChw.shape[1]:]


class PixelCodec(Codec):
    latent_channels = 3
    downsample = 1

    def encode(self, x_BTCHW: torch.Tensor) -> torch.Tensor:
        return x_BTCHW

    def decode(self, z_BTChw: torch.Tensor) -> torch.Tensor:
        return z_BTChw
