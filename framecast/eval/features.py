"""Clips in, features out: the interface every FVD feature network follows and the preprocessing
helpers they share (framecast.eval.fvd's I3D, framecast.eval.classifier's Shapes classifier)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F


@runtime_checkable
class FeatureExtractor(Protocol):
    """A feature network for FVD. `name` says which (reports carry it); `__call__` takes clips as
    (N, T, H, W, 3) uint8 (numpy, or a list of (T, H, W, 3) arrays, as pipelines return) or as a
    float tensor (N, T, C, H, W) in [-1, 1] (framecast's in-memory convention) and returns (N, D)
    float features. Each extractor documents its own preprocessing."""

    name: str

    def __call__(self, videos) -> np.ndarray: ...


def as_video_batch(videos) -> torch.Tensor:
    """Clips in any of the forms `FeatureExtractor` accepts -> float (N, T, C, H, W) in [-1, 1]."""
    if isinstance(videos, torch.Tensor):
        if videos.dim() != 5 or videos.shape[2] != 3:
            raise ValueError(f"expected a float video tensor (N, T, 3, H, W) in [-1, 1], got shape {tuple(videos.shape)}")
        if not videos.is_floating_point():
            raise ValueError(f"a video tensor must be float in [-1, 1], got {videos.dtype}; pass uint8 clips as numpy (N, T, H, W, 3)")
        return videos.float()
    if isinstance(videos, (list, tuple)):
        shapes = {np.shape(v) for v in videos}
        if len(shapes) != 1:
            raise ValueError(f"clips of one set must share one shape (T, H, W, 3), got {sorted(shapes)}")
        videos = np.stack(videos)
    videos = np.asarray(videos)
    if videos.ndim != 5 or videos.shape[-1] != 3 or videos.dtype != np.uint8:
        raise ValueError(f"expected uint8 clips (N, T, H, W, 3), got {videos.dtype} {videos.shape}")
    return torch.from_numpy(videos).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0


def chunks(videos, size: int):
    """Slices of at most `size` clips of any accepted form, so that only one slice at a time is
    converted to float and resized (2048 clips at 224 x 224 would be 20 GB at once)."""
    if len(videos) == 0:
        raise ValueError("no clips given")
    for start in range(0, len(videos), size):
        yield videos[start : start + size]


def first_frames(video_NTCHW: torch.Tensor, frames: int, network: str) -> torch.Tensor:
    """Clip to the first `frames` frames; shorter clips are a user error (features would not compare)."""
    T = video_NTCHW.shape[1]
    if T < frames:
        raise ValueError(f"{network} features need clips of at least {frames} frames, got {T}; generate {frames}-frame clips (e.g. --frames {frames})")
    return video_NTCHW[:, :frames]


def resize_frames(video_NTCHW: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    N, T, C, H, W = video_NTCHW.shape
    if (H, W) == (size, size):
        return video_NTCHW
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    x = F.interpolate(video_NTCHW.reshape(N * T, C, H, W), size=(size, size), mode=mode, **kwargs)
    return x.reshape(N, T, C, size, size)
