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

Decoding orders (`decode`):
    raster    one token per forward pass with a KV cache (or recomputing the prefix)
    diagonal  training-free on the raster model (diagonal decoding, DiagD): every frame that has
              started emits one token per pass, frame t running `delay` tokens behind frame t-1
    set       token-frame by token-frame, each in K passes, committing the most confident
              tokens on a cosine schedule (MaskGIT); given tokens (an image, a clip's first
              frames) are held and the rest decoded around them. A clip drawn from nothing may
              give its first token-frame more passes (`first_set_steps`), and Gibbs sweeps
              (`refine`) then draw every token again given all the others
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from framecast.codecs.tokenizer import TokenizerConfig, VideoTokenizer
from framecast.generators.diffusion import GenerationRequest, ModelSpec
from framecast.nn.attention import KVCache, MaskSpec
from framecast.nn.transformer import SpaceTimeTransformer, TransformerConfig
from framecast.rng import rand, randint
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
    diagonal_delay: int = 4  # tokens frame t runs behind frame t - 1
    tokenizer: dict | None = None  # the tokenizer's config (its weights live beside the model's)

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"unknown training order '{self.order}'; choose one of {', '.join(ORDERS)}")
        if self.first_set_steps < 0 or self.set_refine < 0:
            raise ValueError("first_set_steps and set_refine must be >= 0")


@dataclass(kw_only=True)
class ARRequest(GenerationRequest):
    decode: str | None = None
    use_cache: bool = True
    refine: int | None = None  # set decoding: Gibbs sweeps a token-frame (None: the model's set_refine)
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

    # --- decoding ---------------------------------------------------------------------------
    def _guided(self, ids, pos, level, text, scale, guided, **kw) -> torch.Tensor:
        """Logits with classifier-free guidance (one batched pass). `pos` given: any tokens
        (patch 1); None: whole token-frames through the patching backbone."""
        def fn(i, lv):
            return self._logits(i, pos, lv, text, **kw) if pos is not None else self._chunk_logits(i, lv, text, **kw)
        if not guided:
            return fn(ids, level).float()
        out = fn(torch.cat([ids, ids]), torch.cat([level, level])).float()
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
            generator=request.generator,
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
        if decode == "set" and T % self.frames_per_chunk:  # make whole token-frames, keep the frames asked for
            Tg = -(-T // self.frames_per_chunk) * self.frames_per_chunk
            more = torch.full((B, (Tg - T) * per), -1, dtype=torch.long, device=device)
            return self._decode_set(torch.cat([codes, more], 1), Tg, known, text, scale, guided, sample, request)[:, : T * per]
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
        """Token-frame by token-frame; inside one, K passes, each keeping the most confident
        predictions so that a cos(pi/2 * k/K) share of its unknown tokens is still masked after
        pass k (MaskGIT). Given tokens (an image, a clip's first frames) are held as they are.

        Then `refine` Gibbs sweeps: tokens committed in the same pass never saw each other, so two
        of them can disagree (an edge one pixel off along a side, an object begun in two places).
        A sweep masks one token of every backbone patch at a time (the patch's other tokens and
        every other patch stay visible: the model's own masked-token question) and draws it again,
        until each token has been redrawn once: the backbone's patch volume in passes (8 for
        2x2 tokens x 2 frames)."""
        B, n, pt = codes.shape[0], self.tokens_per_chunk, self.frames_per_chunk
        K = request.steps or self.config.set_steps  # num_inference_steps: passes a token-frame (as in aMUSEd)
        # Where the clip starts from nothing, its first token-frame fixes the layout, and tokens drawn
        # in one pass do not see each other: few passes draw an object twice or with a ragged edge.
        # The model's default gives that token-frame more passes; a request's `steps` sets them all.
        K_first = K if request.steps or not self.config.first_set_steps else self.config.first_set_steps
        sweeps = request.refine if request.refine is not None else self.config.set_refine
        if K < 1:
            raise ValueError(f"set decoding needs >= 1 passes a token-frame, got {K}")
        if sweeps < 0:
            raise ValueError(f"refine counts Gibbs sweeps a token-frame: it must be >= 0, got {sweeps}")
        spec, dev = MaskSpec("frame-causal"), codes.device
        cache = KVCache(len(self.backbone.blocks)) if request.use_cache else None
        given = known // pt  # token-frames given whole
        ps = self.backbone.config.patch_size
        volume = pt * ps * ps  # tokens a backbone patch holds: a sweep's passes
        t_, y_, x_ = torch.meshgrid(torch.arange(pt), torch.arange(self.grid_hw[0]), torch.arange(self.grid_hw[1]), indexing="ij")
        slots = ((t_ * ps + y_ % ps) * ps + x_ % ps).reshape(-1).to(dev)  # a token's place inside its backbone patch
        if cache is not None and given:
            self._guided(codes[:, : given * n], None, torch.zeros(B, given, device=dev), text, scale, guided, mask=spec, cache=cache)
        for f in range(given, T // pt):
            sl = slice(f * n, (f + 1) * n)
            frame = torch.where(codes[:, sl] >= 0, codes[:, sl], torch.full_like(codes[:, sl], self.mask_id))
            unknown = int((frame[0] == self.mask_id).sum())
            Kf = K_first if f == 0 and known == 0 else K
            held = codes[:, sl] >= 0  # given tokens stay as they are

            def frame_logits(ids, ratio):
                if cache is not None:
                    cache.writing = False
                    return self._guided(ids, None, ratio, text, scale, guided, mask=spec, cache=cache, chunk_offset=f)
                ids = torch.cat([codes[:, : f * n], ids], 1)
                level = torch.cat([torch.zeros(B, f, device=dev), ratio], 1)
                return self._guided(ids, None, level, text, scale, guided, mask=spec)[:, f * n :]

            for k in range(Kf):
                masked = frame == self.mask_id
                logits = frame_logits(frame, masked.float().mean(1, keepdim=True))  # level: this token-frame's masked share
                drawn = sample_logits(logits, **sample)  # (B, n)
                conf = torch.gather(logits.softmax(-1), -1, drawn[..., None])[..., 0]
                conf = torch.where(masked, conf, torch.full_like(conf, float("inf")))
                keep_masked = int(math.floor(unknown * math.cos(math.pi / 2 * (k + 1) / Kf)))
                order = conf.argsort(dim=1)  # least confident first
                new = torch.where(masked, drawn, frame)
                if keep_masked > 0:
                    new.scatter_(1, order[:, :keep_masked], self.mask_id)
                frame = new
            for _ in range(sweeps):
                for g in range(volume):  # one token of every backbone patch, drawn again given the rest
                    redo = (slots == g)[None] & ~held
                    if not redo.any():
                        continue
                    ids = torch.where(redo, torch.full_like(frame, self.mask_id), frame)
                    logits = frame_logits(ids, redo.float().mean(1, keepdim=True))
                    frame = torch.where(redo, sample_logits(logits, **sample), frame)
            codes[:, sl] = frame
            if cache is not None:  # the finished token-frame becomes clean context
                cache.writing = True
                self._guided(frame, None, torch.zeros(B, 1, device=dev), text, scale, guided, mask=spec, cache=cache, chunk_offset=f)
        return codes

    @torch.no_grad()
    def generate(self, request: GenerationRequest) -> torch.Tensor:
        request = request if isinstance(request, ARRequest) else ARRequest(**vars(request))
        codes = self.generate_codes(request)
        B = codes.shape[0]
        T = codes.shape[1] // (self.grid_hw[0] * self.grid_hw[1])
        return self.tokenizer.decode(codes.view(B, T, *self.grid_hw)).clamp(-1, 1)
