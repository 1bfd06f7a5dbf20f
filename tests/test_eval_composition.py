"""framecast.eval.composition: scene accuracy by kind of scene, and the score a mix of kinds predicts."""

import json
from pathlib import Path

import pytest

from framecast.eval.composition import by_kind, kind, main, predicted

ONE_SQUARE = "a big red square moves left"
ONE_CIRCLE = "a small blue circle moves up"
PAIR = f"{ONE_SQUARE} and {ONE_CIRCLE}"


def _result(path: Path, clips: list[tuple[str, bool]]) -> Path:
    per_clip = [{"caption": c, "right": r} for c, r in clips]
    path.write_text(json.dumps({"model": "m", "scene_accuracy": sum(r for _, r in clips) / len(clips), "per_clip": per_clip}))
    return path


def test_kinds_count_objects_and_squares():
    assert kind(ONE_SQUARE) == (1, 1) and kind(ONE_CIRCLE) == (1, 0) and kind(PAIR) == (2, 1)
    counts = by_kind([{"caption": ONE_SQUARE, "right": True}, {"caption": ONE_SQUARE, "right": False},
                      {"caption": PAIR, "right": True}])
    assert counts == {(1, 1): (1, 2), (2, 1): (1, 1)}


def test_a_harder_mix_is_predicted_lower_and_a_missing_kind_is_named():
    reference = {(1, 0): (10, 10), (1, 1): (5, 10)}  # circles always right, squares half the time
    easy, hard = {(1, 0): (0, 9), (1, 1): (0, 1)}, {(1, 0): (0, 1), (1, 1): (0, 9)}
    assert predicted(reference, easy)[0] == pytest.approx(0.95)
    assert predicted(reference, hard)[0] == pytest.approx(0.55)
    guess, missing = predicted(reference, {(1, 0): (0, 4), (2, 2): (0, 4)})
    assert guess == pytest.approx(1.0) and missing == [(2, 2)]


def test_the_script_writes_json_and_table(tmp_path):
    ref = _result(tmp_path / "ref.json", [(ONE_CIRCLE, True)] * 4 + [(ONE_SQUARE, True), (ONE_SQUARE, False)])
    other = _result(tmp_path / "other.json", [(ONE_SQUARE, False)] * 3 + [(ONE_CIRCLE, True)])
    out = tmp_path / "comp.json"
    result = main([str(ref), str(other), "--output", str(out)])
    assert json.loads(out.read_text()) == result and out.with_suffix(".md").is_file()
    second = result["results"][1]
    assert second["scene_accuracy"] == 0.25 and second["predicted"] == pytest.approx((3 * 0.5 + 1.0) / 4)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a framecast eval result"):
        main([str(tmp_path / "bad.json"), "--output", str(out)])
