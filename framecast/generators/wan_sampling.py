"""Sampling a Wan transformer on framecast's core.

Latents are framecast's (B, F, C, h, w) (diffusers' are (B, C, F, h, w)); F latent frames, one
token-frame each (Wan's patch is one frame deep). Three routes:

- a noise-level matrix (`full`, `autoregressive`, `pyramid`) through framecast's samplers, the
  model's velocity turned into an x0 denoiser (framecast.sampling.external.velocity_denoiser):
  one timestep per latent frame where the levels differ (diffusion forcing, SkyReels-V2-DF);
- the folder's scheduler through diffusers where framecast has no equal (UniPC, Wan's default);
- `causal`: block-causal models (CausVid, Self-Forcing) chunk by chunk, each chunk denoised with
  the few-step list while attending to the KV cache of the chunks before it, then re-cached clean
  at timestep 0 (`WanStream`); or, without the cache, the same attention recomputed every step
  under the block-causal mask (the reference the cache must equal, and the cost it saves).

Classifier-free guidance combines the velocities of [prompt; negative prompt] in one batched pass,
uncond + scale (cond - uncond), as WanPipeline guides its noise prediction.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from framecast.nn.attention import MaskSpec
from framecast.nn.wan import WanStream, WanText, WanTransformer
from framecast.sampling.external import Velocity, flow_match_sigmas, velocity_denoiser
from framecast.sampling.guidance import guided
from framecast.sampling.noise_matrix import build_matrix
from framecast.sampling.samplers import get_steps
from framecast.sampling.schedules import shift_sigmas

Run = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x (B, F, C, h, w), t (B,) or (B, F)) -> velocity


def batch_timesteps(t, x: torch.Tensor) -> torch.Tensor:
    """A 0-dim timestep -> (B,); one per latent frame (F,) -> (B, F)."""
    t = torch.as_tensor(t, device=x.device, dtype=torch.float32)
    return t.expand(x.shape[0]) if t.dim() == 0 else t.expand(x.shape[0], -1)


def guided_velocity(run: Run, scale: float) -> Velocity:
    """`run` over [cond; uncond] rows (when scale != 1) -> the guided velocity, in float32."""
    g = guided(run, scale)
    return lambda x, t: g(x, batch_timesteps(t, x))


def transformer_run(model: WanTransformer, text_BLC: torch.Tensor | WanText, mask: MaskSpec, fps_id=None) -> Run:
    """One pass of the transformer over latents in framecast's layout."""
    return lambda x, t: model(x.transpose(1, 2), t, text_BLC, mask=mask, fps_id=fps_id).transpose(1, 2)


def attention_mask_for(block: int, window: int = 0, sinks: int = 0) -> MaskSpec:
    """Full attention, or block-causal over latent frames in blocks of `block` (with a rolling window)."""
    return MaskSpec("block-causal", block=block, window=window, sinks=sinks) if block > 1 else MaskSpec()


def levels_for(schedule: str, frames: int, steps: int, *, shift: float, block: int = 1, ar_step: int = 0,
               num_train_timesteps: int = 1000) -> torch.Tensor:
    """The noise levels a schedule steps: (steps + 1,) for `full` (FlowMatchEulerDiscreteScheduler's
    sigmas), else a (rows, frames) matrix over blocks of `block` latent frames (SkyReels-V2-DF's
    causal_block_size; `ar_step` is its asynchronous offset, the pyramid's)."""
    if schedule == "full":
        return flow_match_sigmas(steps, shift, num_train_timesteps)
    if frames % block:
        raise ValueError(f"{frames} latent frames do not split into blocks of {block}; ask for num_frames = 1 + 4k "
                         f"with a multiple of {block} latent frames (1 + 4k video frames make k + 1)")
    K = build_matrix(schedule, frames // block, steps, shift=shift, offset=ar_step or None).levels
    return K.repeat_interleave(block, dim=1)


def few_step_sigmas(denoising_steps: list[int] | None, steps: int, shift: float, num_train_timesteps: int = 1000) -> torch.Tensor:
    """A chunk's (steps + 1,) levels: a distilled model's timestep list warped by the shift
    (CausVid / Self-Forcing's warp_denoising_step: sigma = shift(t / N)) then 0, or the flow schedule."""
    if denoising_steps is None:
        return flow_match_sigmas(steps, shift, num_train_timesteps)
    t = torch.tensor(denoising_steps, dtype=torch.float64) / num_train_timesteps
    return torch.cat([shift_sigmas(t, shift), torch.zeros(1, dtype=torch.float64)]).float()


def causal_matrix(frames: int, block: int, sigmas: torch.Tensor) -> torch.Tensor:
    """The `causal` route as a noise-level matrix: chunk j runs the chunk's levels after chunk j - 1
    is clean (the autoregressive matrix over chunks), for progress counts and pictures."""
    chunks, steps = frames // block, sigmas.shape[0] - 1
    K = torch.ones(chunks * steps + 1, chunks)
    for j in range(chunks):
        K[j * steps : (j + 1) * steps + 1, j] = sigmas
        K[(j + 1) * steps + 1 :, j] = 0.0
    return K.repeat_interleave(block, dim=1)


class CausalRun:
    """The velocity of one chunk given the clean chunks before it: with the KV cache (`WanStream`:
    the context's keys and values computed once, clean, at timestep 0) or recomputed every step
    under the same block-causal mask (rolling window and sinks included)."""

    def __init__(self, model: WanTransformer, text_BLC: torch.Tensor | WanText, scale: float, *, block: int, sinks: int, window: int,
                 use_cache: bool, fps_id=None):
        self.model, self.text, self.scale, self.fps_id = model, text_BLC, scale, fps_id
        self.rows = 2 if scale != 1.0 else 1  # [cond; uncond] when guided
        self.stream = WanStream(model, text_BLC, sinks=sinks, window=window, fps_id=fps_id) if use_cache else None
        self.mask = MaskSpec("block-causal", block=block, window=window, sinks=sinks)
        self.context: torch.Tensor | None = None  # uncached: the clean chunks so far, (B, F, C, h, w)

    def velocity(self) -> Velocity:
        if self.stream is not None:
            return guided_velocity(lambda x, t: self.stream.predict(x.transpose(1, 2), t).transpose(1, 2), self.scale)
        return guided_velocity(self._recomputed, self.scale)

    def _recomputed(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.context is None:
            return transformer_run(self.model, self.text, self.mask, self.fps_id)(x, t)
        ctx = self.context.repeat(self.rows, 1, 1, 1, 1)
        t_BF = torch.cat([torch.zeros(x.shape[0], ctx.shape[1], device=x.device), t[:, None].expand(-1, x.shape[1])], 1)
        v = transformer_run(self.model, self.text, self.mask, self.fps_id)(torch.cat([ctx, x], 1), t_BF)
        return v[:, ctx.shape[1]:]

    @torch.no_grad()
    def commit(self, x0: torch.Tensor) -> None:
        """The finished chunk becomes context: cached clean at timestep 0, or kept for recomputing."""
        if self.stream is not None:
            self.stream.commit(x0.repeat(self.rows, 1, 1, 1, 1).transpose(1, 2), 0)
        else:
            self.context = x0 if self.context is None else torch.cat([self.context, x0], 1)


@torch.no_grad()
def causal_chunks(run: CausalRun, x: torch.Tensor, sigmas: torch.Tensor, *, block: int, sampler: str, generator=None,
                  callback=None) -> Iterator[torch.Tensor]:
    """Yield each chunk's clean latents (B, block, C, h, w) in order, from the starting noise x
    (B, F, C, h, w). The step callback counts steps across chunks and sees the chunk."""
    steps, rows = get_steps(sampler), sigmas.shape[0] - 1
    denoise = velocity_denoiser(run.velocity())
    for j, a in enumerate(range(0, x.shape[1], block)):
        xc = x[:, a : a + block]
        cb = None if callback is None else (lambda i, s, x_, x0, j=j: callback(j * rows + i, s, x_, x0))
        for _, xc in steps(denoise, xc, sigmas.to(x.device), generator=generator, callback=cb):
            pass
        run.commit(xc)
        yield xc
