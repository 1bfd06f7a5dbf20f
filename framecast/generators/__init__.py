"""Layer 3: generators. Each owns one objective (`loss(batch)`) and one sampling loop (`generate(request)`)."""

from framecast.generators.autoregressive import ARConfig, ARRequest, TokenTransformer
from framecast.generators.diffusion import DiffusionConfig, GenerationRequest, ModelSpec, VideoDiffusion
from framecast.generators.hybrid import CausalVideoDiffusion, HybridConfig, HybridRequest
from framecast.generators.io import FORMAT_VERSION, build_generator, from_pretrained, save_pretrained

__all__ = [
    "ARConfig", "ARRequest", "TokenTransformer",
    "FORMAT_VERSION", "CausalVideoDiffusion", "DiffusionConfig", "HybridConfig", "HybridRequest", "GenerationRequest", "ModelSpec", "VideoDiffusion",
    "build_generator", "from_pretrained", "save_pretrained",
]
