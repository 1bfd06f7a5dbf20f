"""Wan 2.1 transformer: parity with diffusers' WanTransformer3DModel (tiny random models, fp32),
the original Wan key layout, block-causal streaming with the KV cache, refused configs."""

from __future__ import annotations

import re

import pytest
import torch

from framecast.nn.attention import MaskSpec
from framecast.nn.wan import WanStream, WanTransformer, WanTransformerConfig, load_wan_weights, wan_tiny
from framecast.nn.wan_keys import to_framecast

diffusers = pytest.importorskip("diffusers")

# heads of 12: the RoPE frequencies (6) split 2 / 2 / 2 between frames, height and width
TINY = dict(patch_size=[1, 2, 2], num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
            text_dim=32, freq_dim=16, ffn_dim=64, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
            eps=1e-6, rope_max_seq_len=1024)


def _perturb(model: torch.nn.Module, seed: int) -> None:
    """Random values everywhere, norms included, so that a swapped or misnamed weight shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    ref = diffusers.WanTransformer3DModel(**TINY).eval()
    _perturb(ref, 1)
    return ref


def _inputs(B=2, F=3, side=8, L=7):
    g = torch.Generator().manual_seed(2)
    return torch.randn(B, 16, F, side, side, generator=g), torch.randn(B, L, 32, generator=g)


def _framecast_from(state_dict, config: dict, layout=None) -> WanTransformer:
    model = WanTransformer(WanTransformerConfig.from_diffusers(config)).eval()
    load_wan_weights(model, state_dict, layout)
    return model


def _framecast(state_dict, layout=None) -> WanTransformer:
    return _framecast_from(state_dict, {**TINY, "_class_name": "WanTransformer3DModel"}, layout)


@torch.no_grad()
def test_parity_with_diffusers_one_timestep_and_per_frame(reference):
    ours = _framecast(reference.state_dict())
    x, text = _inputs()
    t = torch.tensor([999.0, 421.5])
    ref = reference(x, t, text, return_dict=False)[0]
    assert ours(x, t, text).shape == ref.shape == x.shape
    assert (ours(x, t, text) - ref).abs().max() <= 1e-4
    t_BF = torch.tensor([[999.0, 700.0, 12.5], [0.0, 333.0, 980.0]])
    tokens_per_frame = (8 // 2) ** 2  # diffusers takes one timestep per token
    ref = reference(x, t_BF.repeat_interleave(tokens_per_frame, dim=1), text, return_dict=False)[0]
    assert (ours(x, t_BF, text) - ref).abs().max() <= 1e-4


def _to_original(key: str) -> str:
    """diffusers' name of a Wan weight -> the Wan repository's (wan/modules/model.py), written out
    independently of framecast's tables."""
    top = {"condition_embedder.time_embedder.linear_1": "time_embedding.0",
           "condition_embedder.time_embedder.linear_2": "time_embedding.2",
           "condition_embedder.time_proj": "time_projection.1",
           "condition_embedder.text_embedder.linear_1": "text_embedding.0",
           "condition_embedder.text_embedder.linear_2": "text_embedding.2",
           "proj_out": "head.head", "scale_shift_table": "head.modulation", "patch_embedding": "patch_embedding",
           "fps_embedding": "fps_embedding", "fps_projection.net.0.proj": "fps_projection.0",  # SkyReels-V2
           "fps_projection.net.2": "fps_projection.2"}
    for a, b in top.items():
        if key == a or key.startswith(a + "."):
            return b + key[len(a):]
    m = re.fullmatch(r"(blocks\.\d+\.)(.+)", key)
    prefix, rest = m.groups()
    for a, b in [("attn1.to_out.0.", "self_attn.o."), ("attn2.to_out.0.", "cross_attn.o."), ("attn1.to_", "self_attn."),
                 ("attn2.to_", "cross_attn."), ("attn1.", "self_attn."), ("attn2.", "cross_attn."),
                 ("ffn.net.0.proj.", "ffn.0."), ("ffn.net.2.", "ffn.2."), ("norm2.", "norm3."),
                 ("scale_shift_table", "modulation")]:
        if rest.startswith(a):
            return prefix + b + rest[len(a):]
    raise AssertionError(key)


@torch.no_grad()
def test_original_layout_loads_to_the_same_outputs(reference):
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    sd = reference.state_dict()
    original = {_to_original(k): v for k, v in sd.items()}
    assert "blocks.0.self_attn.q.weight" in original and "blocks.1.norm3.weight" in original and "head.modulation" in original
    # the inverse written here is the one diffusers' own converter undoes
    assert set(convert_wan_transformer_to_diffusers(dict(original))) == set(sd)
    x, text = _inputs()
    t = torch.tensor([500.0, 20.0])
    want = _framecast(sd)(x, t, text)
    assert torch.equal(_framecast(original)(x, t, text), want)
    prefixed = {f"model.{k}": v for k, v in original.items()}  # CausVid / Self-Forcing generator checkpoints
    assert torch.equal(_framecast(prefixed, "original")(x, t, text), want)


def _tiny_causal(seed=3) -> WanTransformer:
    torch.manual_seed(seed)
    model = WanTransformer(wan_tiny()).eval()
    _perturb(model, seed)
    return model


@pytest.mark.parametrize("sinks, window", [(0, 0), (1, 2)])
@torch.no_grad()
def test_block_causal_stream_equals_masked_full_run(sinks, window):
    """Chunks of 2 latent frames streamed with the KV cache (rolling window + sinks when set) equal
    one uncached pass under the block-causal mask with the same window; a read-only step too."""
    model, block, chunks = _tiny_causal(), 2, 4
    g = torch.Generator().manual_seed(4)
    clean = torch.randn(1, 16, block * chunks, 8, 8, generator=g)
    noisy = torch.randn(1, 16, block, 8, 8, generator=g)
    text = torch.randn(1, 5, 32, generator=g)
    t_clean = torch.rand(1, block * chunks, generator=g) * 100
    spec = MaskSpec("block-causal", block=block, window=window, sinks=sinks)
    full = model(clean, t_clean, text, mask=spec)
    stream = WanStream(model, text, sinks=sinks, window=window)
    for c in range(chunks):
        frames = slice(c * block, (c + 1) * block)
        step = stream.predict(noisy, torch.tensor([[800.0, 800.0]]))  # a denoising step: reads the cache only
        seq = torch.cat([clean[:, :, : c * block], noisy], 2)
        levels = torch.cat([t_clean[:, : c * block], torch.full((1, block), 800.0)], 1)
        assert (step - model(seq, levels, text, mask=spec)[:, :, -block:]).abs().max() <= 1e-5
        out = stream.commit(clean[:, :, frames], t_clean[:, frames])
        assert (out - full[:, :, frames]).abs().max() <= 1e-5
    kept = min(block * chunks, sinks + window) if window else block * chunks
    assert stream.cache.num_frames == kept


def test_unsupported_configs_are_refused():
    with pytest.raises(ValueError, match="image_dim=1280.*image-to-video"):
        WanTransformerConfig.from_diffusers({**TINY, "image_dim": 1280, "added_kv_proj_dim": 24})
    with pytest.raises(ValueError, match="added_kv_proj_dim"):
        WanTransformerConfig(added_kv_proj_dim=5120)
    with pytest.raises(ValueError, match="unknown Wan transformer config keys: window_size"):
        WanTransformerConfig.from_diffusers({**TINY, "window_size": [-1, -1]})
    with pytest.raises(ValueError, match="image-to-video"):
        to_framecast({"blocks.0.cross_attn.k_img.weight": torch.zeros(1), "time_embedding.0.weight": torch.zeros(1)})


def test_bad_inputs_are_refused(reference):
    model = _tiny_causal()
    x, text = _inputs(B=1)
    with pytest.raises(ValueError, match=r"per latent frame \(B, F\) = \(1, 3\)"):
        model(x, torch.zeros(1, 2), text)
    with pytest.raises(ValueError, match="do not split into Wan patches"):
        model(x[..., :7], torch.zeros(1), text)
    big = WanTransformer(wan_tiny(num_attention_heads=3))
    with pytest.raises(ValueError, match="do not fit this config"):
        load_wan_weights(big, reference.state_dict())


@torch.no_grad()
def test_bf16_weights_keep_wan_float32_parts(reference):
    model = _framecast(reference.state_dict())
    x, text = _inputs()
    t = torch.tensor([900.0, 100.0])
    want = model(x, t, text)
    model.cast(torch.bfloat16)
    assert model.blocks[0].attn.q.weight.dtype == torch.bfloat16
    assert model.time_embed[0].weight.dtype == model.blocks[0].modulation.dtype == torch.float32
    got = model(x, t, text)
    assert got.dtype == torch.bfloat16 and (got.float() - want).abs().max() < 0.1 * want.abs().max()


@pytest.mark.parametrize("per_frame", [False, True])
@torch.no_grad()
def test_parity_with_skyreels_v2_diffusion_forcing(per_frame):
    """SkyReels-V2-DF: the frame-rate embedding and the block-causal mask (num_frame_per_block)
    against diffusers' SkyReelsV2Transformer3DModel (which takes one clip per batch here)."""
    config = {**TINY, "inject_sample_info": True, "num_frame_per_block": 2}
    torch.manual_seed(5)
    ref = diffusers.SkyReelsV2Transformer3DModel(**config).eval()
    _perturb(ref, 6)
    ours = _framecast_from(ref.state_dict(), config)
    x, text = _inputs(B=1, F=4)
    t = torch.tensor([[990.0, 640.0, 250.0, 3.0]]) if per_frame else torch.tensor([640.0])
    for fps_id in (0, 1):
        want = ref(x, t, text, enable_diffusion_forcing=per_frame, fps=[fps_id], return_dict=False)[0]
        assert (ours(x, t, text, fps_id=fps_id) - want).abs().max() <= 1e-4
    original = _framecast_from({_to_original(k): v for k, v in ref.state_dict().items()}, config)
    assert torch.equal(original(x, t, text, fps_id=1), ours(x, t, text, fps_id=1))
    full = ours(x, t, text, mask=MaskSpec(), fps_id=1)
    assert (full - want).abs().max() > 1e-3  # the block-causal mask is in force


def test_original_config_reads_like_the_diffusers_one():
    original = {"_class_name": "WanModel", "dim": 1536, "eps": 1e-06, "ffn_dim": 8960, "freq_dim": 256, "in_dim": 16,
                "model_type": "t2v", "num_heads": 12, "num_layers": 30, "out_dim": 16, "text_len": 512}
    assert WanTransformerConfig.from_original(original) == WanTransformerConfig()
    with pytest.raises(ValueError, match="'i2v' model"):
        WanTransformerConfig.from_original({**original, "model_type": "i2v"})
