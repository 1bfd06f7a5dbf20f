"""Kill a training run with SIGKILL mid-way, resume it, and get the uninterrupted run's losses."""

import json
import os
import signal
import subprocess
import sys
import time

ARGS = ["train", "shapes-diffusion-tiny", "--set", "steps=150", "--set", "ckpt_every=20", "--set", "log_every=1", "--set", "threads=1"]


def _losses(run):
    return [(r["step"], r["loss"]) for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())]


def test_sigkill_then_resume_reproduces_the_losses(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    subprocess.run([sys.executable, "-m", "framecast.cli", *ARGS, "--out", str(straight)], env=env, check=True, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "framecast.cli", *ARGS, "--out", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        log = killed / "log.jsonl"
        if log.is_file() and len(log.read_text().splitlines()) >= 50:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    steps_before = len((killed / "log.jsonl").read_text().splitlines())
    assert 50 <= steps_before < 150, "the run was not killed mid-way"
    assert not any(p.name.startswith(".tmp") and (p / "state.json").exists() for p in (killed / "checkpoints").iterdir())

    r = subprocess.run([sys.executable, "-m", "framecast.cli", "train", "--resume", str(killed)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _losses(killed) == _losses(straight)
