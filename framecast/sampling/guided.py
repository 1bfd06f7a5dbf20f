"""Classifier-free guidance (Ho & Salimans 2022) of a prediction function, in one batched pass."""

from __future__ import annotations

from collections.abc import Callable

import torch

from framecast.sampling.guidance import cfg_combine


def guided(fn: Callable[..., torch.Tensor], scale: float) -> Callable[..., torch.Tensor]:
    """`fn(*inputs_B...) -> prediction (B, ...)` of a model whose condition is batched
    [cond ; uncond] when `scale` != 1 (and is the condition alone at scale 1) -> the same function,
    guided, in fp32. Every input is repeated for the two halves, the model runs once on the
    doubled batch, and the halves are combined by `cfg_combine`."""
    if scale == 1.0:
        return lambda *inputs: fn(*inputs).float()

    def both(*inputs: torch.Tensor) -> torch.Tensor:
        cond, uncond = fn(*(torch.cat([x, x]) for x in inputs)).float().chunk(2)
        return cfg_combine(cond, uncond, scale)

    return both
