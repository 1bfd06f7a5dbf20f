"""The command line's edges: careless or hostile input is one or two lines naming the input and an
exit code (2 for bad input), never a traceback, never a file at the output path; outputs are
checked up front and written whole; and the ergonomics a user expects (--version, prompts,
examples in --help, several outputs, a clip framecast wrote read back, warnings from model cards)."""

import io
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import framecast
from framecast.cli import FAR_BELOW, app, card_warning, progress_bar
from framecast.pipeline import resolve_model

PROMPT = "a big red circle moves right"
runner = CliRunner()


def _run(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def _refused(r, *names, code=2):
    """Exit `code`, one or two lines, the input named, no traceback."""
    assert r.exit_code == code, r.output
    lines = [line for line in r.output.strip().splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit), r.output
    for name in names:
        assert name in r.output, r.output


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


# --- numbers at the edge ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, named",
    [
        (["--seed", str(2**64)], "--seed"),
        (["--seed", "-1"], "--seed"),
        (["--frames", "1000000"], "--frames 1000000"),
        (["--frames", "-3"], "--frames"),
        (["--steps", str(2**40)], "--steps"),
        (["--guidance", "nan"], "--guidance"),
        (["--guidance", "inf"], "--guidance"),
        (["--temperature", "nan"], "--temperature"),
        (["--temperature", "-1"], "--temperature"),
        (["--top-p", "1.5"], "--top-p"),
        (["--top-k", "-1"], "--top-k"),
        (["--best-of", "0"], "--best-of"),
        (["--best-of", "100000"], "--best-of"),
        (["--fps", "nan"], "--fps"),
        (["--fps", "0"], "--fps"),
        (["--context-level", "inf"], "--context-level"),
        (["--first-steps", "-1"], "--first-steps"),
        (["--first-steps", str(2**40)], "--first-steps"),
    ],
)
def test_generate_refuses_bad_numbers(args, named, tiny_model_dir, tmp_path):
    r = _run("generate", PROMPT, "--model", tiny_model_dir, "--output", tmp_path / "c.npy", *args)
    _refused(r, named)
    assert _leftovers(tmp_path) == []


def test_frames_limit_is_derived_from_memory_and_said(tiny_model_dir, tmp_path):
    r = _run("generate", PROMPT, "--model", tiny_model_dir, "--output", tmp_path / "c.npy", "--frames", 10**6, "--device", "cpu")
    _refused(r, "GiB", "give --frames")
    limit = int(r.output.split("give --frames ")[1].split()[0])
    assert 4 <= limit < 10**6  # the most the memory free now holds
    assert _run("generate", PROMPT, "--model", tiny_model_dir, "--output", tmp_path / "c.npy", "--frames", 2 * limit).exit_code == 2


@pytest.mark.parametrize(
    "args, named",
    [
        (["eval", "--num", "0"], "--num"),
        (["eval", "--num", "1", "--batch-size", "0"], "--batch-size"),
        (["eval", "--num", "2", "--seed", str(2**63 - 1)], "--seed"),
        (["eval", "--num", str(10**9)], "--num"),
        (["eval", "--num", "1", "--steps", "0"], "--steps"),
        (["schedule", "show", "full", "--frames", "100000", "--steps", "100000"], "--frames 100000"),
        (["schedule", "show", "autoregressive", "--frames", "100", "--steps", "1000"], "rows"),
        (["schedule", "show", "full", "--shift", "nan"], "--shift"),
        (["schedule", "show", "autoregressive", "--frames", "100", "--steps", "40", "--first-steps", "1000"], "rows"),
        (["data", "preview", "shapes", "--num", "0"], "--num"),
        (["data", "preview", "shapes", "--frames", "1000000"], "--frames"),
        (["lens", PROMPT, "--steps", str(2**40)], "--steps"),
        (["lens", PROMPT, "--seed", str(2**64)], "--seed"),
        (["prompts", "--num", "1000"], "--num"),
    ],
)
def test_other_commands_refuse_bad_numbers(args, named, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if args[0] in ("eval", "lens"):
        args = args + ["--model", str(tiny_model_dir)]
    _refused(_run(*args), named)
    assert _leftovers(tmp_path) == []


# --- output paths -----------------------------------------------------------------------------
def test_outputs_are_checked_before_any_work(tiny_model_dir, tmp_path, monkeypatch):
    import framecast.pipeline

    monkeypatch.setattr(framecast.pipeline, "load", lambda *a, **k: pytest.fail("a bad output must be refused before loading"))
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.mp4").mkdir()
    cases = [
        (tmp_path / "afile" / "c.mp4", "is a file, not a folder"),
        (tmp_path / "adir.mp4", "is a folder"),
        (tmp_path / "missing" / "c.mp4", "does not exist"),
        (tmp_path / "c.avi", "must end in"),
    ]
    for path, message in cases:
        _refused(_run("generate", PROMPT, "--model", tiny_model_dir, "--output", path), message, str(path.name))
    _refused(_run("generate", PROMPT, "--model", tiny_model_dir, "-o", tmp_path / "c.mp4", "-o", tmp_path / "c.mp4"), "twice")
    for cmd in (["eval", "--num", 1, "--output", tmp_path / "afile" / "e.json"], ["lens", PROMPT, "--output", tmp_path / "afile"],
                ["schedule", "show", "full", "--output", tmp_path / "adir.mp4"], ["data", "preview", "--output", tmp_path / "afile" / "s.png"]):
        _refused(_run(*cmd), "afile" if "afile" in str(cmd[-1]) else "adir.mp4")
    assert _leftovers(tmp_path) == ["adir.mp4", "afile"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_folder_is_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        _refused(_run("generate", PROMPT, "--model", tiny_model_dir, "--output", folder / "c.npy"), "not writable")
    finally:
        folder.chmod(0o755)


def test_existing_output_is_kept_without_overwrite(tiny_model_dir, tmp_path):
    old = tmp_path / "c.npy"
    old.write_bytes(b"keep me")
    base = ["generate", PROMPT, "--model", tiny_model_dir, "--steps", 2, "--precision", "fp32", "--output", old]
    _refused(_run(*base), "c.npy", "--overwrite")
    assert old.read_bytes() == b"keep me"
    r = _run(*base, "--overwrite")
    assert r.exit_code == 0, r.output
    assert np.load(old).shape == (4, 32, 32, 3)
    assert _leftovers(tmp_path) == ["c.npy"]


def test_several_outputs_from_one_clip(tiny_model_dir, tmp_path):
    r = _run("generate", PROMPT, "--model", tiny_model_dir, "--steps", 2, "--precision", "fp32",
             "-o", tmp_path / "a.mp4", "-o", tmp_path / "a.png", "-o", tmp_path / "a.npy")
    assert r.exit_code == 0, r.output
    assert _leftovers(tmp_path) == ["a.mp4", "a.npy", "a.png"]
    sheet = np.asarray(Image.open(tmp_path / "a.png"))
    plain = np.asarray(framecast.video.contact_sheet(np.load(tmp_path / "a.npy"), scale=2))
    assert sheet.shape[0] > plain.shape[0]  # the prompt is written above the sheet


def test_a_failure_while_writing_leaves_nothing(tiny_model_dir, tmp_path, monkeypatch):
    import framecast.video as video

    def broken(frames, path, fps):
        open(path, "wb").write(b"half")
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(video, "write_mp4", broken)
    r = _run("generate", PROMPT, "--model", tiny_model_dir, "--steps", 2, "--output", tmp_path / "c.mp4")
    _refused(r, "No space left on device", code=1)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("error, code, said", [(MemoryError(), 1, "out of memory"), (KeyboardInterrupt(), 130, "interrupted"),
                                               (RuntimeError("boom"), 1, "FRAMECAST_DEBUG=1")])
def test_unexpected_errors_are_one_line(error, code, said, tiny_model_dir, tmp_path, monkeypatch):
    import framecast.pipeline

    def load(*a, **k):
        raise error

    monkeypatch.setattr(framecast.pipeline, "load", load)
    r = _run("generate", PROMPT, "--model", tiny_model_dir, "--output", tmp_path / "c.npy")
    _refused(r, said, code=code)
    assert _leftovers(tmp_path) == []
    r = _run("--debug", "generate", PROMPT, "--model", tiny_model_dir, "--output", tmp_path / "c.npy")
    assert r.exception is error or isinstance(error, KeyboardInterrupt)  # developers see the exception itself


def test_a_huge_input_is_not_echoed_whole(tiny_model_dir, tmp_path):
    r = _run("generate", "unicorn " * 20_000, "--model", tiny_model_dir, "--output", tmp_path / "c.npy")
    assert r.exit_code == 2 and len(r.output) < 1000 and "unicorn" in r.output


# --- ergonomics -------------------------------------------------------------------------------
def test_version_and_examples_in_help():
    r = _run("--version")
    assert r.exit_code == 0 and r.output.strip() == f"framecast {framecast.__version__}"
    for cmd in (["generate"], ["eval"], ["lens"], ["train"], ["pack"], ["arena"], ["models"], ["prompts"],
                ["schedule", "show"], ["data", "scan"], ["data", "preview"]):
        r = _run(*cmd, "--help")
        assert r.exit_code == 0 and "Example: framecast" in r.output, cmd


def test_prompts_shows_words_and_grammar(tiny_model_dir):
    r = _run("prompts", "shapes-hybrid", "--num", 3)
    assert r.exit_code == 0, r.output
    assert "circle" in r.output and "a <size> <colour> <shape> moves <direction>" in r.output
    lines = r.output.split("Examples")[1].splitlines()[1:]
    canonical = [line for line in lines if line.startswith("  ") and not line.startswith("    ")]
    reworded = [line for line in lines if line.startswith("    ")]  # a free-text model shows each in other words
    assert len(canonical) == 3 and all(" moves " in e for e in canonical) and len(reworded) == 3
    assert _run("prompts", tiny_model_dir).exit_code == 0
    _refused(_run("prompts", "shapes-vae"), "shapes-vae", "no prompt")


def test_own_mp4_is_read_back_and_resized(tiny_model_dir, tmp_path):
    base = ["generate", PROMPT, "--model", tiny_model_dir, "--steps", 2, "--precision", "fp32"]
    assert _run(*base, "--output", tmp_path / "first.mp4").exit_code == 0
    r = _run(*base, "--video", tmp_path / "first.mp4", "--context-frames", 2, "--output", tmp_path / "next.npy")
    assert r.exit_code == 0, r.output
    assert "resized to the model's 32x32" in r.output
    assert np.load(tmp_path / "next.npy").shape == (4, 32, 32, 3)


def test_card_warning_reads_the_cards(tmp_path):
    scores = json.loads((resolve_model("shapes-ar") / "scores.json").read_text())
    pipe = SimpleNamespace(path=resolve_model("shapes-ar"), name="shapes-ar")
    orders = json.loads((resolve_model("shapes-ar-orders") / "scores.json").read_text())  # raster: shapes-ar's decode_with sibling
    for order, score in (("raster", orders["scene_accuracy"]), ("diagonal", scores["diagonal"]["scene_accuracy"])):
        said = card_warning(pipe, decode=order)  # an order's score on the card (its own or its sibling's), warned about where far below
        far = score < FAR_BELOW * scores["scene_accuracy"]
        assert (said is not None) == far and (not far or f"{score:.2f}" in said)
    assert card_warning(pipe, decode="set") is None and card_warning(pipe, decode=None) is None
    assert card_warning(SimpleNamespace(path=resolve_model("shapes-hybrid"), name="h"), schedule="full") is None
    card = tmp_path / "m"  # a sibling's card is read where a bundle hands an order to one (decode_with)
    card.mkdir()
    (card / "config.json").write_text(json.dumps({"framecast_format": 1, "family": "autoregressive",
                                               "decode_with": {"raster": str(resolve_model("shapes-ar-raster"))}}))
    (card / "scores.json").write_text(json.dumps({"scene_accuracy": 0.9}))
    raster = json.loads((resolve_model("shapes-ar-raster") / "scores.json").read_text())["scene_accuracy"]
    assert f"{raster:.2f}" in card_warning(SimpleNamespace(path=card, name="m"), decode="raster")


def test_progress_bar_counts_every_step(tiny_model_dir):
    import torch

    pipe = framecast.load(str(tiny_model_dir), precision="fp32", device="cpu")
    call = dict(num_inference_steps=3)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    shown = Terminal()
    bar, on_step = progress_bar(pipe, PROMPT, call, file=shown)
    pipe(PROMPT, generator=torch.Generator().manual_seed(0), callback_on_step_end=on_step, **call)
    assert bar.total == 3 and bar.n == 3
    bar.close()
    assert "0/3" in shown.getvalue() and "step/s" in shown.getvalue()  # steps of the total, with the rate and ETA


def test_progress_bar_counts_a_token_models_passes(tiny_ar_dir):
    import torch

    pipe = framecast.load(str(tiny_ar_dir), precision="fp32", device="cpu")
    call = dict(num_frames=2, decode="diagonal")
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    bar, on_step = progress_bar(pipe, PROMPT, call, file=Terminal())
    pipe(PROMPT, generator=torch.Generator().manual_seed(0), callback_on_step_end=on_step, **call)
    assert bar.total == bar.n == pipe.total_steps(PROMPT, **call) > 0 and bar.unit == "pass"
    bar.close()


def test_lens_replaces_only_a_lens_folder(tiny_model_dir, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep")
    args = ["lens", PROMPT, "--model", tiny_model_dir, "--steps", 2, "--frames", 4, "--overwrite"]
    _refused(_run(*args, "--output", mine), "thesis.tex")
    assert _leftovers(mine) == ["thesis.tex"]
    assert _run(*args, "--output", tmp_path / "lens").exit_code == 0
    r = _run(*args, "--output", tmp_path / "lens")
    assert r.exit_code == 0, r.output
    assert _leftovers(tmp_path) == ["lens", "mine"]
