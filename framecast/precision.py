"""Which precision to compute in: bfloat16 autocast where the hardware has bf16 arithmetic, fp32
where it does not.

bf16 autocast halves the cost of a step on a CPU with AVX-512 BF16 or AMX (oneDNN's kernels) and
on any recent GPU. On a CPU without them (AVX2 only: many AMD EPYC and older Intel parts) PyTorch
falls back to a slow generic bf16 matmul: 0.3 GFLOP/s against 91 in fp32 on one such 2-core machine, so
a clip takes 4x longer to sample and training crawls. `auto`, the default everywhere, asks the
hardware; `bf16` and `fp32` force one.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import torch

PRECISIONS = ("auto", "bf16", "fp32")


@functools.lru_cache(maxsize=None)
def has_fast_bf16(device_type: str) -> bool:
    """Whether `device_type` ('cpu', 'cuda', ...) has bf16 arithmetic that beats fp32."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        try:  # oneDNN's bf16 kernels (AVX-512 BF16, AMX, Arm BF16); without them bf16 matmuls are slow
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def check_precision(precision: str) -> str:
    """`precision` if it is a name framecast knows, else a one-line error."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    return precision


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """'auto' -> 'bf16' where the device has fast bf16, else 'fp32'. A forced 'bf16' on hardware
    that only emulates it runs (the numbers are the same) but warns once how slow that is."""
    check_precision(precision)
    kind = torch.device(device).type
    if precision == "auto":
        return "bf16" if has_fast_bf16(kind) else "fp32"
    if precision == "bf16" and not has_fast_bf16(kind):
        warnings.warn(f"bf16 on this {kind} has no native kernels and runs many times slower than fp32; "
                      "use precision auto or fp32", stacklevel=2)
    return precision


def autocast(precision: str, device: torch.device | str = "cpu"):
    """The autocast context for a resolved precision ('bf16' or 'fp32')."""
    kind = torch.device(device).type
    return torch.autocast(kind, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
