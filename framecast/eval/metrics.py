"""Video metrics on uint8 clips (T, H, W, 3), none of which needs downloaded weights.

Frame fidelity (for prediction tasks, against a reference clip):
    psnr, ssim (Wang et al. 2004, 11x11 Gaussian window, sigma 1.5, on luma)
Temporal coherence (of one clip):
    flicker           mean absolute difference of consecutive frames, in [0, 255]
    warping_error     mean absolute difference between frame t+1 and frame t warped by the optical
                      flow from t to t+1 (OpenCV Farneback): what the motion does not explain
    motion_smoothness mean magnitude of the change of flow between consecutive frame pairs (px)
    dynamic_degree    share of frame pairs whose mean flow magnitude exceeds a threshold (VBench)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def psnr(a: np.ndarray, b: np.ndarray, *, max_db: float = 100.0) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 arrays of one shape (identical -> max_db)."""
    if a.shape != b.shape:
        raise ValueError(f"PSNR needs arrays of one shape, got {a.shape} and {b.shape}")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return max_db if mse == 0 else float(min(max_db, 10 * np.log10(255.0**2 / mse)))


def _luma(frames: np.ndarray) -> torch.Tensor:
    f = torch.from_numpy(frames).float()
    return (0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2])[:, None]  # (T, 1, H, W)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity over frames (luma, data range 255)."""
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"SSIM needs two (T, H, W, 3) clips of one shape, got {a.shape} and {b.shape}")
    x, y = _luma(a), _luma(b)
    size, sigma = min(11, a.shape[1], a.shape[2]), 1.5
    g = torch.exp(-((torch.arange(size) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    win = (g[:, None] * g[None, :])[None, None]  # (1, 1, size, size)
    blur = lambda z: F.conv2d(z, win)  # noqa: E731 - valid region, as in the reference implementation
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def flicker(frames: np.ndarray) -> float:
    if frames.shape[0] < 2:
        raise ValueError("flicker needs at least 2 frames")
    f = frames.astype(np.float32)
    return float(np.abs(np.diff(f, axis=0)).mean())


def optical_flow(frames: np.ndarray) -> np.ndarray:
    """(T-1, H, W, 2) Farneback flow from frame t to t+1 (pixels)."""
    import cv2

    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    return np.stack([cv2.calcOpticalFlowFarneback(grey[t], grey[t + 1], None, 0.5, 3, 9, 3, 5, 1.1, 0)
                     for t in range(len(grey) - 1)])


def warping_error(frames: np.ndarray, flow: np.ndarray | None = None) -> float:
    """Mean |frame t+1 - warp(frame t, flow t->t+1)| in [0, 255] (backward warping by remap)."""
    import cv2

    flow = optical_flow(frames) if flow is None else flow
    T, H, W, _ = frames.shape
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    errs = []
    for t in range(T - 1):
        # pixel p of frame t+1 came from p - flow(p) in frame t (flow approximated at p)
        mx, my = gx - flow[t, ..., 0], gy - flow[t, ..., 1]
        warped = cv2.remap(frames[t], mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        errs.append(np.abs(warped.astype(np.float32) - frames[t + 1].astype(np.float32)).mean())
    return float(np.mean(errs))


def motion_smoothness(frames: np.ndarray, flow: np.ndarray | None = None) -> float:
    flow = optical_flow(frames) if flow is None else flow
    if flow.shape[0] < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(flow, axis=0), axis=-1).mean())


def dynamic_degree(frames: np.ndarray, threshold_px: float = 0.05, flow: np.ndarray | None = None) -> float:
    flow = optical_flow(frames) if flow is None else flow
    return float((np.linalg.norm(flow, axis=-1).mean(axis=(1, 2)) > threshold_px).mean())


def coherence(frames: np.ndarray) -> dict[str, float]:
    """All temporal-coherence metrics of one clip, sharing one optical-flow computation."""
    flow = optical_flow(frames)
    return {"flicker": flicker(frames), "warping_error": warping_error(frames, flow),
            "motion_smoothness": motion_smoothness(frames, flow), "dynamic_degree": dynamic_degree(frames, flow=flow)}
