"""Full-sequence video diffusion: flow matching (rectified flow) over all frames at one noise level.

Objective (Lipman et al. 2023; Liu et al. 2023): x_s = (1 - s) x0 + s eps, target velocity
v = eps - x0, with logit-normal s (SD3). The network may predict v directly or the clean
clip x0; with x0 prediction the loss is still taken on the implied velocity
v_hat = (x_s - x0_hat) / s (Li & He 2025, "Back to Basics"), which is what let a
pixel-space model with large patches reach clean backgrounds (docs/experiments.md).

The clip lives in pixels or, with a `codec` (a frozen causal VAE, trained first), in its latents
scaled to unit variance (Rombach et al. 2022): the transformer then spends its tokens on layout
and motion while the codec's decoder draws the hard edges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from framecast.codecs import build_codec
from framecast.generators.base import (
    ContextHolder,
    GenerationRequest,
    ModelSpec,
    frames_in_chunks,
    guidance_text,
    resolve,
    starting_noise,
)
from framecast.nn.step_cache import StepCache, step_cache_for
from framecast.nn.transformer import SpaceTimeTransformer, TransformerConfig
from framecast.rng import first, rand, randn
from framecast.sampling.guidance import guided
from framecast.sampling.noise_matrix import NoiseMatrix, build_matrix
from framecast.sampling.samplers import get_sampler, get_steps
from framecast.sampling.schedules import sample_training_sigmas
from framecast.text.encoder import TextEmbedding, TextEncoder
from framecast.text.kinds import build_text_encoder

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
    shift: float = 1.0  # timestep shift at sampling time
    steps: int = 25  # default sampling steps
    guidance: float = 4.0  # default classifier-free guidance scale
    sampler: str = "euler"  # default sampler
    codec: dict | None = None  # a VAE's config (its weights live beside the model's); None = pixels
    latent_scale: float = 0.0  # latents are multiplied by it (0: measured on the first training batch)

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction '{self.prediction}'; choose one of {', '.join(PREDICTIONS)}")


class VideoDiffusion(nn.Module):
    family = "diffusion"
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig, backbone: TransformerConfig, text_encoder: TextEncoder):
        super().__init__()
        self.config = config
        self.codec = build_codec(config.codec)
        if backbone.channels != self.codec.latent_channels:
            raise ValueError(f"backbone has {backbone.channels} channels but the codec's latents have {self.codec.latent_channels}")
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
            text_kind=self.text.kind,
            text=asdict(self.text.config),
        )

    def train(self, mode: bool = True):
        super().train(mode)
        self.codec.eval()  # frozen
        return self

    @property
    def patch_frames(self) -> int:
        """Video frames in a token-frame: the unit of the noise-level matrix."""
        return self.backbone.config.patch_frames

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
        """Frames [start, stop) of the decoded clip (`Codec.decode_frames`: only what they depend on)."""
        if self.config.codec is None:
            return z_BTChw[:, start:stop]
        return self.codec.decode_frames(z_BTChw.float() / self.config.latent_scale, start, stop).float()

    def stream_decoder(self):
        """`decode(z)` for one clip whose latent frames are handed over in order, chunk after chunk
        (the codec's stream decoder: every frame decoded once where the codec allows it)."""
        if self.config.codec is None:
            return lambda z_BTChw: z_BTChw
        stream = self.codec.stream_decoder()
        return lambda z_BTChw: stream.decode_chunk(z_BTChw.float() / self.config.latent_scale).float()

    # --- the objective ------------------------------------------------------------------
    def predict_x0(self, x_BTCHW: torch.Tensor, sigma: torch.Tensor, text: TextEmbedding, **backbone_kw) -> torch.Tensor:
        """sigma: (B,) one level per clip, or (B, F) one per token-frame."""
        out = self.backbone(x_BTCHW, sigma, text, **backbone_kw)
        if self.config.prediction == "x0":
            return out
        return x_BTCHW - self.per_pixel(sigma, x_BTCHW.shape[1]) * out  # x0 = x_s - s v

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
        x_s = (1 - s) * x0 + s * noise
        target_v = noise - x0
        out = self.backbone(x_s, sigma, text)
        if self.config.prediction == "velocity":
            return F.mse_loss(out.float(), target_v)
        v_hat = (x_s - out.float()) / s.clamp(min=self.config.min_sigma_for_loss)
        return F.mse_loss(v_hat, target_v)

    # --- sampling -------------------------------------------------------------------------
    def request_defaults(self) -> dict:
        c = self.config
        return dict(num_frames=c.frames, steps=c.steps, guidance=c.guidance, sampler=c.sampler, shift=c.shift, schedule="full")

    def guided_denoiser(self, text: TextEmbedding, scale: float, step_cache: StepCache | None = None):
        """x, levels -> guided x0 for the sampler (the text is [cond; uncond] when guided). The model
        was trained with one level per clip, so a row of the `full` matrix (all levels equal) is
        read as that one level. A `step_cache` sees the guided batch whole (framecast.nn.step_cache)."""

        def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            if sigma.dim() and (sigma != sigma[0]).any():
                raise ValueError("a full-sequence diffusion model denoises all frames at one level; sample it with the full schedule")
            level = (sigma[0] if sigma.dim() else sigma).expand(x.shape[0]).to(x.device)
            return guided(lambda x_, level_: self.predict_x0(x_, level_, text, step_cache=step_cache), scale)(x, level)

        return denoise

    def check(self, request: GenerationRequest) -> None:
        """Refuse, with the sentence `generate` would give, a request this model cannot run, without
        running it (a server checks a request before it queues it)."""
        r = resolve(request, self.family, self.request_defaults())
        get_steps(r.sampler)
        self.noise_matrix(r, 0 if r.context_BTCHW is None else r.context_BTCHW.shape[1])

    def noise_matrix(self, request: GenerationRequest, context_frames: int = 0) -> NoiseMatrix:
        """The `full` matrix: every token-frame at one level, all stepped together (given first
        frames are held by replacement, not by the matrix)."""
        r = resolve(request, self.family, self.request_defaults())
        if r.schedule != "full":
            raise ValueError(f"a full-sequence diffusion model samples all frames together; schedule '{r.schedule}' needs a hybrid model")
        frames_in_chunks(r.num_frames, self.patch_frames)
        return build_matrix("full", r.num_frames // self.patch_frames, r.steps, shift=r.shift, sigmas=r.sigmas)

    @torch.no_grad()
    def generate(self, request: GenerationRequest) -> torch.Tensor:
        """-> (B, T, 3, H, W) in [-1, 1]: `generate_latents` decoded."""
        return self.from_latent(self.generate_latents(request)).clamp(-1, 1)

    @torch.no_grad()
    def generate_latents(self, request: GenerationRequest) -> torch.Tensor:
        """-> the representation before decoding (B, T, C, h, w): the `full` noise-level matrix
        through the sampler, from the request's `latents` or fresh noise. The step callback sees
        the representation (latents with a codec), as diffusers' callbacks do."""
        r = resolve(request, self.family, self.request_defaults())
        K = self.noise_matrix(r).levels
        text, _ = guidance_text(self.text, r)
        device = next(self.parameters()).device
        C, side = self.latent_shape
        x = starting_noise(r, (len(r.prompts), r.num_frames, C, side, side)).to(device)
        K = K.to(device)
        callback = r.callback
        if r.context_BTCHW is not None:
            hold = ContextHolder(self.to_latent(r.context_BTCHW.to(device)), first(r.generator))
            x = hold(x, K[0])
            callback = hold.then(callback)
        sample = get_sampler(r.sampler)
        denoise = self.guided_denoiser(text, r.guidance, step_cache_for(r.step_cache))
        return sample(denoise, x, K, callback=callback, generator=r.generator)


def initial_noise(shape: tuple[int, ...], generator) -> torch.Tensor:
    """Gaussian noise; with a list of generators each clip gets its own, so a clip depends on its
    seed only, not on the batch it was drawn in (as in diffusers)."""
    return randn(shape, generator)
