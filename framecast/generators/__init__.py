"""Layer 3: generators. Each owns one objective (`loss(batch)`) and its denoiser or logits; the
shared sampling loop and decoding orders live in framecast.sampling."""

from framecast.generators.autoregressive import ARConfig, TokenTransformer
from framecast.generators.base import GenerationRequest, ModelSpec
from framecast.generators.diffusion import DiffusionConfig, VideoDiffusion
from framecast.generators.hybrid import CausalVideoDiffusion, HybridConfig
from framecast.generators.io import FORMAT_VERSION, build_generator, from_pretrained, save_pretrained

__all__ = [
    "ARConfig", "TokenTransformer",
    "FORMAT_VERSION", "CausalVideoDiffusion", "DiffusionConfig", "HybridConfig", "GenerationRequest", "ModelSpec", "VideoDiffusion",
    "build_generator", "from_pretrained", "save_pretrained",
]
