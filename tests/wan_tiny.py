"""A tiny random Wan 2.1 model folder in diffusers' format, built offline with diffusers' and
transformers' own classes: the reference the Wan parity and folder tests compare framecast with.

    folder = save_tiny_wan(tmp_path / "wan", scheduler="flow-euler", shard=True)
    pipe = tiny_wan_pipeline(scheduler="unipc")  # the diffusers WanPipeline itself

Shapes: transformer width 24 (2 heads of 12), 2 layers, patch (1, 2, 2), 16 latent channels, text
width 32; VAE base width 3, 16 latent channels, 8x spatial and 4x temporal compression (9 frames
-> 3 latent frames, 64x64 -> 8x8 latents); UMT5 encoder width 32, 2 layers; a word-piece
vocabulary of 80 pieces built here (no tokenizer is downloaded). Everything is seeded: the same seed
gives the same weights, so `tiny_wan_pipeline(seed)` is the reference for a folder saved with it
(diffusers' own `WanPipeline.from_pretrained` of the folder needs `accelerate`, which the tests
do not install).
"""

from __future__ import annotations

from pathlib import Path

import torch

TEXT_WIDTH = 32
WORDS = ("a big small red green blue circle square triangle moves left right up down slowly quickly the "
         "on of and cat dog runs jumps video").split()


def tiny_tokenizer():
    """A T5 tokenizer (sentencepiece-style unigram, </s> appended) over a few words and the letters,
    so that any lower-case prompt tokenizes: built in memory, nothing read from the hub."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(f"▁{w}", -1.0) for w in WORDS]
    pieces += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    pieces += [(f"▁{c}", -5.5) for c in "bcdefghijklmnopqrstuvwxyz"]  # "▁a" is a word above
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def tiny_text_encoder(vocab_size: int, seed: int = 0):
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    config = UMT5Config(vocab_size=vocab_size, d_model=TEXT_WIDTH, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                        relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0)
    return UMT5EncoderModel(config).eval()


def tiny_transformer(seed: int = 0):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=TEXT_WIDTH, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    ).eval()


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True]).eval()


def tiny_scheduler(kind: str = "flow-euler", shift: float = 3.0):
    """`flow-euler`: FlowMatchEulerDiscreteScheduler(shift); `unipc`: Wan's default, UniPC with flow sigmas."""
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    if kind == "flow-euler":
        return FlowMatchEulerDiscreteScheduler(shift=shift)
    if kind == "unipc":
        return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift,
                                       num_train_timesteps=1000)
    raise ValueError(f"unknown scheduler kind '{kind}'; use flow-euler or unipc")


def tiny_wan_pipeline(scheduler: str = "flow-euler", shift: float = 3.0, seed: int = 0):
    """diffusers' WanPipeline around the tiny random parts (fp32, CPU, eval mode)."""
    from diffusers import WanPipeline

    tokenizer = tiny_tokenizer()
    return WanPipeline(tokenizer=tokenizer, text_encoder=tiny_text_encoder(len(tokenizer), seed),
                       transformer=tiny_transformer(seed), vae=tiny_vae(seed), scheduler=tiny_scheduler(scheduler, shift))


def save_tiny_wan(folder: str | Path, *, scheduler: str = "flow-euler", shift: float = 3.0, shard: bool = False,
                  seed: int = 0) -> Path:
    """Write the tiny pipeline as a diffusers-format folder; `shard=True` splits the transformer's
    and the VAE's weights into several safetensors files with an index, as large checkpoints are."""
    folder = Path(folder)
    pipe = tiny_wan_pipeline(scheduler, shift, seed)
    pipe.save_pretrained(folder, safe_serialization=True)
    if shard:
        pipe.transformer.save_pretrained(folder / "transformer", max_shard_size="20KB", safe_serialization=True)
        pipe.vae.save_pretrained(folder / "vae", max_shard_size="20KB", safe_serialization=True)
        for part in ("transformer", "vae"):
            (folder / part / "diffusion_pytorch_model.safetensors").unlink(missing_ok=True)
    return folder
