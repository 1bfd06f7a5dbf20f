"""Named training recipes: plain functions returning a TrainConfig. A tiny one beside every real one."""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable

from framecast.data.shapes import VOCABULARY
from framecast.generators.diffusion import DiffusionConfig
from framecast.generators.hybrid import HybridConfig
from framecast.nn.transformer import transformer_small, transformer_tiny
from framecast.text.encoder import WordEncoderConfig
from framecast.train.config import DataConfig, ModelConfig, OptimConfig, TrainConfig


def shapes_diffusion_small() -> TrainConfig:
    """The bundled `shapes-diffusion`: latent diffusion in the bundled `shapes-vae`'s latents
    (4 x 8 x 8 a frame), patches of 2x2 latents x 2 frames (128 tokens a clip), x0 prediction.
    The transformer spends its tokens on layout and motion; the VAE's decoder draws the edges.
    Sampling defaults: euler-stochastic, 50 steps at guidance 2.5, chosen on 120 tuning clips
    (tools/tune_prompts.py: render_clip seeds 60000+, not the eval prompts) at step 18000: 0.91
    scene accuracy against 0.84 at 25 steps and guidance 3, 0.80 at guidance 4; Euler at guidance 4
    made 0.39 on the 100-clip eval at step 10400 where euler-stochastic made 0.55."""
    return TrainConfig(
        recipe="shapes-diffusion-small",
        model=ModelConfig(
            family="diffusion",
            generator=asdict(DiffusionConfig(prediction="x0", frames=16, size=32, shift=1.0, steps=50, guidance=2.5,
                                             sampler="euler-stochastic")),
            backbone=asdict(transformer_small(width=256, depth=8, heads=4, channels=4, patch_size=2, patch_frames=2, context_width=128)),
            text=asdict(WordEncoderConfig(vocabulary=list(VOCABULARY), width=128, depth=2)),
        ),
        init_components={"codec": "shapes-vae"},
        data=DataConfig(source="shapes", split="train", size=32, frames=16, latent_pool=20000),
        optim=OptimConfig(lr=5e-4, warmup_steps=200, weight_decay=0.01, grad_clip=1.0),
        steps=18000,
        batch_size=16,
        ema_decay=0.999,
        out_dir="runs/shapes-diffusion-small",
        ckpt_every=200,
    )


def shapes_diffusion_selfcond() -> TrainConfig:
    """`shapes-diffusion` taught to read its own last estimate (self-conditioning, Chen et al. 2022):
    the bundle's weights, the patch embedding widened with zero weights for the estimate's 4
    channels (so it starts as exactly the bundle), fine-tuned at a low learning rate on clips it
    has not seen. Aimed at the bundle's one weakness: the stochastic sampler re-derives every step
    from renewed noise, and square corners fade on the way down (README, "Where the corners go").
    Measured in session 11 (3000 steps, 34 min): 0.853 on the 300 tuning clips against the
    bundle's 0.897, and 0.863 with the estimate held at zero, so it does not help; not bundled."""
    cfg = shapes_diffusion_small()
    cfg.recipe = "shapes-diffusion-selfcond"
    cfg.model.generator["self_condition"] = True
    cfg.model.backbone.update(channels=8, out_channels=4)
    cfg.init_from = "shapes-diffusion"
    cfg.optim.lr, cfg.optim.warmup_steps = 5e-5, 100
    cfg.steps, cfg.seed, cfg.data.latent_pool = 3000, 1, 16000
    cfg.out_dir = "runs/shapes-diffusion-selfcond"
    return cfg


def shapes_diffusion_fine() -> TrainConfig:
    """`shapes-diffusion` on a finer token grid: one latent cell (4x4 pixels) x 4 frames a token
    instead of 2x2 cells x 2 frames, so 256 tokens a clip instead of 128, with the same trunk and
    size. Every miss of the bundle is a square edge or corner placed a pixel off inside an 8x8-pixel
    token; DESIGN.md's lesson is to spend tokens where they matter. One bf16 step takes about
    0.83 s on an AMX CPU against 0.72 s for the bundle's grid (1x1x2 patches, 512 tokens, took
    1.97 s); 2.5 s in fp32 on an AVX2 one. At equal steps its loss is about 9 % below the bundle's
    (README). The run spans sessions: `framecast pack` carries it, `framecast train --resume`
    goes on."""
    cfg = shapes_diffusion_small()
    cfg.recipe = "shapes-diffusion-fine"
    cfg.model.backbone.update(patch_size=1, patch_frames=4)
    cfg.out_dir = "runs/shapes-diffusion-fine"
    return cfg


def shapes_diffusion_pixels() -> TrainConfig:
    """Pixel-space diffusion, the first bundled model's recipe (kept for comparison): 4x4 pixel x
    4 frame patches (192 values on a 256-wide model, 256 tokens a clip), x0 prediction."""
    cfg = shapes_diffusion_small()
    cfg.recipe = "shapes-diffusion-pixels"
    cfg.model.backbone = asdict(transformer_small(width=256, depth=6, heads=4, patch_size=4, patch_frames=4, context_width=128))
    cfg.init_components = {}
    cfg.data.latent_pool = 0
    cfg.steps, cfg.out_dir = 6000, "runs/shapes-diffusion-pixels"
    return cfg


def shapes_diffusion_tiny() -> TrainConfig:
    """For tests: seconds on a CPU."""
    return TrainConfig(
        recipe="shapes-diffusion-tiny",
        model=ModelConfig(
            family="diffusion",
            generator=asdict(DiffusionConfig(prediction="x0", frames=4, size=32, steps=3, guidance=2.0)),
            backbone=asdict(transformer_tiny(patch_size=8)),
            text=asdict(WordEncoderConfig(vocabulary=list(VOCABULARY), width=32, depth=1, heads=2)),
        ),
        data=DataConfig(source="shapes", split="train", size=32, frames=4),
        optim=OptimConfig(lr=1e-3, warmup_steps=2),
        steps=4,
        batch_size=2,
        ema_decay=0.9,
        precision="fp32",
        out_dir="runs/shapes-diffusion-tiny",
        log_every=1,
        ckpt_every=2,
    )


def shapes_hybrid_small() -> TrainConfig:
    """The bundled `shapes-hybrid`: the diffusion recipe's backbone under a frame-causal mask over
    token-frames (chunks of 2 frames: the backbone's temporal patch), trained with diffusion forcing. Like CausVid, the causal
    student starts from the bidirectional model (`init_from`), which costs far fewer steps than
    training it from scratch. Sampling defaults (20 steps a chunk, guidance 2.5) chosen on 120
    tuning clips: 0.85 scene accuracy against 0.77 at 10 steps and guidance 3. The bundle ran this
    recipe's 3000 steps, then 6000 more from that model on fresh clips (`--set init_from=shapes-hybrid
    --set steps=6000 --set optim.lr=1.5e-4 --set seed=1 --set data.latent_pool=30000`; both commands
    in its TRAINING.md)."""
    cfg = shapes_diffusion_small()
    cfg.recipe = "shapes-hybrid-small"
    cfg.model.family = "hybrid"
    cfg.model.generator = asdict(HybridConfig(prediction="x0", frames=16, size=32, steps=20, guidance=2.5, sampler="euler-stochastic",
                                              context_noise=0.1))
    cfg.init_from = "shapes-diffusion"
    cfg.steps, cfg.optim.lr, cfg.optim.warmup_steps = 3000, 2e-4, 100
    cfg.out_dir = "runs/shapes-hybrid-small"
    return cfg


def shapes_hybrid_tf() -> TrainConfig:
    """The hybrid recipe with teacher forcing instead of diffusion forcing: every noisy token-frame
    learns from the clean copy's earlier token-frames (context noise 0.1), as sampling uses it; one
    step costs about 2x (256 tokens a pass). Trained here in sessions 5-6 (3000 steps at about 1.2 s a step, so
    about 1 h of this CPU): on 120 tuning clips it ties with diffusion forcing (0.79 against 0.77 at 10 steps and
    guidance 3, 0.85 against 0.85 at 20 steps and 2.5), so the bundled `shapes-hybrid` stays the
    diffusion-forcing one."""
    cfg = shapes_hybrid_small()
    cfg.recipe = "shapes-hybrid-tf"
    cfg.model.generator["teacher_forcing"] = True
    cfg.out_dir = "runs/shapes-hybrid-tf"
    return cfg


def shapes_hybrid_tiny() -> TrainConfig:
    cfg = shapes_diffusion_tiny()
    cfg.recipe = "shapes-hybrid-tiny"
    cfg.model.family = "hybrid"
    cfg.model.backbone["patch_frames"] = 1
    cfg.model.generator = asdict(HybridConfig(prediction="x0", frames=4, size=32, steps=3, guidance=2.0, context_noise=0.1))
    cfg.out_dir = "runs/shapes-hybrid-tiny"
    return cfg


def shapes_vae_small() -> TrainConfig:
    """The bundled `shapes-vae`: 4x spatial downsampling to 8x8x4 latents, causal in time."""
    from framecast.codecs.vae import VAEConfig

    return TrainConfig(
        recipe="shapes-vae-small",
        model=ModelConfig(family="vae", generator=asdict(VAEConfig(latent_channels=4, width=64, stages=2, frames=8)), text_kind="none"),
        data=DataConfig(source="shapes", split="train", size=32, frames=8),
        optim=OptimConfig(lr=1e-3, warmup_steps=100, weight_decay=0.0),
        steps=3000,
        batch_size=16,
        ema_decay=0.995,
        out_dir="runs/shapes-vae-small",
        ckpt_every=250,
    )


def shapes_vae_decoder() -> TrainConfig:
    """A denoising decoder for `shapes-vae`: its decoder alone, fine-tuned on noised latents with
    an L1 loss, so that it draws hard edges from the slightly-off latents that shapes-diffusion
    and shapes-hybrid make. The encoder is frozen, so the generators' latents do not change and
    the new decoder can drop into their folders (tools/swap_codec.py). Measured on 300 tuning
    clips it does not help enough to be bundled (README, 'A denoising decoder')."""
    from framecast.codecs.vae import VAEConfig

    cfg = shapes_vae_small()
    cfg.recipe, cfg.out_dir = "shapes-vae-decoder", "runs/shapes-vae-decoder"
    cfg.model.generator = asdict(VAEConfig(latent_channels=4, width=64, stages=2, frames=8,
                                           freeze_encoder=True, decoder_noise=0.3, l2_weight=0.0))
    cfg.init_from = "shapes-vae"
    cfg.optim = OptimConfig(lr=3e-4, warmup_steps=50, weight_decay=0.0)
    cfg.steps, cfg.ckpt_every, cfg.seed = 600, 100, 12345
    return cfg


def shapes_vae_tiny() -> TrainConfig:
    from framecast.codecs.vae import VAEConfig

    cfg = shapes_vae_small()
    cfg.recipe = "shapes-vae-tiny"
    cfg.model.generator = asdict(VAEConfig(latent_channels=4, width=8, stages=2, frames=4))
    cfg.data.frames, cfg.steps, cfg.batch_size, cfg.precision = 4, 4, 2, "fp32"
    cfg.ckpt_every, cfg.log_every, cfg.out_dir = 2, 1, "runs/shapes-vae-tiny"
    return cfg


def shapes_tokenizer(quantizer: str = "fsq") -> TrainConfig:
    """A video tokenizer for the Shapes world: 8x spatial downsampling (4x4 codes a frame at S = 32),
    causal in time; ~1000 codes for each quantizer so the three compare fairly."""
    from framecast.codecs.tokenizer import TokenizerConfig

    return TrainConfig(
        recipe=f"shapes-tokenizer-{quantizer}",
        model=ModelConfig(family="tokenizer", generator=asdict(TokenizerConfig(quantizer=quantizer, width=48, stages=3, codebook_size=1024,
                                                                            vq_dim=8, bits=10, levels=[8, 5, 5, 5], frames=8)), text_kind="none"),
        data=DataConfig(source="shapes", split="train", size=32, frames=8),
        optim=OptimConfig(lr=1e-3, warmup_steps=100, weight_decay=0.0),
        steps=2000,
        batch_size=8,
        ema_decay=0.995,
        out_dir=f"runs/shapes-tokenizer-{quantizer}",
        ckpt_every=250,
    )


def shapes_tokenizer_small() -> TrainConfig:
    """The bundled `shapes-tokenizer`: FSQ (8, 5, 5, 5: 1000 codes) on 8x8 codes a frame, the grid
    of `shapes-vae`'s latents. Started from that VAE (every tensor but the encoder's last
    convolution), so it only has to learn to live with rounding. On the H200, FSQ trained from
    scratch at this size reached 35 dB where 4x4 codes a frame lost the small objects."""
    from framecast.codecs.tokenizer import TokenizerConfig

    cfg = shapes_tokenizer("fsq")
    cfg.recipe = "shapes-tokenizer-small"
    cfg.model.generator = asdict(TokenizerConfig(quantizer="fsq", width=64, stages=2, levels=[8, 5, 5, 5], frames=8))
    cfg.init_from, cfg.init_partial = "shapes-vae", True
    cfg.optim.lr, cfg.steps, cfg.batch_size = 5e-4, 1000, 16
    cfg.out_dir = "runs/shapes-tokenizer-small"
    return cfg


def shapes_tokenizer_patch() -> TrainConfig:
    """FSQ (8, 8, 5, 5: 1600 codes) over 4x4-pixel patches with a per-patch encoder and a per-patch
    decoder, from scratch: every code a function of its own patch and every patch of its own code.
    The Shapes world holds about 1100 distinct 4x4 patches (1082 in 3000 clips), so this could be
    exact; it is not learnable so: 3000 steps reached 20.2 dB with 25 % of the codes used (session
    14; the MLPs must pack ~1100 patches into a 4-dimensional lattice through rounding's
    straight-through gradient). Kept as that measurement; `shapes-tokenizer-local` works."""
    from framecast.codecs.tokenizer import TokenizerConfig

    cfg = shapes_tokenizer("fsq")
    cfg.recipe = "shapes-tokenizer-patch"
    cfg.model.generator = asdict(TokenizerConfig(quantizer="fsq", encoder="patch", decoder="patch", width=256, stages=2,
                                                 levels=[8, 8, 5, 5], frames=8))
    cfg.optim.lr, cfg.steps, cfg.batch_size, cfg.ema_decay = 1e-3, 3000, 16, 0.99
    cfg.out_dir = "runs/shapes-tokenizer-patch"
    return cfg


def shapes_tokenizer_local() -> TrainConfig:
    """`shapes-tokenizer` with a per-patch encoder: each code a function of its own 4x4 patch alone,
    decoded by `shapes-vae`'s convolutional decoder (started from it), which may read the
    neighbours' codes. The bundled tokenizer's codes depend on the whole frame (its 3x3
    convolutions and group norms): a recurring 4x4 patch gets its most common code in only 19 % of
    the places it recurs (`benchmarks/codec.py`'s patch determinism), and `shapes-ar`, given every
    other token of a token-frame, picks the right code for 61 % of background tokens and 34 % of
    edge tokens (`benchmarks/token_predictability.py`). These codes are 100 % determined by their
    patch. 4 frames a clip and batch 8 (the encoder sees frames one at a time): 2 steps/s here.
    The bundled one was trained as a 1000-step cosine, then resumed with `--set steps=3000`."""
    from framecast.codecs.tokenizer import TokenizerConfig

    cfg = shapes_tokenizer_small()
    cfg.recipe = "shapes-tokenizer-local"
    cfg.model.generator = asdict(TokenizerConfig(quantizer="fsq", encoder="patch", width=64, stages=2, levels=[8, 5, 5, 5], frames=8))
    cfg.data.frames, cfg.batch_size, cfg.optim.lr, cfg.steps = 4, 8, 1e-3, 3000
    cfg.out_dir = "runs/shapes-tokenizer-local"
    return cfg


def shapes_tokenizer_tiny() -> TrainConfig:
    from framecast.codecs.tokenizer import TokenizerConfig

    cfg = shapes_tokenizer("fsq")
    cfg.recipe = "shapes-tokenizer-tiny"
    cfg.model.generator = asdict(TokenizerConfig(quantizer="fsq", width=8, stages=3, levels=[4, 4, 4], frames=4))
    cfg.data.frames, cfg.steps, cfg.batch_size, cfg.precision = 4, 4, 2, "fp32"
    cfg.ckpt_every, cfg.log_every, cfg.out_dir = 2, 1, "runs/shapes-tokenizer-tiny"
    return cfg


def shapes_ar_small() -> TrainConfig:
    """The bundled `shapes-ar`: a token transformer over `shapes-tokenizer`'s codes (FSQ, 8x8 a
    frame, in `shapes-vae`'s latent grid), trained with the masked set-by-set objective (its default
    decoding). The backbone reads 2x2 tokens x 2 frames a position, as `shapes-diffusion` reads
    latents, and starts from that model's trunk (`init_partial`: all but the input of special
    tokens and the output head), as CausVid starts a causal student from a bidirectional teacher."""
    from framecast.generators.autoregressive import ARConfig

    return TrainConfig(
        recipe="shapes-ar-small",
        model=ModelConfig(
            family="autoregressive",
            generator=asdict(ARConfig(order="set", frames=16, size=32, guidance=3.0, set_steps=8)),
            backbone=asdict(transformer_small(width=256, depth=8, heads=4, channels=4, patch_size=2, patch_frames=2, context_width=128,
                                              out_channels=64)),
            text=asdict(WordEncoderConfig(vocabulary=list(VOCABULARY), width=128, depth=2)),
        ),
        init_from="shapes-diffusion",
        init_partial=True,
        init_components={"tokenizer": "shapes-tokenizer"},
        data=DataConfig(source="shapes", split="train", size=32, frames=16, latent_pool=16000),
        optim=OptimConfig(lr=3e-4, warmup_steps=200, weight_decay=0.01, grad_clip=1.0),
        steps=3500,
        batch_size=16,
        ema_decay=0.999,
        out_dir="runs/shapes-ar-small",
        ckpt_every=200,
    )


def shapes_ar_long() -> TrainConfig:
    """`shapes-ar` trained on: its loss was still falling at 3500 steps (0.85 a token) and every
    miss is a square whose edge tokens disagree, which a sharper model of the edge should mend.
    A fresh cosine of 10000 steps from the bundle's weights at half the recipe's peak learning rate
    (as `shapes-hybrid` was trained on from 3000 to 9000 steps), on 16000 clips it has not seen
    (seed 1). About 1.4 s a step in bf16 on an AMX CPU, 3.3 to 3.6 s in fp32 on an AVX2 one, so the run
    spans sessions, carried by `framecast pack`. (Session 10 trained on for 800 steps from 1e-4
    and its loss had not yet come back below the bundle's: a restart costs a few hundred steps.)
    Dropped at step ~880 in session 14 for `shapes-ar-local`; it starts from the `shapes-ar-small`
    run, which was the bundle then."""
    cfg = shapes_ar_small()
    cfg.recipe = "shapes-ar-long"
    cfg.init_from, cfg.init_partial = "runs/shapes-ar-small/model", False
    cfg.optim.lr = 1.5e-4
    cfg.steps, cfg.seed = 10000, 1
    cfg.out_dir = "runs/shapes-ar-long"
    return cfg


def shapes_ar_local() -> TrainConfig:
    """The bundled `shapes-ar` (since session 15): the `shapes-ar-small` transformer over
    `shapes-tokenizer-local`'s codes, each a function of its own 4x4 patch, started from the
    `shapes-ar-small` run's trunk (`init_partial`; the codes' vectors mean something new, so the
    trunk relearns what it reads). Over the conv tokenizer's codes, which carry the whole frame,
    the model given every other token of a token-frame picked the right code for 61 % of background
    tokens and 34 % at an object's edge; after 1500 steps here, 99.8 % and 73 %. The bundle was
    trained as this 1500-step cosine, then resumed for a second cosine from its optimizer state
    (`framecast train --resume runs/shapes-ar-local --set steps=3300`, cut after its step-1600
    checkpoint to `--set steps=2800`), 2.8 s a step in fp32 on an AVX2 CPU. It started from the
    then-bundled `shapes-ar`: that run's EMA weights stored in bf16."""
    cfg = shapes_ar_small()
    cfg.recipe = "shapes-ar-local"
    cfg.init_from, cfg.init_partial = "runs/shapes-ar-small/model", True
    cfg.init_components = {"tokenizer": "shapes-tokenizer-local"}
    cfg.steps = 1500
    cfg.out_dir = "runs/shapes-ar-local"
    return cfg


def shapes_ar_raster() -> TrainConfig:
    """`shapes-ar-raster`: next-token prediction in raster order over `shapes-ar`'s codes
    (`shapes-tokenizer-local`), the model the raster and diagonal decoding orders run on (bundled
    as `shapes-ar-raster`, named by `shapes-ar`'s `decode_with`). One token a position (patch
    1x1x1: 1024 positions a clip, 8x the set model's), so a smaller trunk trained from scratch, at
    batch 8: about 3 s a step in fp32 on a 2-core AVX2 CPU (SDPA's `is_causal` path; batch 16 took
    7 to 8 s), 1.5 s in bf16 on a 2-core AVX-512 BF16 one. The bundle is 6000 steps, made over
    three sessions as a chain of resumes (its TRAINING.md): a 2000-step cosine, then resumed
    towards 6000; the recipe is now that length in one cosine (about 2.5 h at 1.5 s a step). It
    follows the prompt less well than the set model (scene accuracy 0.40 raster, 0.30 diagonal on
    30 tuning clips at temperature 0.8, its bundled default, against 0.00 and 0.03 at step 2000),
    which had a diffusion model's trunk and over twice the clips behind it."""
    from framecast.generators.autoregressive import ARConfig

    cfg = shapes_ar_small()
    cfg.recipe = "shapes-ar-raster"
    cfg.model.generator = asdict(ARConfig(order="raster", frames=16, size=32, guidance=3.0, diagonal_delay=4))
    cfg.model.backbone = asdict(transformer_small(width=192, depth=6, heads=3, channels=4, patch_size=1, patch_frames=1,
                                                  context_width=128, out_channels=64))
    cfg.init_from, cfg.init_partial = "", False
    cfg.init_components = {"tokenizer": "shapes-tokenizer-local"}
    cfg.optim.lr, cfg.steps, cfg.batch_size, cfg.ema_decay, cfg.ckpt_every = 5e-4, 6000, 8, 0.995, 100
    cfg.out_dir = "runs/shapes-ar-raster"
    return cfg


def shapes_ar_tiny(order: str = "set") -> TrainConfig:
    from framecast.codecs.tokenizer import TokenizerConfig
    from framecast.generators.autoregressive import ARConfig

    tok = TokenizerConfig(quantizer="fsq", width=8, stages=3, levels=[4, 4, 4], frames=4)
    cfg = shapes_diffusion_tiny()
    cfg.recipe = f"shapes-ar-tiny-{order}"
    patch = dict(patch_size=1, patch_frames=1) if order == "raster" else dict(patch_size=2, patch_frames=2)
    cfg.model = ModelConfig(
        family="autoregressive",
        generator=asdict(ARConfig(order=order, frames=4, size=32, set_steps=2, diagonal_delay=2, tokenizer=asdict(tok))),
        backbone=asdict(transformer_tiny(channels=3, out_channels=16, **patch)),
        text=asdict(WordEncoderConfig(vocabulary=list(VOCABULARY), width=32, depth=1, heads=2)),
    )
    cfg.out_dir = f"runs/shapes-ar-tiny-{order}"
    return cfg


RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "shapes-diffusion-small": shapes_diffusion_small,
    "shapes-diffusion-selfcond": shapes_diffusion_selfcond,
    "shapes-diffusion-fine": shapes_diffusion_fine,
    "shapes-diffusion-pixels": shapes_diffusion_pixels,
    "shapes-diffusion-tiny": shapes_diffusion_tiny,
    "shapes-hybrid-small": shapes_hybrid_small,
    "shapes-hybrid-tf": shapes_hybrid_tf,
    "shapes-hybrid-tiny": shapes_hybrid_tiny,
    "shapes-vae-small": shapes_vae_small,
    "shapes-vae-decoder": shapes_vae_decoder,
    "shapes-vae-tiny": shapes_vae_tiny,
    "shapes-tokenizer-fsq": lambda: shapes_tokenizer("fsq"),
    "shapes-tokenizer-lfq": lambda: shapes_tokenizer("lfq"),
    "shapes-tokenizer-vq": lambda: shapes_tokenizer("vq"),
    "shapes-tokenizer-small": shapes_tokenizer_small,
    "shapes-tokenizer-patch": shapes_tokenizer_patch,
    "shapes-tokenizer-local": shapes_tokenizer_local,
    "shapes-tokenizer-tiny": shapes_tokenizer_tiny,
    "shapes-ar-small": shapes_ar_small,
    "shapes-ar-long": shapes_ar_long,
    "shapes-ar-local": shapes_ar_local,
    "shapes-ar-raster": shapes_ar_raster,
    "shapes-ar-tiny": shapes_ar_tiny,
    "shapes-ar-tiny-raster": lambda: shapes_ar_tiny("raster"),
}


def get_recipe(name: str) -> TrainConfig:
    key = name.replace("_", "-")
    if key not in RECIPES:
        raise ValueError(f"unknown recipe '{name}'; choose one of {', '.join(RECIPES)} or give a .yaml file")
    return RECIPES[key]()
