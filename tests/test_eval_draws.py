"""framecast.eval.draws: one model's scores on the same prompts under several noise seeds."""

import json
from pathlib import Path

import pytest

from framecast.eval.draws import main

PROMPTS = ["a big red square moves left", "a small blue circle moves up", "a big green triangle moves down", "a small red circle moves right"]


def _draw(tmp_path: Path, seed: int, right: list[bool], prompts=PROMPTS, model="m") -> Path:
    path = tmp_path / f"seed{seed}.json"
    path.write_text(json.dumps({"model": model, "settings": {}, "seed": seed,
                                "per_clip": [{"caption": p, "right": r} for p, r in zip(prompts, right)]}))
    return path


def test_mean_spread_and_per_prompt_agreement(tmp_path):
    files = [_draw(tmp_path, 1000, [True, True, False, False]), _draw(tmp_path, 0, [True, False, False, True]),
             _draw(tmp_path, 2000, [True, True, False, True])]
    s = main([str(f) for f in files] + ["--output", str(tmp_path / "d.json")])
    assert [d["seed"] for d in s["draws"]] == [0, 1000, 2000]
    assert [d["scene_accuracy"] for d in s["draws"]] == [0.5, 0.5, 0.75]
    assert s["mean"] == pytest.approx(7 / 12) and s["sd"] == pytest.approx(0.1443, abs=1e-4)
    assert s["lower_95"] == pytest.approx(s["mean"] - 1.645 * s["sd"] / 3 ** 0.5)
    assert (s["prompts_always_right"], s["prompts_never_right"], s["prompts_sometimes_right"]) == (1, 1, 2)
    assert json.loads((tmp_path / "d.json").read_text()) == s and (tmp_path / "d.md").is_file()


def test_draws_of_other_prompts_models_or_the_same_seed_are_refused(tmp_path):
    a = _draw(tmp_path, 0, [True] * 4)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(SystemExit, match="other prompts"):
        main([str(a), str(_draw(other, 1, [True] * 4, prompts=PROMPTS[::-1])), "--output", str(tmp_path / "d.json")])
    with pytest.raises(SystemExit, match="another model"):
        main([str(a), str(_draw(other, 2, [True] * 4, model="n")), "--output", str(tmp_path / "d.json")])
    with pytest.raises(SystemExit, match="share a seed"):
        main([str(a), str(_draw(other, 0, [False] * 4)), "--output", str(tmp_path / "d.json")])
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(SystemExit, match="not a framecast eval result"):
        main([str(tmp_path / "bad.json")])
