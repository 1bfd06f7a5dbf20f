"""Classifier-free guidance (Ho & Salimans 2022)."""

from __future__ import annotations

from typing import Callable

import torch


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """uncond + scale * (cond - uncond); scale 1 is the conditional model alone. The same
    formula guides x0, velocity or logits (the maps between them are affine at fixed x, sigma)."""
    return uncond + scale * (cond - uncond)


def guided(fn: Callable[..., torch.Tensor], scale: float) -> Callable[..., torch.Tensor]:
    """`fn(*inputs_B) -> prediction (B, ...)` of a model whose condition is batched
    [cond ; uncond] when `scale` != 1 (the condition alone at scale 1) -> the same function,
    guided, in fp32: every input is repeated for the two halves, the model runs once on the
    doubled batch, and the halves are combined by `cfg_combine`."""
    if scale == 1.0:
        return lambda *inputs: fn(*inputs).float()

    def both(*inputs: torch.Tensor) -> torch.Tensor:
        cond, uncond = fn(*(torch.cat([x, x]) for x in inputs)).float().chunk(2)
        return cfg_combine(cond, uncond, scale)

    return both
