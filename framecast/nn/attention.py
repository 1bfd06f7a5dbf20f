"""Attention through F.scaled_dot_product_attention: masks over frames, RoPE, a KV cache.

Tokens are laid out frame-major (t, y, x), so every mask kind is a function of the
frame index of the query and of the key:

    full            every token sees every token
    frame-causal    a token sees its own frame and earlier ones (CausVid, FAR)
    block-causal    frames grouped in blocks of `block` frames; a block sees itself and earlier blocks
                    (with `window`: only the last `window` earlier frames and the first `sinks`,
                    what a rolling KV cache with sink frames keeps; Self-Forcing, LongLive)
    sliding-window  frame-causal, limited to the last `window` frames (rolling / long video)
    causal          token by token in raster order (t, y, x): autoregressive token models
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

MASK_KINDS = ("full", "frame-causal", "block-causal", "sliding-window", "causal")
IS_CAUSAL = "is_causal"  # a mask that is exactly lower-triangular: SDPA's `is_causal`, whose kernels skip the masked half


@dataclass(frozen=True)
class MaskSpec:
    kind: str = "full"
    block: int = 1  # frames per block, for block-causal
    window: int = 0  # frames, for sliding-window; for block-causal, earlier frames kept (0 = all)
    sinks: int = 0  # block-causal with a window: first frames always visible (attention sinks)

    def __post_init__(self):
        if self.kind not in MASK_KINDS:
            raise ValueError(f"unknown attention mask '{self.kind}'; choose one of {', '.join(MASK_KINDS)}")
        if self.kind == "block-causal" and self.block < 1:
            raise ValueError("block-causal attention needs block >= 1 frames")
        if self.kind == "sliding-window" and self.window < 1:
            raise ValueError("sliding-window attention needs window >= 1 frames")
        if self.window < 0 or self.sinks < 0:
            raise ValueError("attention window and sink frames must be >= 0")


def attention_mask(spec: MaskSpec, q_pos: torch.Tensor, k_pos: torch.Tensor, grid_hw: tuple[int, int] | None) -> torch.Tensor | str | None:
    """(Nq, Nk) bool from (t, y, x) positions; `causal` orders tokens in raster order. A causal
    mask over one sequence already in raster order (training) is IS_CAUSAL instead."""
    if spec.kind != "causal":
        return frame_mask(spec, q_pos[:, 0], k_pos[:, 0])
    if grid_hw is None:
        raise ValueError("the token-causal mask needs the token grid (grid_hw)")
    h, w = grid_hw
    order = lambda p: (p[:, 0] * h + p[:, 1]) * w + p[:, 2]  # noqa: E731
    q, k = order(q_pos), order(k_pos)
    if q.shape[0] > 1 and torch.equal(q, k) and bool((q[1:] > q[:-1]).all()):
        return IS_CAUSAL
    return k[None, :] <= q[:, None]


def frame_mask(spec: MaskSpec, q_frames: torch.Tensor, k_frames: torch.Tensor) -> torch.Tensor | None:
    """(Nq, Nk) bool, True where query may attend to key; None means no mask (full)."""
    if spec.kind == "full":
        return None
    q, k = q_frames[:, None], k_frames[None, :]
    if spec.kind == "frame-causal":
        return k <= q
    if spec.kind == "block-causal":
        visible = (k // spec.block) <= (q // spec.block)
        if spec.window:  # a rolling KV cache: the block itself, the last `window` earlier frames, the sinks
            start = (q // spec.block) * spec.block
            visible &= (k >= start - spec.window) | (k < spec.sinks)
        return visible
    return (k <= q) & (k > q - spec.window)


def grid_positions(grid: tuple[int, int, int], frame_offset: int = 0, device=None) -> torch.Tensor:
    """(N, 3) (t, y, x) of every token of a (t, h, w) grid, frame-major, frames from `frame_offset`."""
    t, h, w = grid
    tt, yy, xx = torch.meshgrid(
        torch.arange(t, device=device) + frame_offset, torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
    )
    return torch.stack([tt, yy, xx], -1).reshape(-1, 3)


def teacher_forcing_mask(frames_N: torch.Tensor) -> torch.Tensor:
    """(2N, 2N) bool for a sequence [clean copy ; corrupted copy] of the same N tokens (frame
    indices `frames_N`): clean tokens attend frame-causally among the clean; a corrupted token
    attends to the clean tokens of earlier frames and to the corrupted tokens of its own frame.
    One pass then trains every frame as it is generated: from clean context (teacher forcing
    for causal frame models, as in CausVid and Self Forcing's baselines)."""
    q, k = frames_N[:, None], frames_N[None, :]
    clean = k <= q
    return torch.cat([torch.cat([clean, torch.zeros_like(clean)], 1), torch.cat([k < q, k == q], 1)], 0)


class Rotation(NamedTuple):
    """cos and sin of the RoPE angles, each (N, head_dim), in the layout of the rotated pairs:
    halves (x_i, x_{i+D/2}) as GPT-NeoX, or interleaved (x_2i, x_2i+1) as the original RoPE and Wan."""

    cos: torch.Tensor
    sin: torch.Tensor
    interleaved: bool = False


class RoPE3D(nn.Module):
    """Rotary position embedding over (t, y, x): the head dim is split between the three axes.

    `splits`: frequencies per axis (t, y, x), summing to head_dim / 2; by default a quarter for
    time and the rest shared by y and x. Axis a with n frequencies turns at theta^(-j/n)."""

    def __init__(self, head_dim: int, theta: float = 10_000.0, *, splits: tuple[int, int, int] | None = None,
                 interleaved: bool = False):
        super().__init__()
        assert head_dim % 2 == 0
        half = head_dim // 2
        if splits is None:
            n_t = half // 4
            n_y = (half - n_t) // 2
            splits = (n_t, n_y, half - n_t - n_y)
        assert sum(splits) == half
        self.splits, self.interleaved = tuple(splits), interleaved
        for name, n in zip("tyx", self.splits):
            self.register_buffer(f"freq_{name}", theta ** (-torch.arange(n, dtype=torch.float32) / max(n, 1)), persistent=False)

    def angles(self, pos_N3: torch.Tensor) -> torch.Tensor:
        """(N, 3) integer positions -> (N, head_dim/2) angles."""
        pos = pos_N3.float()
        return torch.cat([pos[:, 0:1] * self.freq_t, pos[:, 1:2] * self.freq_y, pos[:, 2:3] * self.freq_x], dim=-1)

    def rotation(self, pos_N3: torch.Tensor) -> Rotation:
        """(cos, sin), each (N, head_dim), computed once per forward and shared by every layer."""
        a = self.angles(pos_N3)
        a = a.repeat_interleave(2, dim=-1) if self.interleaved else torch.cat([a, a], dim=-1)
        return Rotation(a.cos(), a.sin(), self.interleaved)


def apply_rope(x_BHND: torch.Tensor, rotation: Rotation) -> torch.Tensor:
    cos, sin = rotation.cos.to(x_BHND.dtype), rotation.sin.to(x_BHND.dtype)
    if rotation.interleaved:
        x1, x2 = x_BHND.unflatten(-1, (-1, 2)).unbind(-1)
        turned = torch.stack([-x2, x1], dim=-1).flatten(-2)
    else:
        x1, x2 = x_BHND.chunk(2, dim=-1)
        turned = torch.cat([-x2, x1], dim=-1)
    return x_BHND * cos + turned * sin


class KVCache:
    """Keys and values of already-seen tokens, one entry per layer, with their (t, y, x) positions.

    `writing=True`: a forward pass appends its keys/values (encode context once).
    `writing=False`: a forward pass attends to the cache without changing it (every
    denoising step of the next frame or chunk; CausVid).
    `write_limit=n` with `writing`: the pass appends its first n tokens only, so one pass can
    encode new context frames and denoise the frames after them (a stream's fused write).

    With RoPE, attention depends only on position differences, so the cached frames are numbered
    consecutively in the order they were seen (their rank), and new frames follow them. Without
    eviction that is the absolute numbering; after a rolling window drops frames (`keep_frames`),
    the kept ones (attention sinks first, then the recent window) are re-numbered so every
    difference stays in the range seen in training (StreamingLLM's positions within the cache,
    Xiao et al. 2024).

    Keys are stored already rotated, at the positions in `rot_pos`; when a renumbering moves them,
    `align` turns them by the difference once (rotations add), instead of every pass rotating
    every cached key. Without autograd, keys and values live in buffers that grow by doubling and
    a pass writes its new ones in place: a new token costs the same whatever the length of the
    cache, but for attending to it (raster decoding makes one token a pass).

    `renumber=False` keeps every frame at its absolute index instead, as the block-causal Wan
    models (CausVid, Self-Forcing, LongLive) were trained and sampled: a query then sees its sink
    frames at their true distance.
    """

    def __init__(self, depth: int, *, renumber: bool = True):
        self.k: list[torch.Tensor | None] = [None] * depth  # (B, H, capacity, D), rotated
        self.v: list[torch.Tensor | None] = [None] * depth
        self.pos: torch.Tensor | None = None  # (N_cached, 3) absolute (t, y, x) of every cached token
        self.rot_pos: torch.Tensor | None = None  # (N_cached, 3) the positions their keys are rotated at
        self.writing = True
        self.write_limit: int | None = None  # tokens of a writing pass that are kept (None: all)
        self.renumber = renumber

    def __len__(self) -> int:
        return 0 if self.pos is None else int(self.pos.shape[0])

    def frame_ids(self) -> torch.Tensor:
        """Sorted absolute indices of the cached frames."""
        return torch.empty(0, dtype=torch.long) if self.pos is None else torch.unique(self.pos[:, 0])

    @property
    def num_frames(self) -> int:
        return int(self.frame_ids().numel())

    def virtual_positions(self, new_pos_N3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions of (cached + new) keys and of the new queries, with every frame index
        replaced by its rank among the frames present (cached or new), unless the cache keeps
        absolute positions."""
        k_pos = torch.cat([self.pos.to(new_pos_N3.device), new_pos_N3])
        if not self.renumber:
            return k_pos, new_pos_N3
        frames = torch.unique(k_pos[:, 0])
        ranks = torch.searchsorted(frames, k_pos[:, 0].contiguous())
        k_pos = torch.cat([ranks[:, None], k_pos[:, 1:]], dim=1)
        return k_pos, k_pos[-new_pos_N3.shape[0]:]

    def align(self, cached_pos_N3: torch.Tensor, rope: "RoPE3D") -> None:
        """Turn the cached keys to `cached_pos_N3` (their positions in this pass) if they moved."""
        old = self.rot_pos.to(cached_pos_N3.device)
        if torch.equal(old, cached_pos_N3):
            return
        turn, n = rope.rotation(cached_pos_N3 - old), len(self)
        for i, k in enumerate(self.k):
            if k is not None:  # a new tensor, not in place: the buffer regrows on the next write
                self.k[i], self.v[i] = apply_rope(k[:, :, :n], turn), self.v[i][:, :, :n]
        self.rot_pos = cached_pos_N3

    def attend(self, layer: int, k_BHND: torch.Tensor, v_BHND: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cached keys/values followed by this pass's (keys rotated); stored when writing."""
        past_k, past_v, n, m = self.k[layer], self.v[layer], len(self), k_BHND.shape[2]
        if torch.is_grad_enabled() and (k_BHND.requires_grad or v_BHND.requires_grad):  # keep autograd's graph whole
            if past_k is not None:
                k_BHND, v_BHND = torch.cat([past_k[:, :, :n], k_BHND], 2), torch.cat([past_v[:, :, :n], v_BHND], 2)
            if self.writing:
                keep = n + (m if self.write_limit is None else self.write_limit)
                self.k[layer], self.v[layer] = k_BHND[:, :, :keep], v_BHND[:, :, :keep]
            return k_BHND, v_BHND
        if past_k is None or past_k.shape[2] < n + m or past_k.dtype != k_BHND.dtype:
            B, H, _, D = k_BHND.shape
            cap = max(64, 2 * (n + m))
            grown_k, grown_v = k_BHND.new_empty(B, H, cap, D), v_BHND.new_empty(B, H, cap, v_BHND.shape[3])
            if past_k is not None:
                grown_k[:, :, :n], grown_v[:, :, :n] = past_k[:, :, :n], past_v[:, :, :n]
            past_k, past_v = self.k[layer], self.v[layer] = grown_k, grown_v
        past_k[:, :, n : n + m], past_v[:, :, n : n + m] = k_BHND, v_BHND  # past the kept tokens: scratch
        return past_k[:, :, : n + m], past_v[:, :, : n + m]

    def commit(self, new_pos_N3: torch.Tensor, rot_pos_N3: torch.Tensor) -> None:
        """After a writing pass: its tokens' absolute positions and those their keys were rotated at."""
        if self.writing:
            cat = lambda a, b: b if a is None else torch.cat([a, b.to(a.device)])  # noqa: E731
            keep = slice(None, self.write_limit)
            self.pos, self.rot_pos = cat(self.pos, new_pos_N3[keep]), cat(self.rot_pos, rot_pos_N3[keep])

    def keep_frames(self, frame_ids: torch.Tensor) -> None:
        """Keep only the cached tokens of these frames (a rolling window with sinks)."""
        if self.pos is None:
            return
        index = torch.isin(self.pos[:, 0], frame_ids.to(self.pos.device)).nonzero().squeeze(1)
        for i in range(len(self.k)):
            if self.k[i] is not None:
                self.k[i], self.v[i] = self.k[i][:, :, index], self.v[i][:, :, index]
        self.pos, self.rot_pos = self.pos[index], self.rot_pos[index]


def attention_inputs(rope: RoPE3D, pos_N3: torch.Tensor, mask: MaskSpec, cache: KVCache | None,
                     grid_hw: tuple[int, int] | None = None, attn_mask: torch.Tensor | None = None):
    """What every self-attention layer of one pass needs: (rot_q, rot_k, mask, q_pos). With a
    cache, the new tokens follow the cached ones (their keys come rotated already, so rot_k is the
    new keys' own, rot_q); pass q_pos to `cache.commit` after the pass. `attn_mask` (Nq, Nk) bool
    replaces the mask built from `mask`."""
    if cache is not None and len(cache):
        k_pos, q_pos = cache.virtual_positions(pos_N3)
        cache.align(k_pos[: len(cache)], rope)
    else:
        q_pos = k_pos = pos_N3
    rot_q = rope.rotation(q_pos)
    rot_k = rot_q if k_pos is q_pos or cache is not None else rope.rotation(k_pos)
    if attn_mask is None:
        attn_mask = attention_mask(mask, q_pos, k_pos, grid_hw)
    elif cache is not None:
        raise ValueError("an explicit attention mask cannot be combined with a KV cache")
    return rot_q, rot_k, attn_mask, q_pos


def attend(q_BHND: torch.Tensor, k_BHND: torch.Tensor, v_BHND: torch.Tensor, rot_q: Rotation, rot_k: Rotation,
           mask: torch.Tensor | str | None, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
    """RoPE, the KV cache and SDPA for one self-attention layer: (B, H, N, D) -> (B, H, N, D)."""
    q, k = apply_rope(q_BHND, rot_q), apply_rope(k_BHND, rot_k)  # with a cache, rot_k is the new keys' own (rot_q)
    v = v_BHND
    if cache is not None:  # the cached keys are stored rotated already
        k, v = cache.attend(layer, k, v)
    if isinstance(mask, str):  # IS_CAUSAL
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        assert width % heads == 0
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(
        self,
        x_BND: torch.Tensor,
        rot_q: Rotation,
        rot_k: Rotation,
        mask: torch.Tensor | str | None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x_BND), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        # QK-norm (parameter-free RMS) keeps attention logits bounded in bf16.
        q, k = F.rms_norm(q, q.shape[-1:]), F.rms_norm(k, k.shape[-1:])
        out = attend(q, k, v, rot_q, rot_k, mask, cache, layer)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class CrossAttention(nn.Module):
    def __init__(self, width: int, context_width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(context_width, 2 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x_BND: torch.Tensor, context_BLC: torch.Tensor, context_mask_BL: torch.Tensor) -> torch.Tensor:
        q = rearrange(self.q(x_BND), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(self.kv(context_BLC), "b l (two h d) -> two b h l d", two=2, h=self.heads)
        mask = context_mask_BL[:, None, None, :]  # (B, 1, 1, L); every row has a real token
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))
