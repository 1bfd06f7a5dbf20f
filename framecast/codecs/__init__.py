"""Layer 5, codecs: a clip (B, T, C, H, W) in [-1, 1] <-> a representation in frame order."""

from framecast.codecs.base import Codec, PixelCodec
from framecast.codecs.quantizers import FSQ, LFQ, VQ, build_quantizer
from framecast.codecs.tokenizer import TokenizerConfig, VideoTokenizer
from framecast.codecs.vae import CausalVAE, VAEConfig

__all__ = ["FSQ", "LFQ", "VQ", "CausalVAE", "Codec", "PixelCodec", "TokenizerConfig", "VAEConfig", "VideoTokenizer", "build_quantizer"]
