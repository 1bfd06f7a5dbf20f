"""The command line: works end to end, and every bad input is one line and a non-zero exit."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from framecast.cli import app

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_generate_every_format(tiny_model_dir, tmp_path):
    for ext in ("npy", "gif", "png", "mp4"):
        r = _run("generate", "a big red circle moves right", "--model", tiny_model_dir, "--steps", 2, "--frames", 4,
                 "--output", tmp_path / f"c.{ext}", "--precision", "fp32")
        assert r.exit_code == 0, r.output
        assert (tmp_path / f"c.{ext}").stat().st_size > 0
    assert np.load(tmp_path / "c.npy").shape == (4, 32, 32, 3)


def test_eval_writes_json_and_sheet(tiny_model_dir, tmp_path):
    r = _run("eval", "--model", tiny_model_dir, "--prompts", "train", "--num", 3, "--steps", 2, "--frames", 4, "--output", tmp_path / "e.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["clips"] == 3 and 0 <= report["scene_accuracy"] <= 1 and len(report["per_clip"]) == 3
    assert (tmp_path / "e.png").is_file() and "scene accuracy" in r.output


def test_models_and_data_preview(tmp_path):
    r = _run("models")
    assert r.exit_code == 0
    r = _run("data", "preview", "shapes", "--output", tmp_path / "s.png", "--num", 2)
    assert r.exit_code == 0 and (tmp_path / "s.png").is_file() and "moves" in r.output


def test_train_tiny_then_generate_with_it(tmp_path):
    r = _run("train", "shapes-diffusion-tiny", "--set", "steps=2", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    r = _run("generate", "a small green circle moves up", "--model", tmp_path / "run" / "model", "--steps", 2, "--output", tmp_path / "c.npy")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "", "--output", "x.npy"], "prompt is empty"),
        (["generate", "!!! ???", "--output", "x.npy"], "has no words"),
        (["generate", "a big red circle moves right", "--frames", "0", "--output", "x.npy"], "--frames must be > 0"),
        (["generate", "a big red circle moves right", "--output", "x.avi"], "must end in"),
        (["generate", "a big red circle moves right", "--model", "/no/such/folder", "--output", "x.npy"], "no model"),
        (["train", "no-such-recipe"], "unknown recipe"),
        (["pack", "no-such-run", "out"], "nothing to pack"),
        (["eval", "--prompts", "no-such-split-or-file", "--num", "1"], "neither a Shapes split"),
        (["eval", "--num", "1", "--fvd", "resnet"], "unknown FVD feature network"),
        (["eval", "--num", "1", "--fvd", "i3d:/no/such/i3d.safetensors"], "i3d.safetensors"),
    ],
)
def test_bad_input_is_one_line(args, message, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "--model" not in args and args[0] in ("generate", "eval"):
        args = args + ["--model", str(tiny_model_dir)]
    r = _run(*args)
    assert r.exit_code != 0
    lines = [line for line in r.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], r.output


def test_foreign_and_damaged_model_folders(tmp_path, tiny_model_dir):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"_class_name": "UNet3DConditionModel"}))
    r = _run("generate", "a big red circle moves right", "--model", foreign, "--output", tmp_path / "x.npy")
    assert r.exit_code != 0 and "another library" in r.output
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    (damaged / "model.safetensors").write_bytes(b"\x00" * 100)
    r = _run("generate", "a big red circle moves right", "--model", damaged, "--output", tmp_path / "x.npy")
    assert r.exit_code != 0 and "not a readable safetensors" in r.output
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    cfg["backbone"]["width"] = 64
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps(cfg))
    (other / "model.safetensors").write_bytes((tiny_model_dir / "model.safetensors").read_bytes())
    r = _run("generate", "a big red circle moves right", "--model", other, "--output", tmp_path / "x.npy")
    assert r.exit_code != 0 and "do not fit the config" in r.output
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "config.json").write_text(json.dumps({**cfg, "framecast_format": 99}))
    r = _run("generate", "a big red circle moves right", "--model", newer, "--output", tmp_path / "x.npy")
    assert r.exit_code != 0 and "newer" in r.output


def test_schedule_show_and_streaming(tmp_path):
    r = _run("schedule", "show", "pyramid", "--frames", 4, "--steps", 3, "--offset", 1, "--output", tmp_path / "m.png")
    assert r.exit_code == 0 and (tmp_path / "m.png").is_file() and "model calls" in r.output
    r = _run("schedule", "show", "zigzag", "--output", tmp_path / "m.png")
    assert r.exit_code != 0 and "unknown schedule" in r.output
    r = _run("schedule", "show", "autoregressive", "--frames", 4, "--steps", 2, "--first-steps", 6, "--output", tmp_path / "f.png")
    assert r.exit_code == 0 and "12 steps x 4 frames" in r.output  # 6 for frame 0, then 2 for each of the other 3


def test_stream_of_a_token_model_writes_a_frame_at_a_time(tiny_ar_dir, tmp_path):
    r = _run("generate", "a big red circle moves right", "--model", tiny_ar_dir, "--stream", "--frames", 2, "--decode", "diagonal",
             "--output", tmp_path / "s.gif", "--precision", "fp32")
    assert r.exit_code == 0, r.output
    assert r.output.count("ready") == 2 and (tmp_path / "s.gif").stat().st_size > 0


def test_stream_needs_a_hybrid_model_and_works_with_one(tiny_model_dir, tmp_path):
    r = _run("generate", "a big red circle moves right", "--model", tiny_model_dir, "--stream", "--output", tmp_path / "x.mp4")
    assert r.exit_code != 0 and "streaming needs a hybrid or autoregressive model" in r.output
    assert not (tmp_path / "x.mp4").exists()  # the request was refused before the file was opened
    r = _run("train", "shapes-hybrid-tiny", "--set", "steps=1", "--out", tmp_path / "h")
    assert r.exit_code == 0, r.output
    r = _run("generate", "a big red circle moves right", "--model", tmp_path / "h" / "model", "--stream", "--frames", 6,
             "--steps", 2, "--output", tmp_path / "s.mp4", "--precision", "fp32")
    assert r.exit_code == 0, r.output
    assert r.output.count("ready") == 6 and (tmp_path / "s.mp4").stat().st_size > 0
    from framecast.video import read_video

    assert read_video(tmp_path / "s.mp4").shape[0] == 6
