"""framecast.eval.renoise: real clips noised to a level and denoised again by a diffusion model."""

from framecast.eval.renoise import main


def test_one_row_per_level_with_the_ceiling_one_step_and_each_sampler(tmp_path):
    r = main(["--num", "2", "--levels", "0.1", "--samplers", "euler", "--output", str(tmp_path / "renoise.json")])
    (row,) = r["results"]
    assert row["model"] == "shapes-diffusion" and row["steps"] >= 1 and abs(row["level"] - 0.1) < 0.05
    assert all(0 <= row[k] <= 1 for k in ("ceiling", "one_step", "euler"))
