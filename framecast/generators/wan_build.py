"""A WanGenerator from what `find_wan` found: configs read, weights renamed from either key layout
(the transformer's by framecast.nn.wan_keys, the VAE's by framecast.codecs.wan_vae_keys), parts put
on the device in the asked dtype.

    model = build_wan("Wan2.1-T2V-1.3B-Diffusers", dtype=torch.bfloat16, device="cuda")
    model = build_wan("Wan2.1-T2V-1.3B-Diffusers", transformer="self_forcing_dmd.pt")  # CausVid / Self-Forcing weights

A folder in the Wan repository's layout has no scheduler config: Wan's own default, UniPC with flow
sigmas and shift 5, is used (`WAN_DEFAULT_SCHEDULER`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from framecast.codecs import WanVAE, WanVAEConfig
from framecast.generators.wan import WanGenerator
from framecast.generators.wan_folder import WanSource, find_wan
from framecast.generators.wan_settings import settings_for
from framecast.generators.wan_weights import read_wan_weights
from framecast.nn.wan import WanTransformer, WanTransformerConfig, load_wan_weights
from framecast.sampling.external import SchedulerSpec, read_scheduler_config

WAN_DEFAULT_SCHEDULER = {"_class_name": "UniPCMultistepScheduler", "prediction_type": "flow_prediction", "use_flow_sigmas": True,
                         "flow_shift": 5.0, "num_train_timesteps": 1000}
LAYOUT_NAMES = {"diffusers": "diffusers", "wan-original": "original"}


def transformer_config(wan: WanSource) -> WanTransformerConfig:
    config = wan.configs.get("transformer")
    if config is None:
        raise ValueError(f"'{wan.path}' is a transformer checkpoint without a config; load a base Wan folder and give the "
                         "checkpoint as its transformer (framecast.load(FOLDER, transformer=CHECKPOINT), --transformer)")
    return WanTransformerConfig.from_original(config) if wan.kind == "wan-folder" else WanTransformerConfig.from_diffusers(config)


def build_transformer(wan: WanSource, weights: str | Path | None, dtype: torch.dtype) -> WanTransformer:
    """The folder's transformer config with its own weights, or those of `weights` (a checkpoint of
    the same size: CausVid / Self-Forcing's .pt with generator_ema, SkyReels-V2's safetensors)."""
    config = transformer_config(wan)
    state, layout = read_wan_weights(weights if weights is not None else wan.part("transformer"), "transformer")
    model = WanTransformer(config)
    load_wan_weights(model, state, LAYOUT_NAMES[layout])
    model.eval().requires_grad_(False)
    return model.cast(dtype) if dtype != torch.float32 else model


def build_vae(wan: WanSource) -> WanVAE:
    """Diffusers' vae/config.json, or Wan 2.1's VAE (the only one of the Wan repository's 2.1 layout)."""
    config = wan.configs.get("vae")
    vae = WanVAE.from_config(config) if config is not None else WanVAE(WanVAEConfig())
    state, _ = wan.vae_weights()
    return vae.load_weights(state).eval().requires_grad_(False)


def scheduler_spec(wan: WanSource) -> SchedulerSpec:
    return wan.scheduler() if "scheduler" in wan.parts else read_scheduler_config(WAN_DEFAULT_SCHEDULER)


def framecast_section(wan: WanSource) -> dict | None:
    """The folder's `framecast` section (docs/wan.md): in model_index.json, or the Wan layout's config.json."""
    if wan.kind == "diffusers-folder":
        return wan.model_index.get("framecast")
    return wan.configs.get("transformer", {}).get("framecast")


def build_wan(path: str | Path, *, transformer: str | Path | None = None, dtype: torch.dtype = torch.float32,
              device: str | torch.device = "cpu", **settings) -> WanGenerator:
    """A Wan folder -> a WanGenerator on `device`; the transformer and text encoder in `dtype`
    (bf16 on GPUs; the VAE stays float32), `settings` override the folder's (WanSettings fields)."""
    wan = find_wan(path)
    if wan.kind == "checkpoint":
        raise ValueError(f"'{path}' is a transformer checkpoint, not a whole model; load a base Wan folder and give it as "
                         "the transformer (framecast.load(FOLDER, transformer=CHECKPOINT), --transformer)")
    model = build_transformer(wan, transformer, dtype)
    defaults = settings_for(model.config, framecast_section(wan), settings)
    text = wan.text_encoder(dtype=dtype if dtype != torch.float32 else None)
    generator = WanGenerator(model, build_vae(wan), text, scheduler_spec(wan), defaults)
    return generator.to(device)
