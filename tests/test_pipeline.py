"""The Python API: load, call like diffusers, export."""

import numpy as np
import pytest
import torch

import framecast
from framecast.data.shapes import render_clip

PROMPT = "a big red circle moves right"


def test_call_returns_frames_and_is_seeded(pipe, tmp_path):
    out = pipe("a big red circle moves right", num_frames=4, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert len(out.frames) == 1 and out.frames[0].shape == (4, 32, 32, 3) and out.frames[0].dtype == np.uint8
    again = pipe("a big red circle moves right", num_frames=4, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(out.frames[0], again.frames[0])
    other = pipe("a big red circle moves right", num_frames=4, num_inference_steps=2, generator=torch.Generator().manual_seed(1))
    assert not np.array_equal(out.frames[0], other.frames[0])
    path = framecast.export_to_video(out, tmp_path / "clip.mp4", fps=8)
    assert path.stat().st_size > 0


def test_batch_seed_independence_and_negative_prompt(pipe):
    gens = lambda: [torch.Generator().manual_seed(s) for s in (5, 6)]  # noqa: E731
    both = pipe(["a big red circle moves right", "a small blue square moves up"], num_frames=4, num_inference_steps=2, generator=gens())
    alone = pipe("a small blue square moves up", num_frames=4, num_inference_steps=2, generator=[torch.Generator().manual_seed(6)])
    assert np.array_equal(both.frames[1], alone.frames[0])
    neg = pipe("a small blue square moves up", negative_prompt="a big red circle moves right", num_frames=4, num_inference_steps=2,
               guidance_scale=3.0, generator=[torch.Generator().manual_seed(6)])
    assert not np.array_equal(neg.frames[0], alone.frames[0])


def test_callback_on_step_end(pipe):
    calls = []

    def cb(p, step, sigma, kwargs):
        calls.append((step, sigma, kwargs["latents"].shape))
        return kwargs

    pipe("a big red circle moves right", num_frames=4, num_inference_steps=3, callback_on_step_end=cb)
    assert [c[0] for c in calls] == [0, 1, 2] and calls[-1][1] == 0.0 and calls[0][2] == (1, 4, 3, 32, 32)


def test_image_to_video_keeps_the_first_frame(pipe):
    first = render_clip(2).video[0]
    out = pipe("a big red circle moves right", num_frames=4, num_inference_steps=3, image=first)
    assert np.abs(out.frames[0][0].astype(int) - first.astype(int)).max() <= 1
    clip = render_clip(2, frames=4).video
    out = pipe("a big red circle moves right", num_frames=4, num_inference_steps=3, video=clip, context_frames=2)
    assert np.abs(out.frames[0][:2].astype(int) - clip[:2].astype(int)).max() <= 1


def test_bad_requests(pipe):
    with pytest.raises(ValueError, match="empty"):
        pipe("")
    with pytest.raises(ValueError, match="unknown word"):
        pipe("a big red dragon moves right")
    with pytest.raises(ValueError, match="num_frames must be > 0"):
        pipe("a big red circle moves right", num_frames=0)
    with pytest.raises(ValueError, match="shorter than the clip"):
        pipe("a big red circle moves right", num_frames=4, video=render_clip(0, frames=8).video)
    with pytest.raises(ValueError, match="context_level is for hybrid models"):
        pipe("a big red circle moves right", num_frames=4, context_level=0.1)
    with pytest.raises(ValueError, match="no model"):
        framecast.load("no-such-model")


def test_a_codec_is_not_a_pipeline(tmp_path):
    from framecast.codecs import CausalVAE, VAEConfig
    from framecast.generators import save_pretrained

    save_pretrained(CausalVAE(VAEConfig(width=8)), tmp_path / "vae")
    with pytest.raises(ValueError, match="not a video generator"):
        framecast.load(str(tmp_path / "vae"))


def test_devices(pipe, tiny_model_dir):
    from framecast.pipeline import resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        framecast.load(str(tiny_model_dir), device="tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            framecast.load(str(tiny_model_dir), device="cuda")
        return
    # on a GPU: the same seed gives (nearly) the same clip on either device, in fp32
    cpu = framecast.load(str(tiny_model_dir), device="cpu", precision="fp32")
    gpu = framecast.load(str(tiny_model_dir), device="cuda", precision="fp32")
    assert gpu.device.type == "cuda" and cpu.to("cpu") is cpu
    a = cpu("a big red circle moves right", num_frames=4, generator=torch.Generator().manual_seed(0)).frames[0]
    b = gpu("a big red circle moves right", num_frames=4, generator=torch.Generator().manual_seed(0)).frames[0]
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0


def test_check_refuses_what_a_call_would_refuse_without_generating(tiny_model_dir, tiny_hybrid_dir, tiny_ar_dir):
    """`Pipeline.check` (what a server runs before it queues a job) gives the call's own sentences."""
    import framecast

    for folder, bad, sentence in ((tiny_model_dir, dict(schedule="pyramid"), "needs a hybrid model"),
                                  (tiny_hybrid_dir, dict(sampler="ddim-magic"), "unknown sampler"),
                                  (tiny_ar_dir, dict(decode="set"), "trained for 'raster' order")):
        pipe = framecast.load(folder, device="cpu")
        called = []
        pipe.model.generate = lambda request: called.append(request)
        pipe.check("a big red circle moves right", num_frames=4)
        with pytest.raises(ValueError, match=sentence):
            pipe.check("a big red circle moves right", num_frames=4, **bad)
        assert not called


def test_total_steps_counts_every_callback(tiny_model_dir, tiny_hybrid_dir, tiny_ar_dir):
    """`total_steps` is what a progress bar counts: the step callbacks of the call, for every family
    (denoising steps, or a token model's decoding passes)."""
    for folder, kw in ((tiny_model_dir, dict(num_inference_steps=3)), (tiny_hybrid_dir, dict(num_inference_steps=2)),
                       (tiny_hybrid_dir, dict(num_inference_steps=2, schedule="full")), (tiny_ar_dir, dict()),
                       (tiny_ar_dir, dict(decode="diagonal")), (tiny_ar_dir, dict(decode="diagonal", context_frames=1))):
        pipe = framecast.load(folder, device="cpu", precision="fp32")
        if "context_frames" in kw:
            kw = dict(kw, video=np.zeros((2, 32, 32, 3), np.uint8))
        steps = []
        pipe(PROMPT, num_frames=4, callback_on_step_end=lambda p, i, t, kwargs: steps.append(i), **kw)
        assert steps == list(range(pipe.total_steps(PROMPT, num_frames=4, **kw))) and steps, (folder.name, kw)
    assert framecast.load(tiny_ar_dir, device="cpu").total_steps(PROMPT, num_frames=4) == 4 * 16  # raster: a pass a token


def test_token_model_callbacks(tiny_ar_dir):
    """A token model calls callback_on_step_end after every decoding pass with timestep None and no
    tensors: it has no latents to show or replace."""
    pipe = framecast.load(tiny_ar_dir, device="cpu", precision="fp32")
    seen = []
    pipe(PROMPT, num_frames=1, callback_on_step_end=lambda p, i, t, kwargs: seen.append((p, t, kwargs)) or kwargs)
    assert len(seen) == 16 and all(p is pipe and t is None and kw == {} for p, t, kw in seen)
    pipe(PROMPT, num_frames=1, callback_on_step_end=lambda *a: None, callback_on_step_end_tensor_inputs=[])
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs: .* has no 'latents'"):
        pipe(PROMPT, num_frames=1, callback_on_step_end=lambda *a: None, callback_on_step_end_tensor_inputs=["latents"])
    for returned in ({"latents": torch.zeros(1)}, 3):
        with pytest.raises(ValueError, match="callback_on_step_end returned"):
            pipe(PROMPT, num_frames=1, callback_on_step_end=lambda p, i, t, kwargs, r=returned: r)
