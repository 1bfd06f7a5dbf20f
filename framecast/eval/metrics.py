"""Frame-fidelity metrics on uint8 clips."""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, *, max_db: float = 100.0) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 arrays of one shape (identical -> max_db)."""
    if a.shape != b.shape:
        raise ValueError(f"PSNR needs arrays of one shape, got {a.shape} and {b.shape}")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return max_db if mse == 0 else float(min(max_db, 10 * np.log10(255.0**2 / mse)))
