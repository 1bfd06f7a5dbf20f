"""A model folder's scheduler (diffusers' scheduler_config.json) as framecast sampling.

Flow-matching models in diffusers' format (Wan 2.1) predict a velocity v = noise - x0 and take
the transformer timestep t = sigma * num_train_timesteps. Two routes:

- `FlowMatchEulerDiscreteScheduler` without dynamic shifting, Karras/exponential/beta sigmas or
  stochastic sampling is framecast's own Euler sampler on `flow_match_sigmas(steps, shift, N)`,
  the scheduler's sigmas exactly; `velocity_denoiser` turns the model into the x0 denoiser the
  samplers take, so every noise-level matrix and sampler of framecast applies to it.
- any other scheduler (Wan's default is `UniPCMultistepScheduler` with flow sigmas, flow_shift 3
  or 5) runs diffusers' own implementation (`diffusers_steps`): one fresh scheduler per sample,
  driven by the same velocity function. diffusers is imported on first use (`framecast[wan]`).

    spec = read_scheduler_config("Wan2.1-T2V-1.3B-Diffusers/scheduler")
    velocity = lambda x, t: model(x, timestep=t, text=text)          # (x, t) -> v
    if spec.native:
        x = sample_euler(velocity_denoiser(velocity, spec.num_train_timesteps), x, spec.sigmas(steps))
    else:
        x = sample_diffusers(spec, velocity, x, steps)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from framecast.sampling.samplers import Callback, Denoiser, Steps, _run, per_frame
from framecast.sampling.schedules import flow_sigmas, shift_sigmas
from framecast.text.extras import require

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, transformer timestep) -> velocity

EULER = "FlowMatchEulerDiscreteScheduler"
# options of EULER under which its sigmas are no longer flow_match_sigmas: diffusers then runs it
EULER_OPTIONS = ("use_dynamic_shifting", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                 "stochastic_sampling", "invert_sigmas", "shift_terminal")


def flow_match_sigmas(steps: int, shift: float = 1.0, num_train_timesteps: int = 1000) -> torch.Tensor:
    """The `steps + 1` sigmas of FlowMatchEulerDiscreteScheduler(shift, num_train_timesteps)
    after `set_timesteps(steps)`: `steps` points evenly spaced from 1 to its smallest training
    level shift(1 / N), shifted, then 0."""
    return flow_sigmas(steps, shift=shift, sigma_min=float(shift_sigmas(torch.tensor(1.0 / num_train_timesteps), shift)))


def velocity_denoiser(velocity: Velocity, num_train_timesteps: int = 1000) -> Denoiser:
    """`denoise(x, sigma) -> x0` for framecast's samplers from a velocity model that takes the
    timestep sigma * N (a 0-dim level, or one per token-frame): x0 = x - sigma * v."""

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return x - per_frame(sigma, x) * velocity(x, sigma * num_train_timesteps)

    return denoise


@dataclass(frozen=True)
class SchedulerSpec:
    """What a scheduler_config.json asks for: its class, flow shift and training timesteps."""

    class_name: str
    shift: float = 1.0
    num_train_timesteps: int = 1000
    config: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def native(self) -> bool:
        """True when framecast's Euler sampler on `sigmas(steps)` is this scheduler exactly."""
        return self.class_name == EULER and not any(self.config.get(k) for k in EULER_OPTIONS)

    def sigmas(self, steps: int) -> torch.Tensor:
        """The (steps + 1,) noise levels of the native route."""
        assert self.native, "only FlowMatchEulerDiscreteScheduler without options has framecast sigmas"
        return flow_match_sigmas(steps, self.shift, self.num_train_timesteps)

    def describe(self) -> str:
        route = "framecast's Euler sampler" if self.native else "diffusers' own implementation"
        return f"{self.class_name} (shift {self.shift:g}, {self.num_train_timesteps} training timesteps; runs as {route})"


def read_scheduler_config(source: str | Path | dict) -> SchedulerSpec:
    """A SchedulerSpec from a scheduler folder, its scheduler_config.json, or the parsed dict."""
    if isinstance(source, dict):
        config, where = source, "the scheduler config"
    else:
        path = Path(source)
        path = path / "scheduler_config.json" if path.is_dir() else path
        if not path.is_file():
            raise ValueError(f"'{path}' does not exist; a model folder's scheduler/ holds scheduler_config.json")
        try:
            config, where = json.loads(path.read_text()), f"'{path}'"
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"'{path}' is not valid JSON ({e}); re-download the model's scheduler folder") from None
    name = config.get("_class_name") if isinstance(config, dict) else None
    if not isinstance(name, str) or not name.endswith("Scheduler"):
        raise ValueError(f"{where} names no scheduler class (_class_name); re-download the model's scheduler folder")
    if name == EULER and config.get("use_dynamic_shifting"):
        raise ValueError(f"{where} asks for dynamic shifting, which needs a resolution-dependent mu that Wan "
                         "models do not define; set use_dynamic_shifting to false and give a shift")
    shift = config.get("shift" if name == EULER else "flow_shift", 1.0)
    return SchedulerSpec(class_name=name, shift=float(shift if shift is not None else 1.0),
                         num_train_timesteps=int(config.get("num_train_timesteps", 1000)), config=dict(config))


def build_scheduler(spec: SchedulerSpec):
    """A fresh diffusers scheduler object of `spec`'s class and config."""
    diffusers = require("diffusers", why=f"the model's scheduler {spec.class_name} runs through it")
    cls = getattr(diffusers, spec.class_name, None)
    if cls is None or not hasattr(cls, "set_timesteps"):
        raise ValueError(f"diffusers {diffusers.__version__} has no scheduler '{spec.class_name}'; "
                         "upgrade diffusers or choose another scheduler")
    return cls.from_config(spec.config)


@torch.no_grad()
def diffusers_steps(spec: SchedulerSpec, velocity: Velocity, x: torch.Tensor, steps: int, *,
                    callback: Callback | None = None) -> Steps:
    """diffusers' scheduler loop as framecast's step generator: at every step the model sees the
    scheduler's timestep t (a 0-dim tensor; integers for UniPC), its velocity goes to
    `scheduler.step`, and `(i, x)` is yielded. `callback(i, sigma_next, x, x0)` as for the
    samplers (x0 = x - sigma v, with the scheduler's flow sigma)."""
    scheduler = build_scheduler(spec)
    scheduler.set_timesteps(steps, device=x.device)
    sigmas = getattr(scheduler, "sigmas", None)
    for i, t in enumerate(scheduler.timesteps):
        v = velocity(x, t)
        x_next = scheduler.step(v, t, x, return_dict=False)[0]
        if callback is not None and sigmas is not None:
            out = callback(i, sigmas[i + 1], x_next, x - sigmas[i].to(x) * v)
            x_next = x_next if out is None else out
        x = x_next
        yield i, x


def sample_diffusers(spec: SchedulerSpec, velocity: Velocity, x: torch.Tensor, steps: int, **kw) -> torch.Tensor:
    """Run `diffusers_steps` to its end."""
    return _run(diffusers_steps(spec, velocity, x, steps, **kw), x)
