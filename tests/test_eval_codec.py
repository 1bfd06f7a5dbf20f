"""framecast.eval.codec: reconstruction quality and code statistics of a bundled codec."""

import json

from framecast.eval.codec import main


def test_a_tokenizer_reports_psnr_usage_and_patch_determinism(tmp_path):
    out = tmp_path / "codec.json"
    r = main(["--model", "shapes-tokenizer-local", "--num", "2", "--output", str(out)])
    assert r["clips"] == 2 and r["psnr_db"] > 30 and 0 < r["codebook_usage"] <= 1
    assert r["patch_determinism"] == 1.0  # its codes are a function of their own 4x4 patch
    assert json.loads(out.read_text()) == r and out.with_suffix(".md").is_file()
