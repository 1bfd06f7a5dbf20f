"""Noise schedules for flow matching (rectified flow), as plain tensors.

Convention: x_sigma = (1 - sigma) * x0 + sigma * noise, sigma in [0, 1] (1 = pure noise).
"""

from __future__ import annotations

import torch


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """Timestep shift of SD3 (Esser et al. 2024, eq. 23): more steps at high noise when shift > 1."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def flow_sigmas(steps: int, *, shift: float = 1.0, sigma_min: float | None = None) -> torch.Tensor:
    """`steps + 1` decreasing noise levels ending in 0.

    Default: `steps` equal intervals of unshifted time from 1 to 0, then shifted. With
    `sigma_min`: `steps` points evenly spaced from 1 to sigma_min, shifted, then a final 0.
    diffusers' FlowMatchEulerDiscreteScheduler (N training timesteps, no dynamic shifting) is
    `sigma_min = shift_sigmas(1 / N, shift)`: its last nonzero level is shifted twice."""
    if steps < 1:
        raise ValueError(f"the number of sampling steps must be >= 1, got {steps}")
    if sigma_min is None:
        t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
        return shift_sigmas(t, shift).float()
    t = torch.linspace(1.0, sigma_min, steps, dtype=torch.float64)
    return torch.cat([shift_sigmas(t, shift), torch.zeros(1, dtype=torch.float64)]).float()


def sample_training_sigmas(shape: int | tuple[int, ...], *, generator=None, mean: float = 0.0, std: float = 1.0, shift: float = 1.0) -> torch.Tensor:
    """Logit-normal noise levels for training (SD3's 'rf/lognorm(0, 1)'), optionally shifted.
    `generator` may be a list, one per row (see framecast/rng.py)."""
    from framecast.rng import randn

    u = randn((shape,) if isinstance(shape, int) else shape, generator) * std + mean
    return shift_sigmas(torch.sigmoid(u), shift)
