"""Runs and packs under damage and misuse: a damaged checkpoint is one sentence naming the file
(and the run's last whole checkpoint), a pack never deletes its source nor races another, and a
pack's stored out_dir cannot send a resumed run outside the current folder."""

import json
import os
import shutil
import threading

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from framecast.cli import app
from framecast.train.checkpoint import latest_checkpoint, pack_checkpoint, truncate_log
from framecast.train.folders import destination_lock
from framecast.train.recipes import load_config, load_run_config
from framecast.train.trainer import train

runner = CliRunner()


def _cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def _one_line_refusal(r, *needles):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = [line for line in r.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    for needle in needles:
        assert needle in lines[0], r.output


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny run with whole checkpoints at steps 2 and 4."""
    run = tmp_path_factory.mktemp("trained") / "run"
    train(load_config("shapes-diffusion-tiny", [f"out_dir={run}", "steps=4", "ckpt_every=2", "keep_last=3"]), progress=False)
    return run


@pytest.fixture
def run(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith((".tmp_", ".old_")) or p.name.endswith(".lock")]


# --- packs -------------------------------------------------------------------------------------
def test_a_pack_never_replaces_its_source(run, tmp_path):
    before = _snapshot(run)
    ckpt = run / "checkpoints" / "step_000004"
    for dest, why in [(run, "would delete"), (run.parent, "would delete"), (run / "packed", "inside"),
                      (ckpt, "would delete"), (ckpt / "p", "inside")]:
        with pytest.raises(ValueError, match=why):
            pack_checkpoint(run, dest)
        _one_line_refusal(_cli("pack", run, dest), why)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    _one_line_refusal(_cli("pack", run, tmp_path / "notes"), "not a packed checkpoint")
    (tmp_path / "afile").write_text("x")
    _one_line_refusal(_cli("pack", run, tmp_path / "afile"), "is a file")
    assert _snapshot(run) == before
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    assert _leftovers(tmp_path) == [] and _leftovers(run) == []


def test_a_pack_replaces_an_earlier_pack_whole(run, tmp_path):
    dest = tmp_path / "packs" / "tiny"
    pack_checkpoint(run / "checkpoints" / "step_000002", dest)
    assert json.loads((dest / "state.json").read_text())["step"] == 2
    r = _cli("pack", run, dest)
    assert r.exit_code == 0, r.output
    assert json.loads((dest / "state.json").read_text())["step"] == 4
    assert _leftovers(dest.parent) == []


def test_two_packs_to_one_destination_do_not_race(run, tmp_path):
    dest = tmp_path / "tiny"
    held, release = threading.Event(), threading.Event()

    def other_pack():
        with destination_lock(dest, "framecast pack"):
            held.set()
            release.wait(30)

    t = threading.Thread(target=other_pack)
    t.start()
    try:
        assert held.wait(30)
        _one_line_refusal(_cli("pack", run, dest), "another framecast pack is writing")
        assert not dest.exists()
    finally:
        release.set()
        t.join()
    assert _cli("pack", run, dest).exit_code == 0
    assert _leftovers(tmp_path) == []


def test_a_failed_pack_leaves_nothing(run, tmp_path, monkeypatch):
    import framecast.train.checkpoint as checkpoint

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", broken)
    _one_line_refusal(_cli("pack", run, tmp_path / "tiny"), "No space left on device")
    assert not (tmp_path / "tiny").exists() and _leftovers(tmp_path) == []


# --- damaged checkpoints --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["model.safetensors", "raw.safetensors", "optimizer.safetensors"])
def test_a_truncated_checkpoint_names_the_file_and_the_earlier_one(run, tmp_path, name):
    damaged = run / "checkpoints" / "step_000004" / name
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    before = _snapshot(run)
    for r in (_cli("train", "--resume", run), _cli("pack", run, tmp_path / "p")):
        _one_line_refusal(r, str(damaged), "truncated", str(run / "checkpoints" / "step_000002"))
    assert _snapshot(run) == before and not (tmp_path / "p").exists()
    r = _cli("pack", run / "checkpoints" / "step_000002", tmp_path / "p")  # the earlier one, as the refusal says
    assert r.exit_code == 0, r.output


def test_a_zero_byte_checkpoint_without_an_earlier_one(run):
    shutil.rmtree(run / "checkpoints" / "step_000002")
    (run / "checkpoints" / "step_000004" / "model.safetensors").write_bytes(b"")
    r = _cli("train", "--resume", run)
    _one_line_refusal(r, "model.safetensors", "empty (0 bytes)")
    assert "whole checkpoint" not in r.output


def test_a_checkpoint_with_nan_weights_is_refused(run):
    path = run / "checkpoints" / "step_000004" / "raw.safetensors"
    tensors = load_file(str(path))
    name = sorted(tensors)[0]
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, str(path))
    _one_line_refusal(_cli("train", "--resume", run), "NaN or inf", name)


def test_damaged_state_and_config_name_the_file(run):
    state = run / "checkpoints" / "step_000004" / "state.json"
    state.write_bytes(b"{\"step\": 4, \"train_config\": \xff}")
    _one_line_refusal(_cli("train", "--resume", run), str(state), "not UTF-8")
    state.write_text("[1, 2]")
    _one_line_refusal(_cli("train", "--resume", run), str(state))
    (run / "train_config.json").write_text("{\"steps\": ")
    _one_line_refusal(_cli("train", "--resume", run), str(run / "train_config.json"), "not valid JSON")
    (run / "train_config.json").write_text(json.dumps({"steps": "many"}))
    _one_line_refusal(_cli("train", "--resume", run), str(run / "train_config.json"))


def test_a_log_cut_mid_line_is_read_up_to_its_last_whole_record(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n{"step": 3, "lo')
    truncate_log(log, 2)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]


def test_a_checkpoint_is_replaced_only_once_the_new_one_is_whole(run, monkeypatch):
    """A rename that fails (a full disk, a kill) leaves the earlier checkpoint of that step whole."""
    import framecast.train.folders as folders

    ckpt = run / "checkpoints" / "step_000004"
    before = _snapshot(ckpt)
    real_rename = os.rename

    def failing(src, dst):
        if ".tmp_step_" in str(src):  # the new checkpoint's rename, after the old one was moved aside
            raise OSError(5, "Input/output error")
        return real_rename(src, dst)

    monkeypatch.setattr(folders.os, "rename", failing)
    cfg = load_run_config(run, ["steps=4"])
    with pytest.raises(OSError):
        train(cfg, resume=run / "checkpoints" / "step_000002", progress=False)
    assert _snapshot(ckpt) == before and latest_checkpoint(run) == ckpt
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".old_")]


# --- where a resumed pack writes --------------------------------------------------------------
@pytest.mark.parametrize("elsewhere", ["../../elsewhere", "ABSOLUTE"])
def test_a_pack_cannot_send_a_resumed_run_outside_the_current_folder(run, tmp_path, monkeypatch, elsewhere):
    pack = tmp_path / "work" / "packs" / "tiny"
    pack_checkpoint(run, pack)
    out_dir = str(tmp_path / "elsewhere") if elsewhere == "ABSOLUTE" else elsewhere
    for name in ("train_config.json", "state.json"):
        raw = json.loads((pack / name).read_text())
        (raw.get("train_config", raw))["out_dir"] = out_dir
        (pack / name).write_text(json.dumps(raw))
    work = tmp_path / "work"
    monkeypatch.chdir(work)
    with pytest.warns(UserWarning, match="outside the current folder"):
        assert load_run_config(pack).out_dir == os.path.join("runs", "tiny")
    with pytest.warns(UserWarning, match="outside the current folder"):
        r = _cli("train", "--resume", pack, "--set", "steps=5")
    assert r.exit_code == 0, r.output
    assert (work / "runs" / "tiny" / "checkpoints" / "step_000005").is_dir()
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path.parent / "elsewhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "work"]
    with pytest.warns(UserWarning):  # a folder the user names is theirs
        r = _cli("train", "--resume", pack, "--set", "steps=5", "--out", tmp_path / "named")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "named" / "checkpoints" / "step_000005").is_dir()


def test_a_run_resumes_into_itself_whatever_its_config_says(run, tmp_path, monkeypatch):
    raw = json.loads((run / "train_config.json").read_text())
    raw["out_dir"] = str(tmp_path / "elsewhere")
    (run / "train_config.json").write_text(json.dumps(raw))
    monkeypatch.chdir(tmp_path)
    r = _cli("train", "--resume", run, "--set", "steps=5")
    assert r.exit_code == 0, r.output
    assert (run / "checkpoints" / "step_000005").is_dir() and not (tmp_path / "elsewhere").exists()


def test_a_damaged_latent_pool_cache_is_encoded_again(tmp_path):
    run = tmp_path / "run"
    cfg = ["out_dir=" + str(run), "steps=2", "ckpt_every=2", "data.latent_pool=4", "batch_size=2"]
    train(load_config("shapes-ar-tiny", cfg), progress=False)
    cache = run / "latent_pool.safetensors"
    cache.write_bytes(cache.read_bytes()[:100])
    with pytest.warns(UserWarning, match="encoding the pool again"):
        train(load_config("shapes-ar-tiny", cfg[:1] + ["steps=3"] + cfg[2:]), resume=run, progress=False)
    assert (run / "checkpoints" / "step_000003").is_dir()


def test_init_from_a_pickle_never_runs_it(tmp_path, monkeypatch):
    from pathlib import Path

    marker = tmp_path / "ran"
    monkeypatch.setenv("FRAMECAST_BAD_FILES_MARKER", str(marker))
    folder = Path(__file__).parent / "data" / "bad_files" / "model_pickle"
    cfg = load_config("shapes-diffusion-tiny", [f"out_dir={tmp_path / 'run'}", "steps=1", f"init_from={folder}"])
    with pytest.raises(ValueError, match="not a safetensors file"):
        train(cfg, progress=False, dry_run=True)
    assert not marker.exists()
