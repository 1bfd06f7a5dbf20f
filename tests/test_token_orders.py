"""The token decoding orders of sampling/token_orders.py: their schedules, and the orders run on
stand-in logits functions and on a tiny token transformer."""

import pytest
import torch

from framecast.sampling.guidance import guided
from framecast.sampling.token_orders import (
    decode_diagonal,
    decode_raster,
    decode_set,
    diagonal_schedule,
    iter_diagonal,
    iter_raster,
    iter_ranked,
    iter_set,
    masked_after_pass,
    order_ranks,
    patch_slots,
    raster_inputs,
)

V, START, MASK = 7, 7, 8  # a codebook of 7 codes; [start] and [mask] after it
GREEDY = {"temperature": 0}


@pytest.mark.parametrize("frames, per_frame, delay", [(1, 4, 1), (3, 4, 1), (3, 16, 4), (4, 6, 6), (2, 5, 9)])
def test_diagonal_schedule_emits_every_token_once_each_frame_delay_behind(frames, per_frame, delay):
    passes = diagonal_schedule(frames, per_frame, delay)
    emitted = [i for tokens in passes for i in tokens]
    assert sorted(emitted) == list(range(frames * per_frame))  # every token exactly once
    when = {i: s for s, tokens in enumerate(passes) for i in tokens}
    for t in range(frames):
        for j in range(per_frame):  # token j of frame t: pass j + t * delay (raster order inside the frame)
            assert when[t * per_frame + j] == j + t * delay
    for tokens in passes:  # at most one token a frame a pass, earlier frames first
        assert [i // per_frame for i in tokens] == sorted({i // per_frame for i in tokens})
    assert len(passes) == per_frame + (frames - 1) * delay


def test_diagonal_schedule_edges():
    assert diagonal_schedule(0, 4, 2) == []
    with pytest.raises(ValueError, match="delay must be >= 1"):
        diagonal_schedule(2, 4, 0)


@pytest.mark.parametrize("unknown", [1, 7, 32, 1024])
@pytest.mark.parametrize("passes", [1, 2, 4, 12])
def test_maskgit_schedule_unmasks_monotonically_to_zero(unknown, passes):
    left = [masked_after_pass(unknown, k, passes) for k in range(passes)]
    assert left[-1] == 0
    assert all(a >= b for a, b in zip([unknown, *left], left))  # never masks more than before
    assert all(0 <= x <= unknown for x in left)


def test_maskgit_schedule_is_cosine():
    assert [masked_after_pass(100, k, 4) for k in range(4)] == [92, 70, 38, 0]  # floor(100 cos(pi/2 (k+1)/4))


def test_patch_slots_number_each_patch_place_once():
    slots = patch_slots(2, (4, 6), 2).view(2, 2, 2, 3, 2)  # (t, patch row, y in patch, patch col, x in patch)
    per_patch = slots.permute(1, 3, 0, 2, 4).reshape(6, 8)  # (patches, places)
    assert all(sorted(p.tolist()) == list(range(8)) for p in per_patch)
    assert torch.equal(per_patch, per_patch[:1].expand(6, 8))  # the same place has the same number in every patch


def test_raster_inputs_shift_by_one_and_start_frames():
    codes = torch.arange(8)[None]
    assert raster_inputs(codes, 4, START).tolist() == [[START, 0, 1, 2, START, 4, 5, 6]]


def _bigram(calls=None):
    """A stand-in raster model that reads only its input id: next code = input + 1 (mod V), [start] -> 0."""
    def logits_fn(ids_BJ, at_J):
        if calls is not None:
            calls.append(at_J.tolist())
        nxt = torch.where(ids_BJ == START, 0, (ids_BJ + 1) % V)
        return torch.nn.functional.one_hot(nxt, V).float() * 10
    return logits_fn


@pytest.mark.parametrize("cached", [True, False])
def test_raster_order_feeds_each_pass_what_it_needs(cached):
    calls = []
    codes = torch.full((2, 12), -1)
    codes[:, :4] = 3  # one given frame of 4 tokens
    out = decode_raster(_bigram(calls), codes, known=4, per_frame=4, start_id=START, sample=GREEDY, cached=cached)
    assert out[:, 4:].tolist() == [[0, 1, 2, 3] * 2] * 2 and torch.equal(out[:, :4], codes[:, :4])
    assert (codes[:, 4:] == -1).all()  # the caller's codes are left as they were
    if cached:  # the given tokens once, then one token a pass
        assert calls == [[0, 1, 2, 3]] + [[i] for i in range(4, 12)]
    else:  # the whole prefix every pass
        assert calls == [list(range(i + 1)) for i in range(4, 12)]


def test_diagonal_order_is_exact_on_a_model_that_reads_only_the_previous_token():
    """DiagD only misses tokens of earlier frames; a bigram model never reads them, so diagonal
    decoding gives the raster order's codes, in fewer passes."""
    codes = torch.full((1, 4 * 6), -1)
    raster = decode_raster(_bigram(), codes, known=0, per_frame=6, start_id=START, sample=GREEDY)
    calls = []
    diag = decode_diagonal(_bigram(calls), codes, known=0, per_frame=6, start_id=START, delay=2, sample=GREEDY)
    assert torch.equal(diag, raster)
    assert len(calls) == 6 + 3 * 2 and calls[2] == [2, 6]  # pass 2: token 2 of frame 0 and token 0 of frame 1


class _FrameStub:
    """A stand-in set model: logits that favour code (place + f) % V with a confidence rising over the
    token-frame, recording what every pass is shown."""

    def __init__(self, n):
        self.n, self.shown, self.committed = n, [], []

    def __call__(self, ids_Bn, level_B1, f):
        masked = ids_Bn == MASK
        assert torch.allclose(level_B1, masked.float().mean(1, keepdim=True))
        self.shown.append((f, masked.clone()))
        best = (torch.arange(self.n) + f) % V
        return torch.nn.functional.one_hot(best, V).float()[None].expand(ids_Bn.shape[0], -1, -1) * torch.linspace(1, 5, self.n)[:, None]

    def commit(self, ids_BM, f):
        assert not (ids_BM == MASK).any()
        self.committed.append((f, ids_BM.shape[1] // self.n))


def test_set_order_holds_given_tokens_and_takes_its_passes():
    n = 8
    codes = torch.full((1, 3 * n), -1)
    codes[:, :n] = 6  # the first token-frame given whole
    codes[:, n : n + 3] = 5  # part of the second given
    stub = _FrameStub(n)
    out = decode_set(stub, codes, known=n + 3, frame_tokens=n, passes=3, first_passes=9, mask_id=MASK, sample=GREEDY)
    assert torch.equal(out[:, : n + 3], codes[:, : n + 3]) and (out >= 0).all()
    assert out[0, n + 3 : 2 * n].tolist() == [(i + 1) % V for i in range(3, n)]  # greedy: the favoured codes
    assert [f for f, _ in stub.shown] == [1] * 3 + [2] * 3  # first_passes only for a clip drawn from nothing
    assert stub.committed == [(0, 1), (1, 1), (2, 1)]
    masked_first_pass = stub.shown[3][1][0]
    assert masked_first_pass.all()  # a token-frame with nothing given starts all masked
    assert [int(m.sum()) for _, m in stub.shown[3:]] == [n, masked_after_pass(n, 0, 3), masked_after_pass(n, 1, 3)]
    k = masked_after_pass(n, 0, 3)
    assert stub.shown[4][1][0].tolist() == [True] * k + [False] * (n - k)  # the most confident (last) tokens kept


def test_set_order_first_passes_and_gibbs_sweeps():
    n = 8
    stub = _FrameStub(n)
    slots = patch_slots(2, (2, 2), 2)  # one patch of 8 places: a sweep is 8 passes of one token each
    out = decode_set(stub, torch.full((2, 2 * n), -1), known=0, frame_tokens=n, passes=2, first_passes=4, sweeps=1,
                     slots_n=slots, mask_id=MASK, sample=GREEDY)
    assert (out >= 0).all()
    assert [f for f, _ in stub.shown] == [0] * (4 + 8) + [1] * (2 + 8)
    redrawn = torch.stack([m[0] for _, m in stub.shown[4:12]])
    assert torch.equal(redrawn.sum(0), torch.ones(n, dtype=torch.long))  # every token redrawn once a sweep
    with pytest.raises(ValueError, match="refine counts Gibbs sweeps"):
        decode_set(stub, torch.full((1, n), -1), known=0, frame_tokens=n, passes=2, sweeps=-1, mask_id=MASK)
    with pytest.raises(ValueError, match=">= 1 passes"):
        decode_set(stub, torch.full((1, n), -1), known=0, frame_tokens=n, passes=0, mask_id=MASK)


def test_order_ranks_raster_and_diagonal():
    assert order_ranks("raster", 2, (2, 3)).tolist() == list(range(12))
    # frame 0: anti-diagonals y + x; frame 1 the same, 2 anti-diagonals later
    assert order_ranks("diagonal", 2, (2, 3), 2).tolist() == [0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4, 5]
    # stride 2: token (y, x) at pass 2y + x, so a pass's tokens sit two columns apart
    assert order_ranks("diagonal", 1, (2, 3), 1, stride=2).tolist() == [0, 1, 2, 2, 3, 4]
    assert torch.equal(order_ranks("diagonal", 1, (2, 3), 1, stride=3), order_ranks("raster", 1, (2, 3)))  # stride w: raster
    per_clip = order_ranks("diagonal", 2, (2, 3), torch.tensor([[1], [4]]))  # a delay for each row
    assert per_clip.shape == (2, 12) and per_clip[1, 6:].tolist() == [4, 5, 6, 5, 6, 7]
    with pytest.raises(ValueError, match="delay must be >= 1"):
        order_ranks("diagonal", 2, (2, 3), 0)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        order_ranks("diagonal", 2, (2, 3), 1, stride=0)
    with pytest.raises(ValueError, match="no ranks"):
        order_ranks("zigzag", 2, (2, 3))


@pytest.mark.parametrize("order, delay", [("raster", 1), ("diagonal", 1), ("diagonal", 3)])
def test_a_set_model_in_a_fixed_order_draws_one_rank_a_pass(order, delay):
    """Pass s shows the set model every token of rank < s (and the given ones) and masks the
    rest; it draws exactly the tokens of rank s: raster is next-token prediction."""
    n, grid = 8, (2, 2)  # token-frames of 2 frames of 2x2 tokens
    ranks = order_ranks(order, 2, grid, delay)
    codes = torch.full((1, 3 * n), -1)
    codes[:, :n] = 6  # the first token-frame given whole
    codes[:, n : n + 2] = 5  # and two tokens of the second
    stub = _FrameStub(n)
    out = list(iter_ranked(stub, codes, known=n + 2, frame_tokens=n, ranks_n=ranks, mask_id=MASK, sample=GREEDY))[-1][1]
    assert torch.equal(out[:, : n + 2], codes[:, : n + 2]) and (out >= 0).all()
    assert out[0, 2 * n :].tolist() == [(i + 2) % V for i in range(n)]  # greedy: the favoured codes of token-frame 2
    held = torch.arange(n) < 2
    expect = [(1, s) for s in sorted(set(ranks[~held].tolist()))] + [(2, s) for s in sorted(set(ranks.tolist()))]
    assert [f for f, _ in stub.shown] == [f for f, _ in expect]
    for (f, s), (_, masked) in zip(expect, stub.shown):
        assert torch.equal(masked[0], (ranks >= s) & ~(held if f == 1 else torch.zeros(n, dtype=torch.bool)))
    assert stub.committed == [(0, 1), (1, 1), (2, 1)]
    assert len(stub.shown) == (n - 2 + n if order == "raster" else len(expect))  # raster: a pass a token


def test_guided_batches_both_halves_and_combines_them():
    sizes = []

    def fn(x_B):  # a model whose condition, batched [cond ; uncond] when guided, gives 3x and x
        sizes.append(x_B.shape[0])
        if x_B.shape[0] == 2:
            return (3 * x_B).double()
        cond, uncond = x_B.chunk(2)
        return torch.cat([3 * cond, uncond])

    x = torch.tensor([[1.0], [2.0]])
    one = guided(fn, 1.0)(x)  # scale 1: the condition alone, one pass of the batch, in fp32
    assert one.dtype == torch.float32 and torch.equal(one, 3 * x) and sizes == [2]
    assert torch.equal(guided(fn, 2.0)(x), x + 2 * (3 * x - x)) and sizes == [2, 4]  # uncond + s (cond - uncond)


@pytest.fixture(scope="module")
def tiny_raster(tiny_ar_dir):
    from framecast.generators import from_pretrained

    return from_pretrained(tiny_ar_dir).eval()


@pytest.mark.parametrize("scale", [1.0, 3.0])
@pytest.mark.parametrize("known_frames", [0, 1])
def test_raster_with_cache_equals_raster_recomputing(tiny_raster, scale, known_frames):
    """A tiny raster model's logits functions: the KV-cached one gives the logits that recomputing the
    prefix gives (minGPT-style parity), so both draw the same codes."""
    from framecast.nn.attention import KVCache
    from framecast.text.encoder import TextEmbedding, encode_for_guidance

    m, T = tiny_raster, 3
    per = m.grid_hw[0] * m.grid_hw[1]
    text, uncond = encode_for_guidance(m.text, ["a big red circle moves right"], None, scale != 1.0)
    if scale != 1.0:
        text = TextEmbedding.cat([text, uncond])
    codes = torch.full((1, T * per), -1)
    codes[:, : known_frames * per] = torch.randint(0, m.tokenizer.codebook_size, (1, known_frames * per))
    runs = {}
    for cached in (True, False):
        fn = m.token_logits_fn(text, scale, T, KVCache(len(m.backbone.blocks)) if cached else None)
        logits = []

        def record(ids_BJ, at_J, fn=fn, logits=logits):
            out = fn(ids_BJ, at_J)
            logits.append(out[:, -1])
            return out

        with torch.no_grad():
            out = decode_raster(record, codes, known=known_frames * per, per_frame=per, start_id=m.start_id,
                                sample=GREEDY, cached=cached)
        runs[cached] = out, torch.stack(logits[-(T - known_frames) * per :])
    assert torch.equal(runs[True][0], runs[False][0]) and (runs[True][0] >= 0).all()
    assert torch.allclose(runs[True][1], runs[False][1], atol=1e-4)


def _run(steps):
    """(done, final codes so far) of every yield, the codes copied as they were then."""
    return [(done, codes.clone()) for done, codes in steps]


@pytest.mark.parametrize("order", ["raster", "raster-uncached", "diagonal", "set"])
def test_iterators_yield_frames_in_order_and_end_at_the_decoded_codes(order):
    """Each order yields whenever more whole frames are final, in order, the yielded tokens never
    changing after; its last codes are what `decode_*` returns."""
    per, frames, known = 4, 3, 4
    codes = torch.full((2, frames * per), -1)
    codes[:, :known] = 3
    if order == "set":
        steps = _run(iter_set(_FrameStub(per), codes, known=known, frame_tokens=per, passes=2, mask_id=MASK, sample=GREEDY))
        whole = decode_set(_FrameStub(per), codes, known=known, frame_tokens=per, passes=2, mask_id=MASK, sample=GREEDY)
    elif order == "diagonal":
        kw = dict(known=known, per_frame=per, start_id=START, delay=2, sample=GREEDY)
        steps, whole = _run(iter_diagonal(_bigram(), codes, **kw)), decode_diagonal(_bigram(), codes, **kw)
    else:
        kw = dict(known=known, per_frame=per, start_id=START, sample=GREEDY, cached=order == "raster")
        steps, whole = _run(iter_raster(_bigram(), codes, **kw)), decode_raster(_bigram(), codes, **kw)
    assert [done for done, _ in steps] == [2 * per, 3 * per]  # the given frame is done from the start
    for done, got in steps:
        assert (got[:, :done] >= 0).all() and torch.equal(got[:, :done], whole[:, :done])
    assert torch.equal(steps[-1][1], whole) and (codes[:, known:] == -1).all()  # the caller's codes untouched
