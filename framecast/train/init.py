"""Where a run starts: the config filled in from what it loads (a folder's vocabulary, components'
configs, a latent scale) and the weights taken from other model folders (`init_from`,
`init_components`), before the first step."""

from __future__ import annotations

import hashlib

import torch

from framecast.generators.io import WEIGHTS_NAME, read_config
from framecast.generators.weights import read_tensors
from framecast.pipeline import resolve_model
from framecast.train.config import TrainConfig
from framecast.train.data import process_batches


def init_weights(model: torch.nn.Module, folder: str, partial: bool = False, components: tuple[str, ...] = ()) -> dict:
    """Start from another model's weights (safetensors only). Architectures must match; the
    families may differ: CausVid initialises its causal student from a bidirectional teacher.
    `partial`: take every tensor whose name and shape fit and start the others fresh (a token
    transformer from a diffusion model's trunk, a tokenizer from a VAE); at least half of the
    model's tensors (not counting `components`, loaded from their own folders) must fit.
    Returns the folder's config."""
    path = resolve_model(folder)
    config = read_config(path)
    state = read_tensors(path / WEIGHTS_NAME, fix=f"give another model folder than '{folder}'")
    own = model.state_dict()
    fit_text_tables(state, own, config, model)
    fits = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    if not partial:
        if set(state) != set(own) or len(fits) != len(own):
            raise ValueError(f"cannot start from '{folder}': its weights do not fit this recipe's architecture "
                             "(set init_partial=true to take only the tensors that fit)")
    else:
        own_here = [k for k in own if not k.startswith(tuple(f"{c}." for c in components))]
        if 2 * len(fits) < len(own_here):
            raise ValueError(f"cannot start from '{folder}': only {len(fits)} of this model's {len(own_here)} tensors fit its weights")
        fresh = sorted(set(own_here) - set(fits))
        print(f"init from {folder}: {len(fits)} of {len(own)} tensors taken; fresh: {', '.join(fresh) or 'none'}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in fits.items()}, strict=not partial)
    return config


def component_configs(cfg: TrainConfig) -> None:
    """A component loaded from a folder (a tokenizer under a token transformer) brings its config."""
    for name, folder in cfg.init_components.items():
        if cfg.model.generator.get(name) is None:
            cfg.model.generator[name] = read_config(resolve_model(folder))["generator"]


def inherit_latent_scale(cfg: TrainConfig, model: torch.nn.Module, init_config: dict) -> None:
    """A run started from a latent model keeps that model's latent scale: its weights were
    trained on latents at that scale (a CausVid student starts from its teacher)."""
    scale = init_config.get("generator", {}).get("latent_scale")
    if scale and hasattr(getattr(model, "config", None), "latent_scale") and not cfg.model.generator.get("latent_scale"):
        cfg.model.generator["latent_scale"] = scale


def calibrate_latents(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """A model in a codec's latents scales them to unit variance, measured once on the first
    batch of the run (the same on every rank) and kept in the config so a resumed run reuses it."""
    config = getattr(model, "config", None)
    if getattr(config, "codec", None) is None or config.latent_scale:
        return
    if not cfg.model.generator.get("latent_scale"):
        first = next(process_batches(cfg, 0, 0, 1))
        cfg.model.generator["latent_scale"] = model.calibrate(torch.cat([mb.batch["video"] for mb in first]))
    config.latent_scale = cfg.model.generator["latent_scale"]


def fill_vocabulary(cfg: TrainConfig, captions: list[str]) -> None:
    """A word encoder for a folder of real videos reads the words of its captions. A run that
    starts from a model (`init_from`) keeps that model's words first, in their order, so their
    embedding rows are kept (`fit_text_tables`), and adds the new words of the captions."""
    if cfg.data.source != "folder" or cfg.model.text_kind != "word" or cfg.model.text.get("vocabulary"):
        return
    from framecast.text.encoder import build_vocabulary, split_words

    words = build_vocabulary(captions)
    if not words:
        raise ValueError(f"the captions in '{cfg.data.path}' hold no words; write what each clip shows, e.g. 'an orange ball rolls left'")
    own = []
    if cfg.init_from:
        text = read_config(resolve_model(cfg.init_from)).get("text") or {}
        own = list(text.get("vocabulary", []))
    cfg.model.text["vocabulary"] = own + [w for w in words if w not in set(own)]
    longest = max(len(split_words(c)) for c in captions)
    cfg.model.text["max_words"] = max(cfg.model.text.get("max_words", 24), longest)


def fit_text_tables(state: dict, own: dict, config: dict, model: torch.nn.Module) -> None:
    """Starting from a model whose word encoder knows other words: each word's embedding row
    (and [pad], [null]) is taken from the model where it knows the word, new words start fresh;
    the position table keeps the rows both have. Then the text tensors fit by shape."""
    tokenizer = getattr(getattr(model, "text", None), "tokenizer", None)
    if tokenizer is None or "text.embed.weight" not in state or "text.embed.weight" not in own:
        return
    from framecast.text.encoder import NULL, PAD

    src = {w: i for i, w in enumerate([PAD, NULL, *(config.get("text") or {}).get("vocabulary", [])])}
    rows = own["text.embed.weight"].clone()
    for j, w in enumerate(tokenizer.words):
        if w in src and src[w] < state["text.embed.weight"].shape[0]:
            rows[j] = state["text.embed.weight"][src[w]]
    state["text.embed.weight"] = rows
    if "text.pos" in state and "text.pos" in own and state["text.pos"].shape != own["text.pos"].shape:
        pos, n = own["text.pos"].clone(), min(own["text.pos"].shape[0], state["text.pos"].shape[0])
        pos[:n] = state["text.pos"][:n]
        state["text.pos"] = pos


def pool_codec(model: torch.nn.Module) -> torch.nn.Module | None:
    """The frozen codec whose output a training pool can hold: a latent model's VAE, a token
    model's tokenizer (its codes); None for a pixel model."""
    if getattr(getattr(model, "config", None), "codec", None) is not None:
        return model.codec
    return getattr(model, "tokenizer", None)


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's parameters and buffers: which weights a cached result came from."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()
