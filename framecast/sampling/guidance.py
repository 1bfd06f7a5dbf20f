"""Classifier-free guidance (Ho & Salimans 2022)."""

from __future__ import annotations

import torch


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """uncond + scale * (cond - uncond); scale 1 is the conditional model alone. The same
    formula guides x0, velocity or logits (the maps between them are affine at fixed x, sigma)."""
    return uncond + scale * (cond - uncond)
