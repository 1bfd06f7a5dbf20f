"""Stateless samplers with one signature (after k-diffusion's sampling.py) that step any noise-level matrix.

    sample_euler(denoise, x, sigmas, *, callback=None, generator=None, causal=False) -> x

`sigmas` is either a schedule, (rows,), every frame at one level, or a noise-level matrix,
(rows, F), one level per token-frame (framecast.sampling.noise_matrix; a token-frame is T / F
video frames of x, which is (B, T, ...)). Row i -> row i + 1 is one step. A frame whose level does
not change in a step is left exactly as it is, and a row in which nothing changes costs no model
call: the `full` matrix is full-sequence diffusion, the `autoregressive` one next-frame diffusion,
through the same loop.

`denoise(x, sigma) -> x0` predicts the clean sample from the row's levels (a 0-dim level, or (F,)
levels per token-frame). Every prediction type (velocity, noise, x0) is adapted to it by its
generator. For rectified flow the ODE is dx/dsigma = (x - x0) / sigma, the same form as Karras et
al.'s EDM ODE, so the classical solvers apply unchanged, per frame.

`causal=True` says frame t of the denoiser's output depends on frames <= t only (a frame-causal
model): each step then hands it the frames up to the last one that moves, so frames not yet begun
in a stream cost nothing.

`callback(i, sigma_next, x, x0)` sees every step; returning a tensor replaces x (used to hold
known frames), returning None leaves it. `generator` is one torch.Generator or a list with one per
clip (framecast/rng.py); only the ancestral samplers draw from it.

Every sampler is a generator of steps (`*_steps`, yielding `(i, x)` after each row) so that a
stream can hand frames on as soon as they are final; `sample_*` runs one to its end.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch

from framecast.rng import randn

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], "torch.Tensor | None"]
Steps = Iterator[tuple[int, torch.Tensor]]


# --- walking a schedule or a matrix ------------------------------------------------------
def _rows(sigmas: torch.Tensor, x: torch.Tensor, causal: bool) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, slice]]:
    """(i, levels now, levels next, frames of x the step touches), for every row that moves."""
    if sigmas.dim() == 1:
        for i in range(len(sigmas) - 1):
            yield i, sigmas[i], sigmas[i + 1], slice(None)
        return
    F = sigmas.shape[1]
    if x.shape[1] % F:
        raise ValueError(f"a noise-level matrix over {F} token-frames does not split a clip of {x.shape[1]} frames")
    pf = x.shape[1] // F
    for i in range(sigmas.shape[0] - 1):
        moving = sigmas[i] != sigmas[i + 1]
        if not moving.any():
            continue
        hi = int(moving.nonzero().max()) + 1 if causal else F
        yield i, sigmas[i, :hi], sigmas[i + 1, :hi], slice(0, hi * pf)


def per_frame(level: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A 0-dim level as it is; (F,) token-frame levels -> (1, T, 1, ...) against x (B, T, ...)."""
    if level.dim() == 0:
        return level
    return level.repeat_interleave(x.shape[1] // level.shape[0]).view(1, -1, *([1] * (x.dim() - 2)))


def _window(x: torch.Tensor, span: slice) -> torch.Tensor:
    return x if span == slice(None) else x[:, span]


def _put(x: torch.Tensor, span: slice, xw: torch.Tensor) -> torch.Tensor:
    if span == slice(None):
        return xw
    x = x.clone()
    x[:, span] = xw
    return x


def _after_step(callback: Callback | None, i: int, sigma: torch.Tensor, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    if callback is None:
        return x
    out = callback(i, sigma, x, x0)
    return x if out is None else out


def _derivative(x: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """dx/dsigma; clean frames (sigma = 0) never move, so their value does not matter."""
    return (x - x0) / per_frame(sigma.clamp(min=1e-8), x)


def _run(steps: Steps, x: torch.Tensor) -> torch.Tensor:
    for _, x in steps:
        pass
    return x


# --- the samplers ------------------------------------------------------------------------
@torch.no_grad()
def euler_steps(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback | None = None,
                generator=None, causal: bool = False) -> Steps:
    """Euler's method: one model call per step."""
    for i, s, s_next, span in _rows(sigmas, x, causal):
        xw = _window(x, span)
        x0 = denoise(xw, s)
        xw = xw + per_frame(s_next - s, xw) * _derivative(xw, x0, s)
        x = _after_step(callback, i, sigmas[i + 1], _put(x, span, xw), x0)
        yield i, x


@torch.no_grad()
def heun_steps(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback | None = None,
               generator=None, causal: bool = False) -> Steps:
    """Heun's 2nd-order method (Algorithm 1 of Karras et al. 2022, no churn): two calls per step;
    a frame that reaches sigma = 0 takes the Euler step (one call when every frame does)."""
    for i, s, s_next, span in _rows(sigmas, x, causal):
        xw = _window(x, span)
        x0 = denoise(xw, s)
        d = _derivative(xw, x0, s)
        ds = per_frame(s_next - s, xw)
        x_euler = xw + ds * d
        second = s_next > 0
        if second.any():
            x0_next = denoise(x_euler, s_next)
            d_next = _derivative(x_euler, x0_next, s_next)
            use = per_frame(second, xw)
            xw = torch.where(use, xw + ds * (d + d_next) / 2, x_euler)
            x0 = torch.where(use, x0_next, x0)
        else:
            xw = x_euler
        x = _after_step(callback, i, sigmas[i + 1], _put(x, span, xw), x0)
        yield i, x


def _lambda(s: torch.Tensor) -> torch.Tensor:
    """Half-log-SNR of rectified flow: log((1 - sigma) / sigma)."""
    return torch.log((1 - s).clamp(min=1e-8) / s.clamp(min=1e-8))


@torch.no_grad()
def dpmpp_2m_steps(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback | None = None,
                   generator=None, causal: bool = False) -> Steps:
    """DPM-Solver++(2M) (Lu et al. 2022) for rectified flow: data prediction, multistep, in
    lambda = log((1 - sigma) / sigma). Each frame keeps its own history: its first step (and a
    step after it stood still) is first order."""
    old_x0 = torch.zeros_like(x)  # per frame: x0 and step size h of its last step
    old_h = torch.zeros_like(sigmas[0])
    has_old = torch.zeros_like(sigmas[0], dtype=torch.bool)
    for i, s, s_next, span in _rows(sigmas, x, causal):
        xw = _window(x, span)
        x0 = denoise(xw, s)
        n = s.numel() if s.dim() else None  # token-frames in the window (None: one schedule)
        h = _lambda(s_next) - _lambda(s)
        moving = s != s_next
        prev_h, prev_x0, prev_ok = (old_h[:n], _window(old_x0, span), has_old[:n]) if n else (old_h, old_x0, has_old)
        r = per_frame(prev_h / h, xw)
        d = torch.where(per_frame(prev_ok & moving, xw), (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * prev_x0, x0)
        stepped = per_frame(s_next / s.clamp(min=1e-8), xw) * xw - per_frame((1 - s_next) * torch.expm1(-h), xw) * d
        stepped = torch.where(per_frame(s_next == 0, xw), x0, stepped)
        xw = torch.where(per_frame(moving, xw), stepped, xw)
        keep = moving & (s_next > 0)  # a history for the next step: only frames that move on from here
        if n:
            old_h[:n], has_old[:n] = torch.where(keep, h, prev_h), keep
        else:
            old_h, has_old = torch.where(keep, h, prev_h), keep
        old_x0 = _put(old_x0, span, torch.where(per_frame(moving, xw), x0, prev_x0))
        x = _after_step(callback, i, sigmas[i + 1], _put(x, span, xw), x0)
        yield i, x


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


def fresh_noise(x: torch.Tensor, moving: torch.Tensor, generator) -> torch.Tensor:
    """Noise for the token-frames that move (zeros elsewhere), drawn for those frames only: a step
    costs the same at frame 16 as at frame 256, and a stream with or without its KV cache (which
    see different spans) consumes the same random numbers."""
    if moving.dim() == 0:
        return randn(x.shape, generator).to(x)
    z = torch.zeros_like(x).unflatten(1, (moving.shape[0], -1))
    idx = moving.nonzero().squeeze(1)
    z[:, idx] = randn((x.shape[0], idx.numel(), *z.shape[2:]), generator).to(x)
    return z.flatten(1, 2)


@torch.no_grad()
def euler_ancestral_steps(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, callback: Callback | None = None,
                          generator=None, causal: bool = False, eta: float = 1.0) -> Steps:
    """Euler with fresh noise at every step (see `ancestral_step` for eta). One call per step.
    Renewing noise lets each step correct the last one's errors instead of carrying them along the
    ODE; on framecast's small Shapes models it keeps edges sharp where Euler leaves them soft."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    for i, s, s_next, span in _rows(sigmas, x, causal):
        xw = _window(x, span)
        x0 = denoise(xw, s)
        moving = s != s_next
        z = fresh_noise(xw, moving, generator)  # drawn even where s_next = 0 (the step lands on x0 there)
        moved = ancestral_step(xw, x0, per_frame(s.clamp(min=1e-8), xw), per_frame(s_next, xw), z, eta)
        xw = torch.where(per_frame(moving, xw), moved, xw)
        x = _after_step(callback, i, sigmas[i + 1], _put(x, span, xw), x0)
        yield i, x


def euler_stochastic_steps(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, **kw) -> Steps:
    """All noise renewed at every step (eta = inf): diffusers' stochastic_sampling."""
    return euler_ancestral_steps(denoise, x, sigmas, eta=math.inf, **kw)


STEPS: dict[str, Callable[..., Steps]] = {
    "euler": euler_steps, "euler-ancestral": euler_ancestral_steps, "euler-stochastic": euler_stochastic_steps,
    "heun": heun_steps, "dpmpp-2m": dpmpp_2m_steps,
}


def get_steps(name: str) -> Callable[..., Steps]:
    """The step generator of a sampler by name."""
    if name not in STEPS:
        raise ValueError(f"unknown sampler '{name}'; choose one of {', '.join(STEPS)}")
    return STEPS[name]


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """`sample(denoise, x, sigmas, **kw) -> x` for a sampler by name."""
    steps = get_steps(name)
    return lambda denoise, x, sigmas, **kw: _run(steps(denoise, x, sigmas, **kw), x)


def sample_euler(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, **kw) -> torch.Tensor:
    return _run(euler_steps(denoise, x, sigmas, **kw), x)


def sample_heun(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, **kw) -> torch.Tensor:
    return _run(heun_steps(denoise, x, sigmas, **kw), x)


def sample_dpmpp_2m(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, **kw) -> torch.Tensor:
    return _run(dpmpp_2m_steps(denoise, x, sigmas, **kw), x)


def sample_euler_ancestral(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, **kw) -> torch.Tensor:
    return _run(euler_ancestral_steps(denoise, x, sigmas, **kw), x)


def sample_euler_stochastic(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, **kw) -> torch.Tensor:
    return _run(euler_stochastic_steps(denoise, x, sigmas, **kw), x)


SAMPLERS = tuple(STEPS)
