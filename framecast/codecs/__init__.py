"""Layer 5, codecs: a clip (B, T, C, H, W) in [-1, 1] <-> a representation in frame order."""

from framecast.codecs.base import Codec, PixelCodec
from framecast.codecs.vae import CausalVAE, VAEConfig

__all__ = ["CausalVAE", "Codec", "PixelCodec", "VAEConfig"]
