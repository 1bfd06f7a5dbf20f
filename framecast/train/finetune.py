"""Training on a folder of your own videos: a fine-tune of a model, by default the bundled model
of the recipe, not a run from scratch.

`folder_defaults` turns a recipe into its fine-tune on a folder. It runs before the user's
`--set` overrides, so any of its choices can be overridden:
  - the weights of the recipe's bundled model (`init_from`; its codec comes with them);
  - a vocabulary built from the captions at the start of the run, after the model's own words,
    whose embedding rows are kept (framecast.train.init.fill_vocabulary);
  - a latent pool of at most the windows the folder holds (framecast.train.data.pool_size);
  - the schedule of `FINETUNE`: a few hundred steps at batch 8, a fifth of the recipe's learning rate, a
    short warm-up, previews of the folder's own captions and checkpoints every 100 steps.
A recipe with no bundled model (the tiny test recipes) keeps its own weights and schedule; only
the vocabulary and the pool follow the folder.
"""

from __future__ import annotations

from framecast.generators.base import ModelSpec
from framecast.generators.io import read_config
from framecast.pipeline import bundled_models, resolve_model
from framecast.train.config import TrainConfig

FINETUNE = {"steps": 300, "batch_size": 8, "lr_scale": 0.2, "warmup_steps": 20, "ema_decay": 0.995, "every": 100}


def bundled_model_for(recipe: str) -> str | None:
    """The bundled model a recipe made (its config's `recipe`); the one named like it when two were."""
    made = [name for name, folder in bundled_models().items() if read_config(folder).get("recipe") == recipe]
    named = [m for m in made if recipe.startswith(m)]
    return (named or made or [None])[0]


def model_spec(folder: str) -> ModelSpec:
    """The architecture a model folder was saved with."""
    config = read_config(resolve_model(folder))
    keys = {k: config[k] for k in ("family", "generator", "backbone", "text_kind", "text") if config.get(k) is not None}
    return ModelSpec(**keys)


def folder_defaults(cfg: TrainConfig, model: str | None = None) -> TrainConfig:
    """`cfg` made a fine-tune of `model` (default: the recipe's bundled model) on a data folder."""
    cfg.data.source = "folder"
    model = model or bundled_model_for(cfg.recipe)
    if cfg.model.text_kind == "word":
        cfg.model.text["vocabulary"] = []  # built from the captions when the run starts
    if model is None:
        return cfg
    spec = model_spec(model)
    spec.text = {**spec.text, "vocabulary": []} if spec.text_kind == "word" else spec.text
    cfg.model, cfg.init_from, cfg.init_partial, cfg.init_components = spec, str(model), False, {}
    generator = spec.generator
    cfg.data.size, cfg.data.frames = generator.get("size", cfg.data.size), generator.get("frames", cfg.data.frames)
    cfg.steps, cfg.batch_size, cfg.ema_decay = FINETUNE["steps"], FINETUNE["batch_size"], FINETUNE["ema_decay"]
    cfg.optim.lr *= FINETUNE["lr_scale"]
    cfg.optim.warmup_steps = FINETUNE["warmup_steps"]
    cfg.ckpt_every = FINETUNE["every"]
    cfg.sample_every = FINETUNE["every"] if spec.text_kind != "none" else 0  # a codec draws no previews
    cfg.out_dir = "runs/finetune"
    return cfg


def describe(cfg: TrainConfig, report, pool: int, *, steps: int, ckpt_every: int, sample_every: int) -> list[str]:
    """What a run on a folder will do, in the lines a dry run and a real run print first (a dry
    run passes the schedule it will not run)."""
    start = f"fine-tune {cfg.init_from}" if cfg.init_from else f"train {cfg.recipe or 'a model'} from scratch"
    lines = [f"plan: {start} on {cfg.data.path}: {steps} steps at batch {cfg.batch_size}, lr {cfg.optim.lr:g} "
             f"(warm-up {cfg.optim.warmup_steps}), {cfg.data.frames} frames at {cfg.data.size}x{cfg.data.size}"]
    words = cfg.model.text.get("vocabulary") or []
    if cfg.model.text_kind == "word" and words:
        base = (read_config(resolve_model(cfg.init_from)).get("text") or {}).get("vocabulary", []) if cfg.init_from else []
        kept = sum(1 for w in words if w in set(base))
        lines.append(f"vocabulary: {len(words)} words ({kept} the model's, {len(words) - kept} from the captions)")
    if cfg.model.text_kind == "pretrained":
        lines.append(f"text: captions as written, through the pretrained encoder '{cfg.model.text.get('source')}' and the "
                     "model's connector (trained with it)")
    if pool:
        lines.append(f"latent pool: {pool} windows of {len(report.entries)} clips (data.latent_pool={cfg.data.latent_pool} at most)")
    every = [f"a checkpoint every {ckpt_every} steps and at the end"] + ([f"previews every {sample_every}"] if sample_every else [])
    lines.append(f"output: {cfg.out_dir} ({', '.join(every)})")
    return lines
