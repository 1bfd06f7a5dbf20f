"""The callable pipeline: `pipe = framecast.load("shapes-diffusion"); video = pipe(prompt, ...)`.

It resolves a bundled name or a folder, validates the request in plain sentences, runs the
generator (in bfloat16 autocast where the hardware has bf16 arithmetic, fp32 elsewhere: see
framecast.precision) and returns frames as `output_type` asks (uint8 arrays by default).
"""

from __future__ import annotations

import contextlib
import json
import resource
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from framecast.generators import GenerationRequest, from_pretrained
from framecast.generators.budget import check_budget
from framecast.generators.checks import check_int
from framecast.generators.wan_folder import WAN_MODEL_TYPES
from framecast.nn.step_cache import StepCache
from framecast.generators.io import CONFIG_NAME, WEIGHTS_NAME, read_config
from framecast.precision import autocast, check_precision, resolve_precision
from framecast.text.encoder import check_negative_prompts, check_prompts, shorten
from framecast.video import as_frames, from_uint8, read_image, read_video, to_uint8

ASSETS = Path(__file__).parent / "assets"
GENERATOR_FAMILIES = ("diffusion", "hybrid", "autoregressive")
# family options a call may pass by keyword (each generator refuses another family's)
OPTIONS = {"sampler", "shift", "sigmas", "schedule", "use_cache", "context_level", "decode", "temperature", "top_k", "top_p", "refine",
           "step_cache", "prompt_at", "recache", "first_steps"}


def bundled_models() -> dict[str, Path]:
    if not ASSETS.is_dir():
        return {}
    return {p.name: p for p in sorted(ASSETS.iterdir()) if (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file()}


def resolve_model(name_or_path: str | Path) -> Path:
    if not isinstance(name_or_path, (str, Path)):
        raise ValueError(f"the model must be a bundled name or a folder path, got {type(name_or_path).__name__}")
    bundled = bundled_models()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    path = Path(name_or_path)
    try:
        if path.is_dir():
            return path
    except (OSError, ValueError):  # a name too long or with a NUL byte is no folder
        pass
    known = ", ".join(bundled) or "none are installed"
    raise ValueError(f"no model '{shorten(str(name_or_path))}': give a bundled name ({known}) or a model folder")


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


OUTPUT_TYPES = ("np", "pt", "pil", "latent")
CALLBACK_TENSORS = ("latents", "x0")
CALL_ARGUMENTS = (
    "prompt", "negative_prompt", "height", "width", "num_frames", "num_inference_steps", "guidance_scale", "num_videos_per_prompt",
    "generator", "latents", "output_type", "callback_on_step_end", "callback_on_step_end_tensor_inputs", "image", "video",
    "context_frames",
)


@dataclass
class VideoPipelineOutput:
    """`frames` as `output_type` asked: "np" a list of (T, H, W, 3) uint8 arrays, one a clip; "pt" a
    float tensor (B, T, 3, H, W) in [0, 1]; "pil" a list of lists of PIL images; "latent" the
    representation before decoding (latents (B, T, C, h, w) for diffusion and hybrid models,
    codes (B, T, h, w) for token models)."""

    frames: list | torch.Tensor
    seconds: float = 0.0
    info: dict = field(default_factory=dict)
    output_type: str = "np"


def check_output_type(output_type) -> str:
    if not isinstance(output_type, str) or output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {', '.join(repr(t) for t in OUTPUT_TYPES)}, got {shorten(repr(output_type))}")
    return output_type


def as_output(clips_BTCHW: torch.Tensor, output_type: str) -> list | torch.Tensor:
    """Decoded clips in [-1, 1] -> frames as `output_type` asks (diffusers' conventions; "np" stays
    framecast's uint8 frames)."""
    if output_type == "pt":
        return ((clips_BTCHW.detach().float().cpu() + 1) / 2).clamp(0, 1)
    frames = [to_uint8(c) for c in clips_BTCHW]
    if output_type == "pil":
        return [[Image.fromarray(f) for f in clip] for clip in frames]
    return frames


def unknown_arguments(kwargs: dict) -> None:
    unknown = sorted(set(kwargs) - set(CALL_ARGUMENTS) - OPTIONS)
    if unknown:
        raise ValueError(f"unknown argument '{shorten(unknown[0], 40)}'; the pipeline takes {', '.join(CALL_ARGUMENTS)}, "
                         f"and by family {', '.join(sorted(OPTIONS))}")


class Pipeline:
    _callback_tensor_inputs = list(CALLBACK_TENSORS)

    def __init__(self, model: torch.nn.Module, *, name: str = "", path: Path | None = None, precision: str = "auto"):
        self.model, self.name, self.path, self.requested_precision = model, name, path, check_precision(precision)
        self.use_siblings = True  # False: a token model decodes every order itself, whatever its `decode_with` names

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

    def _check_size(self, height, width) -> None:
        """The bundled generators make one canvas; another size is refused, not resized."""
        side = self.model.config.size
        for name, value in (("height", height), ("width", width)):
            if value is not None and check_int(name, value, 1) != side:
                raise ValueError(f"{name}={value}, but this model makes {side}x{side} frames; leave height and width out or pass {side}")

    def _size(self, height, width) -> dict:
        """The request's frame size fields: none for a bundled model, which makes one size."""
        self._check_size(height, width)
        return {}

    def _check_budget(self, clips: int, T: int, kwargs: dict) -> None:
        windowed = self.model.family == "hybrid" and kwargs.get("use_cache") is not False and kwargs.get("schedule") != "full"
        check_budget(self.model, clips, T, self.device, windowed=windowed)

    def _context(self, image, video, context_frames, num_frames: int) -> torch.Tensor | None:
        """The known first frames (image to video, continuation) as a (1, K, 3, H, W) clip."""
        if image is not None and video is not None:
            raise ValueError("give either image or video to start from, not both")
        if image is None and video is None:
            if context_frames is not None:
                raise ValueError("context_frames needs a video to continue (video=...)")
            return None
        if image is not None:
            if context_frames not in (None, 1):
                raise ValueError(f"context_frames is for video=; an image is one frame, got context_frames={shorten(repr(context_frames))}")
            frames = given_frames("image", read_image(image)[None] if isinstance(image, (str, Path)) else image)[:1]
        else:
            frames = given_frames("video", read_video(video) if isinstance(video, (str, Path)) else video)
            k = frames.shape[0] if context_frames is None else check_int("context_frames", context_frames, 1)
            if k > frames.shape[0]:
                raise ValueError(f"context_frames={k}, but the video has only {frames.shape[0]} frames")
            frames = frames[:k]
        if frames.shape[0] >= num_frames:
            raise ValueError(f"the context ({frames.shape[0]} frames) must be shorter than the clip (num_frames={num_frames})")
        return fit_frames(frames, self.model.config.size, "image" if image is not None else "video")[None]

    def _step_callback(self, callback_on_step_end, tensor_inputs) -> Callable | None:
        """The user's `callback_on_step_end(pipe, step, timestep, callback_kwargs)` as the sampler's
        step callback. It gets the tensors named in `callback_on_step_end_tensor_inputs` ("latents",
        the sample, and "x0", the step's clean estimate) and returns the kwargs, possibly with a
        replaced "latents" (diffusers' convention); None leaves the sample as it is. A token model
        calls it after every decoding pass with timestep None and empty kwargs (see `_pass_callback`)."""
        if callback_on_step_end is None:
            if tensor_inputs is not None:
                raise ValueError("callback_on_step_end_tensor_inputs needs a callback_on_step_end")
            return None
        if not callable(callback_on_step_end):
            raise ValueError(f"callback_on_step_end must be a function, got {type(callback_on_step_end).__name__}")
        names = check_tensor_inputs(tensor_inputs)
        if self.model.family == "autoregressive":
            return self._pass_callback(callback_on_step_end, names if tensor_inputs is not None else [])

        def callback(i, sigma, x, x0):
            if sigma.dim() and (sigma == sigma[0]).all():  # a row of the full matrix is one level
                sigma = sigma[0]
            available = {"latents": x, "x0": x0}
            out = callback_on_step_end(self, i, sigma, {k: available[k] for k in names})
            return checked_callback_latents(out, x)

        return callback

    def _pass_callback(self, callback_on_step_end, names: list[str]) -> Callable:
        """A token model's step callback: `callback_on_step_end(pipe, pass, None, {})` after every
        decoding pass, pass counting from 0 to `total_steps(...) - 1`. A token model draws codes,
        not latents: there is no timestep and no tensor to show or replace, so the callback returns
        None or the empty kwargs it was given."""
        if names:
            raise ValueError(f"callback_on_step_end_tensor_inputs: this autoregressive model draws tokens and has no "
                             f"{' or '.join(repr(n) for n in names)}; leave it out (the callback gets empty callback_kwargs)")

        def callback(i, _level, _x, _x0):
            out = callback_on_step_end(self, i, None, {})
            if out is not None and (not isinstance(out, dict) or out):
                raise ValueError(f"callback_on_step_end returned {shorten(repr(out))}; a token model has no latents to replace: "
                                 "return the callback_kwargs it was given (an empty dict) or None")

        return callback

    def _request(self, prompt=None, **kwargs) -> GenerationRequest:
        """The call's arguments, checked, as one request; the generator fills its defaults and
        checks the rest once (framecast.generators.base.resolve)."""
        unknown_arguments(kwargs)
        a = {name: kwargs.pop(name, None) for name in CALL_ARGUMENTS if name != "prompt"}
        prompts = check_prompts(prompt, "prompt")
        n = check_int("num_videos_per_prompt", 1 if a["num_videos_per_prompt"] is None else a["num_videos_per_prompt"], 1)
        size = self._size(a["height"], a["width"])
        T = check_int("num_frames", a["num_frames"], 1) if a["num_frames"] is not None else self.model.config.frames
        self._check_budget(len(prompts) * n, T, kwargs)
        prompts = [p for p in prompts for _ in range(n)]
        context = self._context(a["image"], a["video"], a["context_frames"], T)
        if context is not None:
            context = context.expand(len(prompts), -1, -1, -1, -1)
        negatives = check_negative_prompts(a["negative_prompt"])  # "" is the null prompt (None)
        if negatives is not None:
            if len(negatives) not in (1, len(prompts)):
                raise ValueError(f"give one negative_prompt or one per clip ({len(prompts)}), got {len(negatives)}")
        if kwargs.get("sigmas") is not None and kwargs.get("shift") is not None:
            raise ValueError("shift spaces the model's own levels and sigmas gives the levels: pass one of the two")
        if kwargs.get("step_cache") is not None and not isinstance(kwargs["step_cache"], StepCache):
            kwargs["step_cache"] = StepCache(kwargs["step_cache"])  # checked by the generator; counts the passes it skips, for info
        return GenerationRequest(prompts=prompts, negative_prompts=negatives, num_frames=T, steps=a["num_inference_steps"],
                                 guidance=a["guidance_scale"], generator=a["generator"], latents=a["latents"], context_BTCHW=context,
                                 callback=self._step_callback(a["callback_on_step_end"], a["callback_on_step_end_tensor_inputs"]),
                                 **size, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> Pipeline:
        """Move the model, as `pipe.to("cuda")` in diffusers; returns the pipeline."""
        self.model.to(resolve_device(device))
        return self

    def _autocast(self):
        return autocast(self.precision, self.device)

    def __call__(self, prompt: str | list[str] | None = None, negative_prompt=None, num_frames: int | None = None,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 generator: torch.Generator | list[torch.Generator] | None = None, callback_on_step_end: Callable | None = None,
                 **kwargs) -> VideoPipelineOutput:
        """Generate clips, in diffusers' conventions.

        Arguments: prompt (a string or a list), negative_prompt, height and width (the model's
        canvas: bundled models make one size), num_frames, num_inference_steps, guidance_scale,
        num_videos_per_prompt, generator (one torch.Generator or one per clip), latents (starting
        noise, the shape of the representation: diffusion and hybrid models), output_type ("np":
        uint8 (T, H, W, 3) arrays, "pt", "pil" or "latent": see VideoPipelineOutput),
        callback_on_step_end(pipe, step, timestep, callback_kwargs) -> callback_kwargs (may
        replace "latents"; token models call it after every decoding pass with timestep None and
        empty kwargs), callback_on_step_end_tensor_inputs ("latents", "x0"), image or video
        to start from (another size is resized, with a warning) and context_frames.
        By family: sampler, shift, sigmas (diffusion and hybrid models: the levels of the steps,
        highest first, e.g. [1.0, 0.75, 0.5, 0.25]; they set num_inference_steps); for hybrid models
        schedule ('autoregressive', 'pyramid', 'full'), use_cache, context_level, first_steps (steps
        of the first frame when nothing comes before it: a few-step student lays the scene out
        there), and prompt_at=[(frame, prompt), ...] (the prompt changes at those video frames; a
        prompt is a string or one per clip) with recache (default True: at a switch the cached
        context is re-encoded under the new prompt); for autoregressive models decode ('raster',
        'diagonal', 'set'), temperature, top_k, top_p and refine. For diffusion and hybrid models
        step_cache=THRESHOLD (e.g. 0.1; 0, the default, is off) reuses a step's later blocks while
        the first block's output barely changes (framecast.nn.step_cache); `info["step_cache"]` then
        counts the block passes skipped. Every bad argument is a ValueError that names it, raised
        before any work."""
        kwargs.update(negative_prompt=negative_prompt, num_frames=num_frames, num_inference_steps=num_inference_steps,
                      guidance_scale=guidance_scale, generator=generator, callback_on_step_end=callback_on_step_end)
        sibling = self.decoded_by(kwargs.get("decode"))
        if sibling is not None:
            out = sibling(prompt, **kwargs)
            out.info["decoded_by"] = sibling.name
            return out
        output_type = check_output_type(kwargs.pop("output_type", None) or "np")
        request = self._request(prompt, **kwargs)
        for line in self.prompt_warnings(list(dict.fromkeys(request.prompts))):
            warnings.warn(PromptWarning(line), stacklevel=2)
        start = time.perf_counter()
        with self._autocast():
            if output_type == "latent":
                frames = self.model.generate_latents(request)
            else:
                frames = as_output(self.model.generate(request), output_type)
        seconds = time.perf_counter() - start
        info = {"model": self.name}
        if isinstance(request.step_cache, StepCache) and request.step_cache.threshold > 0:
            info["step_cache"] = request.step_cache.summary()
        return VideoPipelineOutput(frames=frames, seconds=seconds, info=info, output_type=output_type)

    def decoded_by(self, decode) -> Pipeline | None:
        """The pipeline that decodes `decode`, when it is not this one. A set model decodes every
        order itself, a token-causal one raster and diagonal; a bundle's config may hand the orders
        other than its own to a sibling over the same tokenizer that decodes them better
        (`decode_with`: `shapes-ar` hands raster to `shapes-ar-orders`). The sibling is loaded on
        first use, on this pipeline's device and precision; `use_siblings = False` turns it off."""
        if not isinstance(decode, str) or self.model.family != "autoregressive" or self.path is None or not self.use_siblings:
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

    def prompt_warnings(self, prompt: str | list[str]) -> list[str]:
        """A line for each prompt far from everything the model was trained on, naming the nearest
        caption it knows (measured in its pretrained text encoder's space); none for models without."""
        text = getattr(self.model, "text", None)
        return text.out_of_domain(check_prompts(prompt, "prompt")) if hasattr(text, "out_of_domain") else []

    def check(self, prompt: str | list[str] | None = None, **kwargs) -> None:
        """Raise the ValueError a call with these arguments would raise, without generating."""
        target = self.decoded_by(kwargs.get("decode")) or self  # a token model may hand an order to a sibling
        target.model.check(target._request(prompt, **kwargs))

    def total_steps(self, prompt: str | list[str], **kwargs) -> int:
        """How many times a call with these arguments calls `callback_on_step_end`: the rows of the
        noise-level matrix less one for diffusion and hybrid models, the decoding passes for token
        models (on the sibling that decodes the order, see `decoded_by`). What a progress bar counts."""
        target = self.decoded_by(kwargs.get("decode")) or self
        request = target._request(prompt, **kwargs)
        if hasattr(target.model, "passes"):
            return target.model.passes(request)
        return int(target.model.noise_matrix(request).levels.shape[0]) - 1

    def noise_matrix(self, prompt: str | list[str], **kwargs):
        """The noise-level matrix a call with these arguments would step (diffusion and hybrid)."""
        if not hasattr(self.model, "noise_matrix"):
            raise ValueError(f"'{self.name}' is a {self.model.family} model: it draws tokens, it has no noise-level matrix")
        return self.model.noise_matrix(self._request(prompt, **kwargs))

    def stream(self, prompt: str, **kwargs) -> Iterator[np.ndarray]:
        """Yield (k, H, W, 3) uint8 frames of the first clip as soon as they are final: hybrid models
        as their noise level reaches 0, token models as their codes are drawn (a token-frame at a
        time in set order, a frame at a time in raster and diagonal order; a decoding order handed
        to a sibling, see `decoded_by`, streams from it). Diffusion models make all frames at once
        and refuse. The request is checked here, before the first frame is asked for, so a caller
        learns of a bad request before it opens its output."""
        sibling = self.decoded_by(kwargs.get("decode"))
        if sibling is not None:
            return sibling.stream(prompt, **kwargs)
        if not hasattr(self.model, "stream"):
            raise ValueError(f"'{self.name}' is a {self.model.family} model, which makes all frames at once; streaming needs a "
                             "hybrid or autoregressive model")
        if kwargs.pop("output_type", None) not in (None, "np"):
            raise ValueError("stream yields uint8 frames (output_type 'np'); call the pipeline for other output types")
        chunks = self.model.stream(self._request(prompt, **kwargs))

        def frames() -> Iterator[np.ndarray]:
            with self._autocast():
                for chunk in chunks:
                    yield to_uint8(chunk[:1])

        return frames()


class PromptWarning(UserWarning):
    """A prompt far from what the model was trained on: it still generates, but may not follow."""


class WanPipeline(Pipeline):
    """A Wan 2.1 model folder (docs/wan.md) behind the same call: any height and width (multiples
    of 16), `num_frames` = 1 + 4k, `latents` in framecast's layout (B, F, 16, h, w) (diffusers'
    transposed), `schedule` ('full', 'autoregressive', 'pyramid', 'causal'), `use_cache`, `sampler`,
    `shift`. Precision is the weights' dtype (bf16 on GPUs by default; the VAE stays float32), not
    autocast. `info` reports the peak memory of the call."""

    def __repr__(self) -> str:
        return f"WanPipeline({self.name!r}, {self.model.describe()}, precision={self.precision})"

    @property
    def precision(self) -> str:
        return "bf16" if self.model.transformer.head.weight.dtype == torch.bfloat16 else "fp32"

    def _size(self, height, width) -> dict:
        return {"height": height, "width": width}

    def _check_budget(self, clips: int, T: int, kwargs: dict) -> None:
        """Wan's memory is measured (info["peak_memory_gib"]), not estimated in advance."""

    def _autocast(self):
        return contextlib.nullcontext()

    def __call__(self, prompt=None, **kwargs) -> VideoPipelineOutput:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        out = super().__call__(prompt, **kwargs)
        if cuda:
            out.info["peak_memory_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        else:  # the process's peak resident memory so far (Linux reports KiB)
            out.info["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        return out


def wan_precision(precision: str, device: torch.device) -> torch.dtype:
    """Wan's weights: bf16 on GPUs ('auto'), float32 on CPUs, or as asked."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float32


def is_wan_folder(path: Path) -> bool:
    """A diffusers pipeline folder (find_wan refuses other pipelines by name), or a config.json of
    the Wan repository's WanModel (or diffusers' WanTransformer3DModel)."""
    if (path / "model_index.json").is_file():
        return True
    config = path / "config.json"
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text())
    except (ValueError, OSError):
        return False
    if not isinstance(data, dict) or "family" in data:
        return False
    return data.get("_class_name") in ("WanModel", "WanTransformer3DModel") or (
        data.get("model_type") in WAN_MODEL_TYPES and {"dim", "num_layers"} <= set(data))


def load_wan(path: Path, device: torch.device, precision: str, options: dict) -> WanPipeline:
    from framecast.generators.wan_build import build_wan

    model = build_wan(path, dtype=wan_precision(precision, device), device=device, **options)
    return WanPipeline(model, name=path.name, path=path, precision=precision)


def check_tensor_inputs(tensor_inputs) -> list[str]:
    if tensor_inputs is None:
        return list(CALLBACK_TENSORS)
    if isinstance(tensor_inputs, str) or not isinstance(tensor_inputs, (list, tuple)):
        raise ValueError(f"callback_on_step_end_tensor_inputs must be a list of names from {list(CALLBACK_TENSORS)}")
    bad = [t for t in tensor_inputs if t not in CALLBACK_TENSORS]
    if bad:
        raise ValueError(f"callback_on_step_end_tensor_inputs: {shorten(repr(bad[0]))} is not one of {list(CALLBACK_TENSORS)}")
    return list(tensor_inputs)


def checked_callback_latents(out, x: torch.Tensor) -> torch.Tensor | None:
    """What a step callback returned -> the sample to go on from (None: unchanged)."""
    if out is None:
        return None
    if not isinstance(out, dict):
        raise ValueError(f"callback_on_step_end must return its callback_kwargs dict (or None), got {type(out).__name__} "
                         f"{shorten(repr(out))}")
    if "latents" not in out:
        return None
    latents = out["latents"]
    if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != tuple(x.shape):
        got = f"shape {tuple(latents.shape)}" if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise ValueError(f"callback_on_step_end returned 'latents' of {got}; it must be a tensor of shape {tuple(x.shape)}")
    if not torch.isfinite(latents).all():
        raise ValueError("callback_on_step_end returned 'latents' with NaN or infinite values")
    return latents.to(device=x.device, dtype=x.dtype)


def given_frames(name: str, frames) -> np.ndarray:
    """An image or video as a user holds it (uint8 (T, H, W, 3) or (H, W, 3) array, PIL image(s), a
    (T, 3, H, W) tensor in [-1, 1], a pipeline output) -> (T, H, W, 3) uint8; anything else is
    refused by name."""
    if isinstance(frames, Image.Image):
        frames = [frames]
    if isinstance(frames, (list, tuple)) and frames and all(isinstance(f, Image.Image) for f in frames):
        frames = np.stack([np.asarray(f.convert("RGB")) for f in frames])
    if isinstance(frames, torch.Tensor):
        if not frames.is_floating_point() or not torch.isfinite(frames).all():
            raise ValueError(f"{name}: a tensor must hold finite floats in [-1, 1], shaped (T, 3, H, W)")
        frames = frames if frames.dim() != 3 else frames[None]
    try:
        return as_frames(frames)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name}: {e}") from None


def fit_frames(frames: np.ndarray, side: int, name: str) -> torch.Tensor:
    """(K, H, W, 3) uint8 -> (K, 3, side, side) in [-1, 1]; frames of another size are resized, with
    a warning (area averaging down, so framecast's own upscaled outputs come back exactly; bilinear up)."""
    x = from_uint8(frames)
    if frames.shape[1:3] == (side, side):
        return x
    warnings.warn(f"{name} is {frames.shape[2]}x{frames.shape[1]}; resized to this model's {side}x{side}", stacklevel=5)
    down = frames.shape[1] >= side and frames.shape[2] >= side
    x = F.interpolate(x, size=(side, side), mode="area" if down else "bilinear", align_corners=None if down else False)
    return x.clamp(-1, 1)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' is the GPU when PyTorch sees one, else the CPU; an unavailable device is a clear error."""
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device must be a name such as 'cpu', 'cuda' or 'cuda:0', got {type(device).__name__}")
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device '{shorten(str(device))}'; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"framecast runs on cpu or cuda, not '{device}'; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' asked for but PyTorch sees no CUDA GPU here; use --device cpu (or auto)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device '{device}' asked for but PyTorch sees {torch.cuda.device_count()} GPU(s); use cuda:0 to "
                         f"cuda:{torch.cuda.device_count() - 1}")
    return dev


def load(name_or_path: str | Path, *, device: str | torch.device = "auto", precision: str = "auto", **options) -> Pipeline:
    """A bundled name or a model folder -> a Pipeline on `device` (auto: the GPU when there is one),
    computing in `precision` (auto: bf16 where the hardware has it, else fp32). A Wan model folder
    (diffusers format or the Wan repository's layout, docs/wan.md) gives a WanPipeline; `options`
    are its settings (framecast.generators.wan_settings.WanSettings: schedule, block, sinks,
    window, release_text_encoder, decode_chunk, ...) and `transformer=`, a checkpoint to use as
    its transformer (CausVid / Self-Forcing / SkyReels-V2 weights)."""
    device = resolve_device(device)
    check_precision(precision)  # before the weights are read
    path = resolve_model(name_or_path)
    if is_wan_folder(path):
        return load_wan(path, device, precision, options)
    if options:
        raise ValueError(f"unknown argument '{shorten(sorted(options)[0], 40)}'; framecast.load takes a model name or folder, device "
                         "and precision (and, for a Wan model folder, its settings: docs/wan.md)")
    family = read_config(path).get("family")
    if family is None or not isinstance(family, str):
        raise ValueError(f"'{path.name}' has no family in its config.json; it is not a framecast model folder")
    if family not in GENERATOR_FAMILIES:
        raise ValueError(f"'{path.name}' is a {family} (a codec), not a video generator; load a diffusion, hybrid or autoregressive model")
    model = from_pretrained(path, device=device)
    return Pipeline(model, name=path.name, path=path, precision=precision)
