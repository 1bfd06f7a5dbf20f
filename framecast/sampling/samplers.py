"""Stateless samplers with one signature (after k-diffusion's sampling.py).

`denoise(x, sigma) -> x0` predicts the clean sample; every prediction type (velocity,
noise, x0) is adapted to it by its generator. For rectified flow the ODE is
dx/dsigma = (x - x0) / sigma, the same form as Karras et al.'s EDM ODE, so the
classical solvers apply unchanged.

`callback(i, sigma, x, x0)` sees every step; returning a tensor replaces x (used for
in-painting known frames), returning None leaves it. Every sampler takes `generator` (one, or a
list with one per clip, as framecast/rng.py); only the stochastic one draws from it.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from framecast.rng import randn

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], "torch.Tensor | None"]


def _derivative(x: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return (x - x0) / sigma


def _after_step(callback: Callback | None, i: int, sigma: torch.Tensor, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    if callback is None:
        return x
    out = callback(i, sigma, x, x0)
    return x if out is None else out


@torch.no_grad()
def sample_euler(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback | None = None,
                 generator=None) -> torch.Tensor:
    """Euler's method: one model call per step."""
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoise(x, s)
        x = x + (s_next - s) * _derivative(x, x0, s)
        x = _after_step(callback, i, s_next, x, x0)
    return x


@torch.no_grad()
def sample_heun(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback | None = None,
                generator=None) -> torch.Tensor:
    """Heun's 2nd-order method (Algorithm 1 of Karras et al. 2022, no churn): two calls per step,
    one on the last step to sigma = 0."""
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoise(x, s)
        d = _derivative(x, x0, s)
        x_euler = x + (s_next - s) * d
        if s_next > 0:
            x0_next = denoise(x_euler, s_next)
            d_next = _derivative(x_euler, x0_next, s_next)
            x = x + (s_next - s) * (d + d_next) / 2
            x0 = x0_next
        else:
            x = x_euler
        x = _after_step(callback, i, s_next, x, x0)
    return x


@torch.no_grad()
def sample_dpmpp_2m(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback | None = None,
                    generator=None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022) for rectified flow: data prediction, multistep,
    written in the half-log-SNR lambda = log((1 - sigma) / sigma)."""
    lam = lambda s: torch.log((1 - s).clamp(min=1e-8) / s.clamp(min=1e-8))  # noqa: E731
    old_x0, old_h = None, None
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoise(x, s)
        if s_next == 0:
            x = x0
        else:
            h = lam(s_next) - lam(s)
            alpha_next = 1 - s_next
            if old_x0 is None:
                d = x0
            else:
                r = old_h / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * old_x0
            x = (s_next / s) * x - alpha_next * torch.expm1(-h) * d
            old_h = h
        old_x0 = x0
        x = _after_step(callback, i, s_next, x, x0)
    return x


def ancestral_step(x: torch.Tensor, x0: torch.Tensor, s, s_next, noise: torch.Tensor, eta: float = 1.0) -> torch.Tensor:
    """From level s to s_next (floats or tensors that broadcast) along the predicted x0, with the
    model's implied noise eps = (x - (1 - s) x0) / s partly replaced by fresh noise z:

        x' = (1 - s') x0 + s' (sqrt(1 - b^2) eps + b z),   b = min(1, eta sqrt(1 - (S'/S)^2))

    with S = s / (1 - s) the variance-exploding level. eta = 0 is Euler (DDIM); eta = 1 is the DDPM
    posterior (k-diffusion's euler_ancestral: exact for an exact denoiser); eta = inf renews all the
    noise at every step (b = 1: diffusers' FlowMatchEulerDiscreteScheduler(stochastic_sampling=True),
    the multistep sampler of consistency models), which pulls each step towards the model's mean."""
    if math.isinf(eta):
        return (1 - s_next) * x0 + s_next * noise
    s_t = torch.as_tensor(s, dtype=x.dtype, device=x.device)
    sn_t = torch.as_tensor(s_next, dtype=x.dtype, device=x.device)
    ratio = sn_t * (1 - s_t) / (s_t * (1 - sn_t)).clamp(min=1e-12)  # S' / S
    b = (eta * (1 - ratio.clamp(max=1) ** 2).sqrt()).clamp(max=1)
    eps = (x - (1 - s_t) * x0) / s_t.clamp(min=1e-12)
    return (1 - sn_t) * x0 + sn_t * ((1 - b**2).sqrt() * eps + b * noise)


@torch.no_grad()
def sample_euler_ancestral(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback | None = None,
                           generator=None, eta: float = 1.0) -> torch.Tensor:
    """Euler with fresh noise at every step (see `ancestral_step` for eta). One call per step.
    Renewing noise lets each step correct the last one's errors instead of carrying them along the
    ODE; on framecast's small Shapes models it keeps edges sharp where Euler leaves them soft."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoise(x, s)
        x = ancestral_step(x, x0, s, s_next, randn(x.shape, generator).to(x), eta) if s_next > 0 else x0
        x = _after_step(callback, i, s_next, x, x0)
    return x


def sample_euler_stochastic(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback | None = None,
                            generator=None) -> torch.Tensor:
    """All noise renewed at every step (eta = inf): diffusers' stochastic_sampling."""
    return sample_euler_ancestral(denoise, x, sigmas, callback=callback, generator=generator, eta=math.inf)


SAMPLERS: dict[str, Callable] = {"euler": sample_euler, "euler-ancestral": sample_euler_ancestral,
                                 "euler-stochastic": sample_euler_stochastic, "heun": sample_heun, "dpmpp-2m": sample_dpmpp_2m}
ETA = {"euler": 0.0, "euler-ancestral": 1.0, "euler-stochastic": math.inf}  # the Euler family, as eta of ancestral_step


def get_sampler(name: str) -> Callable:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler '{name}'; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]
