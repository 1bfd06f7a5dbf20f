"""Tiny generators with random weights for tests: a recipe's model spec built and moved off its
initialisation (zero-initialised output layers included), so outputs depend on inputs."""

import torch

from framecast.generators import ModelSpec, build_generator


def perturbed_generator(spec: dict, noise: float = 0.05) -> torch.nn.Module:
    """The generator of `spec` (a ModelSpec as a dict), seeded, every weight moved by `noise`."""
    torch.manual_seed(0)
    model = build_generator(ModelSpec(**spec))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * noise)
    return model
