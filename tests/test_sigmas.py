"""`sigmas`: the noise levels of the steps, given as diffusers' pipelines take them, on every way in
(Python, stream, command line, job API); the levels set the steps, bad lists are refused by name."""

import io
import math
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from framecast.cli import app
from framecast.sampling.noise_matrix import build_matrix
from framecast.sampling.schedules import flow_sigmas

PROMPT = "a big red circle moves right"


def seeded():
    return torch.Generator().manual_seed(0)


def levels_seen(pipe, **kw) -> list[float]:
    seen = []
    pipe(PROMPT, num_frames=4, generator=seeded(), callback_on_step_end=lambda p, i, t, k: seen.append(round(float(t), 4)) or k, **kw)
    return seen


def test_the_models_own_levels_give_the_same_clip(pipe):
    own = flow_sigmas(4)[:-1].tolist()
    a = pipe(PROMPT, num_frames=4, num_inference_steps=4, generator=seeded()).frames[0]
    b = pipe(PROMPT, num_frames=4, sigmas=own, generator=seeded()).frames[0]
    assert np.array_equal(a, b)
    c = pipe(PROMPT, num_frames=4, sigmas=[0.9, 0.5, 0.2], generator=seeded()).frames[0]
    assert not np.array_equal(a, c)


def test_the_steps_land_on_the_levels_given(pipe, hybrid):
    assert levels_seen(pipe, sigmas=[0.9, 0.5, 0.2]) == [0.5, 0.2, 0.0]
    assert levels_seen(pipe, sigmas=torch.tensor([1.0, 0.3, 0.0])) == [0.3, 0.0]  # a tensor, the clean end given
    K = build_matrix("autoregressive", 2, 3, sigmas=(1.0, 0.6, 0.3)).levels
    assert K[:4, 0].tolist() == pytest.approx([1.0, 0.6, 0.3, 0.0]) and (K[:3, 1] == 1).all()
    chunks = list(hybrid.stream(PROMPT, num_frames=4, sigmas=[1.0, 0.6, 0.3], generator=seeded()))
    whole = hybrid(PROMPT, num_frames=4, sigmas=[1.0, 0.6, 0.3], generator=seeded()).frames[0]
    assert np.array_equal(np.concatenate(chunks), whole)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sigmas=[0.5, 0.7]), "sigmas must fall"),
    (dict(sigmas=[1.5]), "sigmas must fall"),
    (dict(sigmas=[0.5, 0.0, 0.0]), "sigmas must fall"),
    (dict(sigmas=[]), "sigmas must hold between 1 and 1000 levels"),
    (dict(sigmas="1,0.5"), "sigmas must be a list of noise levels"),
    (dict(sigmas=[1.0, math.nan]), "sigmas must hold finite numbers"),
    (dict(sigmas=[1.0, True]), "sigmas must hold finite numbers"),
    (dict(sigmas=[1.0, 0.5], num_inference_steps=3), "num_inference_steps=3 and 2 sigmas disagree"),
    (dict(sigmas=[1.0, 0.5], shift=2.0), "pass one of the two"),
])
def test_bad_levels_are_named(pipe, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pipe(PROMPT, num_frames=4, **kwargs)


def test_token_models_refuse_levels(ar):
    with pytest.raises(ValueError, match="sigmas is for diffusion and hybrid models"):
        ar(PROMPT, num_frames=2, sigmas=[1.0, 0.5])


def test_command_line(tiny_model_dir, tmp_path):
    out = tmp_path / "c.npy"
    args = ["generate", PROMPT, "--model", str(tiny_model_dir), "--frames", "4", "--precision", "fp32", "--output", str(out)]
    r = CliRunner().invoke(app, [*args, "--sigmas", "1,0.6,0.3"])
    assert r.exit_code == 0, r.output
    assert np.load(out).shape == (4, 32, 32, 3)
    for given in (["--sigmas", "1,0.6,0.3,0"], ["--sigmas", "1,0.6,0", "--steps", "2"]):  # the clean end is no step
        assert CliRunner().invoke(app, [*args, "--overwrite", *given]).exit_code == 0
    for bad, says in ((["--sigmas", "1,x"], "give noise levels separated by commas"), (["--sigmas", "1,0.5,0.7"], "sigmas must fall"),
                      (["--sigmas", "1,0.5", "--steps", "3"], "--steps 3 and --sigmas '1,0.5' (2 levels) disagree")):
        r = CliRunner().invoke(app, [*args, "--overwrite", *bad])
        assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output
        assert r.output.count("\n") <= 2
    report = tmp_path / "e.json"
    r = CliRunner().invoke(app, ["eval", "--model", str(tiny_model_dir), "--num", "2", "--frames", "4", "--sigmas", "1,0.5,0",
                                 "--output", str(report)])
    assert r.exit_code == 0 and report.is_file(), r.output


def test_job_api(tiny_model_dir, tmp_path):
    from fastapi.testclient import TestClient

    from framecast.serve.api import create_app
    from framecast.serve.app import ServeConfig

    with TestClient(create_app(ServeConfig(state_dir=tmp_path / "state", models=[str(tiny_model_dir)]))) as c:
        r = c.post("/v1/videos", json={"prompt": PROMPT, "model": str(tiny_model_dir), "num_frames": 4, "format": "npy",
                                        "sigmas": [1.0, 0.6, 0.3]})
        assert r.status_code == 202, r.text
        end = time.time() + 60
        while (job := c.get(f"/v1/videos/{r.json()['id']}").json())["status"] not in ("succeeded", "failed") and time.time() < end:
            time.sleep(0.02)
        assert job["status"] == "succeeded", job
        assert job["request"]["sigmas"] == [1.0, 0.6, 0.3]
        assert np.load(io.BytesIO(c.get(f"/v1/videos/{job['id']}/content").content)).shape[0] == 4
