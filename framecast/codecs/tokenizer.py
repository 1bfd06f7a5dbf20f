"""A video tokenizer: an encoder, a quantizer (VQ, LFQ or FSQ), a decoder. The encoder and decoder
are causal convolutions (`"conv"`) or per-patch MLPs (`"patch"`: a code is a function of its own
patch alone, a decoded patch of its own code alone; framecast.codecs.patch), chosen apart.
Clip (B, T, 3, H, W) -> codes (B, T, h, w) -> clip. Causal in time, so the first frame is
tokenized alone and an image and a clip share one tokenizer (MAGVIT-v2)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from framecast.codecs.base import Codec, StreamDecoder
from framecast.codecs.conv import ConvDecoder, ConvEncoder, ConvStreamDecoder
from framecast.codecs.patch import PatchDecoder, PatchEncoder
from framecast.codecs.quantizers import build_quantizer


@dataclass(kw_only=True)
class TokenizerConfig:
    quantizer: str = "fsq"  # vq, lfq, fsq
    encoder: str = "conv"  # conv: causal conv encoder; patch: each code from its own patch alone (framecast.codecs.patch)
    decoder: str = "conv"  # conv: causal conv decoder; patch: each patch from its own code alone
    channels: int = 3
    width: int = 32
    stages: int = 3  # spatial downsampling 2 ** stages
    temporal_kernel: int = 3
    codebook_size: int = 1024  # vq
    vq_dim: int = 8  # vq
    bits: int = 10  # lfq
    levels: list[int] = field(default_factory=lambda: [8, 5, 5, 5])  # fsq
    size: int = 32
    frames: int = 16


class VideoTokenizer(Codec):
    family = "tokenizer"

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        c = self.config = config
        self.quantizer = build_quantizer(c.quantizer, dim=c.vq_dim, codebook_size=c.codebook_size, bits=c.bits, levels=c.levels)
        self.latent_channels, self.downsample = self.quantizer.dim, 2**c.stages
        self.codebook_size = self.quantizer.codebook_size
        for part, kind in (("encoder", c.encoder), ("decoder", c.decoder)):
            if kind not in ("conv", "patch"):
                raise ValueError(f"unknown tokenizer {part} '{kind}'; choose conv or patch")
        if c.encoder == "conv":
            self.encoder = ConvEncoder(c.channels, c.width, c.stages, c.temporal_kernel, self.quantizer.dim)
        else:
            self.encoder = PatchEncoder(c.channels, c.width, self.downsample, self.quantizer.dim)
        if c.decoder == "conv":
            self.decoder = ConvDecoder(self.quantizer.dim, c.width, c.stages, c.temporal_kernel, c.channels)
            self.receptive_frames = (c.stages + 1) * (c.temporal_kernel - 1)  # as the VAE's: one causal conv per ResBlock
        else:
            self.decoder = PatchDecoder(self.quantizer.dim, c.width, self.downsample, c.channels)

    def quantize(self, x_BTCHW: torch.Tensor):
        z = self.encoder(x_BTCHW).movedim(2, -1)  # (B, T, h, w, dim)
        return self.quantizer(z)

    def encode(self, x_BTCHW: torch.Tensor) -> torch.Tensor:
        """-> codes (B, T, h, w), long."""
        return self.quantize(x_BTCHW).codes

    def decode(self, codes_BThw: torch.Tensor) -> torch.Tensor:
        return self.decoder(self._decoder_input(codes_BThw))

    def _decoder_input(self, codes_BThw: torch.Tensor) -> torch.Tensor:
        if codes_BThw.dtype != torch.long:
            raise ValueError("the tokenizer decodes integer codes (B, T, h, w)")
        if codes_BThw.min() < 0 or codes_BThw.max() >= self.codebook_size:
            raise ValueError(f"codes must lie in [0, {self.codebook_size}); this tokenizer has {self.codebook_size} codes")
        return self.quantizer.decode_codes(codes_BThw).movedim(-1, 2)

    def stream_decoder(self) -> StreamDecoder | ConvStreamDecoder:
        """Decodes a clip's codes chunk by chunk; with the conv decoder every frame once."""
        if isinstance(self.decoder, ConvDecoder):
            return ConvStreamDecoder(self.decoder, prepare=self._decoder_input)
        return StreamDecoder(self)

    def forward(self, batch: dict, generator=None) -> torch.Tensor:
        """The training loss; `forward` so that DDP and FSDP wrappers see the call."""
        return self.loss(batch, generator)

    def loss(self, batch: dict, generator=None) -> torch.Tensor:
        x = batch["video"]
        q = self.quantize(x)
        recon = self.decoder(q.z_q.movedim(-1, 2)).float()
        return F.l1_loss(recon, x) + F.mse_loss(recon, x) + q.aux_loss

    @classmethod
    def from_spec(cls, spec) -> "VideoTokenizer":
        return cls(TokenizerConfig(**spec.generator))

    def spec(self) -> dict:
        return {"family": self.family, "generator": asdict(self.config), "backbone": {}, "text_kind": "none", "text": {}}
