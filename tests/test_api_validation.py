"""Every argument of `framecast.load`, `pipe(...)` and `pipe.stream(...)` is checked where it enters,
before any work, in a ValueError that names the public argument."""

import math
import warnings

import numpy as np
import pytest
import torch

import framecast
from framecast.data.shapes import render_clip

PROMPT = "a big red circle moves right"


BAD = [
    ("unknown argument 'steps'", dict(steps=3)),
    ("unknown argument 'batch_size'", dict(batch_size=0)),
    ("num_inference_steps must be between 1 and 1000", dict(num_inference_steps=0)),
    ("num_inference_steps must be between 1 and 1000", dict(num_inference_steps=2**40)),
    ("num_inference_steps must be a whole number", dict(num_inference_steps=2.5)),
    ("num_inference_steps must be a whole number", dict(num_inference_steps=True)),
    ("guidance_scale must be a finite number, got nan", dict(guidance_scale=math.nan)),
    ("guidance_scale must be a finite number, got inf", dict(guidance_scale=math.inf)),
    ("guidance_scale must be a number", dict(guidance_scale="4")),
    ("guidance_scale must be in", dict(guidance_scale=1e30)),
    ("num_frames must be > 0", dict(num_frames=0)),
    ("num_frames must be a whole number", dict(num_frames=4.0)),
    ("num_frames must be a whole number", dict(num_frames=False)),
    ("at most num_frames=", dict(num_frames=10**9)),
    ("num_frames=3, but this model makes clips in multiples of 2", dict(num_frames=3)),
    ("shift must be in", dict(shift=0)),
    ("shift must be a finite number", dict(shift=math.nan)),
    ("sampler must be a name", dict(sampler=["euler"])),
    ("unknown sampler", dict(sampler="nope")),
    ("generator must be a torch.Generator", dict(generator=0)),
    ("got 2 generators for 1 clips", dict(generator=[torch.Generator(), torch.Generator()])),
    ("negative_prompt must be a string or a list", dict(negative_prompt=3)),
    ("give one negative_prompt or one per clip", dict(negative_prompt=["a", "b", "c"])),
    ("temperature is for autoregressive models", dict(temperature=0.5)),
    ("context_frames needs a video", dict(context_frames=2)),
]


@pytest.mark.parametrize("match, kwargs", BAD, ids=[m for m, _ in BAD])
def test_bad_arguments_are_named(pipe, match, kwargs):
    with pytest.raises(ValueError, match=match.replace("(", r"\(")):
        pipe(PROMPT, **{"num_frames": 4, **kwargs})


@pytest.mark.parametrize("prompt, match", [
    (None, "prompt is missing"),
    ([], "prompt is an empty list"),
    ([PROMPT, 3], "prompt must hold strings, got int"),
    (b"a big red circle", "prompt must be a string or a list of strings, got bytes"),
    ("\U0001F600\U0001F680", "has no words"),
    ("!!! ... ???", "has no words"),
    ("square square square", "not a caption this model can read"),
    ("dragon " * 20000, "unknown word 'dragon'"),
])
def test_bad_prompts(pipe, prompt, match):
    with pytest.raises(ValueError, match=match) as e:
        pipe(prompt, num_frames=4)
    assert len(str(e.value)) < 400  # a huge prompt is quoted cut, never whole


def test_token_model_arguments(ar):
    for kwargs, match in [
        (dict(temperature=math.nan), "temperature must be a finite number"),
        (dict(temperature=-1), "temperature must be in"),
        (dict(top_p=0), r"top_p must be in \(0, 1\]"),
        (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
        (dict(top_k=-1), "top_k must be >= 0"),
        (dict(top_k=2.0), "top_k must be a whole number"),
        (dict(refine=10**6), "refine must be between 0 and 100"),
        (dict(decode=3), "decode must be a name"),
        (dict(decode="zigzag"), "unknown decoding order"),
        (dict(use_cache="yes"), "use_cache must be True or False"),
        (dict(sampler="euler"), "sampler is for diffusion and hybrid"),
    ]:
        with pytest.raises(ValueError, match=match):
            ar(PROMPT, num_frames=2, **kwargs)


def test_hybrid_arguments_and_stream_checks_at_the_call(hybrid):
    with pytest.raises(ValueError, match=r"context_level must be in \[0, 1\)"):
        hybrid.stream(PROMPT, num_frames=4, context_level=1.0)
    with pytest.raises(ValueError, match="context_level must be a finite number"):
        hybrid.stream(PROMPT, num_frames=4, context_level=math.nan)
    with pytest.raises(ValueError, match="num_inference_steps"):
        hybrid.stream(PROMPT, num_frames=4, num_inference_steps=-3)  # at the call, not at the first frame
    with pytest.raises(ValueError, match="stream yields uint8 frames"):
        hybrid.stream(PROMPT, output_type="pt")
    chunks = list(hybrid.stream(PROMPT, num_frames=4, num_inference_steps=2))
    assert sum(c.shape[0] for c in chunks) == 4


def test_images_and_videos(pipe, tmp_path):
    first = render_clip(2).video[0]
    with pytest.warns(UserWarning, match="image is 64x64; resized to this model's 32x32"):
        out = pipe(PROMPT, num_frames=4, num_inference_steps=2, image=first.repeat(2, 0).repeat(2, 1))
    assert np.abs(out.frames[0][0].astype(int) - first.astype(int)).max() <= 1  # area averaging undoes an upscale
    for image, match in [
        (first.astype(np.float32), "image: expected uint8 frames"),
        (np.zeros((32, 32, 4), np.uint8), "image: expected frames shaped"),
        (torch.full((3, 32, 32), math.nan), "image: a tensor must hold finite floats"),
        (3, "image: expected frames shaped"),
    ]:
        with pytest.raises(ValueError, match=match):
            pipe(PROMPT, num_frames=4, image=image)
    with pytest.raises(ValueError, match="context_frames is for video"):
        pipe(PROMPT, num_frames=4, image=first, context_frames=2)
    clip = render_clip(2, frames=4).video
    for k, match in [(0, "context_frames must be > 0"), (9, "the video has only 4"), (2.0, "context_frames must be a whole number")]:
        with pytest.raises(ValueError, match=match):
            pipe(PROMPT, num_frames=4, video=clip, context_frames=k)


def test_own_mp4_comes_back_as_a_video(pipe, tmp_path):
    """framecast's .mp4 outputs are upscaled for viewing; given back as `video` they are resized."""
    clip = render_clip(2, frames=4).video
    path = framecast.export_to_video(clip, tmp_path / "clip.mp4")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = pipe(PROMPT, num_frames=4, num_inference_steps=2, video=str(path), context_frames=2)
    assert any("resized to this model's 32x32" in str(w.message) for w in caught)
    assert np.abs(out.frames[0][:2].astype(int) - clip[:2].astype(int)).mean() < 8  # the codec's loss only


def test_load_arguments(tiny_model_dir):
    for kwargs, match in [
        (dict(device=3.5), "device must be a name"),
        (dict(device="tpu"), "unknown device"),
        (dict(device="meta"), "runs on cpu or cuda"),
        (dict(precision="fp8"), "precision must be one of"),
        (dict(precision=None), "precision must be one of"),
        (dict(dtype="fp32"), "unknown argument 'dtype'"),
    ]:
        with pytest.raises(ValueError, match=match):
            framecast.load(str(tiny_model_dir), **kwargs)
    with pytest.raises(ValueError, match="the model must be a bundled name or a folder"):
        framecast.load(None)
    with pytest.raises(ValueError, match="no model"):
        framecast.load("x" * 10000)
