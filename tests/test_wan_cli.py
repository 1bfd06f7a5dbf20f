"""`framecast generate` and `framecast models` on a tiny diffusers-format Wan folder: full,
autoregressive and streamed, non-square; another architecture's folder is one line and exit 2."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from wan_tiny import save_tiny_wan  # noqa: E402

from framecast.cli import app  # noqa: E402

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_wan(tmp_path_factory.mktemp("wan-cli") / "tiny-wan", scheduler="unipc")


@pytest.mark.parametrize("extra", [[], ["--schedule", "autoregressive"], ["--stream"], ["--schedule", "causal", "--stream"],
                                   ["--preset", "self-forcing", "--stream"]],
                         ids=["full", "autoregressive", "stream", "causal-stream", "self-forcing-preset"])
def test_generate_from_a_wan_folder(folder, tmp_path, extra):
    out = tmp_path / "clip.npy"
    r = _run("generate", "a red circle moves left", "--model", folder, "--height", 64, "--width", 96, "--frames", 9, "--steps", 2,
             "--output", out, *extra)
    assert r.exit_code == 0, r.output
    frames = np.load(out)
    assert frames.shape == (9, 64, 96, 3) and frames.dtype == np.uint8


def test_bad_sizes_are_one_line(folder, tmp_path):
    r = _run("generate", "a cat", "--model", folder, "--height", 60, "--frames", 9, "--output", tmp_path / "x.npy")
    assert r.exit_code == 2 and "height=60 is not a multiple of 16" in r.output and not (tmp_path / "x.npy").exists()
    r = _run("generate", "a cat", "--model", folder, "--height", 64, "--width", 64, "--frames", 8, "--output", tmp_path / "x.npy")
    assert r.exit_code == 2 and "num_frames=8" in r.output


def test_models_describes_a_wan_folder(folder):
    r = _run("models", folder)
    assert r.exit_code == 0
    assert "Wan 2.1 model folder in diffusers format" in r.output and "UniPCMultistepScheduler" in r.output
    assert "WanTransformer3DModel" in r.output and "AutoencoderKLWan" in r.output
    assert "sampling: 81 frames of 832x480, 50 steps, guidance 5, the full schedule" in r.output


def test_another_architecture_is_refused(tmp_path):
    other = tmp_path / "cogvideox"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "CogVideoXPipeline"}))
    for args in (["generate", "a cat", "--model", other, "--output", tmp_path / "x.npy"], ["models", other]):
        r = _run(*args)
        assert r.exit_code == 2 and "CogVideoXPipeline" in r.output and "Wan-architecture models only" in r.output
        assert len(r.output.strip().splitlines()) == 1
