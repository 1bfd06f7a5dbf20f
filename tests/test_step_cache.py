"""Step caching (First-Block Cache): off is bit-identical, a huge threshold skips every step's
later blocks but the first's, the hybrid never skips a KV-cache write, bad values are refused."""

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from framecast.cli import app
from framecast.generators import GenerationRequest
from framecast.nn.step_cache import StepCache
from framecast.train.recipes import shapes_diffusion_tiny, shapes_hybrid_tiny
from tests.tiny_models import perturbed_generator

PROMPT = "a big red circle moves right"
HUGE = 1e9


def _perturbed(recipe):
    return perturbed_generator(asdict(recipe.model)).eval()


@pytest.fixture(scope="module")
def diffusion():
    return _perturbed(shapes_diffusion_tiny())


@pytest.fixture(scope="module")
def hybrid():
    return _perturbed(shapes_hybrid_tiny())


def _req(**kw):
    base = dict(prompts=[PROMPT], num_frames=4, steps=4, generator=torch.Generator().manual_seed(0))
    return GenerationRequest(**{**base, **kw})


@pytest.mark.parametrize("family", ["diffusion", "hybrid"])
def test_threshold_zero_is_bit_identical_to_no_option(family, diffusion, hybrid):
    model = diffusion if family == "diffusion" else hybrid
    plain = model.generate(_req())
    assert torch.equal(plain, model.generate(_req(step_cache=0.0)))
    counter = StepCache(0.0)
    assert torch.equal(plain, model.generate(_req(step_cache=counter)))
    assert counter.computed == counter.skipped == 0  # off: the cache is not used at all


def test_huge_threshold_skips_all_but_the_first_steps_later_blocks(diffusion):
    steps, depth = 5, len(diffusion.backbone.blocks)
    counter = StepCache(HUGE)
    out = diffusion.generate(_req(steps=steps, step_cache=counter))
    assert out.shape == (1, 4, 3, 32, 32) and torch.isfinite(out).all()
    # one pass a step (Euler); the first runs every block, each later one block 0 only
    assert counter.skipped == (steps - 1) * (depth - 1)
    assert counter.computed == depth + (steps - 1)
    assert not torch.equal(out, diffusion.generate(_req(steps=steps)))  # the skipped blocks were not recomputed


def test_guided_batch_decides_as_one(diffusion):
    """Both halves of classifier-free guidance (and every clip) come from the same pass."""
    counter = StepCache(HUGE)
    out = diffusion.generate(_req(prompts=[PROMPT, "a small blue square moves up"], guidance=3.0, step_cache=counter,
                                  generator=[torch.Generator().manual_seed(i) for i in range(2)]))
    assert out.shape[0] == 2 and torch.isfinite(out).all()
    assert counter.skipped == 3 * (len(diffusion.backbone.blocks) - 1)


def test_hybrid_resets_per_token_frame_and_never_skips_a_cache_write(hybrid):
    depth, steps, frames = len(hybrid.backbone.blocks), 4, 4
    token_frames = frames // hybrid.patch_frames
    writes = []
    hook = hybrid.backbone.blocks[-1].register_forward_pre_hook(lambda m, a: writes.append(a[6] is not None and a[6].writing))
    counter = StepCache(HUGE)
    try:
        out = hybrid.generate(_req(num_frames=frames, steps=steps, step_cache=counter, schedule="autoregressive", use_cache=True))
    finally:
        hook.remove()
    assert out.shape == (1, frames, 3, 32, 32) and torch.isfinite(out).all()
    # each token-frame: its first step runs every block, the other steps block 0 only
    assert counter.skipped == token_frames * (steps - 1) * (depth - 1)
    assert sum(writes) == token_frames - 1  # every finished frame but the last reaches the cache through all blocks


def test_hybrid_without_kv_cache_renews_per_token_frame(hybrid):
    depth, steps, token_frames = len(hybrid.backbone.blocks), 4, 4 // hybrid.patch_frames
    counter = StepCache(HUGE)
    out = hybrid.generate(_req(steps=steps, step_cache=counter, schedule="autoregressive", use_cache=False))
    assert torch.isfinite(out).all() and counter.skipped == token_frames * (steps - 1) * (depth - 1)


@pytest.mark.parametrize("schedule", ["autoregressive", "pyramid"])
def test_hybrid_with_and_without_kv_cache_match_when_off(hybrid, schedule):
    a = hybrid.generate(_req(schedule=schedule, use_cache=True, step_cache=0.0))
    b = hybrid.generate(_req(schedule=schedule, use_cache=False, step_cache=0.0))
    assert torch.equal(a, hybrid.generate(_req(schedule=schedule, use_cache=True)))
    assert torch.allclose(a, b, atol=1e-4)


def test_hybrid_stream_with_step_cache(hybrid):
    counter = StepCache(0.3)
    chunks = list(hybrid.stream(_req(step_cache=counter)))
    assert sum(c.shape[1] for c in chunks) == 4 and all(torch.isfinite(c).all() for c in chunks)
    assert counter.computed > 0


@pytest.mark.parametrize("value, match", [
    (-0.1, "step_cache must be a finite threshold >= 0"),
    (float("nan"), "step_cache must be a finite threshold >= 0"),
    (float("inf"), "step_cache must be a finite threshold >= 0"),
    ("0.1", "step_cache must be a number"),
    (True, "step_cache must be a number"),
])
def test_bad_thresholds_are_refused(diffusion, value, match):
    with pytest.raises(ValueError, match=match):
        diffusion.generate(_req(step_cache=value))
    with pytest.raises(ValueError, match=match):
        diffusion.generate(_req(step_cache=StepCache(value)))


def test_other_families_refuse_it_by_name(tiny_ar_dir):
    import framecast

    pipe = framecast.load(str(tiny_ar_dir), precision="fp32", device="cpu")
    with pytest.raises(ValueError, match="step_cache is for diffusion and hybrid models"):
        pipe(PROMPT, num_frames=2, step_cache=0.1)


def test_pipeline_reports_skipped_block_passes(pipe):
    out = pipe(PROMPT, num_frames=4, num_inference_steps=3, step_cache=HUGE, output_type="pt")
    depth = len(pipe.model.backbone.blocks)
    info = out.info["step_cache"]
    assert info["skipped_block_passes"] == 2 * (depth - 1) and info["block_passes"] == 3 * depth
    assert "step_cache" not in pipe(PROMPT, num_frames=4, num_inference_steps=3, step_cache=0).info
    with pytest.raises(ValueError, match="step_cache must be a finite threshold"):
        pipe(PROMPT, num_frames=4, num_inference_steps=3, step_cache=-1)


def test_cli_generate_and_eval(tiny_model_dir, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["generate", PROMPT, "--model", str(tiny_model_dir), "--steps", "3", "--frames", "4", "--precision", "fp32",
                            "--step-cache", "1e9", "--output", str(tmp_path / "c.npy")])
    assert r.exit_code == 0, r.output
    assert "block passes skipped by --step-cache" in r.output and np.load(tmp_path / "c.npy").shape == (4, 32, 32, 3)
    r = runner.invoke(app, ["eval", "--model", str(tiny_model_dir), "--num", "2", "--steps", "2", "--frames", "4", "--precision", "fp32",
                            "--step-cache", "1e9", "--batch-size", "1", "--output", str(tmp_path / "e.json")])
    assert r.exit_code == 0, r.output
    summed = json.loads((tmp_path / "e.json").read_text())["step_cache"]  # both clips: 2 steps of 2 blocks each
    assert summed["threshold"] == 1e9 and summed["block_passes"] == 2 * 2 * 2 and summed["skipped_block_passes"] == 2
    assert json.loads((tmp_path / "e.json").read_text())["settings"]["step_cache"] == 1e9 and "blocks skipped" in r.output
    for command in (["generate", PROMPT, "--output", str(tmp_path / "x.npy")], ["eval", "--num", "1", "--output", str(tmp_path / "x.json")]):
        r = runner.invoke(app, [*command, "--step-cache", "-0.5"])
        assert r.exit_code == 2 and r.output.strip().splitlines() == ["error: --step-cache must be >= 0, got -0.5"]
        assert not (tmp_path / "x.npy").exists() and not (tmp_path / "x.json").exists()
