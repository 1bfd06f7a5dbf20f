"""Metrics behave as their definitions say on clips whose answer is known."""

import numpy as np
import pytest

from framecast.data.shapes import render_clip
from framecast.eval.metrics import coherence, flicker, psnr, ssim, warping_error


def test_psnr_and_ssim():
    a = render_clip(0).video
    assert psnr(a, a) == 100.0 and ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a.astype(int) + np.random.default_rng(0).integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    assert 10 < psnr(a, noisy) < 30 and ssim(a, noisy) < 0.9
    with pytest.raises(ValueError):
        psnr(a, a[:2])


def test_temporal_metrics_rank_clips_correctly():
    real = render_clip(4, frames=16, size=64).video
    shuffled = real[np.random.default_rng(0).permutation(16)]
    still = np.repeat(real[:1], 16, axis=0)
    assert flicker(still) == 0 and flicker(shuffled) > flicker(real)
    assert warping_error(real) < warping_error(shuffled)
    c_real, c_still = coherence(real), coherence(still)
    assert c_still["dynamic_degree"] == 0 and c_real["dynamic_degree"] > 0.5
