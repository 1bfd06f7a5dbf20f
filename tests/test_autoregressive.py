"""The AR family: KV cache against recomputation, every decoding order, errors."""

from dataclasses import asdict

import numpy as np
import pytest
import torch

from framecast.data.shapes import shapes_batches
from framecast.generators import GenerationRequest, ModelSpec, build_generator
from framecast.nn.attention import KVCache, MaskSpec
from framecast.sampling.decoding import sample_logits
from framecast.train.recipes import shapes_ar_tiny

PROMPT = "a big red circle moves right"


def _model(order):
    torch.manual_seed(0)
    m = build_generator(ModelSpec(**asdict(shapes_ar_tiny(order).model)))
    with torch.no_grad():
        for p in m.backbone.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


@pytest.fixture(scope="module")
def raster():
    return _model("raster")


@pytest.fixture(scope="module")
def setm():
    return _model("set")


def _req(**kw):
    return GenerationRequest(**{**dict(prompts=[PROMPT], num_frames=3, generator=torch.Generator().manual_seed(0)), **kw})


@pytest.mark.parametrize("order", ["raster", "set"])
def test_losses_train(order):
    m = _model(order).train()
    batch = next(shapes_batches(batch_size=2, frames=4))
    loss = m(batch, [torch.Generator().manual_seed(i) for i in range(2)])
    loss.backward()
    assert torch.isfinite(loss) and m.backbone.head.weight.grad is not None
    assert all(p.grad is None for p in m.tokenizer.parameters())  # the tokenizer stays frozen


def test_cached_logits_equal_recomputed(raster):
    """Token by token with the KV cache = the whole prefix at once (minGPT-style parity)."""
    text = raster.text.encode([PROMPT])
    T = 2
    per = raster.grid_hw[0] * raster.grid_hw[1]
    codes = torch.randint(0, raster.tokenizer.codebook_size, (1, T * per))
    pos = raster.positions(T)
    ids = raster.raster_inputs(codes, T)
    full = raster._logits(ids, pos, torch.zeros(1, 1), text, mask=MaskSpec("causal"))
    cache = KVCache(len(raster.backbone.blocks))
    steps = [raster._logits(ids[:, i : i + 1], pos[i : i + 1], torch.zeros(1, 1), text, mask=MaskSpec("causal"), cache=cache)
             for i in range(T * per)]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-4)


def test_teacher_forcing_pass_sees_what_decoding_sees(setm):
    """The training pass over [clean ; masked] gives, for the masked token-frame f, the logits that
    decoding computes for it from the clean token-frames before it."""
    text = setm.text.encode([PROMPT])
    n, F_ = setm.tokens_per_chunk, 3
    codes = torch.randint(0, setm.tokenizer.codebook_size, (1, F_ * n))
    ratio = torch.tensor([[0.3, 1.0, 0.6]])
    masked = torch.rand(1, F_ * n, generator=torch.Generator().manual_seed(0)) < ratio.repeat_interleave(n, dim=1)
    ids = torch.where(masked, torch.full_like(codes, setm.mask_id), codes)
    tf = setm._teacher_forced_logits(codes, ids, ratio, text)
    for f in range(F_):
        prefix = torch.cat([codes[:, : f * n], ids[:, f * n : (f + 1) * n]], 1)
        level = torch.cat([torch.zeros(1, f), ratio[:, f : f + 1]], 1)
        step = setm._chunk_logits(prefix, level, text, mask=MaskSpec("frame-causal"))[:, f * n :]
        assert torch.allclose(step, tf[:, f * n : (f + 1) * n], atol=1e-4)


def test_greedy_tokens_same_with_and_without_cache(raster):
    a = raster.generate_codes(_req(decode="raster", temperature=0.0, use_cache=True))
    b = raster.generate_codes(_req(decode="raster", temperature=0.0, use_cache=False))
    assert torch.equal(a, b)


@pytest.mark.parametrize("decode", ["raster", "diagonal"])
def test_raster_model_decodes(raster, decode):
    clip = raster.generate(_req(decode=decode))
    assert clip.shape == (1, 3, 3, 32, 32) and clip.abs().max() <= 1


def test_set_model_decodes_and_cache_matches(setm):
    a = setm.generate_codes(_req(temperature=0.0, use_cache=True))
    b = setm.generate_codes(_req(temperature=0.0, use_cache=False))
    assert torch.equal(a, b) and (a >= 0).all()
    assert setm.generate(_req()).shape == (1, 3, 3, 32, 32)


@pytest.mark.parametrize("given", [1, 2])  # 1: half of the first token-frame (2 frames) is given, the rest decoded around it
@pytest.mark.parametrize("use_cache", [True, False])
def test_continuation_keeps_context_codes(setm, given, use_cache):
    ctx = next(shapes_batches(batch_size=1, frames=given))["video"]
    codes = setm.generate_codes(_req(context_BTCHW=ctx, use_cache=use_cache))
    per = setm.grid_hw[0] * setm.grid_hw[1]
    assert codes.shape == (1, 3 * per) and (codes >= 0).all()
    assert torch.equal(codes[:, : given * per], setm.tokenizer.encode(ctx).reshape(1, -1))


def test_errors(raster, setm):
    with pytest.raises(ValueError, match="trained for 'raster'"):
        raster.generate(_req(decode="set"))
    with pytest.raises(ValueError, match="unknown decoding order"):
        setm.generate(_req(decode="zigzag"))
    with pytest.raises(ValueError, match="shorter than the clip"):
        setm.generate(_req(context_BTCHW=torch.zeros(1, 3, 3, 32, 32)))


@pytest.mark.parametrize("decode", ["set", "raster", "diagonal"])
def test_a_clip_depends_on_its_own_generator_only(raster, setm, decode):
    model = setm if decode == "set" else raster
    other = "a small blue square moves up"
    both = model.generate_codes(_req(prompts=[other, PROMPT], decode=decode, num_frames=2,
                                     generator=[torch.Generator().manual_seed(s) for s in (1, 0)]))
    alone = model.generate_codes(_req(decode=decode, num_frames=2, generator=[torch.Generator().manual_seed(0)]))
    assert torch.equal(both[1], alone[0]) and not torch.equal(both[0], both[1])


def test_sampling_controls():
    logits = torch.tensor([[0.0, 5.0, 1.0, -2.0]])
    assert sample_logits(logits, temperature=0).item() == 1
    g = torch.Generator().manual_seed(0)
    draws = {sample_logits(logits, top_k=2, generator=g).item() for _ in range(200)}
    assert draws <= {1, 2}
    draws = {sample_logits(logits, top_p=0.5, generator=g).item() for _ in range(50)}
    assert draws == {1}
    with pytest.raises(ValueError):
        sample_logits(logits, top_p=0)
    many = torch.randn(2, 5, 4)  # (clips, tokens, V): clip i draws from generator i alone
    a = sample_logits(many, generator=[torch.Generator().manual_seed(s) for s in (0, 1)])
    b = sample_logits(many[1:], generator=[torch.Generator().manual_seed(1)])
    assert a.shape == (2, 5) and torch.equal(a[1], b[0])
    with pytest.raises(ValueError, match="2 generators for a batch of 1"):
        sample_logits(many[:1], generator=[torch.Generator(), torch.Generator()])


def test_pipeline_and_cli_with_an_ar_model(tmp_path):
    import numpy as np
    from typer.testing import CliRunner

    import framecast
    from framecast.cli import app
    from framecast.generators import save_pretrained

    save_pretrained(_model("set"), tmp_path / "ar")
    pipe = framecast.load(str(tmp_path / "ar"), precision="fp32")
    out = pipe(PROMPT, num_frames=2, generator=torch.Generator().manual_seed(0), temperature=0.5, top_k=10)
    assert out.frames[0].shape == (2, 32, 32, 3)
    with pytest.warns(UserWarning, match="resized"):
        pipe(PROMPT, num_frames=2, image=np.zeros((48, 48, 3), np.uint8), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="draws tokens"):
        pipe(PROMPT, num_frames=2, sampler="heun")
    r = CliRunner().invoke(app, ["generate", PROMPT, "--model", str(tmp_path / "ar"), "--decode", "set", "--frames", "2",
                                 "--output", str(tmp_path / "x.npy")])
    assert r.exit_code == 0, r.output


def test_a_set_bundle_hands_raster_and_diagonal_to_its_decode_with_sibling(tmp_path):
    """`--model shapes-ar --decode raster`: the set model's config names a raster-order sibling."""
    import framecast
    from framecast.generators import save_pretrained

    save_pretrained(_model("raster"), tmp_path / "raster")
    save_pretrained(_model("set"), tmp_path / "set", extra={"decode_with": {"raster": str(tmp_path / "raster")}})
    pipe = framecast.load(str(tmp_path / "set"), precision="fp32")
    def kw():
        return dict(num_frames=2, generator=torch.Generator().manual_seed(0))
    out = pipe(PROMPT, decode="raster", **kw())
    assert out.info["decoded_by"] == "raster" and out.frames[0].shape == (2, 32, 32, 3)
    alone = framecast.load(str(tmp_path / "raster"), precision="fp32")(PROMPT, decode="raster", **kw())
    assert (out.frames[0] == alone.frames[0]).all()  # the sibling made it, with the same seed
    assert "decoded_by" not in pipe(PROMPT, decode="set", **kw()).info
    streamed = list(pipe.stream(PROMPT, decode="raster", **kw()))  # streams from the sibling too
    assert [c.shape for c in streamed] == [(1, 32, 32, 3)] * 2
    assert abs(torch.from_numpy(np.concatenate(streamed)).int() - torch.from_numpy(alone.frames[0]).int()).max() <= 1
    assert [c.shape[0] for c in pipe.stream(PROMPT, decode="set", num_frames=3)] == [2, 1]  # a token-frame at a time
    assert pipe.total_steps(PROMPT, decode="raster", num_frames=2) == 2 * 16  # the sibling's passes: a pass a token
    assert pipe.total_steps(PROMPT, decode="set", num_frames=2) == 2  # one token-frame of K = 2 passes
    own = pipe(PROMPT, decode="diagonal", **kw())  # no sibling named for diagonal: the set model decodes it itself
    assert "decoded_by" not in own.info and own.frames[0].shape == (2, 32, 32, 3)


def test_the_bundled_shapes_ar_hands_raster_to_its_order_tuned_sibling():
    """`--model shapes-ar --decode raster` runs on `shapes-ar-orders` (the same trunk fine-tuned to
    raster order, a pass a token), `--decode diagonal` on shapes-ar's own trunk; both siblings and
    `shapes-ar-raster`, the token-causal model, read the very same codes (tokenizer config and weights)."""
    from safetensors import safe_open

    import framecast
    from framecast.generators.io import read_config
    from framecast.pipeline import ASSETS

    cfg = read_config(ASSETS / "shapes-ar")
    assert cfg["decode_with"] == {"raster": "shapes-ar-orders"} and cfg["generator"]["order"] == "set"
    orders = read_config(ASSETS / "shapes-ar-orders")
    assert orders["generator"]["order"] == "set" and orders["generator"]["decode"] == "raster"
    for sibling in ("shapes-ar-orders", "shapes-ar-raster"):
        assert read_config(ASSETS / sibling)["generator"]["tokenizer"] == cfg["generator"]["tokenizer"]
        with safe_open(ASSETS / "shapes-ar" / "model.safetensors", "pt") as a, safe_open(ASSETS / sibling / "model.safetensors", "pt") as b:
            keys = [k for k in a.keys() if k.startswith("tokenizer.")]
            assert keys and all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in keys)
    pipe = framecast.load("shapes-ar", precision="fp32")
    assert pipe.total_steps(PROMPT, decode="raster", num_frames=2) == 128  # the sibling's passes: a pass a token of one token-frame
    assert pipe.decoded_by("raster").name == "shapes-ar-orders" and pipe.decoded_by("diagonal") is None
    pipe.use_siblings = False  # the benchmark of one trunk in every order
    assert pipe.decoded_by("raster") is None and pipe.total_steps(PROMPT, decode="raster", num_frames=2) == 128
    pipe.use_siblings = True
    out = pipe(PROMPT, decode="diagonal", num_frames=2, generator=torch.Generator().manual_seed(0))
    assert "decoded_by" not in out.info and out.frames[0].shape == (2, 32, 32, 3)


def test_logits_stay_fp32_under_bf16_autocast(raster):
    """The head runs in fp32 whatever the trunk runs in: guidance multiplies a logit's rounding
    error (with bf16 logits `shapes-ar` made 0.73 on the seed-0 evaluation, 0.79 without)."""
    feats = torch.randn(2, 5, raster.head.in_features)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = raster._head(feats)
        assert raster.head(feats).dtype == torch.bfloat16  # what autocast alone would give
    assert out.dtype == torch.float32 and torch.allclose(out, raster.head(feats), atol=1e-5)


def test_tokenizer_transformer_mismatch_is_refused():
    from framecast.generators import ARConfig, TokenTransformer
    from framecast.nn.transformer import transformer_tiny
    from framecast.text.encoder import WordEncoderConfig, WordTextEncoder

    cfg = shapes_ar_tiny("set").model
    text = WordTextEncoder(WordEncoderConfig(**cfg.text))
    with pytest.raises(ValueError, match="3-value code vectors"):  # the tiny tokenizer's FSQ has 3 levels
        TokenTransformer(ARConfig(**cfg.generator), transformer_tiny(channels=32, out_channels=16), text)
    with pytest.raises(ValueError, match="raster order predicts one token at a time"):
        TokenTransformer(ARConfig(**{**cfg.generator, "order": "raster"}), transformer_tiny(channels=3, patch_size=2, out_channels=16), text)


def test_set_steps_are_passes_per_token_frame(setm):
    """`steps` (num_inference_steps) sets the MaskGIT passes a token-frame; with the cache each
    finished token-frame costs one more pass to write it as context."""
    from framecast.eval.arena import PassCounter

    for k in (1, 3):
        with PassCounter(setm) as count:
            setm.generate_codes(_req(num_frames=4, steps=k))
        assert count.calls == 2 * (k + 1)  # 4 frames = 2 token-frames of 2


def test_first_token_frame_passes_and_refine_sweeps(setm, monkeypatch):
    """A clip drawn from nothing gives its first token-frame `first_set_steps` passes; a request's
    `steps` sets every token-frame. A Gibbs sweep redraws one token of every backbone patch a pass,
    so it costs the patch volume in passes."""
    from framecast.eval.arena import PassCounter

    bb = setm.backbone.config
    volume = bb.patch_frames * bb.patch_size ** 2
    K = setm.config.set_steps
    monkeypatch.setattr(setm.config, "first_set_steps", 5)
    for kw, first, rest in [({}, 5, K), ({"steps": 3}, 3, 3), ({"refine": 1}, 5 + volume, K + volume)]:
        with PassCounter(setm) as count:
            setm.generate_codes(_req(num_frames=4, **kw))
        assert count.calls == (first + 1) + (rest + 1), kw
    ctx = next(shapes_batches(batch_size=1, frames=1))["video"]  # the first token-frame half given: K passes
    with PassCounter(setm) as count:
        setm.generate_codes(_req(num_frames=4, context_BTCHW=ctx))
    assert count.calls == 2 * (K + 1)
    with pytest.raises(ValueError, match="refine counts Gibbs sweeps"):
        setm.generate_codes(_req(refine=-1))


@pytest.mark.parametrize("given", [1, 2])
def test_refine_holds_given_tokens_and_redraws_the_rest(setm, given):
    ctx = next(shapes_batches(batch_size=1, frames=given))["video"]
    per = setm.grid_hw[0] * setm.grid_hw[1]
    plain = setm.generate_codes(_req(context_BTCHW=ctx, temperature=0.0))
    refined = setm.generate_codes(_req(context_BTCHW=ctx, temperature=0.0, refine=2))
    assert torch.equal(refined[:, : given * per], setm.tokenizer.encode(ctx).reshape(1, -1))
    assert (refined >= 0).all() and not torch.equal(plain, refined)  # greedy redraws given every other token move some


def _context(m, frames=1):
    return torch.rand(1, frames, 3, m.config.size, m.config.size, generator=torch.Generator().manual_seed(1)) * 2 - 1


PASS_CASES = [
    ("raster", dict(decode="raster")),
    ("raster", dict(decode="raster", use_cache=False)),
    ("raster", dict(decode="raster", context=1)),
    ("raster", dict(decode="raster", context=1, use_cache=False)),
    ("raster", dict(decode="diagonal")),
    ("raster", dict(decode="diagonal", context=2)),
    ("set", dict()),
    ("set", dict(steps=3, num_frames=4)),
    ("set", dict(refine=1)),
    ("set", dict(refine=2, context=1)),  # a token-frame half given: its held places get no Gibbs pass
    ("set", dict(refine=1, context=2, num_frames=4)),  # a whole token-frame given
    ("set", dict(first=3)),  # the first token-frame of a clip drawn from nothing gets its own count
    ("set", dict(decode="raster")),  # a set model in raster order: a pass a token
    ("set", dict(decode="raster", context=1, use_cache=False)),
    ("set", dict(decode="diagonal")),  # a pass an anti-diagonal rank
    ("set", dict(decode="diagonal", context=1)),
    ("set", dict(decode="diagonal", refine=1)),  # a Gibbs sweep after each token-frame's diagonals
]


@pytest.mark.parametrize("order, kw", PASS_CASES)
def test_every_decoding_pass_is_reported_and_counted(raster, setm, monkeypatch, order, kw):
    """`passes(request)` is the number of step callbacks a request makes, one a logits call, and the
    callback changes no draw."""
    m, kw = (raster if order == "raster" else setm), dict(kw)
    monkeypatch.setattr(m.config, "first_set_steps", kw.pop("first", 0))
    context = kw.pop("context", 0)
    kw.update(context_BTCHW=_context(m, context) if context else None)
    seen = []
    codes = m.generate_codes(_req(callback=lambda *a: seen.append(a), **kw))
    assert len(seen) == m.passes(_req(**kw)) > 0
    assert [a[0] for a in seen] == list(range(len(seen))) and all(a[1:] == (None, None, None) for a in seen)
    assert torch.equal(codes, m.generate_codes(_req(**kw)))  # the same draws without a callback


def test_set_pass_count_by_hand(setm, monkeypatch):
    """3 frames in token-frames of 2: two token-frames of K = 2 passes; a Gibbs sweep is one pass
    for each of the 8 places of a 2x2x2 patch."""
    assert setm.passes(_req()) == 2 * 2
    assert setm.passes(_req(refine=1)) == 2 * (2 + 8)
    monkeypatch.setattr(setm.config, "first_set_steps", 5)
    assert setm.passes(_req()) == 5 + 2
    per_chunk = setm.tokens_per_chunk
    assert setm.passes(_req(decode="raster")) == 2 * per_chunk  # a pass a token
    h, w = setm.grid_hw
    monkeypatch.setattr(setm.config, "diagonal_delay", 2)
    assert setm.passes(_req(decode="diagonal")) == 2 * (h + w - 1 + 2)  # anti-diagonals of a frame, the second 2 behind
    monkeypatch.setattr(setm.config, "diagonal_stride", 2)
    assert setm.passes(_req(decode="diagonal")) == 2 * (2 * (h - 1) + w + 2)  # steeper diagonals: more passes
    monkeypatch.setattr(setm.config, "set_refine", 1)  # the model's sweeps belong to its set order alone
    assert setm.passes(_req(decode="raster")) == 2 * per_chunk and setm.passes(_req(decode="set")) == (5 + 8) + (2 + 8)
    assert setm.passes(_req(decode="raster", refine=1)) == 2 * (per_chunk + 8)  # asked for: a sweep after each token-frame
    diagonal = setm.passes(_req(decode="diagonal"))
    monkeypatch.setattr(setm.config, "diagonal_refine", 1)  # the model's own sweeps for its diagonal order
    assert setm.passes(_req(decode="diagonal")) == diagonal + 2 * 8 and setm.passes(_req(decode="diagonal", refine=0)) == diagonal


def test_ordered_masks_are_cuts_in_raster_or_diagonal_order(monkeypatch):
    """With raster_share and diagonal_share the set objective masks token-frames as those orders
    leave them: every token from a cut in the order on."""
    from framecast.sampling.token_orders import order_ranks

    m = _model("set")
    monkeypatch.setattr(m.config, "raster_share", 0.5)
    monkeypatch.setattr(m.config, "diagonal_share", 0.5)
    n, B, F_ = m.tokens_per_chunk, 64, 2
    random_BN = torch.rand(B, F_ * n) < 0.5
    masked, share = m._ordered_masks(random_BN, [torch.Generator().manual_seed(i) for i in range(B)])
    raster = order_ranks("raster", m.frames_per_chunk, m.grid_hw)
    kinds = set()
    for row in masked.view(B * F_, n):
        assert row.any()
        if torch.equal(row, raster >= int(row.float().argmax())):
            kinds.add("raster")
            continue
        cuts = [(d, c) for d in range(1, sum(m.grid_hw)) for c in range(40)
                if torch.equal(row, order_ranks("diagonal", m.frames_per_chunk, m.grid_hw, d) >= c)]
        assert cuts, "a mask that no raster or diagonal cut makes"
        kinds.add("diagonal")
    assert kinds == {"raster", "diagonal"}
    assert torch.allclose(share, masked.view(B, F_, n).float().mean(-1))
    loss = m.train()({**next(shapes_batches(batch_size=2, frames=4))}, [torch.Generator().manual_seed(i) for i in range(2)])
    assert torch.isfinite(loss)


def test_raising_from_the_callback_stops_decoding(raster):
    """A server cancels a job by raising from the step callback: decoding stops at that pass."""
    seen = []

    def cancel(i, *_):
        seen.append(i)
        if i == 3:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        raster.generate_codes(_req(decode="raster", callback=cancel))
    assert seen == [0, 1, 2, 3]


@pytest.mark.parametrize("decode,given", [("raster", 0), ("diagonal", 0), ("raster", 1), ("set", 0), ("set", 1)])
def test_stream_yields_the_clip_generate_makes(raster, setm, decode, given):
    """Frames come as their codes become final (a frame at a time for raster and diagonal, a
    token-frame at a time for set; given frames with the first chunk), and joined they are the
    clip `generate` makes with the same seed: the same codes, decoded chunk by chunk (a
    convolution over fewer frames may round differently, by about 1e-6)."""
    m = setm if decode == "set" else raster
    ctx = next(shapes_batches(batch_size=1, frames=given))["video"] if given else None
    chunks = list(m.stream(_req(num_frames=3, context_BTCHW=ctx)))
    whole = m.generate(_req(num_frames=3, context_BTCHW=ctx))
    sizes = [c.shape[1] for c in chunks]
    if decode == "set":  # token-frames of 2 frames; the last is cut back to the clip's 3 frames
        assert sizes == [2, 1]
    else:
        assert sizes == ([given + 1] if given else [1]) + [1] * (2 - given)
    assert chunks[0].shape[2:] == whole.shape[2:]
    assert torch.allclose(torch.cat(chunks, 1), whole, atol=1e-5, rtol=0)


def test_stream_checks_the_request_at_the_call(raster):
    with pytest.raises(ValueError, match="decode it with"):
        raster.stream(_req(decode="set"))
