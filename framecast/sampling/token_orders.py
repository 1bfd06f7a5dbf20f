"""Token decoding orders: stateless functions of a logits function, the categorical head's samplers.

An order decides which tokens each forward pass draws and what the pass sees; the model behind
the logits function decides how a pass is computed (a KV cache, a patching backbone, guidance).
Every order draws through `sample_logits`, one call per pass (per token for the diagonal order)
in a fixed order, so one seed gives one clip.

    raster    one token a pass in raster order (t, y, x)
    diagonal  diagonal decoding (DiagD), training-free on a raster model: every started frame
              emits one token a pass, frame t running `delay` tokens behind frame t - 1
    set       token-frame by token-frame, each in K passes that commit the most confident tokens
              on a cosine schedule (MaskGIT, Chang et al. 2022), then Gibbs sweeps that draw every
              token again given all the others

A set model (masked prediction inside a token-frame, token-frames causal with a KV cache) also
decodes in a fixed order, one rank a pass (`order_ranks`, `iter_ranked`): raster ranks make it
a next-token model (token i given tokens < i), diagonal ranks draw one diagonal of a frame a
pass (y * stride + x), frame t `delay` passes behind frame t - 1.

Codes are (B, N) token ids in raster order, -1 where a token is still to be drawn; `known` counts
the leading tokens that are given and held. Each order is a generator (`iter_*`) that yields
`(done, codes_BN)` whenever more whole frames become final (`done`: the leading tokens that will not
change; `codes_BN` the codes so far, drawn on in place), so a caller can decode and show frames as
they are made; `decode_*` runs it to its end and returns the codes. `sample` holds `sample_logits`'s options
(temperature, top_k, top_p, generator).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Protocol

import torch

from framecast.sampling.decoding import sample_logits

TokenLogitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""`(ids_BJ, at_J) -> logits (B, J, V)`: next-token logits of the tokens at raster indices `at_J`,
token j reading `ids_BJ[:, j]` (the code before it; [start] at a frame's first token) under the
token-causal mask. A cached function keeps the tokens of its earlier calls (a KV cache)."""


class FrameLogits(Protocol):
    """The set order's model: logits of one token-frame given the finished token-frames before it."""

    def __call__(self, ids_Bn: torch.Tensor, level_B1: torch.Tensor, f: int) -> torch.Tensor:
        """Token-frame f's ids ([mask] where unknown) and its masked share -> logits (B, n, V)."""

    def commit(self, ids_BM: torch.Tensor, f: int) -> None:
        """Whole token-frames from f on are finished: they are clean context of later calls."""


def raster_inputs(codes_BN: torch.Tensor, per_frame: int, start_id: int) -> torch.Tensor:
    """Input ids for next-token prediction: token i reads code i - 1; frame starts read [start], so
    a frame can begin before the previous one is finished (what diagonal decoding needs)."""
    ids_BN = torch.roll(codes_BN, 1, dims=1)
    ids_BN[:, ::per_frame] = start_id
    return ids_BN


def _previous_ids(codes_BN: torch.Tensor, at: list[int], per_frame: int, start_id: int) -> torch.Tensor:
    """The input ids (B, J) of the tokens at raster indices `at` (see `raster_inputs`)."""
    B = codes_BN.shape[0]
    return torch.stack([torch.full((B,), start_id, device=codes_BN.device) if i % per_frame == 0 else codes_BN[:, i - 1]
                        for i in at], 1)


def diagonal_schedule(frames: int, per_frame: int, delay: int) -> list[list[int]]:
    """DiagD's passes: at pass s, frame t emits its token s - t * delay (raster order inside the
    frame), so frame t runs `delay` tokens behind frame t - 1. Pass s -> the raster indices (from
    the first frame drawn) of its tokens, earlier frames first; every token appears once."""
    if delay < 1:
        raise ValueError(f"the diagonal delay must be >= 1 token, got {delay}")
    if frames < 1:
        return []
    return [[t * per_frame + s - t * delay for t in range(frames) if 0 <= s - t * delay < per_frame]
            for s in range(per_frame + (frames - 1) * delay)]


def order_ranks(order: str, frames: int, grid_hw: tuple[int, int], delay: int | torch.Tensor = 1,
                stride: int | torch.Tensor = 1) -> torch.Tensor:
    """The pass (from 0) at which each token of a token-frame (`frames` x h x w tokens, raster
    order) is drawn when a set model decodes it in `order`, one pass at a time:
        raster    token i at pass i: next-token prediction in raster order (t, y, x)
        diagonal  DiagD inside the token-frame: token (y, x) of a frame at pass y * stride + x, so
                  a pass draws the tokens of one diagonal (stride 1: an anti-diagonal; a larger
                  stride, a steeper one whose tokens sit further apart), frame t running `delay`
                  passes behind frame t - 1
    `delay` and `stride` may be tensors (..., 1): the ranks then broadcast to (..., n)."""
    h, w = grid_hw
    t_, y_, x_ = (a.reshape(-1) for a in torch.meshgrid(torch.arange(frames), torch.arange(h), torch.arange(w), indexing="ij"))
    if order == "raster":
        return torch.arange(frames * h * w)
    if order != "diagonal":
        raise ValueError(f"no ranks for decoding order '{order}'; choose raster or diagonal")
    for name, value in (("delay", delay), ("stride", stride)):
        if isinstance(value, int) and value < 1:
            raise ValueError(f"the diagonal {name} must be >= 1, got {value}")
    return y_ * stride + x_ + t_ * delay


def masked_after_pass(unknown: int, k: int, passes: int) -> int:
    """MaskGIT's cosine schedule: how many of a token-frame's `unknown` tokens are still masked
    after pass k (0-based) of `passes`: floor(unknown * cos(pi/2 * (k + 1) / passes)), 0 after the
    last pass."""
    return math.floor(unknown * math.cos(math.pi / 2 * (k + 1) / passes))


def patch_slots(frames: int, grid_hw: tuple[int, int], patch_size: int) -> torch.Tensor:
    """(frames * h * w,) each token's place inside its backbone patch (frames x patch_size x
    patch_size tokens), raster order: a Gibbs sweep redraws one place of every patch a pass."""
    t_, y_, x_ = torch.meshgrid(torch.arange(frames), torch.arange(grid_hw[0]), torch.arange(grid_hw[1]), indexing="ij")
    return ((t_ * patch_size + y_ % patch_size) * patch_size + x_ % patch_size).reshape(-1)


def iter_raster(logits_fn: TokenLogitsFn, codes_BN: torch.Tensor, *, known: int, per_frame: int, start_id: int,
                sample: dict | None = None, cached: bool = True) -> Iterator[tuple[int, torch.Tensor]]:
    """Raster order: one token a pass, yielding `(done, codes_BN)` after each frame's last token
    (`done`: the leading tokens that are final). `cached`: `logits_fn` keeps earlier tokens (a KV
    cache), so the given tokens go in one pass and every later pass feeds one token; otherwise
    every pass feeds the whole prefix again."""
    codes_BN, opts, dev = codes_BN.clone(), sample or {}, codes_BN.device
    if cached and known:  # the given tokens, one pass
        logits_fn(raster_inputs(codes_BN[:, :known], per_frame, start_id), torch.arange(known, device=dev))
    for i in range(known, codes_BN.shape[1]):
        if cached:
            logits_BV = logits_fn(_previous_ids(codes_BN, [i], per_frame, start_id), torch.tensor([i], device=dev))[:, -1]
        else:
            ids_BJ = raster_inputs(codes_BN[:, : i + 1].clamp(min=0), per_frame, start_id)
            logits_BV = logits_fn(ids_BJ, torch.arange(i + 1, device=dev))[:, -1]
        codes_BN[:, i] = sample_logits(logits_BV, **opts)
        if (i + 1) % per_frame == 0:
            yield i + 1, codes_BN


def decode_raster(logits_fn: TokenLogitsFn, codes_BN: torch.Tensor, **kw) -> torch.Tensor:
    """The raster order's codes (B, N) once every token is drawn (see `iter_raster`)."""
    return _last(iter_raster(logits_fn, codes_BN, **kw), codes_BN)


def _last(steps: Iterator[tuple[int, torch.Tensor]], codes_BN: torch.Tensor) -> torch.Tensor:
    """Run an order's iterator to its end -> its final codes (a copy of `codes_BN` if it drew nothing)."""
    out_BN = codes_BN.clone()
    for _, out_BN in steps:
        pass
    return out_BN


def iter_diagonal(logits_fn: TokenLogitsFn, codes_BN: torch.Tensor, *, known: int, per_frame: int, start_id: int,
                  delay: int, sample: dict | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """Diagonal decoding (DiagD) on a raster model with a cached `logits_fn`: the passes of
    `diagonal_schedule`, given frames (`known` a whole number of them) fed first in one pass.
    Yields `(done, codes_BN)` whenever the earliest unfinished frame gets its last token (frames
    finish in order, one a pass at most). Training-free: a token may miss a few not-yet-made
    tokens of earlier frames."""
    codes_BN, opts, dev = codes_BN.clone(), sample or {}, codes_BN.device
    if known:
        logits_fn(raster_inputs(codes_BN[:, :known], per_frame, start_id), torch.arange(known, device=dev))
    for tokens in diagonal_schedule((codes_BN.shape[1] - known) // per_frame, per_frame, delay):
        at = [known + i for i in tokens]
        logits_BJV = logits_fn(_previous_ids(codes_BN, at, per_frame, start_id), torch.tensor(at, device=dev))
        for j, i in enumerate(at):
            codes_BN[:, i] = sample_logits(logits_BJV[:, j], **opts)
        if (at[0] + 1) % per_frame == 0:  # the earliest frame of a pass is the earliest unfinished one
            yield at[0] + 1, codes_BN


def decode_diagonal(logits_fn: TokenLogitsFn, codes_BN: torch.Tensor, **kw) -> torch.Tensor:
    """The diagonal order's codes (B, N) once every token is drawn (see `iter_diagonal`)."""
    return _last(iter_diagonal(logits_fn, codes_BN, **kw), codes_BN)


def maskgit_passes(frame_logits: FrameLogits, frame_Bn: torch.Tensor, f: int, *, passes: int, mask_id: int,
                   sample: dict | None = None) -> torch.Tensor:
    """One token-frame's MaskGIT passes: each draws every masked token, keeps the most confident
    ones and masks the rest again so that `masked_after_pass` of them stay masked."""
    unknown = int((frame_Bn[0] == mask_id).sum())
    for k in range(passes):
        masked_Bn = frame_Bn == mask_id
        logits_BnV = frame_logits(frame_Bn, masked_Bn.float().mean(1, keepdim=True), f)  # level: the masked share
        drawn_Bn = sample_logits(logits_BnV, **(sample or {}))
        conf_Bn = torch.gather(logits_BnV.softmax(-1), -1, drawn_Bn[..., None])[..., 0]
        conf_Bn = torch.where(masked_Bn, conf_Bn, torch.full_like(conf_Bn, float("inf")))
        keep_masked = masked_after_pass(unknown, k, passes)
        new_Bn = torch.where(masked_Bn, drawn_Bn, frame_Bn)
        if keep_masked > 0:
            new_Bn.scatter_(1, conf_Bn.argsort(dim=1)[:, :keep_masked], mask_id)  # least confident first
        frame_Bn = new_Bn
    return frame_Bn


def gibbs_sweeps(frame_logits: FrameLogits, frame_Bn: torch.Tensor, f: int, *, held_Bn: torch.Tensor, slots_n: torch.Tensor,
                 sweeps: int, mask_id: int, sample: dict | None = None) -> torch.Tensor:
    """Gibbs sweeps over a decoded token-frame. Tokens committed in the same pass never saw each
    other, so two of them can disagree (an edge one pixel off along a side, an object begun in two
    places). A pass masks one place (`slots_n`, see `patch_slots`) of every backbone patch, the
    patch's other tokens and every other patch staying visible (the model's own masked-token
    question), and draws those tokens again; a sweep redraws every token not held once."""
    slots_n = slots_n.to(frame_Bn.device)
    for _ in range(sweeps):
        for g in range(int(slots_n.max()) + 1):
            redo_Bn = (slots_n == g)[None] & ~held_Bn
            if not redo_Bn.any():
                continue
            ids_Bn = torch.where(redo_Bn, torch.full_like(frame_Bn, mask_id), frame_Bn)
            logits_BnV = frame_logits(ids_Bn, redo_Bn.float().mean(1, keepdim=True), f)
            frame_Bn = torch.where(redo_Bn, sample_logits(logits_BnV, **(sample or {})), frame_Bn)
    return frame_Bn


def ranked_passes(frame_logits: FrameLogits, frame_Bn: torch.Tensor, f: int, *, ranks_n: torch.Tensor, mask_id: int,
                  sample: dict | None = None) -> torch.Tensor:
    """One token-frame decoded by a set model in a fixed order (`order_ranks`): pass s draws the
    masked tokens of rank s, each given every token drawn before it (and the given ones), so the
    raster ranks make next-token prediction and the diagonal ranks DiagD. Passes that would draw
    nothing (their tokens given) are skipped."""
    ranks_n = ranks_n.to(frame_Bn.device)
    for s in range(int(ranks_n.max()) + 1):
        masked_Bn = frame_Bn == mask_id
        draw_Bn = masked_Bn & (ranks_n == s)[None]
        if not draw_Bn.any():
            continue
        logits_BnV = frame_logits(frame_Bn, masked_Bn.float().mean(1, keepdim=True), f)  # level: the masked share
        at = draw_Bn.any(0).nonzero().squeeze(1)  # the same places in every clip, but where a clip holds them
        drawn_BJ = sample_logits(logits_BnV[:, at], **(sample or {}))
        frame_Bn = frame_Bn.clone()
        frame_Bn[:, at] = torch.where(draw_Bn[:, at], drawn_BJ, frame_Bn[:, at])
    return frame_Bn


def iter_set(frame_logits: FrameLogits, codes_BN: torch.Tensor, *, known: int, frame_tokens: int, passes: int,
             mask_id: int, first_passes: int | None = None, sweeps: int = 0, slots_n: torch.Tensor | None = None,
             sample: dict | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """Set order: token-frame (`frame_tokens` tokens) by token-frame, each in `passes` MaskGIT
    passes (`first_passes` for the first one of a clip drawn from nothing, where the layout is
    drawn) and then `sweeps` Gibbs sweeps over the places of `slots_n`. Given tokens are held;
    whole given token-frames are committed as context first, and every finished one after.
    Yields `(done, codes_BN)` after each token-frame (`done`: the leading tokens that are final)."""
    if passes < 1:
        raise ValueError(f"set decoding needs >= 1 passes a token-frame, got {passes}")

    def maskgit(frame_Bn: torch.Tensor, f: int) -> torch.Tensor:
        K = first_passes if first_passes and f == 0 and known == 0 else passes
        return maskgit_passes(frame_logits, frame_Bn, f, passes=K, mask_id=mask_id, sample=sample)

    draw = _then_sweeps(frame_logits, maskgit, sweeps=sweeps, slots_n=slots_n, mask_id=mask_id, sample=sample)
    return _iter_token_frames(frame_logits, codes_BN, known, frame_tokens, mask_id, draw)


def iter_ranked(frame_logits: FrameLogits, codes_BN: torch.Tensor, *, known: int, frame_tokens: int, ranks_n: torch.Tensor,
                mask_id: int, sweeps: int = 0, slots_n: torch.Tensor | None = None,
                sample: dict | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """A set model decoded in a fixed order (`ranked_passes`): token-frame by token-frame, each
    committed to the cache when finished, given tokens held; `sweeps` Gibbs sweeps may follow
    each token-frame's passes (as in `iter_set`). Yields as `iter_set`."""
    def ranked(frame_Bn: torch.Tensor, f: int) -> torch.Tensor:
        return ranked_passes(frame_logits, frame_Bn, f, ranks_n=ranks_n, mask_id=mask_id, sample=sample)

    draw = _then_sweeps(frame_logits, ranked, sweeps=sweeps, slots_n=slots_n, mask_id=mask_id, sample=sample)
    return _iter_token_frames(frame_logits, codes_BN, known, frame_tokens, mask_id, draw)


def _then_sweeps(frame_logits: FrameLogits, passes: Callable[[torch.Tensor, int], torch.Tensor], *, sweeps: int,
                 slots_n: torch.Tensor | None, mask_id: int, sample: dict | None):
    """A token-frame's draw as every set-model order makes it: its order's `passes(frame_Bn, f)`,
    then `sweeps` Gibbs sweeps over the places of `slots_n` (checked here, before any pass)."""
    if sweeps < 0:
        raise ValueError(f"refine counts Gibbs sweeps a token-frame: it must be >= 0, got {sweeps}")
    if sweeps and slots_n is None:
        raise ValueError("Gibbs sweeps need the places of tokens inside their patch (slots_n)")

    def draw(frame_Bn: torch.Tensor, held_Bn: torch.Tensor, f: int) -> torch.Tensor:
        frame_Bn = passes(frame_Bn, f)
        if sweeps:
            frame_Bn = gibbs_sweeps(frame_logits, frame_Bn, f, held_Bn=held_Bn, slots_n=slots_n, sweeps=sweeps,
                                    mask_id=mask_id, sample=sample)
        return frame_Bn

    return draw


def _iter_token_frames(frame_logits: FrameLogits, codes_BN: torch.Tensor, known: int, n: int, mask_id: int,
                       draw: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> Iterator[tuple[int, torch.Tensor]]:
    """The loop every set-model order shares: commit the whole given token-frames, then draw each
    later one (`draw(frame_Bn, held_Bn, f)`, [mask] where unknown) and commit it."""
    codes_BN = codes_BN.clone()
    given = known // n  # token-frames given whole
    if given:
        frame_logits.commit(codes_BN[:, : given * n], 0)
    for f in range(given, codes_BN.shape[1] // n):
        sl = slice(f * n, (f + 1) * n)
        held_Bn = codes_BN[:, sl] >= 0  # given tokens stay as they are
        frame_Bn = draw(torch.where(held_Bn, codes_BN[:, sl], torch.full_like(codes_BN[:, sl], mask_id)), held_Bn, f)
        codes_BN[:, sl] = frame_Bn
        frame_logits.commit(frame_Bn, f)
        yield (f + 1) * n, codes_BN


def decode_set(frame_logits: FrameLogits, codes_BN: torch.Tensor, **kw) -> torch.Tensor:
    """The set order's codes (B, N) once every token-frame is drawn (see `iter_set`)."""
    return _last(iter_set(frame_logits, codes_BN, **kw), codes_BN)
