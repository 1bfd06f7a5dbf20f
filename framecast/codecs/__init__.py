"""Layer 5, codecs: a clip (B, T, C, H, W) in [-1, 1] <-> a representation in frame order."""

from framecast.codecs.base import Codec, PixelCodec
from framecast.codecs.quantizers import FSQ, LFQ, VQ, build_quantizer
from framecast.codecs.tokenizer import TokenizerConfig, VideoTokenizer
from framecast.codecs.vae import CausalVAE, VAEConfig
from framecast.codecs.wan_vae import WanStreamDecoder, WanVAE
from framecast.codecs.wan_vae_config import WanVAEConfig


def build_codec(vae_config: dict | None) -> Codec:
    """The frozen codec a diffusion model works in: pixels (None) or a causal VAE."""
    if vae_config is None:
        return PixelCodec()
    return CausalVAE(VAEConfig(**vae_config)).requires_grad_(False).eval()

__all__ = ["FSQ", "LFQ", "VQ", "CausalVAE", "Codec", "PixelCodec", "TokenizerConfig", "VAEConfig", "VideoTokenizer", "WanStreamDecoder", "WanVAE", "WanVAEConfig", "build_codec", "build_quantizer"]
