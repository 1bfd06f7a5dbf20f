"""The backbone: layout, masks, adaLN-Zero, and the KV cache against recomputation."""

import pytest
import torch

from framecast.data.shapes import VOCABULARY
from framecast.nn.attention import IS_CAUSAL, KVCache, MaskSpec, attention_mask, frame_mask
from framecast.nn.transformer import SpaceTimeTransformer, transformer_tiny
from framecast.text.encoder import WordEncoderConfig, WordTextEncoder


def _model(**kw):
    torch.manual_seed(0)
    m = SpaceTimeTransformer(transformer_tiny(**kw))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # leave the zero init so outputs are non-trivial
    text = WordTextEncoder(WordEncoderConfig(vocabulary=list(VOCABULARY), width=32, depth=1, heads=2))
    return m.eval(), text.encode(["a big red circle moves right"])


def test_patchify_round_trip_and_shapes():
    m, text = _model(patch_size=4, patch_frames=2)
    x = torch.randn(1, 6, 3, 16, 16)
    assert torch.equal(m.unpatchify(m.patchify(x), m.grid(6, 16, 16)), x)
    out = m(x, torch.full((1,), 0.5), text)
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="does not split"):
        m(torch.randn(1, 5, 3, 16, 16), torch.full((1,), 0.5), text)


def test_adaln_zero_starts_at_zero():
    torch.manual_seed(0)
    m = SpaceTimeTransformer(transformer_tiny())
    text = WordTextEncoder(WordEncoderConfig(vocabulary=list(VOCABULARY), width=32, depth=1, heads=2)).encode(["a big red circle moves right"])
    assert m(torch.randn(1, 2, 3, 32, 32), torch.rand(1), text).abs().max() == 0


def test_masks():
    f = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    assert frame_mask(MaskSpec("full"), f, f) is None
    causal = frame_mask(MaskSpec("frame-causal"), f, f)
    assert causal[2, 3] and not causal[2, 4] and causal[7, 0]
    block = frame_mask(MaskSpec("block-causal", block=2), f, f)
    assert block[0, 3] and not block[0, 4] and block[4, 7]
    window = frame_mask(MaskSpec("sliding-window", window=2), f, f)
    assert window[6, 4] and not window[6, 3]
    with pytest.raises(ValueError, match="unknown attention mask"):
        MaskSpec("diagonal")


def test_frame_causal_outputs_do_not_see_the_future():
    m, text = _model(patch_size=8, patch_frames=1)
    x = torch.randn(1, 4, 3, 16, 16)
    a = m(x, torch.full((1, 4), 0.3), text, mask=MaskSpec("frame-causal"))
    x2 = x.clone()
    x2[:, 3] = torch.randn_like(x2[:, 3])
    b = m(x2, torch.full((1, 4), 0.3), text, mask=MaskSpec("frame-causal"))
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6) and not torch.allclose(a[:, 3], b[:, 3])


def test_token_causal_mask_takes_sdpa_is_causal_and_matches_the_explicit_mask():
    """Raster training hands SDPA `is_causal` (its kernels skip the masked half); the output must
    equal the explicit (t, y, x)-order boolean mask, which any other layout still gets."""
    m, text = _model(patch_size=1, patch_frames=1, channels=3)
    grid = (3, 4, 4)
    pos = m.positions(grid)
    assert attention_mask(MaskSpec("causal"), pos, pos, grid[1:]) == IS_CAUSAL
    explicit = attention_mask(MaskSpec("causal"), pos.flip(0), pos.flip(0), grid[1:])  # not raster order: a real mask
    assert isinstance(explicit, torch.Tensor) and explicit[0, -1] and not explicit[-1, 0]
    x = torch.randn(1, pos.shape[0], 3)
    level = torch.full((1, 1), 0.2)
    fast = m.forward_tokens(x, pos, level, text, mask=MaskSpec("causal"), grid_hw=grid[1:])
    order = torch.arange(pos.shape[0])
    slow = m.forward_tokens(x, pos, level, text, attn_mask=order[None, :] <= order[:, None])
    assert torch.allclose(fast, slow, atol=1e-5)
    assert not torch.allclose(fast, m.forward_tokens(x, pos, level, text, grid_hw=grid[1:]), atol=1e-3)  # the mask matters


@pytest.mark.parametrize("kind", ["frame-causal", "sliding-window"])
def test_kv_cache_matches_recompute(kind):
    """Frame by frame with a cache = the whole clip at once under the same causal mask."""
    m, text = _model(patch_size=8, patch_frames=1)
    spec = MaskSpec(kind, window=2)
    x = torch.randn(1, 5, 3, 16, 16)
    levels = torch.rand(1, 5)
    full = m(x, levels, text, mask=spec)
    cache = KVCache(len(m.blocks))
    outs = []
    for t in range(5):
        outs.append(m(x[:, t : t + 1], levels[:, t : t + 1], text, mask=spec, cache=cache, frame_offset=t))
    assert len(cache) == 5 * 4
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-5)


def test_read_only_cache_is_not_changed():
    m, text = _model(patch_size=8, patch_frames=1)
    x = torch.randn(1, 3, 3, 16, 16)
    cache = KVCache(len(m.blocks))
    m(x[:, :2], torch.zeros(1, 2), text, mask=MaskSpec("frame-causal"), cache=cache)
    cache.writing = False
    a = m(x[:, 2:], torch.full((1, 1), 0.7), text, mask=MaskSpec("frame-causal"), cache=cache, frame_offset=2)
    b = m(x[:, 2:], torch.full((1, 1), 0.7), text, mask=MaskSpec("frame-causal"), cache=cache, frame_offset=2)
    assert len(cache) == 8 and torch.equal(a, b)
    full = m(x, torch.tensor([[0.0, 0.0, 0.7]]), text, mask=MaskSpec("frame-causal"))
    assert torch.allclose(full[:, 2:], a, atol=1e-5)


def test_rolling_window_renumbers_kept_frames():
    """After evicting frames, cached attention equals recomputing on the kept frames alone. With one
    layer the cached keys depend on their own frame only, so this checks the re-numbering exactly."""
    m, text = _model(patch_size=8, patch_frames=1, depth=1)
    x = torch.randn(1, 7, 3, 16, 16)
    spec = MaskSpec("frame-causal")
    cache = KVCache(len(m.blocks))
    for t in range(6):
        m(x[:, t : t + 1], torch.zeros(1, 1), text, mask=spec, cache=cache, frame_offset=t)
    cache.keep_frames(torch.tensor([0, 4, 5]))  # one sink frame + a window of two
    assert cache.num_frames == 3 and len(cache) == 12
    cache.writing = False
    new = m(x[:, 6:7], torch.full((1, 1), 0.5), text, mask=spec, cache=cache, frame_offset=6)
    kept = torch.cat([x[:, 0:1], x[:, 4:6], x[:, 6:7]], 1)
    ref = m(kept, torch.tensor([[0.0, 0.0, 0.0, 0.5]]), text, mask=spec)
    assert torch.allclose(new, ref[:, 3:], atol=1e-5)
