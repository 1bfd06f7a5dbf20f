"""A small video VAE (KL), causal in time: latent frame t depends on video frames <= t only, so a
single image and a clip share one codec, and frame-by-frame generators can decode as they go."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from framecast.codecs.base import Codec
from framecast.codecs.conv import ConvDecoder, ConvEncoder, ConvStreamDecoder
from framecast.rng import randn


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


class CausalVAE(Codec):
    family = "vae"

    def __init__(self, config: VAEConfig):
        super().__init__()
        c = self.config = config
        self.latent_channels, self.downsample = c.latent_channels, 2**c.stages
        self.receptive_frames = (c.stages + 1) * (c.temporal_kernel - 1)  # one causal conv per decoder ResBlock
        self.encoder = ConvEncoder(c.channels, c.width, c.stages, c.temporal_kernel, 2 * c.latent_channels)  # mean, log-variance
        self.decoder = ConvDecoder(c.latent_channels, c.width, c.stages, c.temporal_kernel, c.channels)

    def moments(self, x_BTCHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(x_BTCHW).chunk(2, dim=2)
        return mean, logvar.clamp(-30, 20)

    def encode(self, x_BTCHW: torch.Tensor, generator: torch.Generator | None = None, sample: bool = False) -> torch.Tensor:
        mean, logvar = self.moments(x_BTCHW)
        if not sample:
            return mean
        return mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=generator).to(mean.device)

    def decode(self, z_BTChw: torch.Tensor) -> torch.Tensor:
        return self.decoder(z_BTChw)

    def stream_decoder(self) -> ConvStreamDecoder:
        """Decodes a clip chunk by chunk, every frame once (the temporal convolutions keep their inputs)."""
        return ConvStreamDecoder(self.decoder)

    def forward(self, batch: dict, generator=None) -> torch.Tensor:
        """The training loss; `forward` so that DDP and FSDP wrappers see the call."""
        return self.loss(batch, generator)

    def loss(self, batch: dict, generator=None) -> torch.Tensor:
        c, x = self.config, batch["video"]
        mean, logvar = self.moments(x)
        z = mean + (0.5 * logvar).exp() * randn(mean.shape, generator).to(mean.device)
        recon = self.decode(z).float()
        # L1 + L2 reconstruction keeps the hard edges of Shapes; the KL keeps latents near N(0, 1).
        rec = F.l1_loss(recon, x) + F.mse_loss(recon, x)
        kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1 - logvar.float()).mean()
        return rec + c.kl_weight * kl

    # the model-folder protocol (generators/io.py)
    @classmethod
    def from_spec(cls, spec) -> "CausalVAE":
        return cls(VAEConfig(**spec.generator))

    def spec(self) -> dict:
        return {"family": self.family, "generator": asdict(self.config), "backbone": {}, "text_kind": "none", "text": {}}
