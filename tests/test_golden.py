"""The bundled models reproduce their reference clips (tests/golden/cases.py) in fp32."""

import pytest
import torch
from golden.cases import CASES, CLIPS, run_case
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return load_file(str(CLIPS))


@pytest.mark.parametrize("name", sorted(CASES))
def test_bundled_model_reproduces_reference_clip(name, reference):
    clip = run_case(name)
    assert clip.shape == reference[name].shape
    # 1 or 2 threads, or CPUs with other vector units (AVX2, AVX-512), round the matmuls
    # differently: the clips differ by about 1e-7 on average and up to 5e-4 in a few pixels that
    # the steps amplify. A change of the maths moves every pixel.
    diff = (clip - reference[name]).abs()
    assert diff.mean() <= 1e-5 and diff.max() <= 2e-3, f"{name}: mean difference {diff.mean():.2e}, max {diff.max():.2e}"
