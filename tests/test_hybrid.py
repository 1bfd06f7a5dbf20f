"""The hybrid family: diffusion forcing, any matrix, cache equivalence, streaming, long clips."""

from dataclasses import asdict

import pytest
import torch

from framecast.data.shapes import render_clip, shapes_batches
from framecast.generators import GenerationRequest, ModelSpec, build_generator
from framecast.sampling.noise_matrix import build_matrix
from framecast.train.recipes import shapes_hybrid_tiny
from framecast.video import from_uint8

PROMPT = "a big red circle moves right"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_generator(ModelSpec(**asdict(shapes_hybrid_tiny().model)))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()


def _req(**kw):
    base = dict(prompts=[PROMPT], num_frames=4, steps=3, generator=torch.Generator().manual_seed(0))
    return GenerationRequest(**{**base, **kw})


def test_training_levels_and_loss(model):
    levels, in_loss = model.training_levels(64, 4, torch.Generator().manual_seed(0))
    assert levels.shape == (64, 4) and (levels >= 0).all() and (levels <= 1).all()
    assert (~in_loss).any() and in_loss.any()  # some clips have a clean prefix left out of the loss
    assert (levels[~in_loss] <= model.config.context_noise + 1e-6).all()
    batch = next(shapes_batches(batch_size=2, frames=4))
    loss = model.loss(batch, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and model.backbone.head.weight.grad is not None


@pytest.mark.parametrize("sampler", ["euler", "euler-ancestral"])
@pytest.mark.parametrize("schedule", ["autoregressive", "pyramid", "full"])
def test_cached_and_uncached_sampling_agree(model, schedule, sampler):
    a = model.generate(_req(schedule=schedule, use_cache=True, sampler=sampler))
    b = model.generate(_req(schedule=schedule, use_cache=False, sampler=sampler))
    assert a.shape == (1, 4, 3, 32, 32)
    assert torch.allclose(a, b, atol=1e-4)
    if sampler == "euler-ancestral":  # fresh noise at every step: not the Euler clip
        assert not torch.allclose(a, model.generate(_req(schedule=schedule)), atol=1e-3)


@pytest.mark.parametrize("schedule", ["autoregressive", "pyramid"])
def test_noised_context_is_the_same_with_and_without_the_cache(model, schedule):
    a = model.generate(_req(schedule=schedule, use_cache=True, context_level=0.1))
    b = model.generate(_req(schedule=schedule, use_cache=False, context_level=0.1))
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, model.generate(_req(schedule=schedule)), atol=1e-3)  # the level is used
    with pytest.raises(ValueError, match="context_level must be in"):
        model.generate(_req(context_level=1.0))


def test_cache_saves_forward_work(model):
    # Same number of calls, but cached calls see one frame instead of the whole prefix.
    frames_seen = {}
    for use_cache in (True, False):
        seen = []
        h = model.backbone.register_forward_pre_hook(lambda mod, args, kw=None: seen.append(args[0].shape[1]))
        model.generate(_req(use_cache=use_cache))
        h.remove()
        frames_seen[use_cache] = sum(seen)
    assert frames_seen[True] < frames_seen[False]


def test_streaming_yields_frames_in_order(model):
    chunks = list(model.stream(_req(schedule="autoregressive")))
    assert [c.shape[1] for c in chunks] == [1, 1, 1, 1]
    assert torch.allclose(torch.cat(chunks, 1), model.generate(_req(schedule="autoregressive")))


def test_long_clip_beyond_training_length(model):
    out = model.generate(_req(num_frames=12, steps=2))
    assert out.shape[1] == 12 and torch.isfinite(out).all()
    # memory is bounded: the cache never holds more than sinks + window token-frames
    from framecast.nn.attention import KVCache

    sizes = []
    orig = KVCache.keep_frames

    def spy(self, ids):
        orig(self, ids)
        sizes.append(self.num_frames)

    KVCache.keep_frames = spy
    try:
        model.generate(_req(num_frames=12, steps=2))
    finally:
        KVCache.keep_frames = orig
    assert sizes and max(sizes) <= model.config.sinks + model.window_frames()


def test_a_finished_frame_enters_the_cache_in_the_next_frame_s_first_pass(model, monkeypatch):
    """The pass that begins a frame also writes the frame before it into the cache: one model call
    a frame fewer than a write pass of its own, and within the window the same clip. Beyond the
    window the cache never holds more than sinks + window frames after a pass."""
    from framecast.generators.hybrid import StreamDenoiser
    from framecast.nn.attention import KVCache

    def run(num_frames):
        calls, held = [], []
        commit = KVCache.commit
        monkeypatch.setattr(KVCache, "commit", lambda self, *a: commit(self, *a) or held.append(self.num_frames))
        h = model.backbone.register_forward_pre_hook(lambda mod, args: calls.append(args[0].shape[1]))
        try:
            return model.generate(_req(num_frames=num_frames)), calls, held
        finally:
            h.remove()
            monkeypatch.setattr(KVCache, "commit", commit)

    fused, fused_calls, _ = run(4)
    _, _, held = run(12)
    assert max(held) <= model.config.sinks + model.window_frames()
    monkeypatch.setattr(StreamDenoiser, "fuse_writes", False)
    two_pass, calls, _ = run(4)
    assert len(calls) == 4 * 3 + 3 and len(fused_calls) == 4 * 3  # 3 steps a frame; frames 0-2 written on their own or not
    assert torch.allclose(fused, two_pass, atol=1e-4)


def test_context_frames_are_kept(model):
    clip = from_uint8(render_clip(1, frames=4).video)[None]
    out = model.generate(_req(context_BTCHW=clip[:, :2]))
    assert torch.allclose(out[:, :2], clip[:, :2], atol=1e-5)


def test_custom_matrix_and_errors(model):
    m = build_matrix("pyramid", 4, 3, offset=1)
    assert model.generate(_req(matrix=m)).shape[1] == 4
    with pytest.raises(ValueError, match="token-frames"):
        model.generate(_req(matrix=build_matrix("full", 3, 3)))
    with pytest.raises(ValueError, match="shorter than the clip"):
        model.generate(_req(context_BTCHW=torch.zeros(1, 4, 3, 32, 32)))
    with pytest.raises(ValueError, match="frames must be > 0"):
        model.generate(_req(num_frames=0))
    with pytest.raises(ValueError, match="unknown sampler"):
        model.generate(_req(sampler="ddim-magic"))


def test_first_steps_from_the_config_and_the_request(model):
    plain = model.noise_matrix(_req()).levels
    try:
        model.config.first_steps = 6
        K = model.noise_matrix(_req()).levels
        assert K.shape[0] == plain.shape[0] + 3 and int((K[1:, 0] != K[:-1, 0]).sum()) == 6
        assert torch.equal(model.noise_matrix(_req(first_steps=0)).levels, plain)  # the request's 0: the same steps for all
        assert model.noise_matrix(_req(schedule="full")).steps == 3  # the model's default does not apply to full
        context = model.noise_matrix(_req(), context_frames=model.patch_frames).levels
        assert (context[:, 0] == 0).all() and context.shape[0] == plain.shape[0] - 3  # a given first frame needs no steps
    finally:
        model.config.first_steps = 0
    assert model.generate(_req(first_steps=5)).shape[1] == 4
    with pytest.raises(ValueError, match="full schedule"):
        model.generate(_req(first_steps=5, schedule="full"))
    with pytest.raises(ValueError, match="first_steps must be between"):
        model.generate(_req(first_steps=-1))


@pytest.mark.parametrize("sampler", ["euler", "euler-ancestral", "heun", "dpmpp-2m"])
@pytest.mark.parametrize("schedule", ["autoregressive", "pyramid"])
def test_every_sampler_steps_the_matrix_the_same_with_and_without_the_cache(model, sampler, schedule):
    """The shared samplers step the hybrid's matrix per frame: reading clean frames from the KV
    cache gives the clip that recomputing them gives, for first- and second-order samplers."""
    cached = model.generate(_req(sampler=sampler, schedule=schedule, use_cache=True))
    fresh = model.generate(_req(sampler=sampler, schedule=schedule, use_cache=False))
    assert torch.isfinite(cached).all() and torch.allclose(cached, fresh, atol=1e-4)


def test_teacher_forcing_pass_sees_what_sampling_sees(model):
    """The backbone's teacher-forced pass predicts token-frame f of the noisy copy from the context
    copy's earlier token-frames, as frame-by-frame sampling does."""
    from framecast.nn.attention import MaskSpec

    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(1, 4, 3, 32, 32, generator=g), torch.randn(1, 4, 3, 32, 32, generator=g)
    levels, ctx_level = torch.tensor([[0.9, 0.3, 1.0, 0.5]]), torch.full((1, 4), 0.05)
    x_s = (1 - model.per_pixel(levels, 4)) * x0 + model.per_pixel(levels, 4) * noise
    text = model.text.encode([PROMPT])
    with torch.no_grad():
        tf = model.backbone.forward_teacher_forced(x0, x_s, ctx_level, levels, text)
        for f in range(4):
            seq = torch.cat([x0[:, :f], x_s[:, f : f + 1]], 1)
            lv = torch.cat([ctx_level[:, :f], levels[:, f : f + 1]], 1)
            step = model.backbone(seq, lv, text, mask=MaskSpec("frame-causal"))[:, f]
            assert torch.allclose(step, tf[:, f], atol=1e-4)
