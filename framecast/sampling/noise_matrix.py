"""The noise-level matrix K[step, frame] in [0, 1] (0 = clean, 1 = pure noise): framecast's central idea.

A model trained with an independent noise level per frame (diffusion forcing, Chen et al. 2024)
can be sampled with any such matrix. Row r is the level of every frame before step r; a
sampling step moves each frame from K[r] to K[r + 1]. Frames are token-frames (chunks of
`patch_frames` video frames).

    full            all columns equal: full-sequence diffusion
    autoregressive  column t starts only when column t - 1 is clean: next-frame (or next-chunk)
                    diffusion from clean context (CausVid, FAR)
    pyramid         column t starts `offset` rows after column t - 1: the asynchronous schedule
                    of AR-Diffusion / rolling diffusion; offset = steps is autoregressive,
                    offset = 0 is full

The in-order schedules (autoregressive, pyramid) can give the first frame more steps than the
rest (`first_steps`): with no context before it, that frame lays out the whole scene, which a
few-step student does worst; the frames after it continue from clean context.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from framecast.sampling.schedules import flow_sigmas

SCHEDULES = ("full", "autoregressive", "pyramid")


@dataclass(frozen=True)
class NoiseMatrix:
    levels: torch.Tensor  # (rows, frames), float, rows = steps + 1
    name: str = "custom"

    def __post_init__(self):
        check_matrix(self.levels)

    @property
    def steps(self) -> int:
        return self.levels.shape[0] - 1

    @property
    def frames(self) -> int:
        return self.levels.shape[1]

    def model_calls(self) -> int:
        """Rows in which at least one frame changes level (one forward pass each)."""
        return int((self.levels[1:] != self.levels[:-1]).any(dim=1).sum())


def check_matrix(K: torch.Tensor) -> None:
    """A plain-sentence ValueError for a matrix no sampler can run."""
    if K.dim() != 2 or K.shape[0] < 2 or K.shape[1] < 1:
        raise ValueError(f"a noise-level matrix is (steps + 1, frames) with steps >= 1; got shape {tuple(K.shape)}")
    if not torch.isfinite(K).all() or K.min() < 0 or K.max() > 1:
        raise ValueError("noise levels must lie in [0, 1] (0 = clean, 1 = pure noise)")
    if (K[1:] > K[:-1] + 1e-6).any():
        step, frame = (K[1:] > K[:-1] + 1e-6).nonzero()[0].tolist()
        raise ValueError(f"noise levels must never rise: frame {frame} goes up at step {step}")
    if (K[-1] != 0).any():
        raise ValueError("the last row of a noise-level matrix must be 0 (every frame clean at the end)")


def step_levels(steps: int, shift: float = 1.0, sigmas: tuple[float, ...] | None = None) -> torch.Tensor:
    """The `steps + 1` levels one frame takes, 1 down to 0: `sigmas` (highest first, 0 appended) when
    given, else `steps` even steps shifted by `shift`."""
    if sigmas is None:
        return flow_sigmas(steps, shift=shift)
    if len(sigmas) != steps:
        raise ValueError(f"{len(sigmas)} sigmas for {steps} steps")
    return torch.tensor([*sigmas, 0.0], dtype=torch.float32)


def full_matrix(frames: int, steps: int, *, shift: float = 1.0, sigmas: tuple[float, ...] | None = None) -> NoiseMatrix:
    sig = step_levels(steps, shift, sigmas)
    return NoiseMatrix(sig[:, None].expand(-1, frames).clone(), "full")


def pyramid_matrix(frames: int, steps: int, offset: int, *, shift: float = 1.0, context: int = 0,
                   sigmas: tuple[float, ...] | None = None) -> NoiseMatrix:
    """Column t (after `context` clean frames) follows the `steps`-step schedule, starting
    t * offset rows in."""
    if frames < 1 or steps < 1:
        raise ValueError("a noise-level matrix needs frames >= 1 and steps >= 1")
    if offset < 0:
        raise ValueError(f"the pyramid offset must be >= 0, got {offset}")
    if context >= frames:
        raise ValueError(f"the context ({context} frames) must be shorter than the clip ({frames} frames)")
    sig = step_levels(steps, shift, sigmas)  # steps + 1 levels
    gen = frames - context
    rows = (gen - 1) * offset + steps + 1
    K = torch.zeros(rows, frames)
    for j in range(gen):
        start = j * offset
        col = torch.ones(rows)
        col[start : start + steps + 1] = sig
        col[start + steps + 1 :] = 0.0
        K[:, context + j] = col
    return NoiseMatrix(K, "pyramid")


def autoregressive_matrix(frames: int, steps: int, *, shift: float = 1.0, context: int = 0,
                          sigmas: tuple[float, ...] | None = None) -> NoiseMatrix:
    m = pyramid_matrix(frames, steps, offset=steps, shift=shift, context=context, sigmas=sigmas)
    return NoiseMatrix(m.levels, "autoregressive")


def build_matrix(name: str, frames: int, steps: int, *, shift: float = 1.0, offset: int | None = None, context: int = 0,
                 first_steps: int = 0, sigmas: tuple[float, ...] | None = None) -> NoiseMatrix:
    """A named schedule. `context` clean frames come first (image to video, continuation).
    `first_steps` > `steps`: with no context, frame 0 of an in-order schedule takes that many steps
    alone (on even levels shifted by `shift`), and the schedule runs over the other frames after
    it. `sigmas` (`steps` levels, highest first) replace the even levels of each frame's steps."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule '{name}'; choose one of {', '.join(SCHEDULES)}")
    if first_steps > steps and context == 0 and name != "full":
        return with_first_steps(build_matrix(name, frames, steps, shift=shift, offset=offset, context=min(1, frames - 1), sigmas=sigmas),
                                first_steps, shift=shift)
    if name == "full":
        if context:
            K = full_matrix(frames - context, steps, shift=shift, sigmas=sigmas).levels
            return NoiseMatrix(torch.cat([torch.zeros(K.shape[0], context), K], dim=1), "full")
        return full_matrix(frames, steps, shift=shift, sigmas=sigmas)
    if name == "autoregressive":
        return autoregressive_matrix(frames, steps, shift=shift, context=context, sigmas=sigmas)
    return pyramid_matrix(frames, steps, offset if offset is not None else max(1, steps // 2), shift=shift, context=context,
                          sigmas=sigmas)


def matrix_steps(name: str, frames: int, steps: int, *, offset: int | None = None, first_steps: int = 0) -> int:
    """The steps (rows less one) of `build_matrix(name, frames, steps, ...)` without context, counted
    without building it (a caller can refuse a matrix too large to draw)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule '{name}'; choose one of {', '.join(SCHEDULES)}")
    if first_steps > steps and name != "full":
        return first_steps + (matrix_steps(name, frames - 1, steps, offset=offset) if frames > 1 else 0)
    if name == "autoregressive":
        return frames * steps
    if name == "pyramid":
        return steps + (offset if offset is not None else max(1, steps // 2)) * (frames - 1)
    return steps


def with_first_steps(rest: NoiseMatrix, first_steps: int, *, shift: float = 1.0) -> NoiseMatrix:
    """Frame 0 denoised alone in `first_steps` steps, then `rest` (a matrix that holds frame 0
    clean) over the frames after it; a one-frame `rest` is replaced by frame 0's own steps."""
    sig = flow_sigmas(first_steps, shift=shift)
    if rest.frames == 1:
        return NoiseMatrix(sig[:, None].clone(), rest.name)
    if (rest.levels[:, 0] != 0).any():
        raise ValueError("the matrix after the first frame must hold frame 0 clean")
    head = rest.levels[:1].repeat(first_steps, 1)
    head[:, 0] = sig[:-1]
    return NoiseMatrix(torch.cat([head, rest.levels]), rest.name)


def matrix_image(matrix: NoiseMatrix, cell: int = 12, cell_width: int | None = None):
    """The matrix as a picture: rows = steps (top = first), columns = frames, white = noise."""
    import numpy as np

    K = matrix.levels.numpy()
    img = (255 * K).astype(np.uint8)
    img = img.repeat(cell, 0).repeat(cell_width or cell, 1)
    return np.stack([img, img, img], axis=-1)
