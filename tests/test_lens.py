"""The generation lens writes its sheets for each family, and the last step's x0 is the clip."""

from dataclasses import asdict

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import framecast
from framecast.cli import app
from framecast.eval.lens import diffusion_lens
from framecast.generators import ModelSpec, build_generator, save_pretrained
from framecast.train.recipes import shapes_ar_tiny, shapes_hybrid_tiny

PROMPT = "a big red circle moves right"


def test_last_step_x0_is_the_generated_clip(tiny_model_dir):
    pipe = framecast.load(str(tiny_model_dir), precision="fp32")
    r = diffusion_lens(pipe, PROMPT, num_inference_steps=4, num_frames=4)
    assert len(r["steps"]) == 4 and len(r["layers"]) == len(pipe.model.backbone.blocks)
    assert np.abs(r["steps"][-1].astype(int) - r["final"].astype(int)).max() <= 1


def _folder(recipe, tmp_path, name):
    torch.manual_seed(0)
    m = build_generator(ModelSpec(**asdict(recipe.model)))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return save_pretrained(m, tmp_path / name)


def test_lens_for_every_family(tiny_model_dir, tmp_path):
    models = {"diffusion": tiny_model_dir, "hybrid": _folder(shapes_hybrid_tiny(), tmp_path, "h"), "ar": _folder(shapes_ar_tiny(), tmp_path, "a")}
    for name, folder in models.items():
        out = tmp_path / f"lens-{name}"
        r = CliRunner().invoke(app, ["lens", PROMPT, "--model", str(folder), "--steps", "3", "--frames", "4", "--output", str(out)])
        assert r.exit_code == 0, r.output
        assert (out / "index.html").is_file() and (out / "layers.png").is_file() and (out / "final.png").is_file()
        if name != "ar":
            assert (out / "steps.png").is_file()
    assert (tmp_path / "lens-hybrid" / "matrix.png").is_file()


@pytest.mark.parametrize("bundled", ["shapes-hybrid", "shapes-diffusion"])
def test_lens_decodes_a_latent_model(bundled, tmp_path):
    """Latent models' predictions go through their codec: every sheet holds frames at the canvas size."""
    pipe = framecast.load(bundled, precision="fp32", device="cpu")
    assert pipe.model.config.codec is not None  # the case the lens must decode
    r = diffusion_lens(pipe, PROMPT, num_inference_steps=2, num_frames=4)
    size = pipe.model.config.size
    assert all(s.shape[1:] == (size, size, 3) for s in r["steps"] + r["layers"])
    assert len(r["layers"]) == len(pipe.model.backbone.blocks)
    assert np.abs(r["steps"][-1].astype(int) - r["final"].astype(int)).mean() < 2  # the last x0 is the clip
    out = tmp_path / "lens"
    res = CliRunner().invoke(app, ["lens", PROMPT, "--model", bundled, "--steps", "2", "--frames", "4", "--device", "cpu", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} >= {"index.html", "steps.png", "layers.png", "final.png"}
    assert [p.name for p in tmp_path.iterdir()] == ["lens"]  # no temporary folder left beside it
