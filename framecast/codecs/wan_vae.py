"""The Wan 2.1 video VAE as a framecast codec: 8x spatial and 4x temporal compression to 16 channels,
causal in time, so a clip's latent frames can be decoded chunk by chunk as they are generated.

Layout and normalisation: `encode` takes a clip (B, T, C, H, W) in [-1, 1] with T = 1 + 4k and gives
the *normalised* posterior mean (B, 1 + k, z, H/8, W/8), `(mean - latents_mean) / latents_std`, which is
what Wan's transformer is trained on and what diffusers' Wan pipelines feed it; `decode` takes
normalised latents and returns the clip clamped to [-1, 1]. `moments` gives the raw posterior.

Time: video frame 0 is encoded alone (latent frame 0), then each group of 4 frames gives one latent
frame; decoding mirrors it (latent 0 -> 1 frame, every later latent -> 4 frames). Causal
convolutions carry their last input frames between chunks in a `FeatureCache`, so encoding in
chunks (first frame, then 4 at a time, as Wan does) and decoding in chunks of any size give what one
pass over the whole clip gives."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from framecast.codecs.base import Codec
from framecast.codecs.wan_vae_config import WanVAEConfig
from framecast.codecs.wan_vae_keys import is_original_layout, original_to_diffusers
from framecast.codecs.wan_vae_layers import CausalConv3d, FeatureCache
from framecast.codecs.wan_vae_nets import WanDecoder, WanEncoder
from framecast.rng import Gen, randn

ENCODE_CHUNK = 4  # video frames per encoder chunk after the first frame (Wan's schedule; bounds memory)


class WanVAE(Codec):
    family = "wan-vae"

    def __init__(self, config: WanVAEConfig):
        super().__init__()
        c = self.config = config.check()
        self.latent_channels, self.downsample, self.temporal_downsample = c.z_dim, c.spatial_factor, c.temporal_factor
        self.encoder = WanEncoder(c.base_dim, 2 * c.z_dim, c.dim_mult, c.num_res_blocks, c.temperal_downsample, c.dropout)
        self.quant_conv = CausalConv3d(2 * c.z_dim, 2 * c.z_dim, 1)
        self.post_quant_conv = CausalConv3d(c.z_dim, c.z_dim, 1)
        self.decoder = WanDecoder(c.decoder_base_dim or c.base_dim, c.z_dim, c.dim_mult, c.num_res_blocks,
                                  c.temperal_downsample[::-1], c.dropout)
        # Not in the state dict (diffusers keeps them in the config): a checkpoint loads strictly.
        self.register_buffer("latents_mean", torch.tensor(c.latents_mean).view(1, 1, -1, 1, 1), persistent=False)
        self.register_buffer("latents_std", torch.tensor(c.latents_std).view(1, 1, -1, 1, 1), persistent=False)

    @classmethod
    def from_config(cls, config: dict | str | Path) -> "WanVAE":
        """From diffusers' `vae/config.json` (a dict or its path); random weights until `load_weights`."""
        return cls(WanVAEConfig.from_diffusers(config))

    def load_weights(self, state_dict: Mapping[str, torch.Tensor]) -> "WanVAE":
        """Load diffusers' `AutoencoderKLWan` keys, or the Wan repository's (converted on the way in)."""
        if is_original_layout(state_dict):
            state_dict = original_to_diffusers(state_dict, self.config.num_res_blocks)
        own = self.state_dict()
        missing, unexpected = own.keys() - state_dict.keys(), state_dict.keys() - own.keys()
        misshapen = sorted(k for k in own.keys() & state_dict.keys() if own[k].shape != state_dict[k].shape)
        if missing or unexpected or misshapen:
            raise ValueError(f"Wan VAE weights do not fit the config: {len(missing)} missing {sorted(missing)[:3]}, "
                             f"{len(unexpected)} unexpected {sorted(unexpected)[:3]}, {len(misshapen)} of another "
                             f"shape {misshapen[:3]}; check that vae/config.json belongs to these weights")
        self.load_state_dict(state_dict)
        return self

    # --- frames <-> latent frames ----------------------------------------------------------
    def video_frames(self, latent_frames: int) -> int:
        """Video frames that `latent_frames` latent frames decode to: 1 + 4 (n - 1), 0 for none."""
        return 0 if latent_frames == 0 else 1 + self.temporal_downsample * (latent_frames - 1)

    def latent_frames(self, video_frames: int) -> int:
        if video_frames < 1 or (video_frames - 1) % self.temporal_downsample:
            raise ValueError(f"the Wan VAE encodes 1 + {self.temporal_downsample}k frames; got {video_frames} "
                             f"(use e.g. {1 + self.temporal_downsample * max(1, (video_frames - 1) // self.temporal_downsample)})")
        return 1 + (video_frames - 1) // self.temporal_downsample

    def normalize(self, z_raw_BTChw: torch.Tensor) -> torch.Tensor:
        return (z_raw_BTChw - self.latents_mean) / self.latents_std

    def denormalize(self, z_BTChw: torch.Tensor) -> torch.Tensor:
        return z_BTChw * self.latents_std + self.latents_mean

    # --- encode ----------------------------------------------------------------------------
    def moments(self, x_BTCHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw (unnormalised) posterior: mean and log-variance, each (B, 1 + (T-1)/4, z, H/8, W/8)."""
        self.latent_frames(x_BTCHW.shape[1])
        x_BCTHW, cache = x_BTCHW.transpose(1, 2), FeatureCache()
        bounds = [0, *range(1, x_BCTHW.shape[2], ENCODE_CHUNK), x_BCTHW.shape[2]]
        h = torch.cat([self.encoder(x_BCTHW[:, :, a:b], cache) for a, b in zip(bounds[:-1], bounds[1:])], dim=2)
        mean, logvar = self.quant_conv(h, cache).transpose(1, 2).chunk(2, dim=2)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, x_BTCHW: torch.Tensor, generator: Gen = None, sample: bool = False) -> torch.Tensor:
        """Normalised latents of a clip in [-1, 1]: the posterior mean, or a draw with `sample`."""
        mean, logvar = self.moments(x_BTCHW)
        if sample:
            mean = mean + (0.5 * logvar).exp() * randn(mean.shape, generator).to(mean.device, mean.dtype)
        return self.normalize(mean)

    # --- decode ----------------------------------------------------------------------------
    def decode_chunk(self, z_BTChw: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        """Decode normalised latent frames that continue the clip whose state `cache` holds."""
        z_BCThw = self.post_quant_conv(self.denormalize(z_BTChw).transpose(1, 2), cache)
        return self.decoder(z_BCThw, cache).clamp(-1.0, 1.0).transpose(1, 2)

    def decode(self, z_BTChw: torch.Tensor, chunk_frames: int | None = None) -> torch.Tensor:
        """Normalised latents (B, n, z, h, w) -> clip (B, 1 + 4 (n-1), 3, 8h, 8w) in [-1, 1]; in one pass,
        or `chunk_frames` latent frames at a time (same frames, less memory)."""
        stream = self.stream_decoder()
        step = chunk_frames or max(1, z_BTChw.shape[1])
        return torch.cat([stream.decode_chunk(z_BTChw[:, i : i + step]) for i in range(0, z_BTChw.shape[1], step)], dim=1)

    def stream_decoder(self) -> "WanStreamDecoder":
        return WanStreamDecoder(self)

    def decode_frames(self, z_BTChw: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """The video frames that latent frames [start, stop) decode to. The decoder's state depends on
        the clip from its first frame, so this decodes latent frames [0, stop); to stream without
        decoding again, keep a `stream_decoder()` and give it each new chunk."""
        return self.decode(z_BTChw[:, :stop])[:, self.video_frames(start) :]


class WanStreamDecoder:
    """Decodes one clip's latent frames chunk by chunk as they are made: chunk after chunk, the frames
    equal those of decoding all the latent frames at once. The first chunk's first latent frame gives
    one video frame, every other latent frame four."""

    def __init__(self, vae: WanVAE):
        self.vae, self.cache, self.latent_frames = vae, FeatureCache(), 0

    def decode_chunk(self, z_BTChw: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, n, z, h, w), the clip's next n latent frames -> their video frames."""
        frames = self.vae.decode_chunk(z_BTChw, self.cache)
        self.latent_frames += z_BTChw.shape[1]
        return frames

