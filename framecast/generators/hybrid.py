"""The hybrid family: causal diffusion with a noise level per frame (diffusion forcing), sampled
by any noise-level matrix, streaming with a KV cache.

Training (Diffusion Forcing, Chen et al. 2024): every token-frame gets its own noise level, under
a frame-causal (or block-causal) mask, with the flow-matching objective of the diffusion family.
Half the clips instead take a clean prefix (optionally with a little noise, so the model learns
to tolerate its own errors) and one level for the rest, which is exactly what autoregressive
sampling asks of the model.

Sampling steps a NoiseMatrix with the shared samplers (framecast.sampling.samplers, `causal`:
each step computes only the frames up to the last one that moves). Frames that are clean and
precede every frame still being denoised are encoded once into the KV cache, in the pass that
begins the frames after them; each later step attends to it without recomputing it (CausVid, Yin
et al. 2025). A rolling window with a few kept "sink" frames bounds memory and time per frame for
long clips (FAR's long/short context; StreamingLLM). A stream decodes each finished frame once
(the codec's stream decoder keeps its causal convolutions' state).

A request may change the prompt at given frames (`prompt_at`, interactive streaming): the frames
from a switch on are made under the new prompt, and the frames in the cache are encoded again
under it (LongLive's KV re-cache, Yang et al. 2025), so the new prompt takes effect at once while
the scene it continues keeps its objects and places.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import torch

from framecast.generators.base import ContextHolder, GenerationRequest, frames_in_chunks, guidance_text, resolve, starting_noise
from framecast.generators.diffusion import DiffusionConfig, VideoDiffusion, initial_noise
from framecast.generators.prompt_at import token_frame_switches
from framecast.nn.attention import KVCache, MaskSpec
from framecast.nn.step_cache import StepCache, step_cache_for
from framecast.rng import first, rand, randint, randn
from framecast.sampling.guidance import guided
from framecast.sampling.noise_matrix import NoiseMatrix, build_matrix
from framecast.sampling.samplers import get_steps
from framecast.sampling.schedules import sample_training_sigmas
from framecast.text.encoder import TextEmbedding


@dataclass(kw_only=True)
class HybridConfig(DiffusionConfig):
    mask: str = "frame-causal"  # over token-frames; block-causal groups `chunk` token-frames
    chunk: int = 1  # token-frames per block for block-causal attention
    schedule: str = "autoregressive"  # default noise-level matrix
    pyramid_offset: int = 0  # rows between columns of the pyramid schedule (0 = steps // 2)
    prefix_share: float = 0.5  # share of training clips with a clean prefix and one level after it
    context_noise: float = 0.0  # context frames get a level in [0, context_noise] in training (0 = clean)
    context_level: float = 0.0  # sampling: finished frames are shown to the model as context at this noise level (0 = clean)
    window: int = 0  # token-frames of recent context kept when streaming (0 = fill the training length)
    sinks: int = 1  # first token-frames always kept in the cache
    # sampling: steps of the first token-frame when nothing comes before it (0: `steps`); a few-step
    # student lays the scene out there, and the frames after it continue from clean context
    first_steps: int = 0

    def mask_spec(self) -> MaskSpec:
        return MaskSpec(self.mask, block=self.chunk)


class CausalVideoDiffusion(VideoDiffusion):
    family = "hybrid"
    config_class = HybridConfig

    # --- the objective ------------------------------------------------------------------
    def training_levels(self, B: int, Fr: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F) noise levels and a (B, F) mask of the frames that count in the loss."""
        c = self.config
        levels = sample_training_sigmas((B, Fr), generator=generator, mean=c.train_sigma_mean, std=c.train_sigma_std)
        prefix = rand((B,), generator) < c.prefix_share
        k = randint(Fr, (B,), generator)  # clean frames before the rest
        one_level = sample_training_sigmas(B, generator=generator, mean=c.train_sigma_mean, std=c.train_sigma_std)
        ctx_level = rand((B,), generator) * c.context_noise
        is_ctx = torch.arange(Fr)[None] < k[:, None]
        pref_levels = torch.where(is_ctx, ctx_level[:, None], one_level[:, None].expand(B, Fr))
        levels = torch.where(prefix[:, None], pref_levels, levels)
        in_loss = ~(prefix[:, None] & is_ctx)
        return levels, in_loss

    def loss(self, batch: dict, generator=None) -> torch.Tensor:
        x0 = self.representation(batch)
        B, T = x0.shape[:2]
        if T % self.patch_frames:
            raise ValueError(f"training clips must have a multiple of {self.patch_frames} frames, got {T}")
        drop = rand((B,), generator) < self.config.cond_dropout
        text = self.text.encode(batch["caption"], drop=drop)
        levels, in_loss = self.training_levels(B, T // self.patch_frames, generator)
        levels, in_loss = levels.to(x0.device), in_loss.to(x0.device)
        noise = randn(x0.shape, generator).to(x0.device)
        s = self.per_pixel(levels, T)
        x_s = (1 - s) * x0 + s * noise
        out = self.backbone(x_s, levels, text, mask=self.config.mask_spec()).float()
        target_v = noise - x0
        if self.config.prediction == "velocity":
            err = (out - target_v) ** 2
        else:
            err = ((x_s - out) / s.clamp(min=self.config.min_sigma_for_loss) - target_v) ** 2
        weight = self.per_pixel(in_loss.float(), T)  # (B, T, 1, 1, 1)
        return (err * weight).sum() / (weight.sum() * err[0, 0].numel()).clamp(min=1)

    # --- sampling -------------------------------------------------------------------------
    def request_defaults(self) -> dict:
        c = self.config
        return {**super().request_defaults(), "schedule": c.schedule, "context_level": c.context_level, "use_cache": True,
                "recache": True, "first_steps": c.first_steps}

    def check(self, request: GenerationRequest) -> None:
        super().check(request)
        r = resolve(request, self.family, self.request_defaults())
        self.switch_frames(r, self.noise_matrix(r, 0 if r.context_BTCHW is None else r.context_BTCHW.shape[1]).levels)

    def switch_frames(self, r: GenerationRequest, K: torch.Tensor) -> list[int]:
        """The checked request's prompt switches as token-frames. The stream takes up a switch's
        prompt at the first step whose earlier frames are all finished; a schedule with no such
        step before the switched frames are done (`full`: every frame at once) is refused."""
        frames = token_frame_switches(r.prompt_at or (), self.patch_frames)
        schedule = "given" if r.matrix is not None else r.schedule
        for (frame, _), f in zip(r.prompt_at or (), frames):
            if not ((K[:-1, :f] == 0).all(1) & (K[:-1, f:] > 0).any(1)).any():
                raise ValueError(f"prompt_at frame {frame}: the {schedule} schedule denoises the frames around a switch together, "
                                 "so the prompt cannot change there; use the autoregressive or pyramid schedule")
        return frames

    def noise_matrix(self, request: GenerationRequest, context_frames: int = 0) -> NoiseMatrix:
        """The request's noise-level matrix over its token-frames, the first `context_frames` video
        frames' whole token-frames held clean."""
        r = resolve(request, self.family, self.request_defaults())
        frames_in_chunks(r.num_frames, self.patch_frames)
        frames, context = r.num_frames // self.patch_frames, context_frames // self.patch_frames
        if r.matrix is not None:
            if r.matrix.frames != frames:
                raise ValueError(f"the noise-level matrix has {r.matrix.frames} frames; the clip has {frames} token-frames")
            return r.matrix
        if request.first_steps and r.schedule == "full":
            raise ValueError("first_steps gives the first frame steps of its own, and the full schedule denoises every frame together; "
                             "use the autoregressive or pyramid schedule, or leave first_steps out")
        return build_matrix(r.schedule, frames, r.steps, shift=r.shift, offset=self.config.pyramid_offset or None, context=context,
                            first_steps=r.first_steps, sigmas=r.sigmas)

    def window_frames(self) -> int:
        """Recent token-frames kept in the cache: by default sinks + window + the frame being made
        fill the training length, so every RoPE distance was seen in training."""
        return self.config.window or max(1, self.config.frames // self.patch_frames - 1 - self.config.sinks)

    def stream(self, request: GenerationRequest) -> Iterator[torch.Tensor]:
        """Yield clean frames in order, (B, k, C, H, W) each, as soon as they are final. The request
        is checked here, at the call, before the first frame is asked for."""
        steps, K = self._steps(request)
        return self._emit(steps, K)

    @torch.no_grad()
    def _emit(self, steps: Iterator, K: torch.Tensor) -> Iterator[torch.Tensor]:
        pf, emitted, decode = self.patch_frames, 0, self.stream_decoder()  # token-frames already yielded
        for i, x in steps:
            done = emitted
            while done < K.shape[1] and K[i + 1, done] == 0:
                done += 1
            if done > emitted:
                yield decode(x[:, emitted * pf : done * pf]).clamp(-1, 1)
                emitted = done

    @torch.no_grad()
    def _steps(self, request: GenerationRequest) -> tuple[Iterator, torch.Tensor]:
        """The checked request's sampling steps (a generator of (step, x)) and its noise-level matrix."""
        r = resolve(request, self.family, self.request_defaults())
        if not 0.0 <= r.context_level < 1.0:
            raise ValueError(f"context_level must be in [0, 1), got {r.context_level}")
        pf, T = self.patch_frames, r.num_frames
        frames_in_chunks(T, pf)
        device = next(self.parameters()).device
        C, side = self.latent_shape
        x = starting_noise(r, (len(r.prompts), T, C, side, side)).to(device)
        hold = None
        if r.context_BTCHW is not None:
            hold = ContextHolder(self.to_latent(r.context_BTCHW.to(device)), first(r.generator))
            if hold.frames >= T:
                raise ValueError(f"the context ({hold.frames} frames) must be shorter than the clip ({T} frames)")
            x = hold.place(x)
        K = self.noise_matrix(r, hold.frames if hold else 0).levels.to(device)
        if hold and (K[:, : hold.frames // pf] != 0).any():
            raise ValueError("the noise-level matrix must keep the given context frames at level 0")
        # Finished frames may be shown as context a little noised (Diffusion Forcing's stabilisation,
        # within the context noise of training), each with noise drawn once, so the cached and
        # uncached paths see the same context; the clip itself keeps the clean frames.
        ctx_noise = initial_noise(x.shape, r.generator).to(device) if r.context_level > 0 else None
        text, _ = guidance_text(self.text, r)
        switches = [(f, guidance_text(self.text, replace(r, prompts=prompts))[0])
                    for f, (_, prompts) in zip(self.switch_frames(r, K), r.prompt_at or ())]
        denoise = StreamDenoiser(self, text, r.guidance, use_cache=r.use_cache, context_level=r.context_level,
                                 context_noise=ctx_noise, step_cache=step_cache_for(r.step_cache), switches=switches,
                                 recache=r.recache)
        steps = get_steps(r.sampler)(denoise, x, K, callback=hold.then(r.callback) if hold else r.callback,
                                     generator=r.generator, causal=True)
        return steps, K

    @torch.no_grad()
    def generate(self, request: GenerationRequest) -> torch.Tensor:
        return torch.cat(list(self.stream(request)), dim=1)

    @torch.no_grad()
    def generate_latents(self, request: GenerationRequest) -> torch.Tensor:
        """-> the representation before decoding (B, T, C, h, w), after the last step."""
        steps, _ = self._steps(request)
        x = None
        for _, x in steps:
            pass
        return x


class StreamDenoiser:
    """The hybrid's denoiser for the samplers: x0 of the frames a step hands over. Clean frames
    before the first noisy one are context: with the KV cache they are encoded once (then kept in a
    rolling window with sink frames) and later steps compute only the noisy frames; without it,
    every step recomputes them. One per generation: it holds the cache.

    `switches`: (token-frame, text) prompt changes; the text in force is that of the last switch at
    or before the first frame still being denoised. With `recache`, the cached frames are encoded
    again under the new text at a switch (LongLive); without it they keep the old prompt's keys.
    Without a cache, every step reads the context under the text in force anyway.

    Newly finished frames enter the cache in the pass that begins the frames after them (`_fused`),
    one model call a chunk fewer; `fuse_writes = False` gives every write a pass of its own, as
    CausVid and Self-Forcing sample (for comparisons: within the window both give the same clip)."""

    fuse_writes = True

    def __init__(self, model: CausalVideoDiffusion, text: TextEmbedding, scale: float, *, use_cache: bool,
                 context_level: float, context_noise: torch.Tensor | None, step_cache: StepCache | None = None,
                 switches: Sequence[tuple[int, TextEmbedding]] = (), recache: bool = True):
        self.model, self.text, self.scale = model, text, scale
        # step caching (framecast.nn.step_cache) skips denoising passes only, never a KV-cache
        # write, and keeps its residuals for one set of frames being denoised (its scope)
        self.step_cache = step_cache
        self.switches, self.recache = list(switches), recache
        self.level, self.noise = context_level, context_noise
        self.spec = model.config.mask_spec()
        self.cache = KVCache(len(model.backbone.blocks)) if use_cache else None
        self.cached_upto = 0  # token-frames [0, cached_upto) are in the cache
        self.keep = (model.config.sinks, model.window_frames())

    def _frames(self, a: int, b: int) -> slice:
        """Token-frames [a, b) as video frames."""
        pf = self.model.patch_frames
        return slice(a * pf, b * pf)

    def _x0(self, x: torch.Tensor, levels_BF: torch.Tensor, **kw) -> torch.Tensor:
        return guided(lambda x_, lv_: self.model.predict_x0(x_, lv_, self.text, mask=self.spec, **kw), self.scale)(x, levels_BF)

    def _as_context(self, x: torch.Tensor, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Finished token-frames [a, b): their input and levels as context."""
        B = x.shape[0]
        if self.noise is None:
            return x[:, self._frames(a, b)], torch.zeros(B, b - a, device=x.device)
        noisy = (1 - self.level) * x[:, self._frames(a, b)] + self.level * self.noise[:, self._frames(a, b)]
        return noisy, torch.full((B, b - a), self.level, device=x.device)

    def _after_context(self, x: torch.Tensor, sigma: torch.Tensor, a: int, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Finished token-frames [a, lo) as context followed by the noisy ones [lo, hi): one pass's
        input and levels."""
        inp, lv = self._as_context(x, a, lo)
        return torch.cat([inp, x[:, self._frames(lo, hi)]], 1), torch.cat([lv, sigma[lo:hi].expand(x.shape[0], -1)], 1)

    def _roll(self, recent: int) -> None:
        """Keep the sink frames and the `recent` latest cached ones, when the cache holds more
        (rolling window + sinks: bounded memory)."""
        ids, sinks = self.cache.frame_ids(), self.keep[0]
        if ids.numel() > sinks + recent:
            self.cache.keep_frames(torch.cat([ids[:sinks], ids[ids.numel() - recent:]]))

    def _encode_context(self, x: torch.Tensor, lo: int) -> None:
        """Clean token-frames not yet cached go into the cache, once; then the window rolls."""
        if lo > self.cached_upto:
            self.cache.writing = True
            inp, lv = self._as_context(x, self.cached_upto, lo)
            self._x0(inp, lv, cache=self.cache, frame_offset=self.cached_upto)
            self.cached_upto = lo
            self._roll(self.keep[1])
        self.cache.writing = False

    def _fusable(self, lo: int) -> bool:
        """Whether the newly finished frames [cached_upto, lo) can enter the cache in the pass that
        denoises the frames after them: they fit in the window, no switch asks for them to be
        encoded under the prompt they were made with while the frames after them read another, and
        no step cache wants the frames' first denoising pass as its reference (it never skips a
        pass that writes the KV cache)."""
        new = lo - self.cached_upto
        pending = bool(self.switches) and self.switches[0][0] <= lo
        return (self.fuse_writes and 0 < new <= self.keep[1] and not (pending and not self.recache)
                and self.step_cache is None)

    def _fused(self, x: torch.Tensor, sigma: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """One pass over the finished frames [cached_upto, lo) and the noisy ones [lo, hi): the
        finished frames' keys and values are kept in the cache (`write_limit`), the noisy ones' x0
        is returned. Under the frame-causal mask the finished frames see exactly what a pass of
        their own shows them, and the noisy frames what the next pass would: one model call a
        chunk fewer. The window makes room first, so the noisy frames see sinks + window frames as
        before; the finished frames then see one old frame fewer than a pass of their own would."""
        start = self.cached_upto
        self._roll(self.keep[1] - (lo - start))
        finished = (lo - start) * self.model.patch_frames  # video frames entering the cache
        grid = self.model.backbone.grid(finished, *x.shape[-2:])
        self.cache.writing, self.cache.write_limit = True, grid[0] * grid[1] * grid[2]
        try:
            x0 = self._x0(*self._after_context(x, sigma, start, lo, hi), cache=self.cache, frame_offset=start)
        finally:
            self.cache.writing, self.cache.write_limit = False, None
        self.cached_upto = lo
        return torch.cat([x[:, self._frames(0, lo)].float(), x0[:, finished:]], 1)

    def _switch(self, x: torch.Tensor, lo: int) -> None:
        """Take up the prompt of every switch the stream has reached (token-frame <= lo)."""
        switched = False
        while self.switches and self.switches[0][0] <= lo:
            _, self.text = self.switches.pop(0)
            switched = True
        if switched and self.recache and self.cache is not None and len(self.cache):
            self._recache(x)

    def _recache(self, x: torch.Tensor) -> None:
        """LongLive's KV re-cache (Yang et al. 2025): the frames in the cache (sinks, then the recent
        window) encoded again, each run of consecutive frames in one pass, under the text now in
        force, at the same positions, so the next frames read their context through the new prompt."""
        ids = self.cache.frame_ids().tolist()
        self.cache = KVCache(len(self.model.backbone.blocks))
        starts = [i for i, f in enumerate(ids) if i == 0 or f != ids[i - 1] + 1]
        for a, b in zip(starts, starts[1:] + [len(ids)]):
            self.cache.writing = True
            inp, lv = self._as_context(x, ids[a], ids[b - 1] + 1)
            self._x0(inp, lv, cache=self.cache, frame_offset=ids[a])
        self.cache.writing = False

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """x: frames [0, hi) of the clip; sigma: their (hi,) token-frame levels."""
        B, hi = x.shape[0], sigma.shape[0]
        noisy = (sigma > 0).nonzero()
        lo = int(noisy[0]) if noisy.numel() else hi  # the first token-frame still being denoised
        if self.step_cache is not None:
            self.step_cache.scope = (lo, hi)
        if self.cache is None:
            self._switch(x, lo)
            return self._x0(*self._after_context(x, sigma, 0, lo, hi), step_cache=self.step_cache)
        if self._fusable(lo):
            self._switch(x, lo)  # re-cached under the new prompt, as the new frames will be
            return self._fused(x, sigma, lo, hi)
        self._encode_context(x, lo)  # finished frames enter the cache under the prompt they were made with
        self._switch(x, lo)
        start = self.cached_upto
        x0 = self._x0(x[:, self._frames(start, hi)], sigma[start:hi].expand(B, -1), cache=self.cache, frame_offset=start,
                      step_cache=self.step_cache)
        return torch.cat([x[:, self._frames(0, start)].float(), x0], 1)  # cached frames are clean: x0 = x


__all__ = ["CausalVideoDiffusion", "HybridConfig", "StreamDenoiser"]
