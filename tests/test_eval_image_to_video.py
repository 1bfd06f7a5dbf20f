"""framecast.eval.image_to_video: the given first frame kept, the rest following the prompt."""

from framecast.eval.image_to_video import main


def test_the_hybrid_keeps_the_given_frame(tmp_path):
    r = main(["--models", "shapes-hybrid", "--num", "1", "--output", str(tmp_path / "i2v.json")])
    (row,) = r["results"]
    assert row["clips"] == 1 and row["psnr_frame0_db"] > 30  # the codec's round trip of the given frame
    assert 0 <= row["scene_accuracy"] <= 1
