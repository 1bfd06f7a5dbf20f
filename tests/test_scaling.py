"""Test-time scaling: verifiers, best-of-N and per-chunk search."""

import numpy as np
import pytest
import torch

import framecast
from framecast.data.shapes import render_clip
from framecast.eval.classifier import DEFAULT_PATH
from framecast.eval.evaluate import evaluate
from framecast.eval.scaling import best_of_n, candidate_seed, chunk_search, judge_score, make_verifier

PROMPT = "a big red circle moves right"


class Brightness:
    """A verifier anyone can check by hand: brighter clips score higher."""

    name, min_frames = "brightness", 1

    def __call__(self, clips, captions):
        return np.array([float(c.mean()) for c in clips])


@pytest.fixture(scope="module")
def hybrid_pipe(tiny_hybrid_dir):
    return framecast.load(str(tiny_hybrid_dir), precision="fp32")


def test_judge_score_ranks_a_right_clip_first():
    clip = render_clip(3)
    assert judge_score(clip.video, clip.caption) == pytest.approx(3.0)  # right (2) + every check passing (1)
    assert judge_score(np.zeros_like(clip.video), clip.caption) == 0.0
    with pytest.raises(ValueError, match="unknown verifier"):
        make_verifier("oracle")


def test_best_of_one_is_the_plain_sample_and_n_keeps_the_favourite(pipe):
    kw = dict(num_frames=4, num_inference_steps=2)
    plain = pipe(PROMPT, generator=torch.Generator().manual_seed(7), **kw).frames[0]
    one = best_of_n(pipe, [PROMPT], 1, seeds=[7], **kw)
    assert np.array_equal(one["frames"][0], plain) and one["chosen"] == [0]
    four = best_of_n(pipe, [PROMPT], 4, seeds=[7], verifier=Brightness(), **kw)
    cands = [pipe(PROMPT, generator=torch.Generator().manual_seed(candidate_seed(7, k)), **kw).frames[0] for k in range(4)]
    k = int(np.argmax([c.mean() for c in cands]))
    assert four["chosen"] == [k] and np.array_equal(four["frames"][0], cands[k])
    assert np.argmax(four["scores"][0]) == k and len(four["scores"][0]) == 4
    with pytest.raises(ValueError, match=">= 1"):
        best_of_n(pipe, [PROMPT], 0, seeds=[7], **kw)


def test_evaluate_with_best_of(pipe):
    kw = dict(num_frames=4, num_inference_steps=2)
    plain = evaluate(pipe, [PROMPT] * 2, progress=False, **kw)
    best = evaluate(pipe, [PROMPT] * 2, progress=False, best_of=3, verifier=Brightness(), **kw)
    assert best["settings"]["best_of"] == 3 and best["settings"]["verifier"] == "brightness"
    assert all(b.mean() >= p.mean() for b, p in zip(best["frames"], plain["frames"]))  # candidate 0 is the plain clip


def test_chunk_search_grows_the_clip_chunk_by_chunk(hybrid_pipe, pipe):
    kw = dict(num_inference_steps=2)
    found = chunk_search(hybrid_pipe, PROMPT, 3, seed=1, chunk=2, num_frames=6, verifier=Brightness(), **kw)
    assert found["frames"].shape == (6, 32, 32, 3) and len(found["chosen"]) == 3 and all(len(s) == 3 for s in found["scores"])
    # the first chunk is the favourite of three plain 2-frame clips
    firsts = [hybrid_pipe(PROMPT, num_frames=2, generator=torch.Generator().manual_seed(candidate_seed(1, k)), **kw).frames[0]
              for k in range(3)]
    assert np.array_equal(found["frames"][:2], firsts[int(np.argmax([f.mean() for f in firsts]))])
    with pytest.raises(ValueError, match="use best-of-N"):
        chunk_search(pipe, PROMPT, 2, seed=0, chunk=2, num_frames=4)
    with pytest.raises(ValueError, match="chunk must be between"):
        chunk_search(hybrid_pipe, PROMPT, 2, seed=0, chunk=6, num_frames=6)


def test_generate_cli_best_of(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from framecast.cli import app

    out = tmp_path / "best.npy"
    r = CliRunner().invoke(app, ["generate", PROMPT, "--model", str(tiny_model_dir), "--frames", "4", "--steps", "2",
                                 "--best-of", "3", "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert "of 3 (judge scores" in r.output and np.load(out).shape == (4, 32, 32, 3)
    r = CliRunner().invoke(app, ["generate", PROMPT, "--model", str(tiny_model_dir), "--best-of", "2", "--stream"])
    assert r.exit_code != 0 and "cannot search among candidates" in r.output


@pytest.mark.skipif(not DEFAULT_PATH.is_dir(), reason="no shipped Shapes classifier yet")
def test_classifier_verifier_prefers_the_true_caption():
    verify = make_verifier("classifier")
    clips = [render_clip(10**6 + i) for i in range(32)]
    wrong = [render_clip(2 * 10**6 + i).caption for i in range(32)]
    true_ll = verify([c.video for c in clips], [c.caption for c in clips])
    wrong_ll = verify([c.video for c in clips], wrong)
    assert (true_ll > wrong_ll).mean() >= 0.9
