"""framecast.eval.token_predictability: how surely a set-order token model names each masked code."""

from framecast.eval.token_predictability import main


def test_every_token_of_the_first_token_frame_is_asked_once(tmp_path):
    r = main(["--model", "shapes-ar", "--num", "1", "--output", str(tmp_path / "tp.json")])
    regions = r["regions"]
    assert set(regions) == {"background", "edge", "inside"}
    assert regions["background"]["tokens"] > 0 and regions["background"]["right_code_top"] > 0.5
    assert (tmp_path / "tp.md").is_file()
