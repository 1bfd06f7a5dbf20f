"""A Wan folder end to end: `framecast.load(folder)` samples what diffusers' WanPipeline samples
(FlowMatchEuler with shift through framecast's Euler sampler, UniPC through diffusers), from
either key layout; diffusion-forcing matrices; block-causal streaming with the KV cache equals the
uncached block-causal run."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from test_wan_transformer import _to_original  # noqa: E402
from wan_tiny import save_tiny_wan, tiny_wan_pipeline  # noqa: E402

import framecast  # noqa: E402

PROMPT = "a red circle moves left"
CALL = dict(negative_prompt="", height=64, width=64, num_frames=9, num_inference_steps=4, guidance_scale=5.0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("wan-pipe")
    return {kind: save_tiny_wan(root / kind, scheduler=kind) for kind in ("flow-euler", "unipc")}


def _latents(seed=0):
    return torch.randn(1, 16, 3, 8, 8, generator=torch.Generator().manual_seed(seed))  # diffusers' (B, C, F, h, w)


@pytest.mark.parametrize("kind", ["flow-euler", "unipc"])
def test_pipeline_equals_diffusers_wan_pipeline(folders, kind):
    pipe, ref = framecast.load(folders[kind], device="cpu"), tiny_wan_pipeline(kind)
    L = _latents()
    ours = pipe(PROMPT, latents=L.transpose(1, 2), output_type="latent", **CALL).frames
    theirs = ref(PROMPT, latents=L, output_type="latent", **CALL).frames
    assert (ours.transpose(1, 2) - theirs).abs().max() <= 1e-3
    frames = pipe(PROMPT, latents=L.transpose(1, 2), output_type="pt", **CALL).frames  # (B, T, 3, H, W) in [0, 1]
    want = torch.as_tensor(ref(PROMPT, latents=L, output_type="np", **CALL).frames)  # (B, T, H, W, 3) in [0, 1]
    assert (frames.permute(0, 1, 3, 4, 2) - want).abs().max() <= 1e-3
    uint8 = pipe(PROMPT, latents=L.transpose(1, 2), **CALL).frames[0]
    assert uint8.shape == (9, 64, 64, 3) and (torch.as_tensor(uint8).float() - want[0] * 255).abs().max() <= 1.0


def test_original_layout_transformer_loads_to_the_same_outputs(folders, tmp_path):
    base = folders["flow-euler"]
    L = _latents(1).transpose(1, 2)
    want = framecast.load(base, device="cpu")(PROMPT, latents=L, output_type="latent", **CALL).frames
    folder = shutil.copytree(base, tmp_path / "original-keys")
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    original = {_to_original(k): v for k, v in load_file(weights).items()}
    save_file(original, weights)
    got = framecast.load(folder, device="cpu")(PROMPT, latents=L, output_type="latent", **CALL).frames
    assert torch.equal(got, want)
    ckpt = tmp_path / "generator.pt"  # CausVid / Self-Forcing: {"generator_ema": {"model.blocks...": ...}}
    torch.save({"generator_ema": {f"model.{k}": v for k, v in original.items()}, "step": 7}, ckpt)
    got = framecast.load(base, device="cpu", transformer=ckpt)(PROMPT, latents=L, output_type="latent", **CALL).frames
    assert torch.equal(got, want)


def test_diffusion_forcing_matrices(folders):
    pipe = framecast.load(folders["flow-euler"], device="cpu", block=2, ar_step=1)
    call = dict(height=64, width=96, num_frames=13, num_inference_steps=3)  # 4 latent frames of 8x12, blocks of 2
    K = pipe.noise_matrix(PROMPT, schedule="pyramid", **call).levels
    assert K.shape == (3 + 1 + 1, 4) and torch.equal(K[:, 0], K[:, 1]) and torch.equal(K[1:, 2], K[:-1, 0])
    assert pipe.total_steps(PROMPT, schedule="autoregressive", **call) == 6
    out = pipe(PROMPT, schedule="pyramid", generator=torch.Generator().manual_seed(0), **call)
    assert out.frames[0].shape == (13, 64, 96, 3)
    chunks = list(pipe.stream(PROMPT, schedule="autoregressive", generator=torch.Generator().manual_seed(0), **call))
    assert [c.shape[0] for c in chunks] == [5, 8]  # each block decoded as soon as it is clean
    with pytest.raises(ValueError, match="not a multiple of 16"):
        pipe(PROMPT, height=60, width=64, num_frames=9)
    with pytest.raises(ValueError, match="num_frames=10"):
        pipe(PROMPT, height=64, width=64, num_frames=10)


@pytest.fixture(scope="module")
def causal_folder(folders, tmp_path_factory):
    """The tiny model as a block-causal few-step one (Self-Forcing's shape of config)."""
    folder = shutil.copytree(folders["flow-euler"], tmp_path_factory.mktemp("causal") / "causal")
    config = json.loads((folder / "transformer" / "config.json").read_text())
    (folder / "transformer" / "config.json").write_text(json.dumps({**config, "num_frame_per_block": 2}))
    index = json.loads((folder / "model_index.json").read_text())
    index["framecast"] = {"denoising_steps": [1000, 750, 500, 250], "shift": 5.0, "guidance": 1.0}
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize("options", [{}, {"sinks": 1, "window": 2}], ids=["whole-cache", "rolling"])
def test_causal_streaming_with_kv_cache_equals_uncached(causal_folder, options):
    pipe = framecast.load(causal_folder, device="cpu", **options)
    assert pipe.model.config.schedule == "causal" and pipe.model.config.steps == 4
    call = dict(height=64, width=64, num_frames=21)  # 6 latent frames: 3 chunks of 2
    for guidance in (1.0, 3.0):
        cached = pipe(PROMPT, generator=torch.Generator().manual_seed(1), output_type="latent", guidance_scale=guidance, **call)
        uncached = pipe(PROMPT, generator=torch.Generator().manual_seed(1), output_type="latent", guidance_scale=guidance,
                        use_cache=False, **call)
        assert (cached.frames - uncached.frames).abs().max() <= 1e-5
    chunks = list(pipe.stream(PROMPT, generator=torch.Generator().manual_seed(1), **call))
    assert [c.shape[0] for c in chunks] == [5, 8, 8]
    whole = pipe(PROMPT, generator=torch.Generator().manual_seed(1), **call).frames[0]
    assert (torch.as_tensor(whole).int() - torch.as_tensor(chunks[0].tolist() + chunks[1].tolist() + chunks[2].tolist()).int()
            ).abs().max() <= 1


def test_word_encoder_empty_negative_prompt_is_the_null_prompt(tiny_model_dir):
    pipe = framecast.load(tiny_model_dir, device="cpu", precision="fp32")
    call = dict(num_inference_steps=2, guidance_scale=3.0, output_type="latent")
    a = pipe("a big red circle moves right", negative_prompt="", generator=torch.Generator().manual_seed(0), **call).frames
    b = pipe("a big red circle moves right", generator=torch.Generator().manual_seed(0), **call).frames
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="mixes empty"):
        pipe("a big red circle moves right", negative_prompt=["", "red"], num_videos_per_prompt=2)


def test_memory_options_give_the_same_frames(folders):
    L = _latents(2).transpose(1, 2)
    want = framecast.load(folders["flow-euler"], device="cpu")(PROMPT, latents=L, **CALL).frames[0]
    pipe = framecast.load(folders["flow-euler"], device="cpu", release_text_encoder=True, decode_chunk=1)
    out = pipe(PROMPT, latents=L, **CALL)
    # chunked decoding rounds its convolutions apart from whole-clip decoding on some CPUs: a few
    # pixels land one uint8 step apart, never more
    def near(frames):
        return (torch.as_tensor(frames).int() - torch.as_tensor(want).int()).abs().max() <= 1

    assert near(out.frames[0]) and out.info["peak_rss_gib"] > 0
    assert pipe.model.text.model is None  # freed once the prompts were encoded; they stay cached
    assert near(pipe(PROMPT, latents=L, **CALL).frames[0])
    with pytest.raises(ValueError, match="released"):
        pipe("a green square", latents=L, **CALL)


def test_skyreels_v2_diffusion_forcing_folder(tmp_path, monkeypatch):
    """A SkyReels-V2-DF folder (its transformer with the frame-rate embedding) samples what diffusers'
    SkyReelsV2DiffusionForcingPipeline samples in its synchronous mode (ar_step 0). That pipeline
    steps each latent frame with its own UniPC copy on a view of its latents (`latents[:, :, idx]`),
    which UniPC keeps as `last_sample` for its corrector and the pipeline then overwrites in place;
    from 3 steps on this moves its result by about 0.2. The reference here gives UniPC a copy."""
    from diffusers import SkyReelsV2DiffusionForcingPipeline, SkyReelsV2Transformer3DModel, UniPCMultistepScheduler
    from diffusers.pipelines.skyreels_v2 import pipeline_skyreels_v2_diffusion_forcing as df
    from wan_tiny import TEXT_WIDTH, tiny_scheduler, tiny_text_encoder, tiny_tokenizer, tiny_vae

    monkeypatch.setattr(df, "ftfy", type("NoFtfy", (), {"fix_text": staticmethod(lambda t: t)}), raising=False)
    step = UniPCMultistepScheduler.step
    monkeypatch.setattr(UniPCMultistepScheduler, "step", lambda self, v, t, sample, *a, **k: step(self, v, t, sample.clone(), *a, **k))
    torch.manual_seed(0)
    transformer = SkyReelsV2Transformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16, text_dim=TEXT_WIDTH,
        freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
        inject_sample_info=True).eval()
    with torch.no_grad():
        for p in transformer.parameters():  # the frame-rate projection starts at zero: give it weight
            if p.abs().sum() == 0:
                p.normal_(0, 0.1)
    tokenizer = tiny_tokenizer()
    ref = SkyReelsV2DiffusionForcingPipeline(tokenizer=tokenizer, text_encoder=tiny_text_encoder(len(tokenizer)),
                                             transformer=transformer, vae=tiny_vae(), scheduler=tiny_scheduler("unipc"))
    ref.save_pretrained(tmp_path / "skyreels", safe_serialization=True)
    call = CALL
    # the reference draws its latents from the generator (it ignores given ones in this version)
    theirs = ref(PROMPT, generator=torch.Generator().manual_seed(0), output_type="latent", ar_step=0, **call).frames
    L = torch.randn(1, 16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = framecast.load(tmp_path / "skyreels", device="cpu")(PROMPT, latents=L.transpose(1, 2), output_type="latent", **call)
    assert (ours.frames.transpose(1, 2) - theirs).abs().max() <= 1e-3


def test_wan_repository_layout_folder(folders, tmp_path):
    """The Wan repository's layout (config.json of a WanModel, the transformer's weights in its key
    layout at the top) with the diffusers text encoder, tokenizer, VAE and scheduler copied beside it."""
    base = folders["flow-euler"]
    L = _latents(3).transpose(1, 2)
    want = framecast.load(base, device="cpu")(PROMPT, latents=L, output_type="latent", **CALL).frames
    folder = tmp_path / "Wan2.1-T2V-tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "_class_name": "WanModel", "model_type": "t2v", "dim": 24, "num_heads": 2, "ffn_dim": 32, "freq_dim": 256, "in_dim": 16,
        "out_dim": 16, "num_layers": 2, "text_dim": 32, "eps": 1e-6, "patch_size": [1, 2, 2], "text_len": 512}))
    weights = load_file(base / "transformer" / "diffusion_pytorch_model.safetensors")
    save_file({_to_original(k): v for k, v in weights.items()}, folder / "diffusion_pytorch_model.safetensors")
    for part in ("text_encoder", "tokenizer", "vae", "scheduler"):
        shutil.copytree(base / part, folder / part)
    pipe = framecast.load(folder, device="cpu")
    assert pipe.model.scheduler.native and pipe.model.transformer.config.num_layers == 2
    assert torch.equal(pipe(PROMPT, latents=L, output_type="latent", **CALL).frames, want)
