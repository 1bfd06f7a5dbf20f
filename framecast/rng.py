"""Random draws that can be made per clip: pass a list of generators (one per row of the batch)
and row i depends on its own generator only. The trainer seeds one generator per clip from
(seed, step, global index), so a batch split across processes, micro-batches or a resume draws
exactly the numbers a single process would."""

from __future__ import annotations

from typing import Sequence

import torch

Gen = torch.Generator | Sequence[torch.Generator] | None


def _rows(fn, shape: tuple[int, ...], generator: Gen) -> torch.Tensor:
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}")
        return torch.cat([fn((1, *shape[1:]), g) for g in generator])
    return fn(shape, generator)


def randn(shape: tuple[int, ...], generator: Gen = None) -> torch.Tensor:
    return _rows(lambda s, g: torch.randn(s, generator=g), tuple(shape), generator)


def rand(shape: tuple[int, ...], generator: Gen = None) -> torch.Tensor:
    return _rows(lambda s, g: torch.rand(s, generator=g), tuple(shape), generator)


def randint(high: int, shape: tuple[int, ...], generator: Gen = None) -> torch.Tensor:
    return _rows(lambda s, g: torch.randint(0, high, s, generator=g), tuple(shape), generator)


def first(generator: Gen) -> torch.Generator | None:
    return generator[0] if isinstance(generator, (list, tuple)) else generator
