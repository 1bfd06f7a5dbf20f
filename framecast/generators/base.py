"""What every generator shares: the spec a model folder holds; one request type, defaulted and
validated once; the text a request is guided by; the clip's known first frames held through
sampling.

A request carries the options of every family; a family reads its own and refuses the others by
name (`FAMILY_OPTIONS`), so a caller learns at once that, say, `decode` is for token models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import torch

from framecast.generators.checks import check_options, check_sigmas, public
from framecast.generators.prompt_at import check_prompt_at
from framecast.nn.step_cache import StepCache
from framecast.rng import Gen, randn
from framecast.sampling.samplers import per_frame
from framecast.text.encoder import TextEmbedding, TextEncoder, check_negative_prompts, check_prompts, encode_for_guidance


@dataclass(kw_only=True)
class ModelSpec:
    """Everything needed to rebuild a generator: what config.json holds."""

    family: str
    generator: dict = field(default_factory=dict)
    backbone: dict = field(default_factory=dict)
    text_kind: str = "word"
    text: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class GenerationRequest:
    """One generation call. None means "the model's default" (its config)."""

    prompts: list[str]
    negative_prompts: list[str] | None = None
    num_frames: int | None = None
    steps: int | None = None  # denoising steps; for set decoding, passes a token-frame
    guidance: float | None = None  # classifier-free guidance scale (1 = none)
    generator: Gen = None  # one torch.Generator, or a list with one per clip
    # (step, levels, x, x0) -> replacement x or None; called after every sampling step (token
    # models: after every decoding pass as (pass, None, None, None), its return value unused)
    callback: Callable | None = None
    context_BTCHW: torch.Tensor | None = None  # known first frames (image to video, continuation)
    latents: torch.Tensor | None = None  # starting noise, the shape of the representation (denoising families)
    height: int | None = None  # frame size in pixels (Wan models; bundled models make one size)
    width: int | None = None
    # denoising families
    sampler: str | None = None
    shift: float | None = None
    schedule: str | None = None  # noise-level matrix by name: full, autoregressive, pyramid
    # the levels of the steps, highest first, in (0, 1] (diffusers' `sigmas`): they set the steps, and
    # every token-frame of the schedule takes them in place of the model's `shift`ed even levels
    sigmas: tuple[float, ...] | None = None
    # diffusion and hybrid: skip a step's blocks 1.. while block 0's residual moves less than this
    # relative L1 change (0: off); a StepCache instead also counts what it skipped (framecast.nn.step_cache)
    step_cache: float | StepCache | None = None
    # hybrid
    matrix: object | None = None  # a NoiseMatrix; overrides schedule
    context_level: float | None = None  # noise level finished frames are shown at as context
    first_steps: int | None = None  # steps of the first token-frame when nothing comes before it (0: steps)
    # streaming families (hybrid, autoregressive)
    use_cache: bool | None = None
    # hybrid streaming: [(video frame, prompt or one per clip), ...] (framecast.generators.prompt_at)
    prompt_at: list | None = None
    recache: bool | None = None  # at a switch, re-encode the cached context under the new prompt (LongLive)
    # autoregressive
    decode: str | None = None  # raster, diagonal or set
    refine: int | None = None  # Gibbs sweeps a token-frame (set decoding)
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None


COMMON = {"prompts", "negative_prompts", "num_frames", "steps", "guidance", "generator", "callback", "context_BTCHW"}
DENOISING = {"sampler", "shift", "schedule", "latents"}
FAMILY_OPTIONS: dict[str, set[str]] = {
    "diffusion": COMMON | DENOISING | {"step_cache", "sigmas"},
    "hybrid": COMMON | DENOISING | {"sigmas", "matrix", "context_level", "first_steps", "use_cache", "step_cache", "prompt_at", "recache"},
    "autoregressive": COMMON | {"use_cache", "decode", "refine", "temperature", "top_k", "top_p"},
    "wan": COMMON | DENOISING | {"use_cache", "height", "width"},
}
WHO_READS = {  # for the message that refuses an option
    "latents": "diffusion and hybrid models (their starting noise)",
    "sampler": "diffusion and hybrid models", "shift": "diffusion and hybrid models", "schedule": "diffusion and hybrid models",
    "sigmas": "diffusion and hybrid models (a Wan model steps on its scheduler's levels)",
    "matrix": "hybrid models", "first_steps": "hybrid models, which make the first frame before the others",
    "context_level": "hybrid models, which sample frame by frame from context",
    "step_cache": "diffusion and hybrid models (framecast's own backbone)",
    "use_cache": "hybrid and autoregressive models",
    "prompt_at": "hybrid models, which make frames in order and can change prompt mid-stream",
    "recache": "hybrid models with prompt_at", "decode": "autoregressive models", "refine": "autoregressive models",
    "temperature": "autoregressive models", "top_k": "autoregressive models", "top_p": "autoregressive models",
    "height": "Wan models (a bundled model makes one size)", "width": "Wan models (a bundled model makes one size)",
}

HINTS = {"autoregressive": " (it draws tokens: use decode, temperature, top_k and top_p)"}


def resolve(request: GenerationRequest, family: str, defaults: dict) -> GenerationRequest:
    """The request with the model's defaults filled in, checked once for every family: prompts,
    counts, numbers, random generators, tensors, and options another family reads. Every refusal
    names the pipeline's argument (`num_inference_steps`, not the field `steps`)."""
    for f in fields(request):
        if f.name not in FAMILY_OPTIONS[family] and getattr(request, f.name) is not None:
            raise ValueError(f"{public(f.name)} is for {WHO_READS[f.name]}, not for this {family} model{HINTS.get(family, '')}")
    if request.sigmas is not None:  # the levels set the steps, before the model's default fills them
        sigmas = check_sigmas(request.sigmas, request.steps)
        request = replace(request, sigmas=sigmas, steps=len(sigmas))
    filled = {k: v for k, v in defaults.items() if getattr(request, k) is None}
    request = replace(request, prompts=check_prompts(request.prompts, "prompt"), **filled)
    negatives = check_negative_prompts(request.negative_prompts)  # "" is the null prompt: None
    if negatives is not None and len(negatives) not in (1, len(request.prompts)):
        raise ValueError(f"give one negative_prompt or one per prompt ({len(request.prompts)}), got {len(negatives)}")
    request = replace(request, negative_prompts=negatives)
    request = replace(request, **check_options({f.name: getattr(request, f.name) for f in fields(request)}, len(request.prompts)))
    if request.prompt_at is not None:
        request = replace(request, prompt_at=check_prompt_at(request.prompt_at, request.num_frames, len(request.prompts)))
    return request


def starting_noise(request: GenerationRequest, shape: tuple[int, ...]) -> torch.Tensor:
    """The request's `latents` (checked against the shape the model starts from) or Gaussian noise;
    with a list of generators each clip gets its own, so a clip depends on its seed only, not on
    the batch it was drawn in (as in diffusers)."""
    if request.latents is None:
        return randn(shape, request.generator)
    if tuple(request.latents.shape) != tuple(shape):
        raise ValueError(f"latents has shape {tuple(request.latents.shape)}; this request starts from noise of shape {tuple(shape)} "
                         "(clips, frames, channels, height, width of the model's representation)")
    return request.latents.float()


def frames_in_chunks(T: int, chunk: int) -> None:
    """A model that makes clips chunk by chunk asks for a whole number of chunks."""
    if T % chunk:
        raise ValueError(f"num_frames={T}, but this model makes clips in multiples of {chunk} frames; "
                         f"ask for {T + chunk - T % chunk} instead")


def guidance_text(encoder: TextEncoder, request: GenerationRequest) -> tuple[TextEmbedding, bool]:
    """The prompts' embeddings for one batched pass: [conditional; unconditional] when guided
    (the unconditional half is the negative prompt or the learned null prompt), and whether it is."""
    guided = request.guidance != 1.0
    text, uncond = encode_for_guidance(encoder, request.prompts, request.negative_prompts, guided)
    return (TextEmbedding.cat([text, uncond]) if guided else text), guided


class ContextHolder:
    """The clip's first K frames held to given ones: after every step they are replaced by the
    context noised to that step's level (replacement sampling, Song et al. 2021; RePaint)."""

    def __init__(self, context_BKCHW: torch.Tensor, generator: torch.Generator | None):
        self.context, self.generator = context_BKCHW, generator
        self.frames = context_BKCHW.shape[1]

    def place(self, x: torch.Tensor) -> torch.Tensor:
        """The context, clean, in the first frames of x."""
        x = x.clone()
        x[:, : self.frames] = self.context
        return x

    def __call__(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """`level`: one (0-dim) or per token-frame of x, (F,)."""
        noise = torch.randn(self.context.shape, generator=self.generator).to(x.device)
        lvl = per_frame(level.to(x.device), x)
        lvl = lvl[:, : self.frames] if lvl.dim() else lvl
        x = x.clone()
        x[:, : self.frames] = (1 - lvl) * self.context + lvl * noise
        return x

    def then(self, inner: Callable | None) -> Callable:
        """A step callback that holds the context, then runs `inner` (the caller's)."""

        def callback(i, sigma, x, x0):
            x = self(x, sigma)
            out = inner(i, sigma, x, x0) if inner is not None else None
            return x if out is None else out

        return callback
