"""The committed corpus of bad files (tests/data/bad_files, written by tests/data/make_bad_files.py)
through the real entry points: framecast.load, `framecast generate`, read_video and the folder
dataset. Each is refused with one sentence naming the file, never a traceback; a pickle posing as
weights never runs its code."""

import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

import framecast
from framecast.cli import app
from framecast.generators import from_pretrained
from framecast.video import read_video

CORPUS = Path(__file__).parent / "data" / "bad_files"
runner = CliRunner()

# model folder -> (the file the refusal must name, what it must say)
BAD_MODELS = {
    "model_pickle": ("model.safetensors", "not a safetensors file: it is a Python pickle"),
    "model_torch_zip": ("model.safetensors", "not a safetensors file: it is a Python pickle"),
    "model_zero_bytes": ("model.safetensors", "empty (0 bytes)"),
    "model_truncated": ("model.safetensors", "truncated"),
    "model_nan": ("model.safetensors", "NaN or inf in 'backbone.head.weight'"),
    "model_wrong_shape": ("model.safetensors", "do not fit the config"),
    "config_not_utf8": ("config.json", "not UTF-8"),
    "config_invalid_json": ("config.json", "not valid JSON"),
    "config_heads_zero": ("config.json", "backbone.heads must be > 0, got 0"),
    "config_width_null": ("config.json", "backbone.width must be an integer, got null"),
    "config_generator_list": ("config.json", "'generator' must be a mapping"),
    "config_unknown_key": ("config.json", "unknown key backbone.widht"),
    "config_huge": ("config.json", "more than this machine can hold"),
}
BAD_VIDEOS = ["zero_bytes.mp4", "truncated.mp4", "audio_only.mp4", "text_named.webm"]
PICKLES = ["model_pickle", "model_torch_zip"]


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """Where the corpus's pickles write when their code runs; it must never appear."""
    path = tmp_path / "pickle-ran"
    monkeypatch.setenv("FRAMECAST_BAD_FILES_MARKER", str(path))
    monkeypatch.chdir(tmp_path)  # the pickles' fallback marker would land here
    yield path
    assert not path.exists(), "a pickle in the corpus ran its code inside framecast"
    assert not (tmp_path / "framecast-pickle-ran").exists()


def _one_line(r) -> str:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = [line for line in r.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    return lines[0]


def test_the_corpus_is_committed_whole():
    names = {p.name for p in CORPUS.iterdir()}
    assert set(BAD_MODELS) | {"model_ok", "videos", "captions_latin1"} <= names
    assert all((CORPUS / "videos" / v).is_file() for v in BAD_VIDEOS + ["png_named.mp4"])
    assert sum(f.stat().st_size for f in CORPUS.rglob("*") if f.is_file()) < 200 * 1024


@pytest.mark.parametrize("name", PICKLES)
def test_the_pickles_are_real(name, tmp_path):
    """Outside framecast, loading them the unsafe way does run their code: the refusals below
    are what keeps it from running."""
    marker, copy = tmp_path / "ran", tmp_path / "weights.bin"  # torch.load reads a .safetensors name as safetensors
    copy.write_bytes((CORPUS / name / "model.safetensors").read_bytes())
    load = ("import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))" if name == "model_pickle"
            else "import torch, sys; torch.load(sys.argv[1], weights_only=False)")
    r = subprocess.run([sys.executable, "-c", load, str(copy)], cwd=tmp_path, check=False,
                       env={**os.environ, "FRAMECAST_BAD_FILES_MARKER": str(marker)}, capture_output=True, text=True, timeout=120)
    assert marker.exists(), r.stderr[-2000:]


def test_the_intact_model_loads_and_generates(marker):
    pipe = framecast.load(CORPUS / "model_ok", device="cpu", precision="fp32")
    out = pipe("a red ball", num_frames=2, num_inference_steps=1)
    assert out.frames[0].shape == (2, 8, 8, 3)


@pytest.mark.parametrize("name", sorted(BAD_MODELS))
def test_a_bad_model_folder_is_refused_by_name(name, marker):
    file, says = BAD_MODELS[name]
    path = str(CORPUS / name / file)
    start = time.perf_counter()
    for load in (framecast.load, from_pretrained):
        with pytest.raises(ValueError) as e:
            load(CORPUS / name)
        message = str(e.value)
        assert path in message and says in message, message
        assert "\n" not in message
    assert time.perf_counter() - start < 10  # refused before anything large is built
    line = _one_line(runner.invoke(app, ["generate", "a red ball", "--model", str(CORPUS / name), "--output", "clip.npy"]))
    assert path in line and says in line
    assert not Path("clip.npy").exists()


@pytest.mark.parametrize("name", BAD_VIDEOS)
def test_a_bad_video_is_refused_by_name(name, marker):
    path = CORPUS / "videos" / name
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_video(path)
    line = _one_line(runner.invoke(app, ["generate", "a red ball", "--model", str(CORPUS / "model_ok"), "--video", str(path),
                                         "--output", "clip.npy", "--precision", "fp32"]))
    assert str(path) in line
    assert not Path("clip.npy").exists()


def test_a_png_named_mp4_is_read_as_the_image_it_is_or_refused():
    """FFmpeg recognises a PNG by its content: it reads as a one-frame clip of that image, or is
    refused naming the file; never garbage."""
    from framecast.video import read_image

    path = CORPUS / "videos" / "png_named.mp4"
    try:
        frames = read_video(path)
    except ValueError as e:
        assert str(path) in str(e)
        return
    assert frames.shape[0] == 1 and (frames[0] == read_image_from_png(path, read_image)).all()


def read_image_from_png(path, read_image):
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        png = Path(d) / "frame.png"
        shutil.copy(path, png)
        return read_image(png)


def test_a_folder_of_bad_videos_does_not_crash_the_dataset(tmp_path):
    """Each bad file is skipped with a warning that names it, or the dataset refuses the folder
    with one ValueError: never an exception from inside a decoder."""
    import shutil

    from framecast.data.folder import VideoFolderDataset

    for name in BAD_VIDEOS + ["png_named.mp4"]:
        shutil.copy(CORPUS / "videos" / name, tmp_path / name)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = VideoFolderDataset(tmp_path, size=8, frames=2)
            items = [data[i] for i in range(len(data))]
    except ValueError as e:
        assert str(tmp_path) in str(e)
        return
    said = " ".join(str(w.message) for w in caught)
    skipped = [e.path.name for e, item in zip(data.entries, items) if item is None]
    assert set(BAD_VIDEOS) <= set(skipped) and all(name in said for name in skipped)


def test_a_non_utf8_caption_is_read_or_refused_by_name():
    """A Latin-1 sidecar caption: decoded (with its accents or replacement characters), or one
    ValueError naming clip.txt; never a bare UnicodeDecodeError."""
    from framecast.data.folder import VideoFolderDataset

    folder = CORPUS / "captions_latin1"
    try:
        data = VideoFolderDataset(folder, size=8, frames=2)
    except ValueError as e:
        assert not isinstance(e, UnicodeDecodeError), f"a bare decode error that does not name the file: {e}"
        assert "clip.txt" in str(e)
        return
    assert data[0] is not None and "balle" in data[0]["caption"]


def test_framecast_never_unpickles():
    """Weights are read as safetensors only: no pickle.load, no torch.load without
    weights_only=True, no numpy load with allow_pickle=True anywhere in the package."""
    package = Path(framecast.__file__).parent
    found = []
    for py in package.rglob("*.py"):
        text = py.read_text()
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1):
                found.append(f"{py.name}: {m.group(0)}")
        found += [f"{py.name}: {s}" for s in ("pickle.load", "allow_pickle=True", "dill.load", "joblib.load") if s in text]
    assert not found, found


def test_the_size_estimate_is_near_the_real_count():
    """The memory bound rests on estimate_values: within a factor of two of every bundled model."""
    import json
    import math

    from safetensors import safe_open

    from framecast.generators.spec_check import estimate_values
    from framecast.pipeline import bundled_models

    for name, path in bundled_models().items():
        config = json.loads((path / "config.json").read_text())
        if config["family"] == "classifier":
            continue
        with safe_open(str(path / "model.safetensors"), "pt") as f:
            real = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        assert 0.5 < estimate_values(config) / real < 2, name


def test_the_memory_bound_follows_available_memory(monkeypatch):
    """A model that fits today is refused where memory is short, saying the estimate and the bound;
    a training config gets the same check (build_generator)."""
    from dataclasses import asdict

    import framecast.generators.spec_check as spec_check
    from framecast.generators import ModelSpec, build_generator
    from framecast.train.recipes import load_config

    from_pretrained(CORPUS / "model_ok")
    monkeypatch.setattr(spec_check, "available_memory", lambda: 12 * 1000)
    with pytest.raises(ValueError, match=r"about 3.\de\+03 values, more than this machine can hold: 0.0 GiB available allows about 1e\+03"):
        from_pretrained(CORPUS / "model_ok")
    monkeypatch.undo()
    cfg = load_config("shapes-diffusion-tiny", ["model.backbone.heads=0"])
    with pytest.raises(ValueError, match="the model config: backbone.heads must be > 0, got 0"):
        build_generator(ModelSpec(**asdict(cfg.model)))


@pytest.mark.parametrize("text, says", [
    ("[" * 100000 + "]" * 100000, "nests too deeply"),
    ('{"framecast_format": ' + "9" * 5000 + "}", "does not read as JSON"),
    (None, "backbone.mlp_ratio must be a number, got nan"),
])
def test_json_that_python_reads_badly_is_refused_by_name(tmp_path, text, says):
    import json

    folder = tmp_path / "m"
    folder.mkdir()
    if text is None:  # NaN is a JSON extension Python accepts
        text = (CORPUS / "model_ok" / "config.json").read_text().replace('"mlp_ratio": 2.0', '"mlp_ratio": NaN')
        assert json.loads(text)["backbone"]["mlp_ratio"] != 2.0
    (folder / "config.json").write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(folder / "config.json")) + ".*" + re.escape(says)):
        from_pretrained(folder)
