"""The request's values checked where they enter: types, finite numbers, ranges.

Each refusal is a ValueError that names the pipeline's argument (`num_inference_steps`, not the
request field `steps`), what is wrong and what to give instead. The limits:

- num_inference_steps <= 1000: the flow-matching schedules are continuous and the bundled models
  are sampled with 4 to 50 steps; 1000 is the count of discrete training timesteps in DDPM and
  diffusers' schedulers, and more only costs time. For set decoding it is passes a token-frame.
- guidance_scale in [0, 100]: 1 is no guidance and the bundled models are made for 3 to 5; far
  beyond, cond + scale * (cond - uncond) leaves the range of the data and the frames saturate.
- temperature in [0, 100] (0 draws the most likely token), top_p in (0, 1], top_k >= 0 (0: off).
- refine (Gibbs sweeps a token-frame) <= 100: each sweep is one more pass over every token.
- step_cache >= 0: the relative L1 change of the first block's residual under which a step reuses
  the later blocks' residual (0: off; framecast.nn.step_cache; docs/performance.md, "Step caching").
"""

from __future__ import annotations

import math
import numbers

import torch

from framecast.nn.step_cache import StepCache
from framecast.text.encoder import shorten

PUBLIC = {  # request field -> the pipeline's argument
    "prompts": "prompt", "negative_prompts": "negative_prompt", "steps": "num_inference_steps", "guidance": "guidance_scale",
    "callback": "callback_on_step_end", "context_BTCHW": "image/video",
}
MAX_STEPS = 1000
MAX_GUIDANCE = 100.0
MAX_TEMPERATURE = 100.0
MAX_SHIFT = 100.0
MAX_REFINE = 100
CHOICES = ("sampler", "schedule", "decode")


def public(field_name: str) -> str:
    return PUBLIC.get(field_name, field_name)


def show(value) -> str:
    return shorten(repr(value), 60)


def check_int(name: str, value, low: int, high: int | None = None, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a whole number, got {type(value).__name__} {show(value)}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else (f"> {low - 1}" if low == 1 else f">= {low}")
        raise ValueError(f"{name} must be {bounds}, got {show(value)}{why}")
    return int(value)


def check_real(name: str, value, low: float, high: float, *, low_open: bool = False, high_open: bool = False, why: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {type(value).__name__} {show(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if value < low or value > high or (low_open and value == low) or (high_open and value == high):
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lo}{low:g}, {high:g}{hi}, got {value:g}{why}")
    return value


def check_generator(generator, batch: int) -> None:
    """None, one CPU torch.Generator, or a list with one per clip (framecast draws noise on the CPU,
    so a clip is the same on every device)."""
    if generator is None:
        return
    many = isinstance(generator, (list, tuple))
    for g in generator if many else [generator]:
        if not isinstance(g, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or a list of them, one per clip, got {type(g).__name__}; "
                             "make one with torch.Generator().manual_seed(0)")
        if g.device.type != "cpu":
            raise ValueError(f"generator is on {g.device}; framecast draws noise on the CPU: use torch.Generator() (device 'cpu')")
    if many and len(generator) != batch:
        raise ValueError(f"got {len(generator)} generators for {batch} clips; give one, or one per clip "
                         "(prompts x num_videos_per_prompt)")


def check_tensor(name: str, value, *, floating: bool = True) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise ValueError(f"{name} must hold floating-point numbers, got {value.dtype}")
    if value.numel() and not torch.isfinite(value).all():
        raise ValueError(f"{name} holds NaN or infinite values; give finite numbers")
    return value


def check_step_cache(value) -> float | StepCache:
    """A threshold >= 0, given as a number or as a StepCache's."""
    threshold = value.threshold if isinstance(value, StepCache) else value
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"step_cache must be a number (a threshold >= 0; 0 is off), got {type(threshold).__name__} {show(threshold)}")
    if not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"step_cache must be a finite threshold >= 0 (0 is off; 0.15 to 0.3 on the bundled models), got {threshold}")
    if isinstance(value, StepCache):
        value.threshold = float(threshold)
        return value
    return float(threshold)


def check_sigmas(value, steps: int | None) -> tuple[float, ...]:
    """The levels of the steps, highest first, each in (0, 1] (a last 0, the clean end every
    schedule closes on, may be given or left out); `steps`, when given, must be their number."""
    if isinstance(value, torch.Tensor):
        value = value.tolist() if value.dim() == 1 else value
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"sigmas must be a list of noise levels, highest first (e.g. [1.0, 0.75, 0.5, 0.25]), got {type(value).__name__} {show(value)}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"sigmas must hold finite numbers, got {show(v)} in {show(value)}")
    levels = [float(v) for v in value]
    if levels and levels[-1] == 0:
        levels = levels[:-1]
    if not levels or len(levels) > MAX_STEPS:
        raise ValueError(f"sigmas must hold between 1 and {MAX_STEPS} levels above 0, got {len(levels)}")
    if any(not 0 < v <= 1 for v in levels) or any(b >= a for a, b in zip(levels, levels[1:])):
        raise ValueError(f"sigmas must fall, each in (0, 1] (1 is pure noise), e.g. [1.0, 0.75, 0.5, 0.25]; got {show(value)}")
    if steps is not None and steps != len(levels):
        raise ValueError(f"num_inference_steps={show(steps)} and {len(levels)} sigmas disagree: the sigmas set the steps; leave num_inference_steps out")
    return tuple(levels)


def check_options(values: dict, batch: int) -> dict:
    """The request's fields (by field name) -> the checked values to replace them with."""
    out = {}
    if values.get("num_frames") is not None:
        out["num_frames"] = check_int("num_frames", values["num_frames"], 1)
    if values.get("steps") is not None:
        out["steps"] = check_int("num_inference_steps", values["steps"], 1, MAX_STEPS, "; leave it out for the model's default")
    if values.get("guidance") is not None:
        out["guidance"] = check_real("guidance_scale", values["guidance"], 0.0, MAX_GUIDANCE, why="; 1 is no guidance, 3 to 5 is usual")
    if values.get("shift") is not None:
        out["shift"] = check_real("shift", values["shift"], 0.0, MAX_SHIFT, low_open=True)
    if values.get("temperature") is not None:
        out["temperature"] = check_real("temperature", values["temperature"], 0.0, MAX_TEMPERATURE, why="; 0 draws the likeliest token")
    if values.get("top_p") is not None:
        out["top_p"] = check_real("top_p", values["top_p"], 0.0, 1.0, low_open=True)
    if values.get("top_k") is not None:
        out["top_k"] = check_int("top_k", values["top_k"], 0, None, "; 0 keeps every token")
    if values.get("context_level") is not None:
        out["context_level"] = check_real("context_level", values["context_level"], 0.0, 1.0, high_open=True)
    if values.get("first_steps") is not None:
        out["first_steps"] = check_int("first_steps", values["first_steps"], 0, MAX_STEPS, "; 0 gives the first frame the same steps as the rest")
    if values.get("refine") is not None:
        out["refine"] = check_int("refine", values["refine"], 0, MAX_REFINE, "; refine counts Gibbs sweeps a token-frame")
    if values.get("step_cache") is not None:
        out["step_cache"] = check_step_cache(values["step_cache"])
    for name in ("use_cache", "recache"):
        if values.get(name) is not None and not isinstance(values[name], bool):
            raise ValueError(f"{name} must be True or False, got {show(values[name])}")
    for name in CHOICES:
        if values.get(name) is not None and not isinstance(values[name], str):
            raise ValueError(f"{name} must be a name (a string), got {type(values[name]).__name__} {show(values[name])}")
    if values.get("callback") is not None and not callable(values["callback"]):
        raise ValueError(f"callback_on_step_end must be a function, got {type(values['callback']).__name__}")
    check_generator(values.get("generator"), batch)
    for name in ("latents", "context_BTCHW"):
        if values.get(name) is not None:
            check_tensor(public(name), values[name])
    return out
