"""Precision: `auto` computes in bf16 only where the hardware has bf16 arithmetic."""

import warnings

import pytest
import torch

import framecast
from framecast import precision as P


@pytest.fixture
def bf16_hardware(monkeypatch):
    """Pretend the CPU has (True) or lacks (False) native bf16; the detector's cache is cleared both ways."""
    def set_to(fast: bool):
        P.has_fast_bf16.cache_clear()
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: fast)
    yield set_to
    P.has_fast_bf16.cache_clear()


def test_auto_follows_the_hardware(bf16_hardware):
    bf16_hardware(True)
    assert P.resolve_precision("auto", "cpu") == "bf16"
    bf16_hardware(False)
    assert P.resolve_precision("auto", "cpu") == "fp32"
    assert P.resolve_precision("fp32", "cpu") == "fp32"


def test_forced_bf16_on_slow_hardware_warns_but_runs(bf16_hardware):
    bf16_hardware(False)
    with pytest.warns(UserWarning, match="precision auto or fp32"):
        assert P.resolve_precision("bf16", "cpu") == "bf16"
    bf16_hardware(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert P.resolve_precision("bf16", "cpu") == "bf16"


def test_autocast_matches_the_resolved_precision():
    x = torch.randn(4, 4)
    with P.autocast("bf16", "cpu"):
        assert (x @ x).dtype == torch.bfloat16
    with P.autocast("fp32", "cpu"):
        assert (x @ x).dtype == torch.float32


def test_pipeline_resolves_auto_and_refuses_unknown(tiny_model_dir, bf16_hardware):
    bf16_hardware(False)
    pipe = framecast.load(str(tiny_model_dir))
    assert pipe.precision == "fp32" and "precision=fp32" in repr(pipe)
    bf16_hardware(True)
    assert pipe.precision == "bf16"  # resolved for the device at call time, so pipe.to() can change it
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp32, got 'fp16'"):
        framecast.load(str(tiny_model_dir), precision="fp16")
