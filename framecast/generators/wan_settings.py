"""How a Wan model samples by default, and how a folder says so.

Defaults are Wan 2.1 T2V's (WanPipeline's): 81 frames of 480x832, 50 steps, guidance 5, the
`full` schedule with the folder's scheduler. Two things in a folder change them:

- the transformer config's `num_frame_per_block` > 1 (CausVid, Self-Forcing): a block-causal
  model, which streams chunk by chunk with the KV cache (`schedule="causal"`, `block` latent
  frames a chunk);
- a `framecast` section (in `model_index.json` of a diffusers folder, in `config.json` of a folder
  in the Wan repository's layout) with any field of `WanSettings`, e.g.
  `{"framecast": {"schedule": "causal", "block": 3, "denoising_steps": [1000, 750, 500, 250],
  "shift": 5.0, "guidance": 1.0}}` for Self-Forcing, or `{"schedule": "pyramid", "block": 5,
  "ar_step": 5}` for SkyReels-V2-DF.

`framecast.load(path, preset=NAME)` applies the published settings of a known model (`PRESETS`:
self-forcing, skyreels-v2-df), and `framecast.load(path, **settings)` overrides all of these (e.g.
`schedule="causal", block=3, sinks=1, window=12`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from framecast.generators.checks import check_int, check_real

SCHEDULES = ("full", "autoregressive", "pyramid", "causal")
RUNTIME = ("release_text_encoder", "decode_chunk")  # memory options, not sampling


@dataclass(kw_only=True)
class WanSettings:
    """A Wan model's sampling defaults and memory options (docs/wan.md)."""

    frames: int = 81  # video frames, 1 + 4k
    height: int = 480
    width: int = 832
    steps: int = 50
    guidance: float = 5.0
    shift: float | None = None  # None: the scheduler's flow shift
    # full | autoregressive | pyramid (noise-level matrices) | causal (chunks with the KV cache)
    schedule: str = "full"
    block: int = 1  # latent frames that share a noise level / a chunk; > 1 is block-causal attention
    ar_step: int = 0  # pyramid: steps between one block's start and the next's (SkyReels-V2-DF); 0: steps // 2
    # causal: the few-step timesteps of a distilled model, Wan's [0, 1000] before the shift
    # (CausVid / Self-Forcing `denoising_step_list`, warped by the shift as their warp_denoising_step)
    denoising_steps: list[int] | None = None
    sampler: str | None = None  # None: the scheduler's own; euler-stochastic for denoising_steps
    sinks: int = 0  # causal: first latent frames always kept in the cache
    window: int = 0  # causal: latent frames of recent context kept (0: all)
    fps_id: int | None = None  # SkyReels-V2 frame-rate id (0: 16 fps, 1: 24 fps)
    release_text_encoder: bool = False  # free the text encoder once the prompts are encoded
    decode_chunk: int | None = None  # latent frames the VAE decodes at a time (None: all at once)

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown Wan schedule '{self.schedule}'; choose one of {', '.join(SCHEDULES)}")
        check_int("block", self.block, 1)
        check_int("ar_step", self.ar_step, 0)
        check_int("sinks", self.sinks, 0)
        check_int("window", self.window, 0)
        check_real("guidance", self.guidance, 0.0, 100.0)
        if self.denoising_steps is not None:
            if not self.denoising_steps or any(not 0 < check_int("denoising_steps", t, 1) <= 1000 for t in self.denoising_steps):
                raise ValueError("denoising_steps must be a non-empty list of timesteps in (0, 1000]")
            if list(self.denoising_steps) != sorted(self.denoising_steps, reverse=True):
                raise ValueError(f"denoising_steps must fall, e.g. [1000, 750, 500, 250]; got {self.denoising_steps}")
            self.steps = len(self.denoising_steps)


# The published inference settings of models built on Wan 2.1, for checkpoints whose folder does
# not carry them (`preset=` / --preset).
PRESETS = {
    # Self-Forcing (Huang et al. 2025), configs/self_forcing_dmd.yaml: chunks of 3 latent frames,
    # denoising_step_list [1000, 750, 500, 250] warped with timestep_shift 5, no guidance (DMD)
    "self-forcing": dict(schedule="causal", block=3, denoising_steps=[1000, 750, 500, 250], shift=5.0, guidance=1.0),
    # SkyReels-V2-DF's asynchronous generation (its README): ar_step 5, causal_block_size 5,
    # 30 steps, guidance 6, shift 8, 97 frames of 544x960 (the 540P models)
    "skyreels-v2-df": dict(schedule="pyramid", block=5, ar_step=5, steps=30, guidance=6.0, shift=8.0, frames=97, height=544,
                           width=960),
}


def settings_for(transformer_config, section: dict | None, overrides: dict) -> WanSettings:
    """The folder's defaults: block-causal configs stream, then the `framecast` section, then a
    preset (`overrides["preset"]`), then the caller's other `overrides` (load keywords; None
    values are left out)."""
    known = {f.name for f in fields(WanSettings)}
    settings = WanSettings()
    block = int(getattr(transformer_config, "num_frame_per_block", 1) or 1)
    if block > 1:
        settings = replace(settings, schedule="causal", block=block)
    overrides = dict(overrides)
    preset = overrides.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown Wan preset '{preset}'; choose one of {', '.join(PRESETS)}")
    named = PRESETS.get(preset, {})
    for where, values in (("the folder's framecast section", section or {}), (f"preset {preset}", named),
                          ("framecast.load", overrides)):
        if not isinstance(values, dict):
            raise ValueError(f"{where} must be a JSON object of WanSettings fields")
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown Wan setting '{unknown[0]}'; known: {', '.join(sorted(known))}")
        settings = replace(settings, **{k: v for k, v in values.items() if v is not None})
    return settings
