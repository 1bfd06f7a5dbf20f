"""Full-sequence video diffusion: flow matching (rectified flow) over all frames at one noise level.

Objective (Lipman et al. 2023; Liu et al. 2023): x_s = (1 - s) x0 + s eps, target velocity
v = eps - x0, with logit-normal s (SD3). The network may predict v directly or the clean
clip x0; with x0 prediction the loss is still taken on the implied velocity
v_hat = (x_s - x0_hat) / s (Li & He 2025, "Back to Basics"), which is what let a
pixel-space model with large patches reach clean backgrounds here (DESIGN.md, "Lessons").

The clip lives in pixels or, with a `codec` (a frozen causal VAE, trained first), in its latents
scaled to unit variance (Rombach et al. 2022): the transformer then spends its tokens on layout
and motion while the codec's decoder draws the hard edges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from framecast.codecs import build_codec
from framecast.nn.transformer import SpaceTimeTransformer, TransformerConfig
from framecast.rng import first, rand, randn
from framecast.sampling import cfg_combine, flow_sigmas, get_sampler, sample_training_sigmas
from framecast.text.encoder import TextEmbedding, TextEncoder, build_text_encoder, check_prompts, encode_for_guidance

PREDICTIONS = ("x0", "velocity")


@dataclass(kw_only=True)
class DiffusionConfig:
    prediction: str = "x0"
    frames: int = 16  # training clip length
    size: int = 32  # training canvas (H = W)
    channels: int = 3
    cond_dropout: float = 0.1  # share of training clips with the null prompt (for guidance)
    train_sigma_mean: float = 0.0  # logit-normal location
    train_sigma_std: float = 1.0
    min_sigma_for_loss: float = 0.05  # clamp of s in v_hat = (x_s - x0_hat) / s
    self_correction: float = 0.0  # share of training clips noised from the model's own prediction (see `loss`)
    self_correction_gap: float = 0.2  # ... made at a level up to this much above theirs
    # Self-conditioning (Chen et al. 2022, "Analog Bits"; RIN): the network also reads its own last
    # estimate of the clean clip (zeros when there is none), so a sampler's steps build on their
    # predecessors' decisions instead of re-deriving them from renewed noise. The backbone then
    # takes 2x the representation's channels in and gives 1x out (out_channels).
    self_condition: bool = False
    shift: float = 1.0  # timestep shift at sampling time
    steps: int = 25  # default sampling steps
    guidance: float = 4.0  # default classifier-free guidance scale
    sampler: str = "euler"  # default sampler
    codec: dict | None = None  # a VAE's config (its weights live beside the model's); None = pixels
    latent_scale: float = 0.0  # latents are multiplied by it (0: measured on the first training batch)

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction '{self.prediction}'; choose one of {', '.join(PREDICTIONS)}")


@dataclass(kw_only=True)
class GenerationRequest:
    prompts: list[str]
    negative_prompts: list[str] | None = None
    num_frames: int | None = None
    steps: int | None = None
    guidance: float | None = None
    sampler: str | None = None
    shift: float | None = None
    generator: torch.Generator | list[torch.Generator] | None = None  # a list: one per clip
    # (step, sigma, x, x0) -> replacement x or None; called after every sampling step
    callback: Callable | None = None
    context_BTCHW: torch.Tensor | None = None  # known first frames (image to video, continuation)
    height: int | None = None
    width: int | None = None


@dataclass(kw_only=True)
class ModelSpec:
    """Everything needed to rebuild a generator: what config.json holds."""

    family: str
    generator: dict = field(default_factory=dict)
    backbone: dict = field(default_factory=dict)
    text_kind: str = "word"
    text: dict = field(default_factory=dict)


class VideoDiffusion(nn.Module):
    family = "diffusion"
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig, backbone: TransformerConfig, text_encoder: TextEncoder):
        super().__init__()
        self.config = config
        self.codec = build_codec(config.codec)
        C = self.codec.latent_channels
        if config.self_condition and (self.family != "diffusion" or backbone.channels != 2 * C or (backbone.out_channels or 2 * C) != C):
            raise ValueError(f"self-conditioning is for full-sequence diffusion and needs a backbone with channels={2 * C} "
                             f"(the clip and its estimate) and out_channels={C}")
        if not config.self_condition and backbone.channels != C:
            raise ValueError(f"backbone has {backbone.channels} channels but the codec's latents have {C}")
        self.backbone = SpaceTimeTransformer(backbone)
        self.text = text_encoder

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> VideoDiffusion:
        return cls(cls.config_class(**spec.generator), TransformerConfig(**spec.backbone), build_text_encoder(spec.text_kind, spec.text))

    def spec(self) -> ModelSpec:
        return ModelSpec(
            family=self.family,
            generator=asdict(self.config),
            backbone=self.backbone.config.to_dict(),
            text_kind="word",
            text=asdict(self.text.config),
        )

    def train(self, mode: bool = True):
        super().train(mode)
        self.codec.eval()  # frozen
        return self

    # --- the representation -----------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, int]:
        """(channels, side) of the representation of a training-size frame."""
        return self.codec.latent_channels, self.config.size // self.codec.downsample

    @torch.no_grad()
    def calibrate(self, video_BTCHW: torch.Tensor) -> float:
        """Set latent_scale so that latents of these clips have unit standard deviation."""
        if self.config.codec is None:
            self.config.latent_scale = 1.0
        else:
            self.config.latent_scale = float(1.0 / self.codec.encode(video_BTCHW.float()).std().clamp(min=1e-6))
        return self.config.latent_scale

    @torch.no_grad()
    def to_latent(self, video_BTCHW: torch.Tensor) -> torch.Tensor:
        if self.config.codec is None:
            return video_BTCHW
        if not self.config.latent_scale:
            raise ValueError("this model's latent_scale is not set; call calibrate() on training clips first")
        return self.codec.encode(video_BTCHW.float()) * self.config.latent_scale

    def representation(self, batch: dict) -> torch.Tensor:
        """A training batch's clips as the model sees them: pixels in [-1, 1] or scaled latents
        (given, from a latent pool, or encoded here)."""
        return batch["latent"] if "latent" in batch else self.to_latent(batch["video"])

    @torch.no_grad()
    def from_latent(self, z_BTChw: torch.Tensor) -> torch.Tensor:
        if self.config.codec is None:
            return z_BTChw
        return self.codec.decode(z_BTChw.float() / self.config.latent_scale).float()

    @torch.no_grad()
    def decode_frames(self, z_BTChw: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Frames [start, stop) of the decoded clip, decoding only what they depend on: the codec
        is causal, so `receptive_frames` earlier latents make them exact (for streaming)."""
        lo = max(0, start - self.codec.receptive_frames)
        return self.from_latent(z_BTChw[:, lo:stop])[:, start - lo :]

    # --- the objective ------------------------------------------------------------------
    def predict_x0(self, x_BTCHW: torch.Tensor, sigma: torch.Tensor, text: TextEmbedding, estimate: torch.Tensor | None = None,
                   **backbone_kw) -> torch.Tensor:
        """sigma: (B,) one level per clip, or (B, F) one per token-frame. `estimate`: the last
        estimate of x0, read by a self-conditioned model (None: zeros, as for its first step)."""
        out = self.backbone(self._input(x_BTCHW, estimate), sigma, text, **backbone_kw)
        if self.config.prediction == "x0":
            return out
        return x_BTCHW - self.per_pixel(sigma, x_BTCHW.shape[1]) * out  # x0 = x_s - s v

    def _input(self, x_BTCHW: torch.Tensor, estimate: torch.Tensor | None) -> torch.Tensor:
        if not self.config.self_condition:
            return x_BTCHW
        estimate = torch.zeros_like(x_BTCHW) if estimate is None else estimate.to(x_BTCHW)
        return torch.cat([x_BTCHW, estimate], dim=2)

    def adapt_init_state(self, state: dict) -> dict:
        """Weights of the same model without self-conditioning start a self-conditioned one: its
        patch embedding gains zero weights for the estimate's channels, so the new model starts as
        exactly the old one and learns to read its estimate (trainer.init_weights calls this)."""
        key, own = "backbone.patch_embed.weight", self.backbone.patch_embed.weight
        w = state.get(key)
        if not self.config.self_condition or w is None or w.shape[1] * 2 != own.shape[1]:
            return state
        C = self.codec.latent_channels  # patch values are ordered (frame, y, x, channel)
        w = w.view(w.shape[0], -1, C)
        return {**state, key: torch.cat([w, torch.zeros_like(w)], dim=2).reshape(w.shape[0], -1)}

    def per_pixel(self, sigma: torch.Tensor, T: int) -> torch.Tensor:
        """(B,) or (B, F) levels -> (B, T, 1, 1, 1), broadcastable against a clip."""
        if sigma.dim() == 1:
            return sigma.view(-1, 1, 1, 1, 1)
        return sigma.repeat_interleave(T // sigma.shape[1], dim=1).view(sigma.shape[0], T, 1, 1, 1)

    def forward(self, batch: dict, generator=None) -> torch.Tensor:
        """The training loss; `forward` so that DDP and FSDP wrappers see the call."""
        return self.loss(batch, generator)

    def loss(self, batch: dict, generator=None) -> torch.Tensor:
        """`generator`: one, or a list with one per clip (per-clip randomness, framecast/rng.py)."""
        x0 = self.representation(batch)
        B = x0.shape[0]
        device = x0.device
        drop = rand((B,), generator) < self.config.cond_dropout
        text = self.text.encode(batch["caption"], drop=drop)
        sigma = sample_training_sigmas(B, generator=generator, mean=self.config.train_sigma_mean, std=self.config.train_sigma_std).to(device)
        noise = randn(x0.shape, generator).to(device)
        s = sigma.view(-1, 1, 1, 1, 1)
        start = self._own_predictions(x0, sigma, text, generator) if self.config.self_correction > 0 else x0
        x_s = (1 - s) * start + s * noise
        target_v = noise - x0
        estimate = self._own_estimates(x_s, sigma, text, generator) if self.config.self_condition else None
        out = self.backbone(self._input(x_s, estimate), sigma, text)
        if self.config.prediction == "velocity":
            return F.mse_loss(out.float(), target_v)
        v_hat = (x_s - out.float()) / s.clamp(min=self.config.min_sigma_for_loss)
        return F.mse_loss(v_hat, target_v)

    def _own_predictions(self, x0: torch.Tensor, sigma: torch.Tensor, text: TextEmbedding, generator) -> torch.Tensor:
        """Exposure bias: the stochastic samplers feed the model (1 - s) x0_hat + s z, its own
        earlier prediction noised again, never the clean x0 it trains on, so their errors add up
        from step to step (a square's corner fades over the last steps). For a share of the clips
        this returns x0_hat predicted (without gradient) from a level up to `self_correction_gap`
        above sigma, to be noised to sigma in place of x0; the target stays x0, so the model learns
        to correct its own errors (one step of the sampler unrolled, as in scheduled sampling)."""
        c = self.config
        B = x0.shape[0]
        picked = (rand((B,), generator) < c.self_correction).to(x0.device)
        higher = (sigma + c.self_correction_gap * rand((B,), generator).to(sigma)).clamp(max=1.0)
        noise = randn(x0.shape, generator).to(x0.device)
        if not picked.any():
            return x0
        h = higher.view(-1, 1, 1, 1, 1)
        with torch.no_grad():
            x0_hat = self.predict_x0(((1 - h) * x0 + h * noise)[picked], higher[picked], text.select(picked)).float()
        start = x0.clone()
        start[picked] = x0_hat.to(start)
        return start

    def _own_estimates(self, x_s: torch.Tensor, sigma: torch.Tensor, text: TextEmbedding, generator) -> torch.Tensor:
        """Self-conditioning: half the clips get the model's own x0 estimate (made without
        gradient, as `predict_x0` makes it at sampling), the rest zeros, as for a first step."""
        picked = (rand((x_s.shape[0],), generator) < 0.5).to(x_s.device)
        estimate = torch.zeros_like(x_s)
        if picked.any():
            with torch.no_grad():
                estimate[picked] = self.predict_x0(x_s[picked], sigma[picked], text.select(picked)).to(estimate)
        return estimate

    # --- sampling -------------------------------------------------------------------------
    def guided_denoiser(self, text: TextEmbedding, uncond: TextEmbedding | None, scale: float):
        """x, sigma -> guided x0, batching the conditional and unconditional passes together. A
        self-conditioned model reads, in each pass, that pass's own estimate from the step before
        (the denoiser keeps it: make a new one for every clip)."""
        last: dict[str, torch.Tensor | None] = {"estimate": None}

        def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            B = x.shape[0]
            if uncond is None or scale == 1.0:
                last["estimate"] = self.predict_x0(x, sigma.expand(B).to(x.device), text, last["estimate"]).float()
                return last["estimate"]
            both = last["estimate"] = self.predict_x0(torch.cat([x, x]), sigma.expand(2 * B).to(x.device),
                                                      TextEmbedding.cat([text, uncond]), last["estimate"]).float()
            cond, unc = both.chunk(2)
            return cfg_combine(cond, unc, scale)

        return denoise

    @torch.no_grad()
    def generate(self, request: GenerationRequest) -> torch.Tensor:
        """-> (B, T, 3, H, W) in [-1, 1]. The step callback sees the representation (latents with a
        codec), as diffusers' callbacks do."""
        c = self.config
        prompts = check_prompts(request.prompts)
        B = len(prompts)
        T = request.num_frames if request.num_frames is not None else c.frames
        H = request.height or c.size
        W = request.width or c.size
        d = self.codec.downsample
        if H % d or W % d:
            raise ValueError(f"this model's codec downsamples by {d}; ask for a height and width divisible by {d}")
        steps = request.steps if request.steps is not None else c.steps
        scale = request.guidance if request.guidance is not None else c.guidance
        if T <= 0:
            raise ValueError(f"the number of frames must be > 0, got {T}")
        if steps <= 0:
            raise ValueError(f"the number of steps must be > 0, got {steps}")
        sampler = get_sampler(request.sampler or c.sampler)
        pf = self.backbone.config.patch_frames
        if T % pf:
            raise ValueError(f"this model makes clips in multiples of {pf} frames; ask for {T + pf - T % pf} instead of {T}")
        text, uncond = encode_for_guidance(self.text, prompts, request.negative_prompts, scale != 1.0)
        device = next(self.parameters()).device
        x = initial_noise((B, T, self.codec.latent_channels, H // d, W // d), request.generator).to(device)
        sigmas = flow_sigmas(steps, shift=request.shift if request.shift is not None else c.shift).to(device)
        denoise = self.guided_denoiser(text, uncond, scale)
        callback = request.callback
        if request.context_BTCHW is not None:
            hold = _context_holder(self.to_latent(request.context_BTCHW.to(device)), first(request.generator))
            x = hold(x, sigmas[0])
            callback = _then(hold, callback)
        return self.from_latent(sampler(denoise, x, sigmas, callback=callback, generator=request.generator)).clamp(-1, 1)


def initial_noise(shape: tuple[int, ...], generator) -> torch.Tensor:
    """Gaussian noise; with a list of generators each clip gets its own, so a clip depends on its
    seed only, not on the batch it was drawn in (as in diffusers)."""
    return randn(shape, generator)


def _context_holder(context_BKCHW: torch.Tensor, generator: torch.Generator | None):
    """Hold the first K frames to the given ones: after every step they are replaced by the
    context noised to the current level (replacement sampling, Song et al. 2021; RePaint)."""
    K = context_BKCHW.shape[1]

    def hold(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(context_BKCHW.shape, generator=generator).to(x.device)
        x = x.clone()
        x[:, :K] = (1 - sigma) * context_BKCHW + sigma * noise
        return x

    return hold


def _then(hold, inner: Callable | None):
    def callback(i, sigma, x, x0):
        x = hold(x, sigma)
        out = inner(i, sigma, x, x0) if inner is not None else None
        return x if out is None else out

    return callback
