"""Interactive streaming: a prompt schedule (`prompt_at`) checked at every face, the switch taking
effect from its frame on, LongLive's KV re-cache, and the switch judge on the Shapes world."""

from dataclasses import asdict

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from framecast.cli import app
from framecast.generators import GenerationRequest
from framecast.generators.hybrid import StreamDenoiser
from framecast.train.recipes import shapes_hybrid_tiny
from tests.tiny_models import perturbed_generator

A, B = "a big red circle moves right", "a big blue square moves up"


def _tiny(patch_frames: int = 1):
    spec = asdict(shapes_hybrid_tiny().model)
    spec["backbone"]["patch_frames"] = patch_frames
    return perturbed_generator(spec).eval()


@pytest.fixture(scope="module")
def model():
    return _tiny()


def _req(**kw):
    base = dict(prompts=[A], num_frames=8, steps=3, generator=torch.Generator().manual_seed(0))
    return GenerationRequest(**{**base, **kw})


# --- the switch -----------------------------------------------------------------------------
@pytest.mark.parametrize("recache", [True, False])
def test_frames_before_the_switch_are_the_no_switch_frames(model, recache):
    plain = model.generate(_req())
    switched = model.generate(_req(prompt_at=[(5, B)], recache=recache))
    assert torch.equal(switched[:, :5], plain[:, :5])  # bit for bit: the switch changes nothing before it
    assert (switched[:, 5:] - plain[:, 5:]).abs().amax() > 0.1  # and the conditioning from it on


def test_recache_changes_the_frames_after_the_switch(model):
    a = model.generate(_req(prompt_at=[(5, B)], recache=True))
    b = model.generate(_req(prompt_at=[(5, B)], recache=False))
    assert torch.equal(a[:, :5], b[:, :5]) and not torch.allclose(a[:, 5:], b[:, 5:], atol=1e-3)


def test_switch_to_the_same_prompt_changes_nothing_while_the_cache_holds_every_frame(model):
    # 4 frames: sinks + window hold them all, so the re-cache recomputes exactly what was cached
    plain = model.generate(_req(num_frames=4))
    same = model.generate(_req(num_frames=4, prompt_at=[(2, A)]))
    assert torch.allclose(plain, same, atol=1e-4)


def test_cached_switch_equals_recomputing_the_context_under_the_new_prompt(model):
    # without a cache every step reads the context under the prompt in force: what the re-cache gives
    a = model.generate(_req(num_frames=4, prompt_at=[(2, B)]))
    b = model.generate(_req(num_frames=4, prompt_at=[(2, B)], use_cache=False))
    assert torch.allclose(a, b, atol=1e-4)


def test_per_clip_prompts_and_several_switches(model):
    g = [torch.Generator().manual_seed(i) for i in range(2)]
    both = model.generate(_req(prompts=[A, B], generator=g, prompt_at=[(3, [B, A]), (6, "a small green circle moves left")]))
    g = [torch.Generator().manual_seed(1)]
    alone = model.generate(_req(prompts=[B], generator=g, prompt_at=[(3, A), (6, "a small green circle moves left")]))
    assert torch.allclose(both[1:], alone, atol=1e-5)  # a clip depends on its own prompts and seed only


def test_guidance_keeps_its_unconditional_branch(model):
    one = model.generate(_req(guidance=1.0, prompt_at=[(5, B)]))
    guided = model.generate(_req(guidance=3.0, prompt_at=[(5, B)]))
    assert torch.isfinite(guided).all() and not torch.allclose(one[:, 5:], guided[:, 5:], atol=1e-3)


def test_switch_with_step_caching(model):
    plain = model.generate(_req(step_cache=0.3))
    switched = model.generate(_req(step_cache=0.3, prompt_at=[(5, B)]))
    assert torch.equal(switched[:, :5], plain[:, :5]) and (switched[:, 5:] - plain[:, 5:]).abs().amax() > 0.1


# --- the re-cache ---------------------------------------------------------------------------
def _text(model, prompt):
    return model.text.encode([prompt])


def _cache_keys(d):
    n = len(d.cache)
    return [k[:, :, :n].clone() for k in d.cache.k]


@pytest.mark.parametrize("recache", [True, False])
def test_recache_recomputes_the_cached_context_under_the_new_text(model, recache):
    torch.manual_seed(1)
    x = torch.randn(1, 3, *model.latent_shape[:1], model.latent_shape[1], model.latent_shape[1])
    sigma = torch.tensor([0.0, 0.0, 0.7])  # frames 0 and 1 finished, frame 2 being made: the switch is at 2
    kw = dict(use_cache=True, context_level=0.0, context_noise=None)
    d = StreamDenoiser(model, _text(model, A), 1.0, switches=[(2, _text(model, B))], recache=recache, **kw)
    d(x, sigma)
    under = StreamDenoiser(model, _text(model, B if recache else A), 1.0, **kw)
    under(x, sigma)
    other = StreamDenoiser(model, _text(model, A if recache else B), 1.0, **kw)
    other(x, sigma)
    assert d.cache.frame_ids().tolist() == [0, 1] and d.text is not None
    for got, want, not_want in zip(_cache_keys(d), _cache_keys(under), _cache_keys(other)):
        assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, not_want, atol=1e-3)


def test_recache_keeps_the_rolling_window(model):
    """After eviction the cache holds sinks and the recent window; the re-cache keeps those frames."""
    sinks, window = model.config.sinks, model.window_frames()
    F = sinks + window + 3
    x = torch.randn(1, F, model.latent_shape[0], model.latent_shape[1], model.latent_shape[1])
    kw = dict(use_cache=True, context_level=0.0, context_noise=None)
    d = StreamDenoiser(model, _text(model, A), 1.0, switches=[(F - 1, _text(model, B))], **kw)
    for f in range(1, F):  # frame f being made, frames < f finished, as the autoregressive schedule steps
        d(x[:, : f + 1], torch.tensor([0.0] * f + [0.5]))
    kept = list(range(sinks)) + list(range(F - 1 - window, F - 1))
    assert d.cache.frame_ids().tolist() == kept


# --- checks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("prompt_at, message", [
    ("nope", "prompt_at must be a list of (frame, prompt) pairs"),
    ([(3,)], "each switch is a (frame, prompt) pair"),
    ([(2.5, B)], "prompt_at frame must be a whole number"),
    ([(0, B)], "a switch comes after the first frame"),
    ([(8, B)], "past the clip's last frame (7)"),
    ([(5, B), (3, A)], "prompt_at frames must increase"),
    ([(5, B), (5, A)], "prompt_at frames must increase"),
    ([(5, "")], "prompt_at prompt is empty"),
    ([(5, [A, B])], "gives 2 prompts for 1 clip"),
])
def test_bad_schedules_are_one_sentence(model, prompt_at, message):
    with pytest.raises(ValueError) as e:
        model.check(_req(prompt_at=prompt_at))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_switches_fall_on_token_frames_and_need_frames_made_in_order(model):
    with pytest.raises(ValueError, match="splits a token-frame: this model makes frames in groups of 2; switch at 4 or 6"):
        _tiny(patch_frames=2).check(_req(prompt_at=[(5, B)]))
    with pytest.raises(ValueError, match="the full schedule denoises the frames around a switch together"):
        model.check(_req(schedule="full", prompt_at=[(4, B)]))
    model.check(_req(schedule="pyramid", prompt_at=[(4, B)]))
    with pytest.raises(ValueError, match="recache must be True or False"):
        model.check(_req(recache="yes"))


def test_other_families_refuse_it(pipe):
    with pytest.raises(ValueError, match="prompt_at is for hybrid models, which make frames in order"):
        pipe(A, num_frames=4, num_inference_steps=2, prompt_at=[(2, B)])
    with pytest.raises(ValueError, match="recache is for hybrid models"):
        pipe(A, num_frames=4, num_inference_steps=2, recache=False)


# --- the command line and the server ----------------------------------------------------------
def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_streams_with_a_switch(tiny_hybrid_dir, tmp_path):
    out = tmp_path / "s.npy"
    r = _cli("generate", A, "-m", tiny_hybrid_dir, "--stream", "--frames", 6, "--steps", 2, "--prompt-at", f"3:{B}", "-o", out)
    assert r.exit_code == 0, r.output
    plain = tmp_path / "p.npy"
    assert _cli("generate", A, "-m", tiny_hybrid_dir, "--stream", "--frames", 6, "--steps", 2, "-o", plain).exit_code == 0
    a, b = np.load(out), np.load(plain)
    assert np.array_equal(a[:3], b[:3]) and not np.array_equal(a[3:], b[3:])


@pytest.mark.parametrize("args, message", [
    (["--prompt-at", "a big red circle moves up"], "--prompt-at 'a big red circle moves up': give FRAME:PROMPT"),
    (["--prompt-at", "x3:" + B], "give FRAME:PROMPT"),
    (["--prompt-at", "3:"], "give FRAME:PROMPT"),
    (["--prompt-at", f"9:{B}"], "prompt_at frame 9 is past the clip's last frame (5)"),
    (["--prompt-at", f"4:{B}", "--prompt-at", f"2:{A}"], "prompt_at frames must increase"),
    (["--no-recache"], "--no-recache changes what happens at a prompt switch"),
])
def test_cli_refuses_bad_switches_in_one_line(tiny_hybrid_dir, tmp_path, args, message):
    out = tmp_path / "x.mp4"
    r = _cli("generate", A, "-m", tiny_hybrid_dir, "--stream", "--frames", 6, "--steps", 2, *args, "-o", out)
    assert r.exit_code == 2, r.output
    assert message in r.output and r.output.count("\n") == 1 and "Traceback" not in r.output
    assert not out.exists()


def test_cli_diffusion_refuses_in_one_sentence(tiny_model_dir, tmp_path):
    r = _cli("generate", A, "-m", tiny_model_dir, "--frames", 4, "--steps", 2, "--prompt-at", f"2:{B}", "-o", tmp_path / "x.npy")
    assert r.exit_code == 2 and "prompt_at is for hybrid models" in r.output and not (tmp_path / "x.npy").exists()


def test_server_request_is_checked_before_it_is_queued(tiny_hybrid_dir, tiny_model_dir):
    from pydantic import ValidationError

    import framecast
    from framecast.serve.request import VideoRequest, check_request, pipeline_kwargs

    hybrid = framecast.load(str(tiny_hybrid_dir), precision="fp32", device="cpu")
    ok = VideoRequest(prompt=A, model=str(tiny_hybrid_dir), num_frames=6, prompt_at=[{"frame": 2, "prompt": B}], recache=False)
    assert pipeline_kwargs(ok)["prompt_at"] == [(2, B)] and pipeline_kwargs(ok)["recache"] is False
    check_request(hybrid, ok)
    with pytest.raises(ValueError, match="past the clip's last frame"):
        check_request(hybrid, VideoRequest(prompt=A, num_frames=6, prompt_at=[{"frame": 6, "prompt": B}]))
    with pytest.raises(ValueError, match="prompt_at is for hybrid models"):
        check_request(framecast.load(str(tiny_model_dir), device="cpu"), VideoRequest(prompt=A, prompt_at=[{"frame": 2, "prompt": B}]))
    with pytest.raises(ValidationError):
        VideoRequest(prompt=A, prompt_at=[{"frame": 2, "prompt": B, "colour": "red"}])


# --- the judge ------------------------------------------------------------------------------
def test_the_judge_sees_the_worlds_own_switch_at_once_and_no_switch_never():
    from framecast.eval.switch import judge_switch, render_switch, summarize_switches, switch_cases

    cases = switch_cases(4)
    assert [c.kind for c in cases] == ["colour", "direction"] * 2
    verdicts = [judge_switch(render_switch(c, 16, 32), c, 16) for c in cases]
    s = summarize_switches(verdicts)
    assert s["effect_within_8"] == 1.0 and s["lost"] == 0.0 and s["before_ok"] == 1.0 and s["max_jump_px"] <= 1.01
    unswitched = [judge_switch(render_switch(c, 31, 32), c, 16) for c in cases]
    assert all(v["effect_frames"] is None and not v["lost"] for v in unswitched)
    cut = render_switch(cases[0], 16, 32).copy()
    cut[15:19] = 0  # the object gone for 4 frames at the switch
    assert judge_switch(cut, cases[0], 16)["lost"]
