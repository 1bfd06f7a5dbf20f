"""The generation lens writes its sheets for each family, and the last step's x0 is the clip."""

from dataclasses import asdict

import numpy as np
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
