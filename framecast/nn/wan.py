"""Wan 2.1's text-to-video transformer as a configuration of framecast's parts.

The same DiT shape as framecast's SpaceTimeTransformer (docs/wan.md maps every piece): a Conv3d
patch embedding; the noise level as a sinusoid through an MLP (`time_embed`) and one shared
projection to 6 modulation vectors (`time_proj`), to which every block adds its own learned
offsets (`modulation`: PixArt-alpha's adaLN-single, which framecast's backbone uses too);
self-attention with RMSNorm on queries and keys across all heads and Wan's 3-D RoPE (the head dim
split between frames, height and width, rotating interleaved pairs); cross-attention to the
embedded text with an optional LayerNorm before it; a GELU (tanh) FFN; a modulated linear head.

Timesteps are Wan's, in [0, 1000] (1000 x the flow-matching sigma), one per clip or one per latent
frame (diffusion forcing, SkyReels-V2-DF); the output is the flow velocity (noise - x0).

Self-attention goes through framecast.nn.attention (`attention_inputs`, `attend`): its masks
(block-causal for CausVid / Self-Forcing, with a rolling window and sink frames), RoPE and KV cache
serve this model unchanged; `WanStream` runs it chunk by chunk.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from framecast.nn.attention import KVCache, MaskSpec, RoPE3D, Rotation, attend, attention_inputs, grid_positions
from framecast.nn.transformer import modulate, timestep_embedding
from framecast.nn.wan_keys import to_framecast

_UNSUPPORTED = {
    "image_dim": "image-to-video (an image embedder)",
    "added_kv_proj_dim": "image-to-video (image keys and values in cross-attention)",
    "pos_embed_seq_len": "first-last-frame-to-video (image position embeddings)",
}


@dataclass(kw_only=True)
class WanTransformerConfig:
    """The fields of a diffusers `transformer/config.json` (WanTransformer3DModel, and
    SkyReelsV2Transformer3DModel's text-to-video ones); defaults: Wan 2.1 T2V 1.3B."""

    patch_size: tuple[int, int, int] = (1, 2, 2)  # (frames, height, width) per token
    num_attention_heads: int = 12
    attention_head_dim: int = 128
    in_channels: int = 16
    out_channels: int = 16
    text_dim: int = 4096  # width of the text encoder's states (UMT5-XXL)
    freq_dim: int = 256  # width of the timestep sinusoid
    ffn_dim: int = 8960
    num_layers: int = 30
    cross_attn_norm: bool = True
    qk_norm: str | None = "rms_norm_across_heads"
    eps: float = 1e-6
    rope_max_seq_len: int = 1024  # RoPE positions per axis in the reference (framecast computes any)
    image_dim: int | None = None
    added_kv_proj_dim: int | None = None
    pos_embed_seq_len: int | None = None
    inject_sample_info: bool = False  # SkyReels-V2: a frame-rate embedding added to the modulation
    num_frame_per_block: int = 1  # > 1: block-causal over latent frames (CausVid, Self-Forcing, SkyReels-V2-DF)

    def __post_init__(self):
        self.patch_size = tuple(int(p) for p in self.patch_size)
        for name, what in _UNSUPPORTED.items():
            if getattr(self, name) is not None:
                raise ValueError(f"this Wan transformer config sets {name}={getattr(self, name)}: {what} is not "
                                 "supported; use a text-to-video Wan 2.1 checkpoint")
        if self.qk_norm not in ("rms_norm_across_heads", True):
            raise ValueError(f"Wan qk_norm '{self.qk_norm}' is not supported; only 'rms_norm_across_heads' is")
        if len(self.patch_size) != 3 or self.attention_head_dim % 2:
            raise ValueError("a Wan config needs a 3-D patch_size and an even attention_head_dim")
        if self.num_frame_per_block < 1:
            raise ValueError(f"num_frame_per_block must be >= 1, got {self.num_frame_per_block}")

    def mask_spec(self) -> MaskSpec:
        """The attention the model was trained with: full, or block-causal in chunks of latent frames."""
        return MaskSpec("block-causal", block=self.num_frame_per_block) if self.num_frame_per_block > 1 else MaskSpec()

    @property
    def width(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @classmethod
    def from_diffusers(cls, config: dict) -> "WanTransformerConfig":
        """From a diffusers `transformer/config.json` dict (keys starting with `_` are metadata)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in config if not k.startswith("_") and k not in known)
        if unknown:
            raise ValueError(f"unknown Wan transformer config keys: {', '.join(unknown)}")
        return cls(**{k: v for k, v in config.items() if k in known})

    @classmethod
    def from_original(cls, config: dict) -> "WanTransformerConfig":
        """From the Wan repository's `config.json` (`WanModel`: dim, num_heads, in_dim, ...)."""
        if config.get("model_type", "t2v") != "t2v":
            raise ValueError(f"this Wan config is a '{config['model_type']}' model; only text-to-video ('t2v') is supported")
        if tuple(config.get("window_size", (-1, -1))) != (-1, -1):
            raise ValueError("Wan's local attention window (window_size) is not supported")
        names = {"in_dim": "in_channels", "out_dim": "out_channels", "num_heads": "num_attention_heads"}
        known = {"patch_size", "ffn_dim", "freq_dim", "text_dim", "num_layers", "eps", "cross_attn_norm", "qk_norm",
                 "inject_sample_info", "num_frame_per_block", *names}
        fields_ = {names.get(k, k): v for k, v in config.items() if k in known}
        fields_["attention_head_dim"] = int(config["dim"]) // int(config["num_heads"])
        if fields_.get("qk_norm") is True:
            fields_["qk_norm"] = "rms_norm_across_heads"
        return cls(**fields_)

    def to_dict(self) -> dict:
        return asdict(self)


# Size recipes: the two Wan 2.1 text-to-video models and a tiny one for tests.
def wan_t2v_1_3b(**kw) -> WanTransformerConfig:
    return WanTransformerConfig(**kw)


def wan_t2v_14b(**kw) -> WanTransformerConfig:
    return WanTransformerConfig(**{**dict(num_attention_heads=40, ffn_dim=13824, num_layers=40), **kw})


def wan_tiny(**kw) -> WanTransformerConfig:
    return WanTransformerConfig(**{**dict(num_attention_heads=2, attention_head_dim=12, text_dim=32, freq_dim=16,
                                          ffn_dim=64, num_layers=2), **kw})


def wan_rope_splits(head_dim: int) -> tuple[int, int, int]:
    """Frequencies per axis (frames, height, width) of Wan's RoPE: height and width a third each."""
    half = head_dim // 2
    return half - 2 * (half // 3), half // 3, half // 3


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the weights' dtype (Wan normalises in fp32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps)


@dataclass
class WanText:
    """Text prepared once for many passes (`WanTransformer.prepare_text`): each block's
    cross-attention keys and values, (B, heads, L, head dim) each."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]

    def __len__(self) -> int:
        return self.kv[0][0].shape[0]


class WanAttention(nn.Module):
    """Projections of Wan's attention: q, k, v, out, and RMSNorm on q and k across all heads."""

    def __init__(self, width: int, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.proj = (nn.Linear(width, width) for _ in range(4))
        self.norm_q, self.norm_k = nn.RMSNorm(width, eps=eps), nn.RMSNorm(width, eps=eps)

    def heads_of(self, x_BND: torch.Tensor) -> torch.Tensor:
        return rearrange(x_BND, "b n (h d) -> b h n d", h=self.heads)

    def out(self, o_BHND: torch.Tensor) -> torch.Tensor:
        return self.proj(rearrange(o_BHND, "b h n d -> b n (h d)"))

    def forward(self, x_BND, rot_q: Rotation, rot_k: Rotation, mask, cache: KVCache | None = None, layer: int = 0):
        """Self-attention over the tokens (and the cache's), through framecast's `attend`."""
        q, k = self.heads_of(self.norm_q(self.q(x_BND))), self.heads_of(self.norm_k(self.k(x_BND)))
        return self.out(attend(q, k, self.heads_of(self.v(x_BND)), rot_q, rot_k, mask, cache, layer))

    def context_kv(self, context_BLD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the context, (B, heads, L, d) each: the same at every denoising step."""
        return self.heads_of(self.norm_k(self.k(context_BLD))), self.heads_of(self.v(context_BLD))

    def cross(self, x_BND: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Cross-attention to every context token (Wan's text is padded with zeros, unmasked)."""
        q = self.heads_of(self.norm_q(self.q(x_BND)))
        return self.out(F.scaled_dot_product_attention(q, *kv))


class WanBlock(nn.Module):
    def __init__(self, c: WanTransformerConfig):
        super().__init__()
        D = c.width
        self.norm1 = LayerNorm32(D, eps=c.eps, elementwise_affine=False)
        self.attn = WanAttention(D, c.num_attention_heads, c.eps)
        self.norm2 = LayerNorm32(D, eps=c.eps) if c.cross_attn_norm else nn.Identity()
        self.cross = WanAttention(D, c.num_attention_heads, c.eps)
        self.norm3 = LayerNorm32(D, eps=c.eps, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(D, c.ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(c.ffn_dim, D))
        self.modulation = nn.Parameter(torch.randn(1, 6, D) / D**0.5)  # per-block offsets of adaLN-single

    def forward(self, x_BND, mod_BG16D, rot_q, rot_k, mask, text_kv, cache: KVCache | None, layer: int):
        """Modulation per group of tokens (G = 1, or one per latent frame), in float32 as Wan."""
        B, N, D = x_BND.shape
        G, dtype = mod_BG16D.shape[1], x_BND.dtype
        per_group = lambda y: y.view(B, G, N // G, D)  # noqa: E731
        shift1, scale1, gate1, shift2, scale2, gate2 = (mod_BG16D + self.modulation.float()).unbind(dim=-2)
        h = modulate(per_group(self.norm1(x_BND)), shift1, scale1).view(B, N, D).to(dtype)
        a = self.attn(h, rot_q, rot_k, mask, cache, layer)
        x_BND = (x_BND.float() + (per_group(a) * gate1).view(B, N, D)).to(dtype)
        x_BND = x_BND + self.cross.cross(self.norm2(x_BND).to(dtype), text_kv)
        h = modulate(per_group(self.norm3(x_BND)), shift2, scale2).view(B, N, D).to(dtype)
        m = self.mlp(h)
        return (x_BND.float() + (per_group(m.float()) * gate2).view(B, N, D)).to(dtype)


class WanTransformer(nn.Module):
    """(B, C, F, H, W) latents + Wan timesteps + text states (B, L, text_dim) -> (B, C_out, F, H, W) velocity."""

    def __init__(self, config: WanTransformerConfig):
        super().__init__()
        c = self.config = config
        D = c.width
        self.patch_embed = nn.Conv3d(c.in_channels, D, kernel_size=c.patch_size, stride=c.patch_size)
        self.time_embed = nn.Sequential(nn.Linear(c.freq_dim, D), nn.SiLU(), nn.Linear(D, D))
        self.time_proj = nn.Sequential(nn.SiLU(), nn.Linear(D, 6 * D))
        self.text_embed = nn.Sequential(nn.Linear(c.text_dim, D), nn.GELU(approximate="tanh"), nn.Linear(D, D))
        self.blocks = nn.ModuleList(WanBlock(c) for _ in range(c.num_layers))
        hd = c.attention_head_dim
        self.rope = RoPE3D(hd, splits=wan_rope_splits(hd), interleaved=True)
        self.norm_out = LayerNorm32(D, eps=c.eps, elementwise_affine=False)
        self.head = nn.Linear(D, c.out_channels * math.prod(c.patch_size))
        self.head_modulation = nn.Parameter(torch.randn(1, 2, D) / D**0.5)
        if c.inject_sample_info:  # SkyReels-V2: id 0 = 16 fps, 1 = 24 fps
            self.fps_embed = nn.Embedding(2, D)
            self.fps_proj = nn.Sequential(nn.Linear(D, D), nn.SiLU(), nn.Linear(D, 6 * D))

    def cast(self, dtype: torch.dtype) -> "WanTransformer":
        """Weights in `dtype` (bf16 on GPUs) but for what Wan keeps in float32: the time embedding,
        the modulation tables and the LayerNorms (diffusers' `_keep_in_fp32_modules`)."""
        self.to(dtype)
        keep = [self.time_embed, *(b.norm2 for b in self.blocks)]
        for module in keep:
            module.float()
        for p in [self.head_modulation, *(b.modulation for b in self.blocks)]:
            p.data = p.data.float()
        return self

    def grid(self, F_: int, H: int, W: int) -> tuple[int, int, int]:
        pt, ph, pw = self.config.patch_size
        if F_ % pt or H % ph or W % pw:
            raise ValueError(f"latents of {F_} frames of {H}x{W} do not split into Wan patches of {pt}x{ph}x{pw}")
        return F_ // pt, H // ph, W // pw

    def timesteps(self, timestep, B: int, frames: int, device) -> torch.Tensor:
        """(B, 1) for one timestep per clip, (B, frames) for one per latent (token-)frame."""
        t = torch.as_tensor(timestep, device=device)
        t = t.expand(B) if t.dim() == 0 else t
        if t.dim() == 1 and t.shape[0] == B:
            return t[:, None]
        if t.dim() == 2 and t.shape == (B, frames):
            return t
        raise ValueError(f"timestep must be (B,) = ({B},) or per latent frame (B, F) = ({B}, {frames}); got {tuple(t.shape)}")

    def embed_text(self, text_BLC: torch.Tensor) -> torch.Tensor:
        """Text encoder states -> the cross-attention context (B, L, width)."""
        w = self.text_embed[0].weight
        return self.text_embed(text_BLC.to(w.dtype))

    @torch.no_grad()
    def prepare_text(self, text_BLC: torch.Tensor) -> "WanText":
        """The text embedded and every block's cross-attention keys and values, computed once for
        all the passes of a generation (the text does not change between steps; CausVid keeps the
        same cross-attention cache). Pass it to `forward` in place of the text states."""
        context = self.embed_text(text_BLC)
        return WanText(kv=[block.cross.context_kv(context) for block in self.blocks])

    def forward(self, x_BCFHW: torch.Tensor, timestep: torch.Tensor, text_BLC: "torch.Tensor | WanText", *,
                mask: MaskSpec | None = None, cache: KVCache | None = None, frame_offset: int = 0,
                attn_mask: torch.Tensor | None = None, fps_id: int | torch.Tensor | None = None) -> torch.Tensor:
        """`timestep`: Wan's, in [0, 1000], (B,) or (B, F / patch frames). `mask`: over latent
        (token-)frames; None is the config's (`mask_spec()`: block-causal in chunks of
        `num_frame_per_block` for CausVid / Self-Forcing / SkyReels-V2-DF, else full).
        `frame_offset`: the (token-)frame index of x's first frame; with a `cache`, x follows the
        cached frames (framecast.nn.attention.KVCache; `WanStream` drives it). `text_BLC`: the text
        encoder's states, or the same prepared once (`prepare_text`) for the steps of a generation. `attn_mask` (N, N)
        bool replaces the mask built from `mask`. `fps_id` (SkyReels-V2 with `inject_sample_info`):
        0 for 16 fps, 1 for 24 fps (the default, as SkyReels-V2's pipelines)."""
        B, C, F_, H, W = x_BCFHW.shape
        if C != self.config.in_channels:
            raise ValueError(f"the Wan transformer expects {self.config.in_channels} latent channels, got {C}")
        grid = self.grid(F_, H, W)
        t_BG = self.timesteps(timestep, B, grid[0], x_BCFHW.device)
        pos = grid_positions(grid, frame_offset, x_BCFHW.device)
        mask = self.config.mask_spec() if mask is None else mask
        rot_q, rot_k, attn_mask, q_pos = attention_inputs(self.rope, pos, mask, cache, None, attn_mask)

        weight = self.patch_embed.weight
        h = self.patch_embed(x_BCFHW.to(weight.dtype)).flatten(2).transpose(1, 2).contiguous()  # (B, N, D)
        sinusoid = timestep_embedding(t_BG, self.config.freq_dim, scale=1.0)
        temb_BGD = self.time_embed(sinusoid.to(self.time_embed[0].weight.dtype)).float()
        proj_BG6D = self.time_proj(temb_BGD.to(self.time_proj[1].weight.dtype)).float()
        if self.config.inject_sample_info:
            proj_BG6D = proj_BG6D + self.fps_modulation(fps_id, B, x_BCFHW.device)[:, None]
        mod_BG16D = rearrange(proj_BG6D, "b g (one six d) -> b g one six d", one=1, six=6)
        text = text_BLC if isinstance(text_BLC, WanText) else None
        context = None if text is not None else self.embed_text(text_BLC)
        for i, block in enumerate(self.blocks):
            kv = text.kv[i] if text is not None else block.cross.context_kv(context)
            h = block(h, mod_BG16D, rot_q, rot_k, attn_mask, kv, cache, i)
        if cache is not None:
            cache.commit(pos, q_pos)
        return self.unpatchify(self.readout(h, temb_BGD), grid)

    def fps_modulation(self, fps_id, B: int, device) -> torch.Tensor:
        """(B, 6 * width): SkyReels-V2's frame-rate term, added to every frame's modulation."""
        ids = torch.as_tensor(1 if fps_id is None else fps_id, dtype=torch.long, device=device).expand(B)
        if not bool(((ids == 0) | (ids == 1)).all()):
            raise ValueError(f"fps_id must be 0 (16 fps) or 1 (24 fps), got {ids.tolist()}")
        return self.fps_proj(self.fps_embed(ids)).float()

    def readout(self, h_BND: torch.Tensor, temb_BGD: torch.Tensor) -> torch.Tensor:
        """Final norm, modulation by the time embedding plus the head's offsets, linear head."""
        B, N, D = h_BND.shape
        G = temb_BGD.shape[1]
        shift, scale = (self.head_modulation.float()[:, None] + temb_BGD[:, :, None]).unbind(dim=2)  # (B, G, D) each
        h = modulate(self.norm_out(h_BND).view(B, G, N // G, D), shift[:, :, None], scale[:, :, None])
        return self.head(h.view(B, N, D).to(h_BND.dtype))

    def unpatchify(self, x_BNP: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        pt, ph, pw = self.config.patch_size
        f, h, w = grid
        return rearrange(x_BNP, "b (f h w) (pf ph pw c) -> b c (f pf) (h ph) (w pw)", f=f, h=h, w=w, pf=pt, ph=ph, pw=pw)


def load_wan_weights(model: WanTransformer, state_dict: dict[str, torch.Tensor], layout: str | None = None) -> None:
    """Load a Wan 2.1 transformer state dict in the original or the diffusers key layout
    (framecast.nn.wan_keys; detected when `layout` is None) into `model`, every key accounted for."""
    renamed = to_framecast(state_dict, layout)
    try:
        missing, unexpected = model.load_state_dict(renamed, strict=False)
    except RuntimeError as e:  # tensors of other shapes: another size of Wan
        raise ValueError(f"the Wan weights do not fit this config: {str(e).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        raise ValueError(f"the Wan weights do not fit this config: missing {sorted(missing)[:3]}, "
                         f"unexpected {sorted(unexpected)[:3]}")


class WanStream:
    """Block-causal generation chunk by chunk with a KV cache (CausVid, Yin et al. 2025; Self
    Forcing, Huang et al. 2025). Each denoising step of a chunk (`predict`) attends to the cached
    keys and values of the chunks before it without changing them; once the chunk is final,
    `commit` runs it once more as context (clean, timestep 0, as CausVid and Self-Forcing re-cache
    it) and appends its keys and values. Frames keep their absolute RoPE positions, as these models
    were trained. `window` > 0 keeps only the last `window` cached latent frames and the first
    `sinks` (a rolling cache for long videos, LongLive): the attention of one pass under
    MaskSpec("block-causal", block=chunk, window=window, sinks=sinks). Frames are latent
    (token-)frames; chunks must follow one another."""

    def __init__(self, model: WanTransformer, text_BLC: torch.Tensor, *, sinks: int = 0, window: int = 0,
                 fps_id: int | None = None):
        if window < 0 or sinks < 0:
            raise ValueError("the rolling window and the sink frames must be >= 0 latent frames")
        self.model, self.text, self.fps_id = model, text_BLC, fps_id
        self.sinks, self.window = sinks, window
        self.cache = KVCache(len(model.blocks), renumber=False)
        self.frames = 0  # latent (token-)frames committed to the cache

    def _run(self, x_BCFHW: torch.Tensor, timestep, writing: bool) -> torch.Tensor:
        self.cache.writing = writing
        try:
            return self.model(x_BCFHW, timestep, self.text, cache=self.cache, frame_offset=self.frames, fps_id=self.fps_id)
        finally:
            self.cache.writing = False

    def predict(self, x_BCFHW: torch.Tensor, timestep) -> torch.Tensor:
        """The velocity for the chunk that follows the committed frames; the cache is unchanged."""
        return self._run(x_BCFHW, timestep, writing=False)

    def commit(self, x_BCFHW: torch.Tensor, timestep=0) -> torch.Tensor:
        """Append the chunk to the cache (then roll the window); returns that pass's velocity."""
        out = self._run(x_BCFHW, timestep, writing=True)
        self.frames += x_BCFHW.shape[2] // self.model.config.patch_size[0]
        ids = self.cache.frame_ids()
        if self.window and ids.numel() > self.sinks + self.window:
            self.cache.keep_frames(torch.cat([ids[: self.sinks], ids[-self.window:]]))
        return out
