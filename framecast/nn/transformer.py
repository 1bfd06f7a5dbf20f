"""The space-time transformer every family shares (DiT blocks with adaLN-Zero).

A block: self-attention over all (t, y, x) tokens with a frame mask and 3-D RoPE,
cross-attention to text, an MLP. The noise level conditions every block through
adaLN-Zero (Peebles & Xie 2023), in the parameter-light "adaLN-single" form of
PixArt-alpha: one shared MLP maps the condition to 6 modulation vectors and each
block adds its own learned offsets. The condition is given per token-frame, so one
backbone serves full-sequence diffusion (one level for all frames) and diffusion
forcing (a level per frame).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from einops import rearrange
from torch import nn

from framecast.nn.attention import CrossAttention, KVCache, MaskSpec, RoPE3D, SelfAttention, attention_inputs, grid_positions, teacher_forcing_mask
from framecast.nn.step_cache import StepCache
from framecast.text.encoder import TextEmbedding


@dataclass(kw_only=True)
class TransformerConfig:
    channels: int = 3  # values per pixel of the representation (3 for RGB pixels)
    patch_size: int = 4  # pixels per patch side
    patch_frames: int = 2  # frames per patch (temporal patching)
    width: int = 256
    depth: int = 8
    heads: int = 4
    mlp_ratio: float = 4.0
    context_width: int = 128  # width of the text encoder's tokens
    out_channels: int = 0  # values per pixel of the output (0 = channels; a vocabulary for token models)

    @property
    def patch_values(self) -> int:
        return self.patch_frames * self.patch_size**2 * self.channels

    @property
    def out_patch_values(self) -> int:
        return self.patch_frames * self.patch_size**2 * (self.out_channels or self.channels)

    def to_dict(self) -> dict:
        return asdict(self)


# Size recipes (DiT-style one-liners). patch_values stays <= width: docs/experiments.md, "Pixel-space patches".
def transformer_tiny(**kw) -> TransformerConfig:
    return TransformerConfig(**{**dict(width=32, depth=2, heads=2, context_width=32), **kw})


def transformer_small(**kw) -> TransformerConfig:
    return TransformerConfig(**{**dict(width=256, depth=8, heads=4), **kw})


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding (cos, sin) of noise levels in [0, 1], scaled by 1000 as in DiT
    (`scale=1` for timesteps already in [0, 1000], as Wan's)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * scale)[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class Block(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(c.width, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(c.width, c.heads)
        self.norm2 = nn.LayerNorm(c.width, eps=1e-6)
        self.cross = CrossAttention(c.width, c.context_width, c.heads)
        self.norm3 = nn.LayerNorm(c.width, elementwise_affine=False, eps=1e-6)
        hidden = int(c.width * c.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(c.width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, c.width))
        self.modulation = nn.Parameter(torch.zeros(6, c.width))  # per-block offsets of adaLN-single

    def forward(self, x_BND, mod_BF16D, rot_q, rot_k, mask, text: TextEmbedding, cache: KVCache | None, layer: int):
        B, N, D = x_BND.shape
        F_ = mod_BF16D.shape[1]
        # Modulation is per token-frame: view tokens as (B, F, tokens per frame, D) and broadcast.
        per_frame = lambda y: y.view(B, F_, -1, D)  # noqa: E731
        shift1, scale1, gate1, shift2, scale2, gate2 = (mod_BF16D + self.modulation).unbind(dim=-2)
        a = self.attn(modulate(per_frame(self.norm1(x_BND)), shift1, scale1).view(B, N, D), rot_q, rot_k, mask, cache, layer)
        x_BND = x_BND + (per_frame(a) * gate1).view(B, N, D)
        x_BND = x_BND + self.cross(self.norm2(x_BND), text.tokens_BLD, text.mask_BL)
        m = self.mlp(modulate(per_frame(self.norm3(x_BND)), shift2, scale2).view(B, N, D))
        return x_BND + (per_frame(m) * gate2).view(B, N, D)


class SpaceTimeTransformer(nn.Module):
    """(B, T, C, H, W) representation + per-frame noise level + text -> (B, T, C, H, W) prediction."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        c = self.config = config
        self.patch_embed = nn.Linear(c.patch_values, c.width)
        self.cond_embed = nn.Sequential(nn.Linear(c.width, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        self.text_pool = nn.Linear(c.context_width, c.width)
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(c.width, 6 * c.width))
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.depth))
        self.rope = RoPE3D(c.width // c.heads)
        self.final_norm = nn.LayerNorm(c.width, elementwise_affine=False, eps=1e-6)
        self.final_adaln = nn.Sequential(nn.SiLU(), nn.Linear(c.width, 2 * c.width))
        self.head = nn.Linear(c.width, c.out_patch_values)
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        # adaLN-Zero: every residual branch and the output start at zero.
        for m in (self.adaln[-1], self.final_adaln[-1], self.head):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    # --- token layout -------------------------------------------------------------------
    def grid(self, T: int, H: int, W: int) -> tuple[int, int, int]:
        c = self.config
        if T % c.patch_frames or H % c.patch_size or W % c.patch_size:
            raise ValueError(
                f"a clip of {T} frames of {H}x{W} does not split into patches of {c.patch_frames}x{c.patch_size}x{c.patch_size}"
            )
        return T // c.patch_frames, H // c.patch_size, W // c.patch_size

    def patchify(self, x_BTCHW: torch.Tensor) -> torch.Tensor:
        c = self.config
        return rearrange(
            x_BTCHW, "b (t pt) c (h ph) (w pw) -> b (t h w) (pt ph pw c)", pt=c.patch_frames, ph=c.patch_size, pw=c.patch_size
        )

    def unpatchify(self, x_BNP: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        c = self.config
        t, h, w = grid
        return rearrange(
            x_BNP,
            "b (t h w) (pt ph pw c) -> b (t pt) c (h ph) (w pw)",  # c: output channels
            t=t, h=h, w=w, pt=c.patch_frames, ph=c.patch_size, pw=c.patch_size,
        )

    @staticmethod
    def positions(grid: tuple[int, int, int], frame_offset: int = 0, device=None) -> torch.Tensor:
        """(N, 3) (t, y, x) of every token, frame-major."""
        return grid_positions(grid, frame_offset, device)

    # --- forward --------------------------------------------------------------------------
    def forward(
        self,
        x_BTCHW: torch.Tensor,
        noise_level_BF: torch.Tensor,
        text: TextEmbedding,
        *,
        mask: MaskSpec = MaskSpec(),
        cache: KVCache | None = None,
        frame_offset: int = 0,
        step_cache: StepCache | None = None,
    ) -> torch.Tensor:
        """noise_level_BF: (B, F) in [0, 1], one level per token-frame (F = T / patch_frames),
        or (B,) for one level for the whole clip. `frame_offset`: the token-frame index of the
        first frame of x. With a `cache`, x follows the cached frames (see KVCache). With a
        `step_cache`, a pass may reuse the later blocks' residual of an earlier one (StepCache)."""
        B, T, C, H, W = x_BTCHW.shape
        if C != self.config.channels:
            raise ValueError(f"the backbone expects {self.config.channels} channels, got {C}")
        grid = self.grid(T, H, W)
        if noise_level_BF.dim() == 1:
            noise_level_BF = noise_level_BF[:, None].expand(B, grid[0])
        pos = self.positions(grid, frame_offset, x_BTCHW.device)
        out = self.forward_tokens(self.patchify(x_BTCHW), pos, noise_level_BF, text, mask=mask, cache=cache, grid_hw=grid[1:],
                                  step_cache=step_cache)
        return self.unpatchify(out, grid)

    def forward_teacher_forced(self, context_BTCHW: torch.Tensor, x_BTCHW: torch.Tensor, context_level_BF: torch.Tensor,
                               level_BF: torch.Tensor, text: TextEmbedding, block: int = 1) -> torch.Tensor:
        """Teacher forcing for causal frame models in one pass: the sequence [context ; x] (two
        copies of the same clip, e.g. clean and corrupted) under `teacher_forcing_mask`, so
        token-frame f of x sees token-frames < f of the context and itself, exactly what
        frame-by-frame generation with a KV cache computes for it (`block` token-frames generated
        together: block-causal). Returns the prediction for x."""
        B, T, C, H, W = x_BTCHW.shape
        grid = self.grid(T, H, W)
        pos = self.positions(grid, 0, x_BTCHW.device)
        tokens = torch.cat([self.patchify(context_BTCHW), self.patchify(x_BTCHW)], 1)
        out = self.forward_tokens(tokens, torch.cat([pos, pos]), torch.cat([context_level_BF, level_BF], 1), text,
                                  attn_mask=teacher_forcing_mask(pos[:, 0] // block))
        return self.unpatchify(out[:, pos.shape[0]:], grid)

    def forward_tokens(
        self,
        x_BNP: torch.Tensor,
        pos_N3: torch.Tensor,
        noise_level_BG: torch.Tensor,
        text: TextEmbedding,
        *,
        mask: MaskSpec = MaskSpec(),
        cache: KVCache | None = None,
        grid_hw: tuple[int, int] | None = None,
        attn_mask: torch.Tensor | None = None,
        step_cache: StepCache | None = None,
    ) -> torch.Tensor:
        """Any set of tokens: x_BNP (B, N, patch values) at absolute positions pos_N3 (t, y, x).
        The condition is given per group of N / G consecutive tokens (a token-frame, or G = 1 for
        one condition for all). `grid_hw` (tokens per frame side) orders tokens for the
        token-causal mask. `attn_mask` (N, N) bool replaces the mask built from `mask` (e.g. a
        teacher-forcing layout). `step_cache` may skip blocks 1.. of a pass that writes no KV cache
        (framecast.nn.step_cache). Returns (B, N, out values)."""
        B, N, _ = x_BNP.shape
        G = noise_level_BG.shape[1]
        if N % G:
            raise ValueError(f"{N} tokens do not split into {G} condition groups")
        rot_q, rot_k, attn_mask, q_pos = attention_inputs(self.rope, pos_N3, mask, cache, grid_hw, attn_mask)

        h = self.patch_embed(x_BNP)  # (B, N, D)
        cond_BGD = self.condition(noise_level_BG, text, h.dtype)
        mod_BG16D = rearrange(self.adaln(cond_BGD), "b g (one six d) -> b g one six d", one=1, six=6)
        run = lambda i, h_BND: self.blocks[i](h_BND, mod_BG16D, rot_q, rot_k, attn_mask, text, cache, i)  # noqa: E731
        if step_cache is None or (cache is not None and cache.writing):  # a KV-cache write keeps every block's keys: never skipped
            for i in range(len(self.blocks)):
                h = run(i, h)
        else:
            h = step_cache(run, len(self.blocks), h, key=(tuple(h.shape), 0 if cache is None else len(cache)))
        if cache is not None:
            cache.commit(pos_N3, q_pos)
        return self.readout(h, cond_BGD)

    def condition(self, noise_level_BG: torch.Tensor, text: TextEmbedding, dtype=torch.float32) -> torch.Tensor:
        """(B, G, D): noise level embedding + pooled text, per condition group."""
        cond_BGD = self.cond_embed(timestep_embedding(noise_level_BG, self.config.width).to(dtype))
        return cond_BGD + self.text_pool(text.pooled_BD)[:, None]

    def readout(self, h_BND: torch.Tensor, cond_BGD: torch.Tensor) -> torch.Tensor:
        """Final norm, adaLN modulation and output head: residual stream -> patch values. The
        generation lens applies it to every layer's stream (the "logit lens")."""
        B, N, _ = h_BND.shape
        G = cond_BGD.shape[1]
        shift, scale = rearrange(self.final_adaln(cond_BGD), "b g (one two d) -> two b g one d", one=1, two=2)
        h = modulate(self.final_norm(h_BND).view(B, G, N // G, -1), shift, scale).view(B, N, -1)
        return self.head(h)
