"""The Wan 2.1 VAE: parity with diffusers' AutoencoderKLWan (same random weights), chunked causal
decoding, the Wan repository's key layout, and refused configs."""

import re

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from framecast.codecs import WanVAE, WanVAEConfig  # noqa: E402

TINY = dict(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1, temperal_downsample=[False, True, True],
            latents_mean=[0.1, -0.2, 0.3, 0.0], latents_std=[1.5, 0.7, 2.0, 1.0])
# The real Wan 2.1 layout (4 stages, 2 residual blocks, channel multipliers 1-2-4-4) at a tiny width.
WAN21_SHAPE = dict(TINY, base_dim=4, dim_mult=[1, 2, 4, 4], num_res_blocks=2)


def _pair(cfg):
    """diffusers' model with random weights (gains moved off 1, outputs kept inside the clamp) and ours, loaded from it."""
    torch.manual_seed(0)
    ref = diffusers.AutoencoderKLWan(**cfg).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("gamma"):
                p.add_(0.1 * torch.randn_like(p))
        ref.decoder.conv_out.weight.mul_(0.3)
    return ref, WanVAE.from_config(dict(ref.config)).eval().load_weights(ref.state_dict())


@pytest.fixture(scope="module")
def tiny():
    return _pair(TINY)


def _clip(frames=9, size=32):
    return torch.rand(1, frames, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


@torch.no_grad()
def test_encode_and_decode_match_diffusers(tiny):
    ref, vae = tiny
    x_BTCHW = _clip()
    posterior = ref.encode(x_BTCHW.transpose(1, 2)).latent_dist
    mean, logvar = vae.moments(x_BTCHW)
    assert mean.shape == (1, 3, 4, 4, 4)
    assert (mean.transpose(1, 2) - posterior.mean).abs().max() <= 1e-4
    assert (logvar.transpose(1, 2) - posterior.logvar).abs().max() <= 1e-4
    # The pipeline convention: the transformer's latents are (z - mean) / std.
    z = vae.encode(x_BTCHW)
    assert torch.allclose(vae.denormalize(z), mean, atol=1e-6)
    z_raw = torch.randn(1, 4, 4, 4, 4, generator=torch.Generator().manual_seed(2))  # (B, z, T, h, w)
    video_ref = ref.decode(z_raw).sample
    video = vae.decode(vae.normalize(z_raw.transpose(1, 2)))
    assert video.shape == (1, 13, 3, 32, 32) and video.abs().max() < 1  # inside the clamp: a real comparison
    assert (video.transpose(1, 2) - video_ref).abs().max() <= 1e-4


@torch.no_grad()
def test_chunked_decode_equals_whole(tiny):
    _, vae = tiny
    z = torch.randn(1, 7, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    whole = vae.decode(z)
    assert whole.shape[1] == vae.video_frames(7) == 25
    for size in (1, 3):
        stream = vae.stream_decoder()
        chunks = [stream.decode_chunk(z[:, :1])] + [stream.decode_chunk(z[:, i : i + size]) for i in range(1, 7, size)]
        assert [c.shape[1] for c in chunks[:2]] == [1, 4 * size]
        assert (torch.cat(chunks, dim=1) - whole).abs().max() <= 1e-5
    assert (vae.decode_frames(z, 3, 5) - whole[:, 9:17]).abs().max() <= 1e-5


@torch.no_grad()
def test_sampled_encode_draws_from_the_posterior(tiny):
    _, vae = tiny
    x = _clip(frames=5)
    a = vae.encode(x, generator=torch.Generator().manual_seed(0), sample=True)
    b = vae.encode(x, generator=torch.Generator().manual_seed(0), sample=True)
    assert torch.equal(a, b) and not torch.equal(a, vae.encode(x))


_TO_ORIGINAL_BLOCK = {"norm1.": "residual.0.", "conv1.": "residual.2.", "norm2.": "residual.3.",
                      "conv2.": "residual.6.", "conv_shortcut.": "shortcut."}


def _original_key(key: str, n: int) -> str:
    """diffusers' AutoencoderKLWan key -> the Wan repository's (the inverse the loader must undo)."""
    block = lambda rest: next((new + rest[len(old):] for old, new in _TO_ORIGINAL_BLOCK.items() if rest.startswith(old)), rest)  # noqa: E731
    if m := re.match(r"(quant_conv|post_quant_conv)\.(.*)", key):
        return {"quant_conv": "conv1.", "post_quant_conv": "conv2."}[m[1]] + m[2]
    if m := re.match(r"(encoder|decoder)\.(conv_in|norm_out|conv_out)\.(.*)", key):
        return f"{m[1]}.{ {'conv_in': 'conv1', 'norm_out': 'head.0', 'conv_out': 'head.2'}[m[2]] }.{m[3]}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d)\.(.*)", key):
        index = 1 if m[2] == "attentions" else 2 * int(m[3])
        return f"{m[1]}.middle.{index}.{block(m[4]) if m[2] == 'resnets' else m[4]}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.(.*)", key):
        return f"encoder.downsamples.{m[1]}.{block(m[2])}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"decoder.upsamples.{int(m[1]) * (n + 2) + int(m[2])}.{block(m[3])}"
    m = re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key)
    return f"decoder.upsamples.{int(m[1]) * (n + 2) + n + 1}.{m[2]}"


@torch.no_grad()
@pytest.mark.parametrize("cfg", [TINY, WAN21_SHAPE], ids=["tiny", "wan21-shape"])
def test_original_layout_loads_to_the_same_outputs(cfg):
    ref, vae = _pair(cfg)
    original = {_original_key(k, cfg["num_res_blocks"]): v for k, v in ref.state_dict().items()}
    assert "decoder.head.0.gamma" in original and "encoder.downsamples.0.residual.0.gamma" in original
    if cfg is WAN21_SHAPE:  # diffusers' own converter (written for this layout) agrees with the inverse above
        from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

        assert convert_wan_vae_to_diffusers(original).keys() == ref.state_dict().keys()
    loaded = WanVAE.from_config(dict(ref.config)).eval().load_weights(original)
    x = _clip(frames=5, size=16)
    assert torch.equal(loaded.encode(x), vae.encode(x))
    z = vae.encode(x)
    assert torch.equal(loaded.decode(z), vae.decode(z))


def test_unsupported_configs_are_refused():
    wan22 = dict(base_dim=160, z_dim=48, is_residual=True, in_channels=12, out_channels=12, patch_size=2,
                 latents_mean=[0.0] * 48, latents_std=[1.0] * 48)
    with pytest.raises(ValueError, match="Wan 2.2"):
        WanVAE.from_config({"_class_name": "AutoencoderKLWan", **wan22})
    with pytest.raises(ValueError, match="AutoencoderKL, not AutoencoderKLWan"):
        WanVAEConfig.from_diffusers({"_class_name": "AutoencoderKL"})
    with pytest.raises(ValueError, match="does not know"):
        WanVAEConfig.from_diffusers({**TINY, "clip_output": True})
    with pytest.raises(ValueError, match="one per latent channel"):
        WanVAEConfig.from_diffusers({**TINY, "latents_mean": [0.0] * 16})
    with pytest.raises(ValueError, match="attn_scales"):
        WanVAEConfig.from_diffusers({**TINY, "attn_scales": [0.5]})
    with pytest.raises(ValueError, match="1 \\+ 4k frames"):
        WanVAE(WanVAEConfig(**TINY)).encode(_clip(frames=8))
    with pytest.raises(ValueError, match="do not fit the config"):
        WanVAE(WanVAEConfig(**TINY)).load_weights(WanVAE(WanVAEConfig(**WAN21_SHAPE)).state_dict())
