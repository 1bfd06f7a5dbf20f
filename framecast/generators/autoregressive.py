"""The autoregressive family: a token transformer over a video tokenizer's codes.

Every token enters the shared backbone as its code's vector in the tokenizer's latent space (what
the tokenizer's decoder reads; [frame start] and [mask] are learned vectors of the same size), so a
token model can start from a latent diffusion model's trunk in the same space. The backbone reads
patches of tokens (2x2 tokens x 2 frames for the bundled model: 8 tokens a transformer position,
as a latent DiT reads patches of latents) and returns a feature per token; a linear layer turns it
into logits over the codebook. Two objectives, chosen by `order` when training:

    raster  next-token prediction in raster order (t, y, x) under a token-causal mask. Token i's
            input is the code of token i - 1 at token i's position; the first token of every
            frame reads a learned frame-start embedding instead, so a frame can begin before the
            previous one is finished (what diagonal decoding needs).
    set     masked-token prediction inside a token-frame (the backbone's `patch_frames` frames),
            token-frames causal (MaskGIT, Chang et al. 2022; NOVA's spatial set-by-set). Every
            token-frame gets its own masking ratio, fed to adaLN as the "noise level". With
            `teacher_forcing` (the default) a clean copy of the clip rides along in the same pass
            and every masked token-frame attends to the clean ones before it, exactly as in
            decoding; without it, earlier token-frames are seen masked too (discrete diffusion
            forcing) and half the clips have a clean prefix. Patches of any size.

Decoding orders (`decode`), functions in framecast/sampling/token_orders.py of the logits
functions this model provides (`token_logits_fn`, `frame_logits_fn`):
    raster    one token per forward pass in raster order with a KV cache (or recomputing the
              prefix). A set model computes it as masked prediction: pass i shows it tokens < i of
              the token-frame (finished token-frames in the cache) and draws token i
    diagonal  diagonal decoding (DiagD). A raster model: every frame that has started emits one
              token per pass, frame t running `delay` tokens behind frame t - 1 (training-free).
              A set model: a frame's tokens on one anti-diagonal (y + x) a pass, the second frame
              of a token-frame `delay` anti-diagonals behind the first
    set       token-frame by token-frame, each in K passes, committing the most confident
              tokens on a cosine schedule (MaskGIT); given tokens (an image, a clip's first
              frames) are held and the rest decoded around them. A clip drawn from nothing may
              give its first token-frame more passes (`first_set_steps`), and Gibbs sweeps
              (`refine`) then draw every token again given all the others

A set model trained with `raster_share` / `diagonal_share` also sees, during training, token-frames
masked exactly as the raster and diagonal orders leave them (DiagD's brief fine-tuning to its
order), so one trunk serves all three orders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from framecast.codecs.tokenizer import TokenizerConfig, VideoTokenizer
from framecast.generators.base import GenerationRequest, ModelSpec, guidance_text, resolve
from framecast.nn.attention import KVCache, MaskSpec
from framecast.nn.transformer import SpaceTimeTransformer, TransformerConfig
from framecast.rng import rand, randint
from framecast.sampling.guidance import guided
from framecast.sampling.token_orders import (
    FrameLogits,
    TokenLogitsFn,
    diagonal_schedule,
    iter_diagonal,
    iter_ranked,
    iter_raster,
    iter_set,
    order_ranks,
    patch_slots,
    raster_inputs,
)
from framecast.text.encoder import TextEmbedding, TextEncoder
from framecast.text.kinds import build_text_encoder

ORDERS = ("raster", "set")
DECODES = ("raster", "diagonal", "set")


@dataclass(kw_only=True)
class ARConfig:
    order: str = "set"  # training objective: raster or set
    frames: int = 16
    size: int = 32
    cond_dropout: float = 0.1
    teacher_forcing: bool = True  # set: every token-frame learns from clean context (a clean copy of the clip rides along)
    prefix_share: float = 0.5  # set without teacher forcing: share of clips with a clean prefix
    decode: str = ""  # default decoding order ("" = the one the objective was trained for)
    guidance: float = 3.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    set_steps: int = 4  # K passes per token-frame for set decoding (a request's `steps` overrides it)
    first_set_steps: int = 0  # set: passes for the first token-frame of a clip drawn from nothing, where the layout is drawn (0 = K)
    set_refine: int = 0  # set: Gibbs sweeps over each decoded token-frame (a request's `refine` overrides it)
    diagonal_delay: int = 4  # frame t runs this many passes behind frame t - 1 (raster model: tokens; set model: diagonals)
    diagonal_stride: int = 1  # set model, diagonal order: token (y, x) of a frame drawn at pass y * stride + x
    diagonal_refine: int = 0  # set model, diagonal order: Gibbs sweeps after each token-frame's diagonals (a request's `refine` overrides it)
    raster_share: float = 0.0  # set objective: share of token-frames masked as raster decoding leaves them (a cut in raster order)
    diagonal_share: float = 0.0  # set objective: share masked as diagonal decoding leaves them (a cut in DiagD's order, any delay)
    train_strides: int = 1  # set objective: the diagonal masks' strides are drawn from 1..train_strides
    tokenizer: dict | None = None  # the tokenizer's config (its weights live beside the model's)

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"unknown training order '{self.order}'; choose one of {', '.join(ORDERS)}")
        if self.first_set_steps < 0 or self.set_refine < 0 or self.diagonal_refine < 0:
            raise ValueError("first_set_steps, set_refine and diagonal_refine must be >= 0")
        if min(self.raster_share, self.diagonal_share) < 0 or self.raster_share + self.diagonal_share > 1:
            raise ValueError("raster_share and diagonal_share are shares of token-frames: each >= 0, together <= 1")


class TokenTransformer(nn.Module):
    family = "autoregressive"

    def __init__(self, config: ARConfig, backbone: TransformerConfig, text_encoder: TextEncoder):
        super().__init__()
        if config.tokenizer is None:
            raise ValueError("an autoregressive model needs its tokenizer's config (ARConfig.tokenizer)")
        self.config = config
        self.tokenizer = VideoTokenizer(TokenizerConfig(**config.tokenizer)).requires_grad_(False).eval()
        V, dim = self.tokenizer.codebook_size, self.tokenizer.latent_channels
        if backbone.channels != dim:
            raise ValueError(f"the token transformer reads the tokenizer's {dim}-value code vectors: its backbone needs channels={dim}, "
                             f"not {backbone.channels}")
        if backbone.out_channels < 1:
            raise ValueError("the token transformer needs backbone out_channels >= 1 (the width of the feature read into logits)")
        if config.order == "raster" and (backbone.patch_size != 1 or backbone.patch_frames != 1):
            raise ValueError(f"raster order predicts one token at a time: it needs patch 1x1x1, not "
                             f"{backbone.patch_frames}x{backbone.patch_size}x{backbone.patch_size}")
        self.backbone = SpaceTimeTransformer(backbone)
        self.text = text_encoder
        self.special = nn.Parameter(torch.zeros(2, dim))  # [frame start], [mask]
        self.head = nn.Linear(backbone.out_channels, V)  # feature -> logits over the codebook
        self.start_id, self.mask_id = V, V + 1
        self.grid_hw = (config.size // self.tokenizer.downsample,) * 2
        self.frames_per_chunk = backbone.patch_frames  # a token-frame: the unit of the set order

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> TokenTransformer:
        return cls(ARConfig(**spec.generator), TransformerConfig(**spec.backbone), build_text_encoder(spec.text_kind, spec.text))

    def spec(self) -> ModelSpec:
        return ModelSpec(family=self.family, generator=asdict(self.config), backbone=self.backbone.config.to_dict(),
                         text_kind=self.text.kind, text=asdict(self.text.config))

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()  # frozen: its quantizer must not update codebooks
        return self

    # --- layout ---------------------------------------------------------------------------
    def positions(self, T: int, device=None) -> torch.Tensor:
        return SpaceTimeTransformer.positions((T, *self.grid_hw), 0, device)

    def raster_inputs(self, codes_BN: torch.Tensor, T: int) -> torch.Tensor:
        """Input ids for next-token prediction: token i reads code i - 1; frame starts read [start]."""
        return raster_inputs(codes_BN, self.grid_hw[0] * self.grid_hw[1], self.start_id)

    @property
    def tokens_per_chunk(self) -> int:
        return self.frames_per_chunk * self.grid_hw[0] * self.grid_hw[1]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(...) ids -> (..., dim): a code's vector from the tokenizer; [start] and [mask] learned."""
        V = self.tokenizer.codebook_size
        values = self.tokenizer.quantizer.decode_codes(ids.clamp(0, V - 1)).to(self.special.dtype)
        return torch.where((ids >= V)[..., None], self.special[(ids - V).clamp(0, 1)], values)

    def _logits(self, ids_BN, pos_N3, level_BG, text, *, mask: MaskSpec, cache=None) -> torch.Tensor:
        """Any tokens at any positions (patch 1x1x1: the raster and diagonal orders)."""
        feats = self.backbone.forward_tokens(self.embed(ids_BN), pos_N3, level_BG, text, mask=mask, cache=cache, grid_hw=self.grid_hw)
        return self._head(feats)

    def _head(self, feats: torch.Tensor) -> torch.Tensor:
        """Features -> logits, in fp32 even under bf16 autocast: bf16 keeps about 3 digits of a
        logit, and classifier-free guidance (cond + scale * (cond - uncond)) multiplies its error."""
        with torch.autocast(feats.device.type, enabled=False):
            return self.head(feats.float())

    def _clip(self, ids_BN: torch.Tensor) -> torch.Tensor:
        """Ids of whole frames (raster token order) -> their code vectors as a clip (B, T, dim, h, w)."""
        h, w = self.grid_hw
        return rearrange(self.embed(ids_BN), "b (t h w) c -> b t c h w", h=h, w=w)

    def _clip_logits(self, feats_BTEhw: torch.Tensor) -> torch.Tensor:
        """The backbone's per-token features (B, T, e, h, w) -> logits (B, N tokens, V), raster order."""
        return self._head(rearrange(feats_BTEhw, "b t e h w -> b (t h w) e"))

    def _chunk_logits(self, ids_BN, level_BF, text, *, mask: MaskSpec, cache=None, chunk_offset: int = 0) -> torch.Tensor:
        """Whole token-frames (raster token order) through the patching backbone -> (B, N, V)."""
        return self._clip_logits(self.backbone(self._clip(ids_BN), level_BF, text, mask=mask, cache=cache, frame_offset=chunk_offset))

    def stream_logits(self, h_BND: torch.Tensor, level_BG: torch.Tensor, text, T: int) -> torch.Tensor:
        """A residual stream of the backbone (any layer) read out to logits (B, N tokens, V): the
        generation lens's "logit lens"."""
        bb = self.backbone
        feats = bb.readout(h_BND, bb.condition(level_BG, text, h_BND.dtype))
        return self._clip_logits(bb.unpatchify(feats, bb.grid(T, *self.grid_hw)))

    # --- objectives -------------------------------------------------------------------------
    def forward(self, batch: dict, generator=None) -> torch.Tensor:
        return self.loss(batch, generator)

    @torch.no_grad()
    def to_latent(self, video_BTCHW: torch.Tensor) -> torch.Tensor:
        """Clip -> codes (B, T, h, w): what a training pool stores instead of pixels."""
        return self.tokenizer.encode(video_BTCHW.float())

    def loss(self, batch: dict, generator=None) -> torch.Tensor:
        codes = batch["codes"] if "codes" in batch else self.to_latent(batch["video"])  # (B, T, h, w), from a pool or encoded here
        B, T = codes.shape[:2]
        per, dev = self.grid_hw[0] * self.grid_hw[1], codes.device
        codes = codes.reshape(B, -1).long()  # (B, N) raster order
        drop = rand((B,), generator) < self.config.cond_dropout
        text = self.text.encode(batch["caption"], drop=drop)
        if self.config.order == "raster":
            pos = self.positions(T, dev)
            logits = self._logits(self.raster_inputs(codes, T), pos, torch.zeros(B, 1, device=dev), text, mask=MaskSpec("causal"))
            return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), codes.reshape(-1))
        if T % self.frames_per_chunk:
            raise ValueError(f"clips of {T} frames do not split into token-frames of {self.frames_per_chunk}")
        F_ = T // self.frames_per_chunk
        ratio = self._mask_ratios(B, F_, generator).to(dev)  # (B, token-frames)
        masked = rand((B, T * per), generator).to(dev) < ratio.repeat_interleave(self.tokens_per_chunk, dim=1)
        if self.config.raster_share or self.config.diagonal_share:
            masked, ratio = self._ordered_masks(masked, generator)
        ids = torch.where(masked, torch.full_like(codes, self.mask_id), codes)
        if self.config.teacher_forcing:
            logits = self._teacher_forced_logits(codes, ids, ratio, text)
        else:
            logits = self._chunk_logits(ids, ratio, text, mask=MaskSpec("frame-causal"))
        ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), codes.reshape(-1), reduction="none").view(B, -1)
        return (ce * masked).sum() / masked.sum().clamp(min=1)

    def _teacher_forced_logits(self, codes_BN, ids_BN, ratio_BF, text) -> torch.Tensor:
        """One pass over [clean clip ; masked clip]: masked token-frame f sees the clean token-frames
        before it and itself, as in decoding with the KV cache. Logits of the masked copy."""
        feats = self.backbone.forward_teacher_forced(self._clip(codes_BN), self._clip(ids_BN), torch.zeros_like(ratio_BF), ratio_BF, text)
        return self._clip_logits(feats)

    def _ordered_masks(self, masked_BN: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Replace the random masks of a share of token-frames by the masks the raster and diagonal
        decoding orders leave (every token from a cut in that order on still to be drawn), so that
        one set model learns the questions all three orders ask it. The diagonal's delay and
        stride are drawn anew each time. -> (masks (B, N), masked share per token-frame (B, F))."""
        c, n = self.config, self.tokens_per_chunk
        B, F_ = masked_BN.shape[0], masked_BN.shape[1] // n
        dev = masked_BN.device
        u = rand((B, F_), generator).to(dev)
        stride_BF = (randint(c.train_strides, (B, F_), generator) + 1).to(dev)
        delay_BF = (randint(sum(self.grid_hw) - 1, (B, F_), generator) + 1).to(dev)
        ranks_raster = order_ranks("raster", self.frames_per_chunk, self.grid_hw).to(dev)
        diagonal = order_ranks("diagonal", self.frames_per_chunk, self.grid_hw, delay_BF[..., None], stride_BF[..., None]).to(dev)
        ranks_BFn = torch.where((u < c.raster_share)[..., None], ranks_raster, diagonal)
        last_BF = ranks_BFn.amax(-1)
        cut_BF = (rand((B, F_), generator).to(dev) * (last_BF + 1)).long().clamp(max=last_BF)
        ordered_BFn = ranks_BFn >= cut_BF[..., None]
        use_BF = u < c.raster_share + c.diagonal_share
        masked_BFn = torch.where(use_BF[..., None], ordered_BFn, masked_BN.view(B, F_, n))
        return masked_BFn.reshape(B, -1), masked_BFn.float().mean(-1)

    def _mask_ratios(self, B: int, T: int, generator) -> torch.Tensor:
        """Per-token-frame masking ratio, cosine-distributed (MaskGIT); without teacher forcing
        some clips get a clean prefix (their only frames trained from clean context)."""
        u = rand((B, T), generator)
        ratio = torch.cos(math.pi / 2 * u).clamp(min=1.0 / self.tokens_per_chunk)
        if self.config.teacher_forcing:
            return ratio
        prefix = rand((B,), generator) < self.config.prefix_share
        k = randint(T, (B,), generator)
        one = torch.cos(math.pi / 2 * rand((B,), generator)).clamp(min=1.0 / self.tokens_per_chunk)
        is_ctx = torch.arange(T)[None] < k[:, None]
        pref = torch.where(is_ctx, torch.zeros(B, T), one[:, None].expand(B, T))
        return torch.where(prefix[:, None], pref, ratio)

    # --- decoding: the logits functions that the orders of sampling/token_orders.py call ------
    def token_logits_fn(self, text: TextEmbedding, scale: float, T: int, cache: KVCache | None = None) -> TokenLogitsFn:
        """The raster and diagonal orders' logits function (`TokenLogitsFn`): tokens at raster
        indices of a T-frame clip through the backbone (patch 1x1x1) under the token-causal mask,
        guided at `scale` (`text` batched [cond ; uncond] where scale != 1). With `cache` every call
        appends its tokens to it."""
        pos_N3 = self.positions(T, next(self.parameters()).device)

        def logits(ids_BJ: torch.Tensor, at_J: torch.Tensor) -> torch.Tensor:
            pos_J3 = pos_N3[at_J]
            run = guided(lambda ids, level: self._logits(ids, pos_J3, level, text, mask=MaskSpec("causal"), cache=cache), scale)
            return run(ids_BJ, torch.zeros(ids_BJ.shape[0], 1, device=ids_BJ.device))

        return logits

    def frame_logits_fn(self, text: TextEmbedding, scale: float, *, use_cache: bool = True) -> FrameLogits:
        """The set order's logits function (`FrameLogits`): whole token-frames through the patching
        backbone, guided at `scale`; finished token-frames kept in a KV cache or recomputed."""
        return _TokenFrameLogits(self, text, scale, use_cache)

    def request_defaults(self) -> dict:
        """Set decoding's pass count stays None unless asked for: the model then gives the first
        token-frame of a clip drawn from nothing `first_set_steps` passes (see `_decode_set`)."""
        c = self.config
        return dict(num_frames=c.frames, guidance=c.guidance, decode=c.decode or c.order, use_cache=True,
                    temperature=c.temperature, top_k=c.top_k, top_p=c.top_p)

    def check(self, request: GenerationRequest) -> None:
        """Refuse, with the sentence `generate` would give, a request this model cannot run, without
        running it (a server checks a request before it queues it)."""
        self._check_order(resolve(request, self.family, self.request_defaults()).decode)

    def _check_order(self, decode: str) -> None:
        """A set model decodes in every order (raster and diagonal as fixed orders of its masked
        passes); a raster model in raster or diagonal order."""
        c = self.config
        if decode not in DECODES:
            raise ValueError(f"unknown decoding order '{decode}'; choose one of {', '.join(DECODES)}")
        if decode == "set" and c.order != "set":
            raise ValueError(f"this model was trained for '{c.order}' order; decode it with raster or diagonal, not 'set'")

    def _start_codes(self, request: GenerationRequest, B: int, T: int) -> tuple[torch.Tensor, int]:
        """(B, T * h * w) codes, -1 where still to be drawn, the context's frames encoded in front;
        and how many tokens the context gives."""
        device, per = next(self.parameters()).device, self.grid_hw[0] * self.grid_hw[1]
        codes_BN = torch.full((B, T * per), -1, dtype=torch.long, device=device)
        if request.context_BTCHW is None:
            return codes_BN, 0
        ctx = request.context_BTCHW.to(device)
        if ctx.shape[1] >= T:
            raise ValueError(f"the context ({ctx.shape[1]} frames) must be shorter than the clip ({T} frames)")
        codes_BN[:, : ctx.shape[1] * per] = self.tokenizer.encode(ctx.float()).reshape(B, -1)
        return codes_BN, ctx.shape[1] * per

    @torch.no_grad()
    def generate_codes(self, request: GenerationRequest) -> torch.Tensor:
        """Codes (B, T * h * w) in raster order, drawn in the request's decoding order. A request's
        `callback` is called after every decoding pass (every call of the logits function) as
        `callback(pass, None, None, None)`, pass counting from 0 to `passes(request) - 1`: a token
        model has no noise level and no latents to show, and what the callback returns is unused.
        An exception raised from it stops decoding there."""
        steps, start_BN = self._code_steps(request)
        codes_BN = start_BN
        for _, codes_BN in steps:
            pass
        return codes_BN[:, : start_BN.shape[1]].clone()

    @torch.no_grad()
    def _code_steps(self, request: GenerationRequest) -> tuple[Iterator[tuple[int, torch.Tensor]], torch.Tensor]:
        """The checked request's decoding order as an iterator of `(done, codes_BN)` (token_orders'
        `iter_*`: `done` leading tokens are final), and the starting codes (B, N). The set order may
        decode past the clip's N tokens to fill its last token-frame."""
        r = resolve(request, self.family, self.request_defaults())
        self._check_order(r.decode)
        text, _ = guidance_text(self.text, r)
        sample = dict(temperature=r.temperature, top_k=r.top_k, top_p=r.top_p, generator=r.generator)
        codes_BN, known = self._start_codes(r, len(r.prompts), r.num_frames)
        if self.config.order == "set":
            return self._decode_set(codes_BN, known, text, r.guidance, sample, r), codes_BN
        per = self.grid_hw[0] * self.grid_hw[1]
        cached = r.use_cache or r.decode == "diagonal"  # every diagonal pass adds tokens to the cache
        logits_fn = self.token_logits_fn(text, r.guidance, r.num_frames, KVCache(len(self.backbone.blocks)) if cached else None)
        logits_fn = _PassReporter(logits_fn, r.callback) if r.callback is not None else logits_fn
        if r.decode == "raster":
            return iter_raster(logits_fn, codes_BN, known=known, per_frame=per, start_id=self.start_id, sample=sample,
                               cached=cached), codes_BN
        return iter_diagonal(logits_fn, codes_BN, known=known, per_frame=per, start_id=self.start_id,
                             delay=max(1, self.config.diagonal_delay), sample=sample), codes_BN

    def passes(self, request: GenerationRequest) -> int:
        """Decoding passes (calls of the logits function, so step callbacks) the request takes:
        raster, a pass a token drawn (and one for the given frames with the KV cache); diagonal,
        a pass a diagonal (and one for the given frames); set, K a token-frame (the first one's own
        count for a clip drawn from nothing) and, a Gibbs sweep, a pass for every place of a patch
        that holds a token to draw."""
        r = resolve(request, self.family, self.request_defaults())
        self._check_order(r.decode)
        per = self.grid_hw[0] * self.grid_hw[1]
        known = 0 if r.context_BTCHW is None else r.context_BTCHW.shape[1] * per
        N = r.num_frames * per
        if self.config.order == "set":
            return self._set_order_passes(r, known)
        if r.decode == "raster":
            return N - known + int(bool(known) and r.use_cache)
        return len(diagonal_schedule((N - known) // per, per, max(1, self.config.diagonal_delay))) + int(bool(known))

    def _set_order_passes(self, r: GenerationRequest, known: int) -> int:
        """A set model's passes in any order: a pass a rank still to draw (raster, diagonal), or
        K MaskGIT passes and the Gibbs sweeps' (set), every token-frame not given whole."""
        K, K_first, sweeps = self._set_passes(r)
        n, slots_n, ranks_n = self.tokens_per_chunk, self._slots(), self._ranks(r.decode)
        total = 0
        for f in range(known // n, -(-r.num_frames // self.frames_per_chunk)):
            drawn_n = torch.arange(f * n, (f + 1) * n) >= known  # the given tokens are held
            if ranks_n is not None:
                total += len(set(ranks_n[drawn_n].tolist()))
            else:
                total += K_first if f == 0 and known == 0 else K
            total += sweeps * len(set(slots_n[drawn_n].tolist()))
        return total

    def _ranks(self, decode: str) -> torch.Tensor | None:
        """A set model's ranks for a fixed decoding order (None for its own set order)."""
        if decode == "set":
            return None
        c = self.config
        return order_ranks(decode, self.frames_per_chunk, self.grid_hw, max(1, c.diagonal_delay), max(1, c.diagonal_stride))

    def _set_passes(self, request: GenerationRequest) -> tuple[int, int, int]:
        """Set decoding's passes a token-frame, the first token-frame's, and Gibbs sweeps."""
        c = self.config
        K = request.steps or c.set_steps  # num_inference_steps: passes a token-frame (as in aMUSEd)
        # Gibbs sweeps: the model's own count for its set and diagonal orders; raster stays a pure
        # order unless a request asks for sweeps after it
        own = {"set": c.set_refine, "diagonal": c.diagonal_refine}.get(request.decode, 0)
        sweeps = request.refine if request.refine is not None else own
        # Where the clip starts from nothing, its first token-frame fixes the layout, and tokens drawn
        # in one pass do not see each other: few passes draw an object twice or with a ragged edge.
        # The model's default gives that token-frame more passes; a request's `steps` sets them all.
        K_first = K if request.steps or not c.first_set_steps else c.first_set_steps
        return K, K_first, sweeps

    def _slots(self) -> torch.Tensor:
        return patch_slots(self.frames_per_chunk, self.grid_hw, self.backbone.config.patch_size)

    def _decode_set(self, codes_BN, known: int, text: TextEmbedding, scale: float, sample: dict, request: GenerationRequest):
        """A set model's decoding over whole token-frames: its own set order (`iter_set`), or the
        raster or diagonal order as a fixed order of its passes (`iter_ranked`). A clip whose
        frames do not fill its last token-frame is decoded longer (the caller cuts it back to the
        frames asked for)."""
        per, pt = self.grid_hw[0] * self.grid_hw[1], self.frames_per_chunk
        K, K_first, sweeps = self._set_passes(request)
        N = codes_BN.shape[1]
        more = (-(N // per) % pt) * per
        codes_BN = torch.cat([codes_BN, codes_BN.new_full((codes_BN.shape[0], more), -1)], 1)
        frame_logits = self.frame_logits_fn(text, scale, use_cache=request.use_cache)
        if request.callback is not None:
            frame_logits = _PassReporter(frame_logits, request.callback)
        ranks_n = self._ranks(request.decode)
        if ranks_n is not None:
            return iter_ranked(frame_logits, codes_BN, known=known, frame_tokens=self.tokens_per_chunk, ranks_n=ranks_n,
                               mask_id=self.mask_id, sweeps=sweeps, slots_n=self._slots(), sample=sample)
        return iter_set(frame_logits, codes_BN, known=known, frame_tokens=self.tokens_per_chunk, passes=K,
                        first_passes=K_first, sweeps=sweeps, slots_n=self._slots(), mask_id=self.mask_id, sample=sample)

    @torch.no_grad()
    def generate(self, request: GenerationRequest) -> torch.Tensor:
        return self.tokenizer.decode(self.generate_latents(request)).clamp(-1, 1)

    def stream(self, request: GenerationRequest) -> Iterator[torch.Tensor]:
        """Yield decoded frames in order, (B, k, 3, H, W) in [-1, 1] each, as soon as their codes
        are final; given context frames come with the first chunk. The tokenizer's decoder is
        causal in time and keeps its state from chunk to chunk, so each frame is decoded once. The
        request is checked here, at the call, before the first frame is asked for."""
        steps, start_BN = self._code_steps(request)
        return self._emit(steps, start_BN.shape[1] // (self.grid_hw[0] * self.grid_hw[1]))

    @torch.no_grad()
    def _emit(self, steps: Iterator[tuple[int, torch.Tensor]], T: int) -> Iterator[torch.Tensor]:
        per, emitted, decoder = self.grid_hw[0] * self.grid_hw[1], 0, self.tokenizer.stream_decoder()  # frames already yielded
        for done, codes_BN in steps:
            frames = min(done // per, T)
            if frames > emitted:
                codes_BThw = codes_BN[:, emitted * per : frames * per].reshape(codes_BN.shape[0], frames - emitted, *self.grid_hw)
                yield decoder.decode_chunk(codes_BThw).clamp(-1, 1)
                emitted = frames

    @torch.no_grad()
    def generate_latents(self, request: GenerationRequest) -> torch.Tensor:
        """-> the representation before decoding: codes (B, T, h, w), what the tokenizer decodes."""
        codes = self.generate_codes(request)
        B = codes.shape[0]
        return codes.view(B, codes.shape[1] // (self.grid_hw[0] * self.grid_hw[1]), *self.grid_hw)


class _PassReporter:
    """A logits function (`TokenLogitsFn` or `FrameLogits`) that reports every call, a decoding
    pass, to a step callback as `callback(pass, None, None, None)` once the pass's logits are
    computed; the logits themselves are untouched, so the draws are the same with or without it."""

    def __init__(self, logits_fn, callback: Callable):
        self.logits_fn, self.callback, self.done = logits_fn, callback, 0

    def __call__(self, *args) -> torch.Tensor:
        logits = self.logits_fn(*args)
        self.callback(self.done, None, None, None)
        self.done += 1
        return logits

    def commit(self, ids_BM: torch.Tensor, f: int) -> None:
        self.logits_fn.commit(ids_BM, f)  # a KV cache write, not a decoding pass


class _TokenFrameLogits:
    """A token transformer as the set order's model (`FrameLogits`): whole token-frames through the
    patching backbone under the frame-causal mask, guided. With a KV cache a finished token-frame
    is written to it once (a clean pass, level 0); without, every pass recomputes the finished
    token-frames before the one drawn."""

    def __init__(self, model: TokenTransformer, text: TextEmbedding, scale: float, use_cache: bool):
        self.model, self.text, self.scale = model, text, scale
        self.cache = KVCache(len(model.backbone.blocks)) if use_cache else None
        self.context_BM: torch.Tensor | None = None  # without the cache: the finished token-frames' codes

    def _run(self, ids_BN: torch.Tensor, level_BF: torch.Tensor, **kw) -> torch.Tensor:
        def fn(ids, level):
            return self.model._chunk_logits(ids, level, self.text, mask=MaskSpec("frame-causal"), **kw)
        return guided(fn, self.scale)(ids_BN, level_BF)

    def __call__(self, ids_Bn: torch.Tensor, level_B1: torch.Tensor, f: int) -> torch.Tensor:
        if self.cache is not None:
            self.cache.writing = False
            return self._run(ids_Bn, level_B1, cache=self.cache, chunk_offset=f)
        B, n = ids_Bn.shape
        context_BM = ids_Bn[:, :0] if self.context_BM is None else self.context_BM
        assert context_BM.shape[1] == f * n, "token-frames are drawn in order, each committed when finished"
        level_BF = torch.cat([torch.zeros(B, f, device=ids_Bn.device), level_B1], 1)
        return self._run(torch.cat([context_BM, ids_Bn], 1), level_BF)[:, f * n :]

    def commit(self, ids_BM: torch.Tensor, f: int) -> None:
        if self.cache is None:
            self.context_BM = ids_BM.clone() if self.context_BM is None else torch.cat([self.context_BM, ids_BM], 1)
            return
        self.cache.writing = True
        level_BF = torch.zeros(ids_BM.shape[0], ids_BM.shape[1] // self.model.tokens_per_chunk, device=ids_BM.device)
        self._run(ids_BM, level_BF, cache=self.cache, chunk_offset=f)
