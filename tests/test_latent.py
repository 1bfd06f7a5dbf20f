"""Diffusion and hybrid models in a VAE's latents: calibration, training, exact streaming decode, save/load."""

from dataclasses import asdict

import pytest
import torch

from framecast.codecs import CausalVAE, VAEConfig
from framecast.codecs.base import StreamDecoder
from framecast.data.shapes import shapes_batches
from framecast.generators import GenerationRequest, ModelSpec, build_generator, from_pretrained, save_pretrained
from framecast.train.recipes import shapes_diffusion_tiny, shapes_hybrid_tiny, shapes_vae_tiny

PROMPT = "a big red circle moves right"
VAE = asdict(VAEConfig(latent_channels=4, width=8, stages=2, frames=4))


def _latent(recipe, **generator):
    spec = asdict(recipe().model)
    spec["generator"].update(codec=VAE, **generator)
    spec["backbone"].update(channels=4, patch_size=2)
    torch.manual_seed(0)
    m = build_generator(ModelSpec(**spec))
    with torch.no_grad():
        for p in m.parameters():  # weight in the zero-initialised layers (temporal convs included)
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()


def _clips(n=2, frames=4):
    return next(shapes_batches(batch_size=n, frames=frames))


def test_calibration_gives_unit_variance_latents():
    m = _latent(shapes_diffusion_tiny)
    video = _clips(4)["video"]
    with pytest.raises(ValueError, match="latent_scale"):
        m.to_latent(video)
    scale = m.calibrate(video)
    z = m.to_latent(video)
    assert scale > 0 and z.shape == (4, 4, 4, 8, 8)
    assert abs(float(z.std()) - 1.0) < 1e-3


def test_latent_loss_trains_only_the_generator():
    m = _latent(shapes_diffusion_tiny, latent_scale=1.0).train()
    assert not m.codec.training  # the frozen codec stays in eval mode
    loss = m(_clips(), [torch.Generator().manual_seed(i) for i in range(2)])
    loss.backward()
    assert torch.isfinite(loss) and m.backbone.head.weight.grad is not None
    assert all(p.grad is None for p in m.codec.parameters())


def test_generate_decodes_to_pixels_and_holds_context():
    m = _latent(shapes_diffusion_tiny, latent_scale=1.0)
    ctx = _clips(1)["video"][:, :1]
    out = m.generate(GenerationRequest(prompts=[PROMPT], num_frames=4, steps=2, context_BTCHW=ctx,
                                       generator=torch.Generator().manual_seed(0)))
    assert out.shape == (1, 4, 3, 32, 32) and out.abs().max() <= 1
    # The held first frame decodes to what the codec makes of the given frame.
    assert torch.allclose(out[:, :1], m.from_latent(m.to_latent(ctx)).clamp(-1, 1), atol=1e-4)


def test_windowed_decoding_is_exact():
    vae = CausalVAE(VAEConfig(**VAE))
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    m = _latent(shapes_diffusion_tiny, latent_scale=1.0)
    m.codec.load_state_dict(vae.state_dict())
    z = torch.randn(1, 12, 4, 8, 8)
    whole = m.from_latent(z)
    assert m.codec.receptive_frames == 6
    assert torch.allclose(m.decode_frames(z, 9, 12), whole[:, 9:12], atol=1e-5)
    assert not torch.allclose(m.from_latent(z[:, 8:12]), whole[:, 8:12], atol=1e-3)  # a short window is not enough
    decode = m.stream_decoder()  # each frame decoded once, from the convolutions' kept inputs
    assert torch.allclose(torch.cat([decode(z[:, a:b]) for a, b in [(0, 2), (2, 3), (3, 10), (10, 12)]], 1), whole, atol=1e-5)
    generic = StreamDecoder(m.codec)  # the codec-agnostic one decodes each chunk with its window again
    assert torch.allclose(torch.cat([generic.decode_chunk(z[:, a:a + 3]) for a in range(0, 12, 3)], 1), m.codec.decode(z), atol=1e-5)


def test_hybrid_streams_latents_with_and_without_cache():
    m = _latent(shapes_hybrid_tiny, latent_scale=1.0)

    def req(cache):
        return GenerationRequest(prompts=[PROMPT], num_frames=4, steps=2, use_cache=cache,
                                 generator=torch.Generator().manual_seed(0))

    parts = list(m.stream(req(True)))
    assert len(parts) == 4 and all(p.shape == (1, 1, 3, 32, 32) for p in parts)
    assert torch.allclose(torch.cat(parts, 1), m.generate(req(False)), atol=1e-4)


def test_a_latent_model_saves_and_loads(tmp_path):
    m = _latent(shapes_diffusion_tiny, latent_scale=0.5)
    folder = save_pretrained(m, tmp_path / "latent")
    back = from_pretrained(folder)
    assert back.config.latent_scale == 0.5 and back.config.codec["latent_channels"] == 4
    for k, v in m.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)


def test_training_in_latents_calibrates_once(tmp_path):
    from framecast.train.trainer import train

    vae_cfg = shapes_vae_tiny()
    vae_cfg.out_dir = str(tmp_path / "vae")
    vae_dir = train(vae_cfg, progress=False) / "model"
    cfg = shapes_diffusion_tiny()
    cfg.out_dir = str(tmp_path / "latent")
    cfg.init_components = {"codec": str(vae_dir)}
    cfg.data.latent_pool = 6
    cfg.model.backbone.update(channels=4, patch_size=2)
    run = train(cfg, progress=False)
    model = from_pretrained(run / "model")
    assert model.config.latent_scale > 0
    vae = from_pretrained(vae_dir)
    for k, v in vae.state_dict().items():  # the codec came from the VAE folder, untouched
        assert torch.equal(model.codec.state_dict()[k], v)
    video = model.generate(GenerationRequest(prompts=[PROMPT], num_frames=4, steps=2))
    assert video.shape == (1, 4, 3, 32, 32)
    assert (run / "latent_pool.safetensors").is_file()  # cached for a resumed run
    # The command line resumes it from train_config.json (which now holds the codec's config).
    from typer.testing import CliRunner

    from framecast.cli import app

    r = CliRunner().invoke(app, ["train", "--resume", str(run), "--set", "steps=6"])
    assert r.exit_code == 0, r.output
    assert from_pretrained(run / "model").config.latent_scale == model.config.latent_scale
    # A hybrid student started from it keeps its latent scale (not one measured on other clips).
    hyb = shapes_hybrid_tiny()
    hyb.out_dir, hyb.init_from, hyb.init_components = str(tmp_path / "hybrid"), str(run / "model"), {"codec": str(vae_dir)}
    hyb.model.backbone, hyb.seed = dict(cfg.model.backbone), 7  # the teacher's architecture; other clips first
    assert from_pretrained(train(hyb, progress=False) / "model").config.latent_scale == model.config.latent_scale


def test_latent_pool_draws_encoded_clips_deterministically():
    from framecast.train.data import LatentPool, process_batches

    cfg = shapes_diffusion_tiny()
    m = _latent(shapes_diffusion_tiny, latent_scale=1.0)
    pool = LatentPool(cfg, m.to_latent, 5, progress=False)
    assert len(pool) == 5 and pool.latents.shape == (5, 4, 4, 8, 8)
    first = next(process_batches(cfg, 0))[0].batch
    assert torch.allclose(pool.latents[:2].float(), m.to_latent(first["video"]), atol=0.05)  # bf16 storage
    a = next(process_batches(cfg, 3, pool=pool))[0].batch
    b = next(process_batches(cfg, 3, pool=pool))[0].batch
    assert set(a) == {"latent", "caption"} and torch.equal(a["latent"], b["latent"]) and a["caption"] == b["caption"]
    assert all(c in pool.captions for c in a["caption"])


def test_latent_pool_cache_is_reused_only_when_it_matches(tmp_path):
    from framecast.train.data import LatentPool

    cfg = shapes_diffusion_tiny()
    m = _latent(shapes_diffusion_tiny, latent_scale=1.0)
    cache = tmp_path / "pool.safetensors"
    pool = LatentPool(cfg, m.to_latent, 3, progress=False, cache=cache, fingerprint="codec A")

    def no_encoding(video):
        raise AssertionError("encoded although a matching cache exists")

    again = LatentPool(cfg, no_encoding, 3, progress=False, cache=cache, fingerprint="codec A")
    assert torch.equal(again.latents, pool.latents) and again.captions == pool.captions
    with pytest.raises(AssertionError, match="encoded although"):
        LatentPool(cfg, no_encoding, 3, progress=False, cache=cache, fingerprint="codec B")
