"""The autoregressive family: a token transformer over a video tokenizer's codes.

The shared backbone runs on token embeddings (patch 1 x 1 x 1) and predicts logits over the
tokenizer's codebook. Two objectives, chosen by `order` when training:

    raster  next-token prediction in raster order (t, y, x) under a token-causal mask. Token i's
            input is the code of token i - 1 at token i's position; the first token of every
            frame reads a learned frame-start embedding instead, so a frame can begin before the
            previous one is finished (what diagonal decoding needs).
    set     masked-token prediction inside a frame, frames causal (MaskGIT, Chang et al. 2022;
            NOVA's spatial set-by-set). Every frame gets its own masking ratio, fed to adaLN as
            the "noise level" (discrete diffusion forcing); half the clips have a clean prefix.

Decoding orders (`decode`):
    raster    one token per forward pass with a KV cache (or recomputing the prefix)
    diagonal  training-free on the raster model (diagonal decoding, DiagD): every frame that has
              started emits one token per pass, frame t running `delay` tokens behind frame t-1
    set       frame by frame, each frame in K passes, committing the most confident tokens
              on a cosine schedule (MaskGIT)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from framecast.codecs.tokenizer import TokenizerConfig, VideoTokenizer
from framecast.generators.diffusion import GenerationRequest, ModelSpec
from framecast.nn.attention import KVCache, MaskSpec
from framecast.nn.transformer import SpaceTimeTransformer, TransformerConfig
from framecast.rng import first, rand, randint
from framecast.sampling.decoding import sample_logits
from framecast.sampling.guidance import cfg_combine
from framecast.text.encoder import TextEmbedding, TextEncoder, build_text_encoder, check_prompts, encode_for_guidance

ORDERS = ("raster", "set")
DECODES = ("raster", "diagonal", "set")


@dataclass(kw_only=True)
class ARConfig:
    order: str = "set"  # training objective: raster or set
    frames: int = 16
    size: int = 32
    cond_dropout: float = 0.1
    prefix_share: float = 0.5  # set: share of clips with a clean prefix
    decode: str = ""  # default decoding order ("" = the one the objective was trained for)
    guidance: float = 3.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    set_steps: int = 4  # K passes per frame for set decoding
    diagonal_delay: int = 4  # tokens frame t runs behind frame t - 1
    tokenizer: dict | None = None  # the tokenizer's config (its weights live beside the model's)

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"unknown training order '{self.order}'; choose one of {', '.join(ORDERS)}")


@dataclass(kw_only=True)
class ARRequest(GenerationRequest):
    decode: str | None = None
    use_cache: bool = True
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None


class TokenTransformer(nn.Module):
    family = "autoregressive"

    def __init__(self, config: ARConfig, backbone: TransformerConfig, text_encoder: TextEncoder):
        super().__init__()
        if config.tokenizer is None:
            raise ValueError("an autoregressive model needs its tokenizer's config (ARConfig.tokenizer)")
        self.config = config
        self.tokenizer = VideoTokenizer(TokenizerConfig(**config.tokenizer)).requires_grad_(False).eval()
        V = self.tokenizer.codebook_size
        if backbone.out_channels != V or backbone.patch_size != 1 or backbone.patch_frames != 1:
            raise ValueError(f"the token transformer needs patch 1x1x1 and out_channels = the codebook size ({V}); "
                             f"its backbone has patch {backbone.patch_frames}x{backbone.patch_size}, out_channels {backbone.out_channels}")
        self.backbone = SpaceTimeTransformer(backbone)
        self.text = text_encoder
        self.embed = nn.Embedding(V + 2, backbone.channels)  # codes, then [frame start], [mask]
        self.start_id, self.mask_id = V, V + 1
        self.grid_hw = (config.size // self.tokenizer.downsample,) * 2

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "TokenTransformer":
        return cls(ARConfig(**spec.generator), TransformerConfig(**spec.backbone), build_text_encoder(spec.text_kind, spec.text))

    def spec(self) -> ModelSpec:
        return ModelSpec(family=self.family, generator=asdict(self.config), backbone=self.backbone.config.to_dict(),
                         text_kind="word", text=asdict(self.text.config))

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()  # frozen: its quantizer must not update codebooks
        return self

    # --- layout ---------------------------------------------------------------------------
    def positions(self, T: int, device=None) -> torch.Tensor:
        return SpaceTimeTransformer.positions((T, *self.grid_hw), 0, device)

    def raster_inputs(self, codes_BN: torch.Tensor, T: int) -> torch.Tensor:
        """Input ids for next-token prediction: token i reads code i - 1; frame starts read [start]."""
        per = self.grid_hw[0] * self.grid_hw[1]
        inp = torch.roll(codes_BN, 1, dims=1)
        inp[:, ::per] = self.start_id
        return inp

    def _logits(self, ids_BN, pos_N3, level_BG, text, *, mask: MaskSpec, cache=None) -> torch.Tensor:
        return self.backbone.forward_tokens(self.embed(ids_BN), pos_N3, level_BG, text, mask=mask, cache=cache, grid_hw=self.grid_hw)

    # --- objectives -------------------------------------------------------------------------
    def forward(self, batch: dict, generator=None) -> torch.Tensor:
        return self.loss(batch, generator)

    def loss(self, batch: dict, generator=None) -> torch.Tensor:
        x = batch["video"]
        B, T = x.shape[:2]
        with torch.no_grad():
            codes = self.tokenizer.encode(x.float()).reshape(B, -1)  # (B, N) raster order
        drop = rand((B,), generator) < self.config.cond_dropout
        text = self.text.encode(batch["caption"], drop=drop)
        pos = self.positions(T, x.device)
        if self.config.order == "raster":
            logits = self._logits(self.raster_inputs(codes, T), pos, torch.zeros(B, 1, device=x.device), text, mask=MaskSpec("causal"))
            return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), codes.reshape(-1))
        per = self.grid_hw[0] * self.grid_hw[1]
        ratio = self._mask_ratios(B, T, generator).to(x.device)  # (B, T)
        masked = rand((B, T * per), generator).to(x.device) < ratio.repeat_interleave(per, dim=1)
        ids = torch.where(masked, torch.full_like(codes, self.mask_id), codes)
        logits = self._logits(ids, pos, ratio, text, mask=MaskSpec("frame-causal"))
        ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), codes.reshape(-1), reduction="none").view(B, -1)
        return (ce * masked).sum() / masked.sum().clamp(min=1)

    def _mask_ratios(self, B: int, T: int, generator) -> torch.Tensor:
        """Per-frame masking ratio, cosine-distributed (MaskGIT); some clips get a clean prefix."""
        u = rand((B, T), generator)
        ratio = torch.cos(math.pi / 2 * u).clamp(min=1.0 / (self.grid_hw[0] * self.grid_hw[1]))
        prefix = rand((B,), generator) < self.config.prefix_share
        k = randint(T, (B,), generator)
        one = torch.cos(math.pi / 2 * rand((B,), generator)).clamp(min=1.0 / (self.grid_hw[0] * self.grid_hw[1]))
        is_ctx = torch.arange(T)[None] < k[:, None]
        pref = torch.where(is_ctx, torch.zeros(B, T), one[:, None].expand(B, T))
        return torch.where(prefix[:, None], pref, ratio)

    # --- decoding ---------------------------------------------------------------------------
    def _guided(self, ids, pos, level, text, scale, guided, **kw) -> torch.Tensor:
        if not guided:
            return self._logits(ids, pos, level, text, **kw).float()
        out = self._logits(torch.cat([ids, ids]), pos, torch.cat([level, level]), text, **kw).float()
        cond, unc = out.chunk(2)
        return cfg_combine(cond, unc, scale)

    @torch.no_grad()
    def generate_codes(self, request: ARRequest) -> torch.Tensor:
        c = self.config
        prompts = check_prompts(request.prompts)
        B = len(prompts)
        T = request.num_frames if request.num_frames is not None else c.frames
        if T <= 0:
            raise ValueError(f"the number of frames must be > 0, got {T}")
        decode = request.decode or c.decode or c.order
        if decode not in DECODES:
            raise ValueError(f"unknown decoding order '{decode}'; choose one of {', '.join(DECODES)}")
        if (decode == "set") != (c.order == "set"):
            raise ValueError(f"this model was trained for '{c.order}' order; decode it with "
                             f"{'set' if c.order == 'set' else 'raster or diagonal'}, not '{decode}'")
        scale = request.guidance if request.guidance is not None else c.guidance
        guided = scale != 1.0
        text, uncond = encode_for_guidance(self.text, prompts, request.negative_prompts, guided)
        if guided:
            text = TextEmbedding.cat([text, uncond])
        sample = dict(
            temperature=request.temperature if request.temperature is not None else c.temperature,
            top_k=request.top_k if request.top_k is not None else c.top_k,
            top_p=request.top_p if request.top_p is not None else c.top_p,
            generator=first(request.generator),
        )
        device = next(self.parameters()).device
        per = self.grid_hw[0] * self.grid_hw[1]
        codes = torch.full((B, T * per), -1, dtype=torch.long, device=device)
        known = 0
        if request.context_BTCHW is not None:
            ctx = request.context_BTCHW.to(device)
            if ctx.shape[1] >= T:
                raise ValueError(f"the context ({ctx.shape[1]} frames) must be shorter than the clip ({T} frames)")
            codes[:, : ctx.shape[1] * per] = self.tokenizer.encode(ctx.float()).reshape(B, -1)
            known = ctx.shape[1]
        run = {"raster": self._decode_raster, "diagonal": self._decode_diagonal, "set": self._decode_set}[decode]
        return run(codes, T, known, text, scale, guided, sample, request)

    def _decode_raster(self, codes, T, known, text, scale, guided, sample, request):
        B, per = codes.shape[0], self.grid_hw[0] * self.grid_hw[1]
        pos = self.positions(T, codes.device)
        zero = torch.zeros(B, 1, device=codes.device)
        spec = MaskSpec("causal")
        start = known * per
        if not request.use_cache:
            for i in range(start, T * per):
                ids = self.raster_inputs(codes[:, : i + 1].clamp(min=0), T)
                logits = self._guided(ids, pos[: i + 1], zero, text, scale, guided, mask=spec)
                codes[:, i] = sample_logits(logits[:, -1], **sample)
            return codes
        cache = KVCache(len(self.backbone.blocks))
        if start:  # the context's tokens, one pass
            ids = self.raster_inputs(codes[:, :start], T)
            self._guided(ids, pos[:start], zero, text, scale, guided, mask=spec, cache=cache)
        for i in range(start, T * per):
            prev = torch.full((B, 1), self.start_id, device=codes.device) if i % per == 0 else codes[:, i - 1 : i]
            logits = self._guided(prev, pos[i : i + 1], zero, text, scale, guided, mask=spec, cache=cache)
            codes[:, i] = sample_logits(logits[:, -1], **sample)
        return codes

    def _decode_diagonal(self, codes, T, known, text, scale, guided, sample, request):
        """DiagD: at pass s, frame t emits its token s - (t - known) * delay (raster order inside
        the frame). Training-free: a token may miss a few not-yet-made tokens of earlier frames."""
        B, per = codes.shape[0], self.grid_hw[0] * self.grid_hw[1]
        delay = max(1, self.config.diagonal_delay)
        pos = self.positions(T, codes.device)
        zero = torch.zeros(B, 1, device=codes.device)
        spec = MaskSpec("causal")
        cache = KVCache(len(self.backbone.blocks))
        if known:
            ids = self.raster_inputs(codes[:, : known * per], T)
            self._guided(ids, pos[: known * per], zero, text, scale, guided, mask=spec, cache=cache)
        gen_frames = T - known
        for s in range(per + (gen_frames - 1) * delay):
            idx = [(known + f) * per + (s - f * delay) for f in range(gen_frames) if 0 <= s - f * delay < per]
            idx_t = torch.tensor(idx, device=codes.device)
            prev = torch.stack([torch.full((B,), self.start_id, device=codes.device) if i % per == 0 else codes[:, i - 1] for i in idx], 1)
            logits = self._guided(prev, pos[idx_t], zero, text, scale, guided, mask=spec, cache=cache)
            for j, i in enumerate(idx):
                codes[:, i] = sample_logits(logits[:, j], **sample)
        return codes

    def _decode_set(self, codes, T, known, text, scale, guided, sample, request):
        """Frame by frame; inside a frame K passes, each keeping the most confident predictions
        so that a cos(pi/2 * k/K) share of the frame is still masked after pass k (MaskGIT)."""
        B, per = codes.shape[0], self.grid_hw[0] * self.grid_hw[1]
        K = max(1, self.config.set_steps)
        pos = self.positions(T, codes.device)
        spec = MaskSpec("frame-causal")
        cache = KVCache(len(self.backbone.blocks)) if request.use_cache else None
        if cache is not None and known:
            self._guided(codes[:, : known * per], pos[: known * per], torch.zeros(B, known, device=codes.device), text, scale, guided,
                         mask=spec, cache=cache)
        for t in range(known, T):
            sl = slice(t * per, (t + 1) * per)
            frame = torch.full((B, per), self.mask_id, device=codes.device)
            for k in range(K):
                masked = frame == self.mask_id
                ratio = masked.float().mean(1, keepdim=True)  # (B, 1)
                if cache is not None:
                    cache.writing = False
                    logits = self._guided(frame, pos[sl], ratio, text, scale, guided, mask=spec, cache=cache)
                else:
                    ids = torch.cat([codes[:, : t * per], frame], 1)
                    level = torch.cat([torch.zeros(B, t, device=codes.device), ratio], 1)
                    logits = self._guided(ids, pos[: (t + 1) * per], level, text, scale, guided, mask=spec)[:, t * per:]
                drawn = sample_logits(logits.reshape(B * per, -1), **sample).view(B, per)
                conf = torch.gather(logits.softmax(-1), -1, drawn[..., None])[..., 0]
                conf = torch.where(masked, conf, torch.full_like(conf, float("inf")))
                keep_masked = int(math.floor(per * math.cos(math.pi / 2 * (k + 1) / K)))
                order = conf.argsort(dim=1)  # least confident first
                new = torch.where(masked, drawn, frame)
                if keep_masked > 0:
                    new.scatter_(1, order[:, :keep_masked], self.mask_id)
                frame = new
            codes[:, sl] = frame
            if cache is not None:  # the finished frame becomes clean context
                cache.writing = True
                self._guided(frame, pos[sl], torch.zeros(B, 1, device=codes.device), text, scale, guided, mask=spec, cache=cache)
        return codes

    @torch.no_grad()
    def generate(self, request: GenerationRequest) -> torch.Tensor:
        request = request if isinstance(request, ARRequest) else ARRequest(**vars(request))
        codes = self.generate_codes(request)
        B = codes.shape[0]
        T = codes.shape[1] // (self.grid_hw[0] * self.grid_hw[1])
        return self.tokenizer.decode(codes.view(B, T, *self.grid_hw)).clamp(-1, 1)
