"""The pipeline in diffusers' conventions: output_type, latents, callback_on_step_end, height/width,
on the tiny model folders of every family."""

import numpy as np
import pytest
import torch
from PIL import Image

import framecast

PROMPT = "a big red circle moves right"


def seeded(s=0):
    return torch.Generator().manual_seed(s)


def call(p, frames=4, **kw):
    return p(PROMPT, num_frames=frames, num_inference_steps=2, generator=seeded(), **kw)


@pytest.mark.parametrize("which", ["pipe", "hybrid", "ar"])
def test_output_types_agree(which, request):
    p = request.getfixturevalue(which)
    np_out = call(p, 2)
    assert np_out.output_type == "np" and np_out.frames[0].dtype == np.uint8 and np_out.frames[0].shape == (2, 32, 32, 3)
    pt = call(p, 2, output_type="pt").frames
    assert pt.shape == (1, 2, 3, 32, 32) and pt.dtype == torch.float32 and 0 <= pt.min() and pt.max() <= 1
    assert np.abs((pt[0].permute(0, 2, 3, 1) * 255).numpy() - np_out.frames[0]).max() <= 1
    pil = call(p, 2, output_type="pil").frames
    assert len(pil) == 1 and len(pil[0]) == 2 and isinstance(pil[0][0], Image.Image) and pil[0][0].size == (32, 32)
    assert np.array_equal(np.asarray(pil[0][1]), np_out.frames[0][1])
    latent = call(p, 2, output_type="latent").frames
    if which == "ar":
        assert latent.dtype == torch.long and latent.shape == (1, 2, *p.model.grid_hw)
        decoded = p.model.tokenizer.decode(latent).clamp(-1, 1)
    else:
        C, side = p.model.latent_shape
        assert latent.shape == (1, 2, C, side, side) and latent.is_floating_point()
        decoded = p.model.from_latent(latent).clamp(-1, 1)
    assert np.abs(framecast.video.to_uint8(decoded).astype(int) - np_out.frames[0]).max() <= 1


def test_export_takes_every_decoded_output_type(pipe, tmp_path):
    ref = framecast.export_to_video(call(pipe), tmp_path / "np.npy")
    for kind in ("pt", "pil"):
        path = framecast.export_to_video(call(pipe, output_type=kind), tmp_path / f"{kind}.npy")
        assert np.abs(np.load(path).astype(int) - np.load(ref)).max() <= 1
    with pytest.raises(ValueError, match="decoded frames"):
        framecast.export_to_video(call(pipe, output_type="latent"), tmp_path / "latent.npy")


@pytest.mark.parametrize("which", ["pipe", "hybrid"])
def test_latents_are_the_starting_noise(which, request):
    p = request.getfixturevalue(which)
    C, side = p.model.latent_shape
    noise = torch.randn((1, 4, C, side, side), generator=seeded(3))
    a = p(PROMPT, num_frames=4, num_inference_steps=2, latents=noise.clone()).frames[0]
    b = p(PROMPT, num_frames=4, num_inference_steps=2, generator=seeded(3)).frames[0]
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match=r"latents has shape \(1, 2"):
        p(PROMPT, num_frames=4, latents=noise[:, :2])
    with pytest.raises(ValueError, match="latents holds NaN"):
        p(PROMPT, num_frames=4, latents=torch.full_like(noise, float("nan")))
    with pytest.raises(ValueError, match="latents must hold floating"):
        p(PROMPT, num_frames=4, latents=noise.long())
    with pytest.raises(ValueError, match="latents must be a torch.Tensor"):
        p(PROMPT, num_frames=4, latents=noise.numpy())


def test_token_models_refuse_latents_and_callback_tensors(ar):
    with pytest.raises(ValueError, match="latents is for diffusion and hybrid"):
        call(ar, latents=torch.zeros(1))
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs: .* has no 'x0'"):
        call(ar, callback_on_step_end=lambda *a: None, callback_on_step_end_tensor_inputs=["x0"])


def test_callback_round_trip(pipe):
    seen = []

    def halve(p, step, timestep, kwargs):
        seen.append(sorted(kwargs))
        kwargs["latents"] = kwargs["latents"] * 0.5
        return kwargs

    halved = call(pipe, callback_on_step_end=halve).frames[0]
    assert seen[0] == ["latents", "x0"] and not np.array_equal(halved, call(pipe).frames[0])
    assert np.array_equal(call(pipe, callback_on_step_end=lambda p, i, t, kw: kw).frames[0], call(pipe).frames[0])
    seen.clear()
    call(pipe, callback_on_step_end=lambda p, i, t, kw: seen.append(sorted(kw)), callback_on_step_end_tensor_inputs=["latents"])
    assert seen == [["latents"], ["latents"]]


@pytest.mark.parametrize("returned, match", [
    (3, "must return its callback_kwargs dict"),
    ({"latents": torch.zeros(2)}, r"'latents' of shape \(2,\)"),
    ({"latents": "x"}, "'latents' of str"),
    ({"latents": torch.full((1, 4, 3, 32, 32), float("inf"))}, "NaN or infinite"),
])
def test_callback_returns_are_checked(pipe, returned, match):
    with pytest.raises(ValueError, match="callback_on_step_end") as e:
        call(pipe, callback_on_step_end=lambda p, i, t, kw: returned)
    assert e.match(match)


def test_callback_arguments_are_checked(pipe):
    with pytest.raises(ValueError, match="callback_on_step_end must be a function"):
        call(pipe, callback_on_step_end=3)
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        call(pipe, callback_on_step_end=lambda *a: None, callback_on_step_end_tensor_inputs=["noise"])
    with pytest.raises(ValueError, match="needs a callback_on_step_end"):
        call(pipe, callback_on_step_end_tensor_inputs=["latents"])


def test_height_width_and_output_type(pipe):
    assert call(pipe, height=32, width=32).frames[0].shape == (4, 32, 32, 3)
    with pytest.raises(ValueError, match="height=64, but this model makes 32x32"):
        call(pipe, height=64)
    with pytest.raises(ValueError, match="width must be a whole number"):
        call(pipe, width=32.5)
    with pytest.raises(ValueError, match="output_type must be one of"):
        call(pipe, output_type="mp4")


def test_num_videos_per_prompt(pipe):
    out = pipe([PROMPT, "a small blue square moves up"], num_frames=4, num_inference_steps=2, num_videos_per_prompt=2)
    assert len(out.frames) == 4
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(ValueError, match="num_videos_per_prompt"):
            call(pipe, num_videos_per_prompt=bad)
