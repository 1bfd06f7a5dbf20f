"""How much memory a generation asks for, and the most frames that fit: checked before any work, so
`num_frames=1000000` is a sentence, not an out-of-memory kill.

The estimate counts what grows with the clip, per clip, with a margin (it is an upper bound of the
order, not a measurement):

- the transformer's activations: (2 rows with guidance) x tokens x width x 4 bytes, for the
  layer being run (about 12 such tensors: q, k, v, the MLP's 4x) and the KV cache of every layer;
- one layer's attention scores, heads x queries x keys x 4 bytes, where the kernel materialises
  them (and the (queries x keys) mask it is given);
- the clip's representation through the sampler (x, x0, noise, a few buffers) and the decoded
  pixels (float, clamped, converted: 16 copies of 3 x H x W x 4 bytes covers the codec's decoder).

A hybrid model streaming with its KV cache attends a rolling window of token-frames, not the clip,
so its attention term is bounded by the window.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

ACTIVATIONS = 12  # tensors of tokens x width alive while one block runs
SAMPLER_COPIES = 8
PIXEL_COPIES = 16


def available_bytes(device: torch.device) -> int | None:
    """Free memory where the model runs: the GPU's free memory plus what PyTorch holds unused, or
    the host's available memory (MemAvailable), or None where it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _tokens_per_frame(model) -> tuple[float, int]:
    """(transformer positions per video frame, representation numbers per video frame)."""
    bb = model.backbone.config
    if hasattr(model, "grid_hw"):  # a token model: one code per latent cell, embedded at the backbone's channels
        h, w = model.grid_hw
        return h * w / (bb.patch_size**2 * bb.patch_frames), h * w * bb.channels
    C, side = model.latent_shape
    return side * side / (bb.patch_size**2 * bb.patch_frames), C * side * side


def request_bytes(model, clips: int, frames: int, *, windowed: bool) -> float:
    """An upper estimate of the bytes a generation of `clips` x `frames` needs (see the module)."""
    bb = model.backbone.config
    per_frame, numbers = _tokens_per_frame(model)
    rows, tokens = 2 * clips, frames * per_frame
    attended = tokens
    if windowed:
        c = model.config
        attended = min(tokens, (model.window_frames() + c.sinks + 1) * bb.patch_frames * per_frame)
    stream = rows * tokens * bb.width * 4 * (ACTIVATIONS + 2 * bb.depth)
    scores = rows * bb.heads * tokens * attended * 4 + tokens * attended
    sampler = clips * frames * numbers * 4 * SAMPLER_COPIES
    pixels = clips * frames * 3 * model.config.size**2 * 4 * PIXEL_COPIES
    return float(stream + scores + sampler + pixels)


def max_frames(model, clips: int, budget: float, *, windowed: bool, upper: int) -> int:
    """The most frames (<= upper) whose estimate fits `budget` bytes; 0 if none does."""
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if request_bytes(model, clips, mid, windowed=windowed) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_budget(model, clips: int, frames: int, device: torch.device, *, windowed: bool = False) -> None:
    """Refuse a request whose estimate exceeds the memory free on `device`, naming the largest
    num_frames that fits (and that fewer clips would help)."""
    need = request_bytes(model, clips, frames, windowed=windowed)
    have = available_bytes(device)
    if have is None or need <= have:
        return
    fit = max_frames(model, clips, have, windowed=windowed, upper=frames)
    gib = 2**30
    fewer = "fewer clips (prompts x num_videos_per_prompt)"
    fix = f"ask for at most num_frames={fit}" if fit else f"ask for {fewer}"
    if fit and clips > 1:
        fix += f" or {fewer}"
    raise ValueError(f"{clips} clip(s) of num_frames={frames} need about {need / gib:.1f} GiB; {device.type} has "
                     f"{have / gib:.1f} GiB free: {fix}")
