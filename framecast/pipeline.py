"""The callable pipeline: `pipe = framecast.load("shapes-diffusion"); video = pipe(prompt, ...)`.

It resolves a bundled name or a folder, validates the request in plain sentences, runs the
generator (in bfloat16 autocast where the hardware has bf16 arithmetic, fp32 elsewhere: see
framecast.precision) and returns uint8 frames.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from framecast.generators import GenerationRequest, from_pretrained
from framecast.generators.io import CONFIG_NAME, WEIGHTS_NAME, read_config
from framecast.precision import autocast, check_precision, resolve_precision
from framecast.video import as_frames, from_uint8, read_image, read_video, to_uint8

ASSETS = Path(__file__).parent / "assets"
GENERATOR_FAMILIES = ("diffusion", "hybrid", "autoregressive")
# family options a call may pass by keyword (each generator refuses another family's)
OPTIONS = {"sampler", "shift", "schedule", "use_cache", "context_level", "decode", "temperature", "top_k", "top_p", "refine"}


def bundled_models() -> dict[str, Path]:
    if not ASSETS.is_dir():
        return {}
    return {p.name: p for p in sorted(ASSETS.iterdir()) if (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file()}


def resolve_model(name_or_path: str | Path) -> Path:
    bundled = bundled_models()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    path = Path(name_or_path)
    if path.is_dir():
        return path
    known = ", ".join(bundled) or "none are installed"
    raise ValueError(f"no model '{name_or_path}': give a bundled name ({known}) or a model folder")


def model_card(path: Path) -> dict:
    """What `framecast models` shows: family, parameters, size on disk, measured scores."""
    config = read_config(path)
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    scores_path = path / "scores.json"
    scores = json.loads(scores_path.read_text()) if scores_path.is_file() else {}
    from safetensors import safe_open

    with safe_open(str(path / WEIGHTS_NAME), "pt") as f:
        n_params = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    return {"name": path.name, "family": config.get("family"), "params": n_params, "size_mb": size / 2**20, "scores": scores, "path": str(path)}


@dataclass
class VideoPipelineOutput:
    frames: list[np.ndarray]  # one (T, H, W, 3) uint8 array per clip
    seconds: float = 0.0
    info: dict = field(default_factory=dict)


class Pipeline:
    def __init__(self, model: torch.nn.Module, *, name: str = "", path: Path | None = None, precision: str = "auto"):
        self.model, self.name, self.path, self.requested_precision = model, name, path, check_precision(precision)

    @property
    def precision(self) -> str:
        """'bf16' or 'fp32': the requested precision resolved for the device the model is on now."""
        return resolve_precision(self.requested_precision, self.device)

    @property
    def config(self):
        return self.model.config

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return f"Pipeline({self.name!r}, family={self.model.family}, params={n / 1e6:.2f}M, precision={self.precision})"

    def _context(self, image, video, context_frames: int | None, num_frames: int) -> torch.Tensor | None:
        c = self.model.config
        if image is not None and video is not None:
            raise ValueError("give either an image or a video to start from, not both")
        if image is None and video is None:
            if context_frames:
                raise ValueError("context frames need a video to continue (--video PATH)")
            return None
        if image is not None:
            frames = read_image(image)[None] if isinstance(image, (str, Path)) else as_frames(np.asarray(image))
            frames = frames[:1]
        else:
            frames = read_video(video) if isinstance(video, (str, Path)) else as_frames(video)
            k = context_frames if context_frames is not None else frames.shape[0]
            if k <= 0:
                raise ValueError(f"context frames must be > 0, got {k}")
            if k > frames.shape[0]:
                raise ValueError(f"asked for {k} context frames but the video has only {frames.shape[0]}")
            frames = frames[:k]
        if frames.shape[1:3] != (c.size, c.size):
            raise ValueError(
                f"the given frames are {frames.shape[2]}x{frames.shape[1]} but this model makes {c.size}x{c.size}; resize them first"
            )
        if frames.shape[0] >= num_frames:
            raise ValueError(f"the context ({frames.shape[0]} frames) must be shorter than the clip ({num_frames} frames)")
        return from_uint8(frames)[None]  # (1, K, C, H, W)

    def _request(self, prompt, negative_prompt=None, num_frames=None, num_inference_steps=None, guidance_scale=None, generator=None,
                 callback_on_step_end=None, *, image=None, video=None, context_frames=None, num_videos_per_prompt=1,
                 **options) -> GenerationRequest:
        """The call's arguments as one request; the generator fills its defaults and refuses
        options of another family (framecast.generators.base)."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise ValueError("no prompt given")
        prompts = [p for p in prompts for _ in range(num_videos_per_prompt)]
        negatives = None
        if negative_prompt is not None:
            negatives = [negative_prompt] if isinstance(negative_prompt, str) else list(negative_prompt)
            if len(negatives) not in (1, len(prompts)):
                raise ValueError(f"give one negative prompt or one per prompt ({len(prompts)}), got {len(negatives)}")
        T = num_frames if num_frames is not None else self.model.config.frames
        if T <= 0:
            raise ValueError(f"the number of frames must be > 0, got {T}")
        context = self._context(image, video, context_frames, T)
        if context is not None:
            context = context.expand(len(prompts), -1, -1, -1, -1)
        callback = None
        if callback_on_step_end is not None:

            def callback(i, sigma, x, x0):
                if sigma.dim() and (sigma == sigma[0]).all():  # a row of the full matrix is one level
                    sigma = sigma[0]
                out = callback_on_step_end(self, i, sigma, {"latents": x, "x0": x0})
                return out.get("latents") if isinstance(out, dict) else None

        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise ValueError(f"unknown option '{unknown[0]}'; the pipeline takes {', '.join(sorted(OPTIONS))}")
        return GenerationRequest(prompts=prompts, negative_prompts=negatives, num_frames=T, steps=num_inference_steps,
                                 guidance=guidance_scale, generator=generator, callback=callback, context_BTCHW=context, **options)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> Pipeline:
        """Move the model, as `pipe.to("cuda")` in diffusers; returns the pipeline."""
        self.model.to(resolve_device(device))
        return self

    def _autocast(self):
        return autocast(self.precision, self.device)

    def __call__(self, prompt: str | list[str], negative_prompt=None, num_frames: int | None = None,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 generator: torch.Generator | list[torch.Generator] | None = None, callback_on_step_end: Callable | None = None,
                 **kwargs) -> VideoPipelineOutput:
        """Generate clips. Keyword options: sampler, shift, image, video, context_frames,
        num_videos_per_prompt; for hybrid models schedule ('autoregressive', 'pyramid', 'full'),
        use_cache and context_level (the noise level finished frames are seen at as context); for
        autoregressive models decode ('raster', 'diagonal', 'set'), temperature, top_k, top_p,
        refine (Gibbs sweeps a token-frame, set decoding) and use_cache.
        `callback_on_step_end(pipe, step, sigma, {"latents", "x0"})` may return {"latents": x}
        to replace the sample, as in diffusers."""
        sibling = self._decoded_by(kwargs.get("decode"))
        if sibling is not None:
            out = sibling(prompt, negative_prompt, num_frames, num_inference_steps, guidance_scale, generator, callback_on_step_end, **kwargs)
            out.info["decoded_by"] = sibling.name
            return out
        request = self._request(prompt, negative_prompt, num_frames, num_inference_steps, guidance_scale, generator,
                                callback_on_step_end, **kwargs)
        start = time.perf_counter()
        with self._autocast():
            clips = self.model.generate(request)
        seconds = time.perf_counter() - start
        return VideoPipelineOutput(frames=[to_uint8(c) for c in clips], seconds=seconds, info={"model": self.name})

    def _decoded_by(self, decode: str | None) -> Pipeline | None:
        """A token model decodes in the orders its objective trained it for (set, or raster and
        diagonal). A bundle's config may name a sibling for the others (`decode_with`, e.g. a
        set model naming a raster-order model over the same tokenizer); it is loaded on first use,
        on this pipeline's device and precision."""
        if decode is None or self.model.family != "autoregressive" or self.path is None:
            return None
        if (decode == "set") == (self.model.config.order == "set"):
            return None  # an order its objective trained it for: the generator decodes it
        name = read_config(self.path).get("decode_with", {}).get(decode)
        if name is None:
            return None  # no sibling: the generator says why not
        siblings = self.__dict__.setdefault("_siblings", {})
        if name not in siblings:
            siblings[name] = load(name, device=self.device, precision=self.requested_precision)
        return siblings[name]

    def noise_matrix(self, prompt: str | list[str], **kwargs):
        """The noise-level matrix a call with these arguments would step (diffusion and hybrid)."""
        if not hasattr(self.model, "noise_matrix"):
            raise ValueError(f"'{self.name}' is a {self.model.family} model: it draws tokens, it has no noise-level matrix")
        return self.model.noise_matrix(self._request(prompt, **kwargs))

    def stream(self, prompt: str, **kwargs) -> Iterator[np.ndarray]:
        """Yield (k, H, W, 3) uint8 frames of the first clip as soon as they are final (hybrid models).
        The request is checked here, before the first frame is asked for, so a caller learns of a
        bad request before it opens its output."""
        if not hasattr(self.model, "stream"):
            raise ValueError(f"'{self.name}' is a {self.model.family} model, which makes all frames at once; streaming needs a hybrid model")
        request = self._request(prompt, **kwargs)

        def frames() -> Iterator[np.ndarray]:
            with self._autocast():
                for chunk in self.model.stream(request):
                    yield to_uint8(chunk[:1])

        return frames()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' is the GPU when PyTorch sees one, else the CPU; an unavailable device is a clear error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' asked for but PyTorch sees no CUDA GPU here; use --device cpu (or auto)")
    return dev


def load(name_or_path: str | Path, *, device: str | torch.device = "auto", precision: str = "auto") -> Pipeline:
    """A bundled name or a model folder -> a Pipeline on `device` (auto: the GPU when there is one),
    computing in `precision` (auto: bf16 where the hardware has it, else fp32)."""
    device = resolve_device(device)
    check_precision(precision)  # before the weights are read
    path = resolve_model(name_or_path)
    family = read_config(path).get("family")
    if family not in GENERATOR_FAMILIES:
        raise ValueError(f"'{path.name}' is a {family} (a codec), not a video generator; load a diffusion, hybrid or autoregressive model")
    model = from_pretrained(path, device=device)
    return Pipeline(model, name=path.name, path=path, precision=precision)
