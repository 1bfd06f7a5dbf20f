"""The Wan 2.1 VAE's configuration, read from a diffusers `vae/config.json` (`AutoencoderKLWan`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# The per-channel statistics of Wan 2.1's 16 latent channels (the Wan repository's `WanVAE` and
# diffusers' config): the transformer sees (z - mean) / std.
WAN21_LATENTS_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                      0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
WAN21_LATENTS_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                     3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)

_KNOWN = {"base_dim", "decoder_base_dim", "z_dim", "dim_mult", "num_res_blocks", "attn_scales", "temperal_downsample",
          "dropout", "latents_mean", "latents_std", "is_residual", "in_channels", "out_channels", "patch_size",
          "scale_factor_temporal", "scale_factor_spatial"}


@dataclass(kw_only=True)
class WanVAEConfig:
    """Field names are diffusers' (`temperal_downsample` keeps its spelling); defaults are Wan 2.1's."""

    base_dim: int = 96
    decoder_base_dim: int | None = None  # None: base_dim
    z_dim: int = 16
    dim_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    num_res_blocks: int = 2
    temperal_downsample: list[bool] = field(default_factory=lambda: [False, True, True])
    dropout: float = 0.0
    latents_mean: list[float] = field(default_factory=lambda: list(WAN21_LATENTS_MEAN))
    latents_std: list[float] = field(default_factory=lambda: list(WAN21_LATENTS_STD))

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(bool(t) for t in self.temperal_downsample)

    def check(self) -> "WanVAEConfig":
        if len(self.temperal_downsample) != len(self.dim_mult) - 1:
            raise ValueError(f"Wan VAE config: temperal_downsample has {len(self.temperal_downsample)} entries, "
                             f"need one per downsampling stage ({len(self.dim_mult) - 1} for dim_mult {self.dim_mult})")
        if self.temporal_factor > 4:
            raise ValueError(f"Wan VAE config: {self.temporal_factor}x temporal downsampling is not supported; "
                             "the encoder takes chunks of 4 frames, so at most 2 stages may downsample time")
        if not len(self.latents_mean) == len(self.latents_std) == self.z_dim:
            raise ValueError(f"Wan VAE config: latents_mean / latents_std have {len(self.latents_mean)} / "
                             f"{len(self.latents_std)} entries; give one per latent channel (z_dim {self.z_dim})")
        return self

    @classmethod
    def from_diffusers(cls, config: dict | str | Path) -> "WanVAEConfig":
        """From diffusers' `AutoencoderKLWan` config (a dict, or the path of `vae/config.json`).
        Refuses variants this implementation does not compute, with a ValueError naming the field."""
        if not isinstance(config, dict):
            config = json.loads(Path(config).read_text())
        name = config.get("_class_name", "AutoencoderKLWan")
        if name != "AutoencoderKLWan":
            raise ValueError(f"VAE config is for {name}, not AutoencoderKLWan; framecast reads Wan 2.1 VAEs only")
        unknown = sorted(k for k in config if not k.startswith("_") and k not in _KNOWN)
        if unknown:
            raise ValueError(f"Wan VAE config has fields framecast does not know: {unknown}; "
                             "it reads diffusers' AutoencoderKLWan config of the Wan 2.1 VAE")
        _refuse_variants(config)
        fields = {k: config[k] for k in cls.__dataclass_fields__ if config.get(k) is not None}
        c = cls(**fields).check()
        for key, want in (("scale_factor_spatial", c.spatial_factor), ("scale_factor_temporal", c.temporal_factor)):
            if config.get(key) not in (None, want):
                raise ValueError(f"Wan VAE config: {key} is {config[key]} but dim_mult / temperal_downsample give {want}")
        return c


def _refuse_variants(config: dict) -> None:
    """Wan 2.2's VAE (is_residual, patch_size 2, 12 input channels, z_dim 48) and attention outside
    the mid blocks are other architectures."""
    if config.get("is_residual") or config.get("patch_size") not in (None, 1) or config.get("in_channels", 3) != 3:
        raise ValueError("this is a Wan 2.2 VAE (is_residual / patch_size / in_channels 12); framecast supports the "
                         "Wan 2.1 VAE (AutoencoderKLWan with is_residual false, no patch_size, 3 channels)")
    if config.get("out_channels", 3) != 3:
        raise ValueError(f"Wan VAE config: out_channels {config['out_channels']} is not supported; videos have 3 channels")
    if config.get("attn_scales"):
        raise ValueError(f"Wan VAE config: attn_scales {config['attn_scales']} is not supported; Wan 2.1 has "
                         "attention in the mid blocks only (attn_scales [])")
