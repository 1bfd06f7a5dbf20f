"""The Wan generator: a Wan 2.1 text-to-video model (the transformer of framecast.nn.wan, the
WanVAE codec, the folder's UMT5 text encoder and scheduler) behind framecast's generator
interface, so the Pipeline, the CLI and the noise-level matrix drive it like framecast's own
models. `build_wan` (framecast.generators.wan_build) reads it from a folder; sampling routes are
in framecast.generators.wan_sampling; defaults in framecast.generators.wan_settings.

    model = build_wan("Wan2.1-T2V-1.3B-Diffusers")
    video_BTCHW = model.generate(GenerationRequest(prompts=["a cat runs"], height=480, width=832))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from framecast.codecs import WanVAE
from framecast.generators.base import GenerationRequest, guidance_text, resolve, starting_noise
from framecast.generators.checks import check_int
from framecast.generators.wan_sampling import (
    CausalRun, attention_mask_for, causal_chunks, causal_matrix, few_step_sigmas, guided_velocity, levels_for, transformer_run,
)
from framecast.generators.wan_settings import SCHEDULES, WanSettings
from framecast.nn.wan import WanText, WanTransformer
from framecast.sampling.external import SchedulerSpec, diffusers_steps, velocity_denoiser
from framecast.sampling.noise_matrix import NoiseMatrix
from framecast.sampling.samplers import get_steps
from framecast.text.encoder import TextEncoder


@dataclass(frozen=True)
class WanPlan:
    """A checked request and how it runs: the latent grid, the route and its noise levels."""

    request: GenerationRequest
    latent_shape: tuple[int, int, int, int, int]  # (B, F, C, h, w)
    route: str  # "matrix" | "diffusers" | "causal"
    sampler: str | None  # framecast's sampler (None: the diffusers scheduler)
    shift: float
    levels: torch.Tensor  # (steps + 1,) or (rows, F)


class WanGenerator(nn.Module):
    family = "wan"

    def __init__(self, transformer: WanTransformer, vae: WanVAE, text: TextEncoder, scheduler: SchedulerSpec,
                 settings: WanSettings | None = None):
        super().__init__()
        self.transformer, self.vae, self.text = transformer, vae, text
        self.scheduler, self.config = scheduler, settings or WanSettings()

    # --- the request ------------------------------------------------------------------------
    def request_defaults(self) -> dict:
        s = self.config
        return dict(num_frames=s.frames, steps=s.steps, guidance=s.guidance, schedule=s.schedule, height=s.height, width=s.width,
                    use_cache=True, sampler=s.sampler, shift=s.shift)

    def _grid(self, r: GenerationRequest) -> tuple[int, int, int]:
        """(latent frames, h, w) of the request's clip, or a sentence on the size to ask for."""
        unit = self.vae.downsample * self.transformer.config.patch_size[1]
        for name in ("height", "width"):
            value = check_int(name, getattr(r, name), unit)
            if value % unit:
                raise ValueError(f"{name}={value} is not a multiple of {unit} (the VAE's 8 x the transformer's patch); "
                                 f"ask for {value - value % unit or unit} or {value - value % unit + unit}")
        try:
            frames = self.vae.latent_frames(r.num_frames)
        except ValueError as e:
            raise ValueError(f"num_frames={r.num_frames}: {e}") from None
        return frames, r.height // self.vae.downsample, r.width // self.vae.downsample

    def plan(self, request: GenerationRequest) -> WanPlan:
        """The request resolved against the model's defaults and checked, before any work."""
        s = self.config
        r = resolve(request, self.family, self.request_defaults())
        if r.context_BTCHW is not None:
            raise ValueError("this Wan model is text-to-video: it cannot start from an image or a video")
        if r.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule '{r.schedule}' for a Wan model; choose one of {', '.join(SCHEDULES)}")
        F, h, w = self._grid(r)
        shape = (len(r.prompts), F, self.vae.latent_channels, h, w)
        shift = r.shift if r.shift is not None else self.scheduler.shift
        N = self.scheduler.num_train_timesteps
        if r.schedule == "causal":
            if F % s.block:
                raise ValueError(f"{F} latent frames do not split into chunks of {s.block}; ask for num_frames = 1 + 4k "
                                 f"with k + 1 a multiple of {s.block}")
            sampler = r.sampler or ("euler-stochastic" if s.denoising_steps else "euler")
            get_steps(sampler)
            steps = r.steps if s.denoising_steps is None else len(s.denoising_steps)
            return WanPlan(r, shape, "causal", sampler, shift, few_step_sigmas(s.denoising_steps, steps, shift, N))
        levels = levels_for(r.schedule, F, r.steps, shift=shift, block=s.block, ar_step=s.ar_step, num_train_timesteps=N)
        if r.schedule == "full" and r.sampler is None and not self.scheduler.native and r.shift is None:
            return WanPlan(r, shape, "diffusers", None, shift, levels)
        get_steps(r.sampler or "euler")
        return WanPlan(r, shape, "matrix", r.sampler or "euler", shift, levels)

    def check(self, request: GenerationRequest) -> None:
        self.plan(request)

    def noise_matrix(self, request: GenerationRequest) -> NoiseMatrix:
        """The levels every latent frame goes through (the `causal` route as its chunk-by-chunk matrix)."""
        p = self.plan(request)
        F = p.latent_shape[1]
        if p.route == "causal":
            return NoiseMatrix(causal_matrix(F, self.config.block, p.levels), "causal")
        K = p.levels if p.levels.dim() == 2 else p.levels[:, None].expand(-1, F).clone()
        return NoiseMatrix(K, p.request.schedule)

    # --- sampling ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def _text(self, r: GenerationRequest) -> WanText:
        """[prompt; negative prompt] states when guided (the negative prompt "" by default, as
        WanPipeline), then the text encoder released if the settings ask; embedded once, with each
        block's cross-attention keys and values, for every step."""
        text, _ = guidance_text(self.text, r)
        if self.config.release_text_encoder and hasattr(self.text, "release"):
            self.text.release()
        return self.transformer.prepare_text(text.tokens_BLD.to(self.device))

    def _steps(self, p: WanPlan, x: torch.Tensor, text_BLC: WanText) -> Iterator[tuple[int, torch.Tensor]]:
        """(step, x) after every step of the matrix or diffusers routes."""
        r, s = p.request, self.config
        mask = attention_mask_for(s.block)
        velocity = guided_velocity(transformer_run(self.transformer, text_BLC, mask, s.fps_id), r.guidance)
        if p.route == "diffusers":
            return diffusers_steps(self.scheduler, velocity, x, r.steps, callback=r.callback)
        denoise = velocity_denoiser(velocity, self.scheduler.num_train_timesteps)
        return get_steps(p.sampler)(denoise, x, p.levels.to(x.device), callback=r.callback, generator=r.generator,
                                    causal=s.block > 1)

    def _causal(self, p: WanPlan, x: torch.Tensor, text_BLC: WanText) -> Iterator[torch.Tensor]:
        r, s = p.request, self.config
        run = CausalRun(self.transformer, text_BLC, r.guidance, block=s.block, sinks=s.sinks, window=s.window,
                        use_cache=r.use_cache, fps_id=s.fps_id)
        return causal_chunks(run, x, p.levels, block=s.block, sampler=p.sampler, generator=r.generator, callback=r.callback)

    def _start(self, request: GenerationRequest) -> tuple[WanPlan, torch.Tensor, WanText]:
        p = self.plan(request)
        x = starting_noise(p.request, p.latent_shape).to(self.device)
        return p, x, self._text(p.request)

    @torch.no_grad()
    def generate_latents(self, request: GenerationRequest) -> torch.Tensor:
        """-> normalised latents (B, F, 16, h, w) after the last step (diffusers' output_type="latent",
        transposed to framecast's layout)."""
        p, x, text = self._start(request)
        if p.route == "causal":
            return torch.cat(list(self._causal(p, x, text)), dim=1)
        for _, x in self._steps(p, x, text):
            pass
        return x

    @torch.no_grad()
    def decode(self, z_BFChw: torch.Tensor) -> torch.Tensor:
        """Latents -> clip (B, T, 3, H, W) in [-1, 1], in chunks of `decode_chunk` latent frames."""
        z = z_BFChw.to(next(self.vae.parameters()).dtype)
        return self.vae.decode(z, chunk_frames=self.config.decode_chunk).float()

    @torch.no_grad()
    def generate(self, request: GenerationRequest) -> torch.Tensor:
        return self.decode(self.generate_latents(request))

    def stream(self, request: GenerationRequest) -> Iterator[torch.Tensor]:
        """Yield decoded frames (B, k, 3, H, W) in order as their latent frames are final, each chunk
        decoded as it comes (WanStreamDecoder). The request is checked here, at the call."""
        return self._stream(self.plan(request).request)

    @torch.no_grad()
    def _stream(self, request: GenerationRequest) -> Iterator[torch.Tensor]:
        p, x, text = self._start(request)
        decoder, dtype = self.vae.stream_decoder(), next(self.vae.parameters()).dtype
        if p.route == "causal":
            for chunk in self._causal(p, x, text):
                yield decoder.decode_chunk(chunk.to(dtype)).float()
            return
        K = self.noise_matrix(request).levels
        done = 0  # latent frames decoded
        for i, x in self._steps(p, x, text):
            ready = done
            while ready < K.shape[1] and K[min(i + 1, K.shape[0] - 1), ready] == 0:
                ready += 1
            if ready > done:
                yield decoder.decode_chunk(x[:, done:ready].to(dtype)).float()
                done = ready

    def describe(self) -> str:
        """One line: sizes, scheduler, defaults."""
        c, s = self.transformer.config, self.config
        n = sum(p.numel() for p in self.transformer.parameters())
        how = f"causal chunks of {s.block} latent frames with the KV cache" if s.schedule == "causal" else f"the {s.schedule} schedule"
        return (f"Wan transformer {n / 1e6:.1f}M parameters ({c.num_layers} layers, width {c.width}); {self.scheduler.describe()}; "
                f"default {s.frames} frames of {s.width}x{s.height}, {s.steps} steps, guidance {s.guidance:g}, {how}")
