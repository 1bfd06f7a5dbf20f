"""The hybrid family: causal diffusion with a noise level per frame (diffusion forcing), sampled
by any noise-level matrix, streaming with a KV cache.

Training (Diffusion Forcing, Chen et al. 2024): every token-frame gets its own noise level, under
a frame-causal (or block-causal) mask, with the flow-matching objective of the diffusion family.
Half the clips instead take a clean prefix (optionally with a little noise, so the model learns
to tolerate its own errors) and one level for the rest, which is exactly what autoregressive
sampling asks of the model. With `teacher_forcing`, a clean copy of the clip (with the same
optional context noise) rides along in the same pass and every noisy token-frame attends to the
copy's earlier token-frames: every token-frame is trained as autoregressive sampling uses it.

Sampling runs a NoiseMatrix row by row. Frames that are clean and precede every frame still
being denoised are encoded once into the KV cache; each later step attends to it without
recomputing it (CausVid, Yin et al. 2025). A rolling window with a few kept "sink" frames bounds
memory and time per frame for long clips (FAR's long/short context; StreamingLLM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from framecast.generators.diffusion import DiffusionConfig, GenerationRequest, VideoDiffusion, initial_noise
from framecast.nn.attention import KVCache, MaskSpec
from framecast.rng import first, rand, randint, randn
from framecast.sampling import ETA, ancestral_step, cfg_combine, sample_training_sigmas
from framecast.sampling.noise_matrix import NoiseMatrix, build_matrix
from framecast.text.encoder import TextEmbedding, check_prompts, encode_for_guidance


@dataclass(kw_only=True)
class HybridConfig(DiffusionConfig):
    mask: str = "frame-causal"  # over token-frames; block-causal groups `chunk` token-frames
    chunk: int = 1  # token-frames per block for block-causal attention
    schedule: str = "autoregressive"  # default noise-level matrix
    pyramid_offset: int = 0  # rows between columns of the pyramid schedule (0 = steps // 2)
    prefix_share: float = 0.5  # share of training clips with a clean prefix and one level after it
    context_noise: float = 0.0  # context frames get a level in [0, context_noise] in training (0 = clean)
    teacher_forcing: bool = False  # train every token-frame from (almost) clean context: [context ; noisy] in one pass
    context_level: float = 0.0  # sampling: finished frames are shown to the model as context at this noise level (0 = clean)
    window: int = 0  # token-frames of recent context kept when streaming (0 = fill the training length)
    sinks: int = 1  # first token-frames always kept in the cache

    def __post_init__(self):
        super().__post_init__()
        if self.self_correction:
            raise ValueError("self_correction is built for full-sequence diffusion only (a hybrid model's loss does not "
                             "read it); leave it at 0")

    def mask_spec(self) -> MaskSpec:
        return MaskSpec(self.mask, block=self.chunk)


@dataclass(kw_only=True)
class HybridRequest(GenerationRequest):
    schedule: str | None = None
    matrix: NoiseMatrix | None = None  # overrides schedule
    use_cache: bool = True
    context_level: float | None = None  # None: the model's config.context_level


class CausalVideoDiffusion(VideoDiffusion):
    family = "hybrid"
    config_class = HybridConfig

    @property
    def patch_frames(self) -> int:
        return self.backbone.config.patch_frames

    # --- the objective ------------------------------------------------------------------
    def training_levels(self, B: int, Fr: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F) noise levels and a (B, F) mask of the frames that count in the loss. With teacher
        forcing every token-frame has its own level and counts (its context is the clean copy)."""
        c = self.config
        levels = sample_training_sigmas((B, Fr), generator=generator, mean=c.train_sigma_mean, std=c.train_sigma_std)
        if c.teacher_forcing:
            return levels, torch.ones(B, Fr, dtype=torch.bool)
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
        Fr = T // self.patch_frames
        drop = rand((B,), generator) < self.config.cond_dropout
        text = self.text.encode(batch["caption"], drop=drop)
        c = self.config
        levels, in_loss = self.training_levels(B, Fr, generator)
        levels, in_loss = levels.to(x0.device), in_loss.to(x0.device)
        noise = randn(x0.shape, generator).to(x0.device)
        s = self.per_pixel(levels, T)
        x_s = (1 - s) * x0 + s * noise
        if c.teacher_forcing:
            ctx_level = (rand((B,), generator) * c.context_noise).to(x0.device)[:, None].expand(B, Fr)
            sc = self.per_pixel(ctx_level, T)
            ctx = (1 - sc) * x0 + sc * randn(x0.shape, generator).to(x0.device)
            block = c.chunk if c.mask == "block-causal" else 1
            out = self.backbone.forward_teacher_forced(ctx, x_s, ctx_level, levels, text, block=block).float()
        else:
            out = self.backbone(x_s, levels, text, mask=c.mask_spec()).float()
        target_v = noise - x0
        if self.config.prediction == "velocity":
            err = (out - target_v) ** 2
        else:
            err = ((x_s - out) / s.clamp(min=self.config.min_sigma_for_loss) - target_v) ** 2
        weight = self.per_pixel(in_loss.float(), T)  # (B, T, 1, 1, 1)
        return (err * weight).sum() / (weight.sum() * err[0, 0].numel()).clamp(min=1)

    # --- sampling -------------------------------------------------------------------------
    def _matrix(self, request: HybridRequest, frames: int, context: int) -> NoiseMatrix:
        c = self.config
        if request.matrix is not None:
            if request.matrix.frames != frames:
                raise ValueError(f"the noise-level matrix has {request.matrix.frames} frames; the clip has {frames} token-frames")
            return request.matrix
        steps = request.steps if request.steps is not None else c.steps
        shift = request.shift if request.shift is not None else c.shift
        name = request.schedule or c.schedule
        return build_matrix(name, frames, steps, shift=shift, offset=c.pyramid_offset or None, context=context)

    def _model(self, x, levels, text: TextEmbedding, scale: float, guided: bool, **kw) -> torch.Tensor:
        """x0 for x (B, ...) with classifier-free guidance; the batch is doubled when guided."""
        if not guided:
            return self.predict_x0(x, levels, text, **kw).float()
        out = self.predict_x0(torch.cat([x, x]), torch.cat([levels, levels]), text, **kw).float()
        cond, unc = out.chunk(2)
        return cfg_combine(cond, unc, scale)

    def _step_noise(self, x: torch.Tensor, moving: torch.Tensor, generator) -> torch.Tensor:
        """Fresh noise for the token-frames that move this step, zeros elsewhere. Drawn only for those
        frames, so a step costs the same at frame 16 as at frame 256, and cached and uncached
        sampling (which see different spans) consume the same random numbers."""
        B, pf = x.shape[0], self.patch_frames
        z = torch.zeros_like(x).unflatten(1, (-1, pf))
        idx = moving.nonzero().squeeze(1)
        z[:, idx] = randn((B, idx.numel(), pf, *x.shape[2:]), generator).to(x)
        return z.flatten(1, 2)

    def window_frames(self) -> int:
        """Recent token-frames kept in the cache: by default sinks + window + the frame being made
        fill the training length, so every RoPE distance was seen in training."""
        return self.config.window or max(1, self.config.frames // self.patch_frames - 1 - self.config.sinks)

    @torch.no_grad()
    def stream(self, request: GenerationRequest) -> Iterator[torch.Tensor]:
        """Yield clean frames in order, (B, k, C, H, W) each, as soon as they are final."""
        c = self.config
        request = request if isinstance(request, HybridRequest) else HybridRequest(**vars(request))
        prompts = check_prompts(request.prompts)
        B = len(prompts)
        pf = self.patch_frames
        T = request.num_frames if request.num_frames is not None else c.frames
        if T <= 0:
            raise ValueError(f"the number of frames must be > 0, got {T}")
        if T % pf:
            raise ValueError(f"this model makes clips in multiples of {pf} frames; ask for {T + pf - T % pf} instead of {T}")
        Fr = T // pf
        device = next(self.parameters()).device
        ctx = None if request.context_BTCHW is None else self.to_latent(request.context_BTCHW.to(device))
        n_ctx_frames = 0 if ctx is None else ctx.shape[1]
        if n_ctx_frames >= T:
            raise ValueError(f"the context ({n_ctx_frames} frames) must be shorter than the clip ({T} frames)")
        ctx_tf = n_ctx_frames // pf  # whole token-frames of context: held clean by the matrix
        K = self._matrix(request, Fr, ctx_tf).levels.to(device)
        if ctx_tf and (K[:, :ctx_tf] != 0).any():
            raise ValueError("the noise-level matrix must keep the given context frames at level 0")
        scale = request.guidance if request.guidance is not None else c.guidance
        guided = scale != 1.0
        text, uncond = encode_for_guidance(self.text, prompts, request.negative_prompts, guided)
        if guided:
            text = TextEmbedding.cat([text, uncond])
        gen = first(request.generator)
        Cl, side = self.latent_shape
        x = initial_noise((B, T, Cl, side, side), request.generator).to(device)
        # Finished frames can be shown as context a little noised (Diffusion Forcing's stabilisation,
        # within the context noise of training), each with noise drawn once, so the cached and
        # uncached paths see the same context; the clip itself keeps the clean frames.
        c_lvl = request.context_level if request.context_level is not None else c.context_level
        if not 0.0 <= c_lvl < 1.0:
            raise ValueError(f"context_level must be in [0, 1), got {c_lvl}")
        ctx_noise = initial_noise(x.shape, request.generator).to(device) if c_lvl > 0 else None

        def as_context(a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
            """Token-frames [a, b), all finished: their input and levels as context."""
            if ctx_noise is None:
                return x[:, tf(a, b)], torch.zeros(B, b - a, device=device)
            noisy = (1 - c_lvl) * x[:, tf(a, b)] + c_lvl * ctx_noise[:, tf(a, b)]
            return noisy, torch.full((B, b - a), c_lvl, device=device)
        known = torch.zeros(T, dtype=torch.bool)
        if ctx is not None:
            x[:, :n_ctx_frames] = ctx
            known[:n_ctx_frames] = True
        sampler = request.sampler or c.sampler
        if sampler not in ETA:
            raise ValueError(f"a hybrid model steps its noise-level matrix with {', '.join(ETA)}, not '{sampler}'")
        eta = ETA[sampler]
        spec = c.mask_spec()
        cache = KVCache(len(self.backbone.blocks)) if request.use_cache else None
        cached_upto = 0  # token-frames [0, cached_upto) are in the cache
        window, sinks = self.window_frames(), c.sinks
        emitted = 0  # token-frames already yielded
        tf = lambda a, b: slice(a * pf, b * pf)  # noqa: E731 - token-frames -> video frames

        for r in range(K.shape[0] - 1):
            cur, nxt = K[r], K[r + 1]
            active = (cur != nxt).nonzero().squeeze(1)
            if active.numel():
                lo = int((cur > 0).nonzero()[0]) if (cur > 0).any() else Fr
                hi = int(active.max()) + 1
                if cache is not None:
                    if lo > cached_upto:  # clean frames not yet cached: encode them once
                        cache.writing = True
                        inp, lv = as_context(cached_upto, lo)
                        self._model(inp, lv, text, scale, guided, mask=spec, cache=cache, frame_offset=cached_upto)
                        cached_upto = lo
                        ids = cache.frame_ids()
                        if ids.numel() > sinks + window:  # rolling window + sinks (bounded memory)
                            cache.keep_frames(torch.cat([ids[:sinks], ids[-window:]]))
                    cache.writing = False
                    start = cached_upto
                    x0 = self._model(x[:, tf(start, hi)], cur[start:hi].expand(B, -1), text, scale, guided, mask=spec, cache=cache, frame_offset=start)
                else:
                    start = 0
                    inp, lv = as_context(0, lo)
                    x0 = self._model(torch.cat([inp, x[:, tf(lo, hi)]], 1), torch.cat([lv, cur[lo:hi].expand(B, -1)], 1),
                                     text, scale, guided, mask=spec)
                s, s_next = cur[start:hi], nxt[start:hi]
                pp = lambda lv: self.per_pixel(lv[None], (hi - start) * pf)  # noqa: E731 - levels -> per pixel
                if eta > 0:  # to the next level from x0 with fresh noise, for the frames that move
                    z = self._step_noise(x[:, tf(start, hi)], s_next != s, request.generator)
                    moved = ancestral_step(x[:, tf(start, hi)], x0, pp(s.clamp(min=1e-8)), pp(s_next), z, eta)
                    x[:, tf(start, hi)] = torch.where(pp((s_next != s).float()) > 0, moved, x[:, tf(start, hi)])
                else:  # Euler step per token-frame from level cur to nxt (frames not moving: ds = 0)
                    d = (x[:, tf(start, hi)] - x0) / pp(s.clamp(min=1e-8))
                    x[:, tf(start, hi)] = x[:, tf(start, hi)] + pp(s_next - s) * d
                if known.any():  # partly known token-frames: hold the given frames at the current level
                    lvl = self.per_pixel(nxt[None], T)[0]
                    noise = torch.randn(ctx.shape, generator=gen).to(device)
                    kf = known.nonzero().squeeze(1)
                    x[:, kf] = (1 - lvl[kf]) * ctx[:, kf] + lvl[kf] * noise[:, kf]
                if request.callback is not None:
                    out = request.callback(r, nxt, x, x0)
                    if out is not None:
                        x = out
            done = emitted
            while done < Fr and nxt[done] == 0:
                done += 1
            if done > emitted:
                yield self.decode_frames(x, emitted * pf, done * pf).clamp(-1, 1)
                emitted = done

    @torch.no_grad()
    def generate(self, request: GenerationRequest) -> torch.Tensor:
        return torch.cat(list(self.stream(request)), dim=1)

    def count_model_calls(self, request: HybridRequest) -> int:
        """Forward passes a request costs (context encodings into the cache included)."""
        calls = []
        handle = self.backbone.register_forward_pre_hook(lambda *_: calls.append(1))
        try:
            self.generate(request)
        finally:
            handle.remove()
        return len(calls)


__all__ = ["CausalVideoDiffusion", "HybridConfig", "HybridRequest"]
