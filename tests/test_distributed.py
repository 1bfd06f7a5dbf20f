"""torchrun with 2 CPU processes (gloo) takes the same steps as one process with the same global
batch, for DDP and for FSDP2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

TORCHRUN = Path(sys.executable).with_name("torchrun")
BASE = ["train", "shapes-diffusion-tiny", "--set", "steps=3", "--set", "ckpt_every=3", "--set", "batch_size=4", "--set", "threads=1",
        "--set", "device=cpu"]  # gloo, also where a GPU is present


def _run(args, env_extra=None, torchrun=False):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    cmd = [str(TORCHRUN), "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000), "-m", "framecast.cli", *args] if torchrun \
        else [sys.executable, "-m", "framecast.cli", *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]


def _weights(run: Path):
    return load_file(str(run / "checkpoints" / "step_000003" / "raw.safetensors"))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    _run([*BASE, "--out", str(out)])
    return _weights(out)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_match_one(parallel, single, tmp_path):
    if not TORCHRUN.exists():
        pytest.skip("torchrun is not installed beside this Python")
    _run([*BASE, "--set", f"parallel={parallel}", "--out", str(tmp_path)], torchrun=True)
    multi = _weights(tmp_path)
    assert multi.keys() == single.keys()
    for k in single:
        assert torch.allclose(multi[k], single[k], atol=1e-5, rtol=1e-4), k


def test_gradient_accumulation_matches_one_big_batch(single, tmp_path):
    _run([*BASE, "--set", "accumulate=2", "--out", str(tmp_path)])
    acc = _weights(tmp_path)
    for k in single:
        assert torch.allclose(acc[k], single[k], atol=1e-5, rtol=1e-4), k


def test_device_choice(monkeypatch):
    from framecast.train.distributed import setup

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    if torch.cuda.device_count() < 2:  # two processes, fewer GPUs: auto stays on the CPU, cuda is a clear error
        assert setup("auto").device.type == "cpu"
        with pytest.raises(ValueError, match="needs a GPU for each"):
            setup("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        setup("tpu")
