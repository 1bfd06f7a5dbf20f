"""Named training recipes: plain functions returning a TrainConfig, a tiny one beside every real one;
`load_config` reads a recipe or a YAML file with overrides, `load_run_config` a run's own config."""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from framecast.data.shapes import VOCABULARY
from framecast.generators.diffusion import DiffusionConfig
from framecast.generators.hybrid import HybridConfig
from framecast.generators.base import ModelSpec
from framecast.generators.io import read_config, read_json
from framecast.nn.transformer import transformer_small, transformer_tiny
from framecast.text.encoder import WordEncoderConfig
from framecast.pipeline import resolve_model
from framecast.train.checkpoint import pack_out_dir
from framecast.train.config import DataConfig, OptimConfig, TrainConfig, apply_override, apply_overrides, flatten
from framecast.train.finetune import folder_defaults, model_spec


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
        model=ModelSpec(
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








def shapes_diffusion_tiny() -> TrainConfig:
    """For tests: seconds on a CPU."""
    return TrainConfig(
        recipe="shapes-diffusion-tiny",
        model=ModelSpec(
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
        model=ModelSpec(family="vae", generator=asdict(VAEConfig(latent_channels=4, width=64, stages=2, frames=8)), text_kind="none"),
        data=DataConfig(source="shapes", split="train", size=32, frames=8),
        optim=OptimConfig(lr=1e-3, warmup_steps=100, weight_decay=0.0),
        steps=3000,
        batch_size=16,
        ema_decay=0.995,
        out_dir="runs/shapes-vae-small",
        ckpt_every=250,
    )




def shapes_vae_tiny() -> TrainConfig:
    from framecast.codecs.vae import VAEConfig

    cfg = shapes_vae_small()
    cfg.recipe = "shapes-vae-tiny"
    cfg.model.generator = asdict(VAEConfig(latent_channels=4, width=8, stages=2, frames=4))
    cfg.data.frames, cfg.steps, cfg.batch_size, cfg.precision = 4, 4, 2, "fp32"
    cfg.ckpt_every, cfg.log_every, cfg.out_dir = 2, 1, "runs/shapes-vae-tiny"
    return cfg


def shapes_tokenizer_small() -> TrainConfig:
    """The bundled `shapes-tokenizer`: FSQ (8, 5, 5, 5: 1000 codes) on 8x8 codes a frame, the grid
    of `shapes-vae`'s latents. Started from that VAE (every tensor but the encoder's last
    convolution), so it only has to learn to live with rounding. FSQ trained from scratch at this
    size reached 35 dB, where 4x4 codes a frame lost the small objects."""
    from framecast.codecs.tokenizer import TokenizerConfig

    return TrainConfig(
        recipe="shapes-tokenizer-small",
        model=ModelSpec(family="tokenizer", generator=asdict(TokenizerConfig(quantizer="fsq", width=64, stages=2, levels=[8, 5, 5, 5], frames=8)),
                        text_kind="none"),
        init_from="shapes-vae",
        init_partial=True,
        data=DataConfig(source="shapes", split="train", size=32, frames=8),
        optim=OptimConfig(lr=5e-4, warmup_steps=100, weight_decay=0.0),
        steps=1000,
        batch_size=16,
        ema_decay=0.995,
        out_dir="runs/shapes-tokenizer-small",
        ckpt_every=250,
    )


def shapes_tokenizer_local() -> TrainConfig:
    """`shapes-tokenizer` with a per-patch encoder: each code a function of its own 4x4 patch alone,
    decoded by `shapes-vae`'s convolutional decoder (started from it), which may read the
    neighbours' codes. The bundled tokenizer's codes depend on the whole frame (its 3x3
    convolutions and group norms): a recurring 4x4 patch gets its most common code in only 19 % of
    the places it recurs (`python -m framecast.eval.codec`'s patch determinism), and `shapes-ar`, given every
    other token of a token-frame, picks the right code for 61 % of background tokens and 34 % of
    edge tokens (`python -m framecast.eval.token_predictability`). These codes are 100 % determined by their
    patch. 4 frames a clip and batch 8 (the encoder sees frames one at a time): 2 steps/s on a 2-core CPU.
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

    cfg = shapes_tokenizer_small()
    cfg.recipe = "shapes-tokenizer-tiny"
    cfg.init_from, cfg.init_partial, cfg.optim.lr = "", False, 1e-3
    cfg.model.generator = asdict(TokenizerConfig(quantizer="fsq", width=8, stages=3, levels=[4, 4, 4], frames=4))
    cfg.data.frames, cfg.steps, cfg.batch_size, cfg.precision = 4, 4, 2, "fp32"
    cfg.ckpt_every, cfg.log_every, cfg.out_dir = 2, 1, "runs/shapes-tokenizer-tiny"
    return cfg


def shapes_ar_small() -> TrainConfig:
    """The first `shapes-ar`, whose run `shapes-ar-local` starts from: a token transformer over
    `shapes-tokenizer`'s codes (FSQ, 8x8 a frame, in `shapes-vae`'s latent grid), trained with the
    masked set-by-set objective (its default decoding). The backbone reads 2x2 tokens x 2 frames a position, as `shapes-diffusion` reads
    latents, and starts from that model's trunk (`init_partial`: all but the input of special
    tokens and the output head), as CausVid starts a causal student from a bidirectional teacher."""
    from framecast.generators.autoregressive import ARConfig

    return TrainConfig(
        recipe="shapes-ar-small",
        model=ModelSpec(
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


def shapes_ar_local() -> TrainConfig:
    """The bundled `shapes-ar`: the `shapes-ar-small` transformer over
    `shapes-tokenizer-local`'s codes, each a function of its own 4x4 patch, started from the
    `shapes-ar-small` run's trunk (`init_partial`; the codes' vectors mean something new, so the
    trunk relearns what it reads). Over the conv tokenizer's codes, which carry the whole frame,
    the model given every other token of a token-frame picked the right code for 61 % of background
    tokens and 34 % at an object's edge; after 1500 steps, 99.8 % and 73 %. The bundle was
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


def shapes_ar_orders() -> TrainConfig:
    """`shapes-ar-orders`: the bundled set-only `shapes-ar` taught the raster and diagonal orders
    too, fine-tuned with 40 % of its token-frames masked as raster decoding leaves them (every
    token from a cut in raster order on) and 30 % as diagonal decoding does (a cut in DiagD's
    anti-diagonal order, any delay), the rest MaskGIT's random masks. One trunk then decodes set by
    set, token by token in raster order, or diagonally, each pass asking it for the tokens still
    masked given all the others made so far; `shapes-ar` hands it raster order (`decode_with`).
    2.8 s a step in fp32 on a 2-core AVX2 CPU (56 min)."""
    from framecast.generators.autoregressive import ARConfig

    cfg = shapes_ar_small()
    cfg.recipe = "shapes-ar-orders"
    cfg.model.generator = asdict(ARConfig(order="set", frames=16, size=32, guidance=3.0, set_steps=8, raster_share=0.4,
                                          diagonal_share=0.3))
    cfg.init_from, cfg.init_partial = "shapes-ar", False  # the bundled set-only model
    cfg.init_components = {"tokenizer": "shapes-tokenizer-local"}
    cfg.data.latent_pool = 12000
    cfg.optim.lr, cfg.optim.warmup_steps = 1e-4, 50
    cfg.steps, cfg.ema_decay, cfg.ckpt_every = 1200, 0.998, 100
    cfg.out_dir = "runs/shapes-ar-orders"
    return cfg


def shapes_ar_raster() -> TrainConfig:
    """`shapes-ar-raster`: next-token prediction in raster order over `shapes-ar`'s codes
    (`shapes-tokenizer-local`) with a token-causal transformer (bundled as `shapes-ar-raster`, the
    baseline against which the set-trained trunks' raster order is measured). One token a position (patch
    1x1x1: 1024 positions a clip, 8x the set model's), so a smaller trunk trained from scratch, at
    batch 8: about 3 s a step in fp32 on a 2-core AVX2 CPU (SDPA's `is_causal` path; batch 16 took
    7 to 8 s), 1.5 s in bf16 on a 2-core AVX-512 BF16 one. The bundle is 6000 steps, made as a
    chain of resumes (its TRAINING.md): a 2000-step cosine, then resumed
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
    cfg.model = ModelSpec(
        family="autoregressive",
        generator=asdict(ARConfig(order=order, frames=4, size=32, set_steps=2, diagonal_delay=2, tokenizer=asdict(tok))),
        backbone=asdict(transformer_tiny(channels=3, out_channels=16, **patch)),
        text=asdict(WordEncoderConfig(vocabulary=list(VOCABULARY), width=32, depth=1, heads=2)),
    )
    cfg.out_dir = f"runs/shapes-ar-tiny-{order}"
    return cfg


RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "shapes-diffusion-small": shapes_diffusion_small,
    "shapes-diffusion-tiny": shapes_diffusion_tiny,
    "shapes-hybrid-small": shapes_hybrid_small,
    "shapes-hybrid-tiny": shapes_hybrid_tiny,
    "shapes-vae-small": shapes_vae_small,
    "shapes-vae-tiny": shapes_vae_tiny,
    "shapes-tokenizer-small": shapes_tokenizer_small,
    "shapes-tokenizer-local": shapes_tokenizer_local,
    "shapes-tokenizer-tiny": shapes_tokenizer_tiny,
    "shapes-ar-small": shapes_ar_small,
    "shapes-ar-local": shapes_ar_local,
    "shapes-ar-raster": shapes_ar_raster,
    "shapes-ar-orders": shapes_ar_orders,
    "shapes-ar-tiny": shapes_ar_tiny,
    "shapes-ar-tiny-raster": lambda: shapes_ar_tiny("raster"),
}


def get_recipe(name: str) -> TrainConfig:
    key = name.replace("_", "-")
    if key not in RECIPES:
        raise ValueError(f"unknown recipe '{name}'; choose one of {', '.join(RECIPES)} or give a .yaml file")
    return RECIPES[key]()


def load_config(recipe_or_yaml: str, overrides: list[str] = ()) -> TrainConfig:
    """A recipe name (`shapes-diffusion-small`) or a YAML file (whose optional `recipe:` key
    names the base), then `key=value` overrides in order. A run whose overrides (or YAML) set
    `data.source=folder` on a recipe that trains elsewhere is that recipe's fine-tune on the folder
    (framecast.train.finetune.folder_defaults), before the overrides."""
    import yaml

    path = Path(recipe_or_yaml)
    keys: list[tuple[str, object]] = []
    if recipe_or_yaml.endswith((".yaml", ".yml")):
        if not path.is_file():
            raise ValueError(f"config file '{recipe_or_yaml}' does not exist")
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"config file '{recipe_or_yaml}' must hold a mapping of keys to values")
        cfg = get_recipe(raw.pop("recipe", "shapes-diffusion-small"))
        keys = flatten(raw)
    else:
        cfg = get_recipe(recipe_or_yaml)
    probe = apply_overrides(_apply_keys(copy.deepcopy(cfg), keys), overrides)
    if probe.data.source == "folder" and cfg.data.source != "folder":
        cfg = folder_defaults(cfg, probe.init_from if probe.init_from != cfg.init_from else None)
    return apply_overrides(_apply_keys(cfg, keys), overrides)


def _apply_keys(cfg: TrainConfig, keys: list[tuple[str, object]]) -> TrainConfig:
    for k, v in keys:
        apply_override(cfg, k, v)
    return cfg


def finetune_config(model: str, path: str, overrides: list[str] = ()) -> TrainConfig:
    """A fine-tune of any model folder (bundled or trained) on the videos in `path`: the model's
    recipe where framecast knows it, its architecture from the folder; then `key=value` overrides."""
    recipe = read_config(resolve_model(model)).get("recipe", "")
    cfg = RECIPES[recipe]() if recipe in RECIPES else TrainConfig(recipe=recipe, model=model_spec(model))
    cfg.data.path = str(path)
    cfg = folder_defaults(cfg, model)
    cfg.out_dir = f"runs/{Path(path).resolve().name}"
    return apply_overrides(cfg, overrides)


def load_run_config(run: Path, overrides: list[str] = ()) -> TrainConfig:
    """The config a run (or one of its checkpoints) was trained with, then overrides: what
    `framecast train --resume RUN` goes on with."""
    run = Path(run)
    path = run / "train_config.json" if (run / "train_config.json").is_file() else run.parent.parent / "train_config.json"
    if not path.is_file():
        raise ValueError(f"'{run}' is not a framecast run folder (no train_config.json)")
    raw = read_json(path, "the run's config is damaged")
    if not isinstance(raw, dict) or not isinstance(raw.get("recipe", ""), str):
        raise ValueError(f"'{path}' is not a training config (a mapping of keys to values); the run's config is damaged")
    cfg = get_recipe(raw.get("recipe") or "shapes-diffusion-small") if raw.get("recipe") in RECIPES or not raw.get("recipe") else TrainConfig()
    try:
        for k, v in flatten(raw):
            apply_override(cfg, k, v)
    except (ValueError, TypeError) as e:
        raise ValueError(f"'{path}': {e}; the run's config is damaged") from None
    cfg.init_components = dict(raw.get("init_components", cfg.init_components))  # the run's, not merged with the recipe's
    if path.parent == run and (run / "state.json").is_file():  # a pack (or a checkpoint standing alone), not a run
        cfg.out_dir = pack_out_dir(run, cfg.out_dir)
    return apply_overrides(cfg, overrides)
