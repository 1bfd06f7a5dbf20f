"""Few-step students trained onto the teacher's own finishes (framecast/train/finish.py) on tiny models."""

import json
from types import SimpleNamespace

import pytest
import torch

from framecast.generators import from_pretrained, save_pretrained
from framecast.generators.base import GenerationRequest
from framecast.train import finish
from framecast.train.dmd import STUDENT_SAMPLER, encode, scene_captions, x0_of


@pytest.fixture(scope="module")
def tiny_student_dir(tiny_model_dir, tmp_path_factory):
    """The tiny diffusion model set to sample in 3 unguided steps of the students' sampler."""
    student = from_pretrained(tiny_model_dir)
    student.config.steps, student.config.guidance, student.config.sampler = 3, 1.0, STUDENT_SAMPLER
    return save_pretrained(student, tmp_path_factory.mktemp("models") / "tiny-student")


def _args(tmp_path, teacher_dir, student_dir, **kw):
    base = dict(teacher=str(teacher_dir), teacher_dir=teacher_dir, student=str(student_dir), student_dir=student_dir,
                output=str(tmp_path / "finished"), clips=4, chunk=2, from_step=1, step_weights=None, iterations=2, batch=2, lr=1e-4,
                paraphrase=0.3, save_every=1, snapshots=True, precision="fp32", seed=0, threads=1)
    return SimpleNamespace(**{**base, **kw})


def test_bank_holds_the_students_own_x0_before_from_step_and_the_teachers_finish_from_it(tiny_model_dir, tiny_student_dir):
    teacher = from_pretrained(tiny_model_dir).float().eval()
    student = from_pretrained(tiny_student_dir).float().eval()
    captions = scene_captions(2, 0)
    chunk = finish.bank_chunk(student, teacher, captions, from_step=1, seed=5)
    levels = chunk["levels"]
    assert chunk["states"].shape[:2] == chunk["targets"].shape[:2] == (3, 2) and torch.allclose(levels, torch.tensor([1.0, 2 / 3, 1 / 3]))
    text_s, _, text_g = encode(student, teacher, captions, captions)
    with torch.no_grad():
        own = x0_of(student, chunk["states"][0][:, :0], chunk["states"][0], torch.full((2,), 1.0), text_s)
        gens = [torch.Generator().manual_seed(5 * 1000 + i) for i in range(2)]
        finished = finish.teacher_finish(teacher, chunk["states"][1], float(levels[1]), text_g, gens)
    assert torch.allclose(chunk["targets"][0], own, atol=1e-5)
    assert torch.allclose(chunk["targets"][1], finished, atol=1e-5)
    # after from_step the state is the finish before it, noised again: it lies nearer that finish than the state before
    renoised = chunk["states"][2]
    assert (renoised - chunk["targets"][1]).norm() < (chunk["states"][1] - chunk["targets"][1]).norm()


def test_run_builds_the_bank_trains_resumes_and_keeps_the_students_sampling(tiny_model_dir, tiny_student_dir, tmp_path):
    out = finish.run(_args(tmp_path, tiny_model_dir, tiny_student_dir))
    assert sorted(p.name for p in (out / "bank").iterdir()) == ["chunk-00000.safetensors", "chunk-00001.safetensors"]
    config = json.loads((out / "config.json").read_text())["generator"]
    assert (config["steps"], config["guidance"], config["sampler"]) == (3, 1.0, STUDENT_SAMPLER)
    before, after = from_pretrained(tiny_student_dir), from_pretrained(out)
    assert max((a - b).abs().max() for a, b in zip(before.backbone.parameters(), after.backbone.parameters())) > 0
    bank = (out / "bank" / "chunk-00000.safetensors").stat().st_mtime_ns
    finish.run(_args(tmp_path, tiny_model_dir, tiny_student_dir, iterations=3, step_weights=[0, 0, 1]))  # resumes at 2; the bank is kept
    assert (out / "bank" / "chunk-00000.safetensors").stat().st_mtime_ns == bank
    assert [json.loads(x)["iteration"] for x in (out / "finish_log.jsonl").read_text().splitlines()] == [0, 1, 2]
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["it-00001", "it-00002", "it-00003"]
    clip = from_pretrained(out).generate(GenerationRequest(prompts=["a big red circle moves right"], generator=torch.Generator().manual_seed(0)))
    assert clip.shape[0] == 1 and torch.isfinite(clip).all()
    with pytest.raises(SystemExit, match="--from-step 1 --chunk 2"):
        finish.run(_args(tmp_path, tiny_model_dir, tiny_student_dir, from_step=2, iterations=4))


def test_refusals(tiny_model_dir, tiny_student_dir, tiny_hybrid_dir, tmp_path):
    with pytest.raises(SystemExit, match="full-sequence diffusion"):
        finish.run(_args(tmp_path, tiny_hybrid_dir, tiny_student_dir))
    with pytest.raises(SystemExit, match="from 0 to 2"):
        finish.run(_args(tmp_path, tiny_model_dir, tiny_student_dir, from_step=3))
    with pytest.raises(SystemExit, match="--step-weights takes 3 numbers"):
        finish.run(_args(tmp_path, tiny_model_dir, tiny_student_dir, step_weights=[1.0, 2.0]))


def test_student_misses_tool_judges_a_bank_file(tiny_model_dir, tiny_student_dir, tmp_path):
    """`tools/student_misses.py bank` prints one line a step: the student's clip, the target, their distance."""
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import save_file

    teacher, student = from_pretrained(tiny_model_dir).float().eval(), from_pretrained(tiny_student_dir).float().eval()
    captions = scene_captions(2, 0)
    save_file(finish.bank_chunk(student, teacher, captions, from_step=1, seed=0), tmp_path / "chunk.safetensors",
              metadata={"captions": json.dumps(captions), "from_step": "1"})
    tool = str(Path(__file__).resolve().parents[1] / "tools" / "student_misses.py")
    out = subprocess.run([sys.executable, tool, "bank", str(tiny_student_dir), "--bank", str(tmp_path / "chunk.safetensors"), "--threads", "1"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["step 0", "step 1", "step 2"]
    assert lines[0].endswith("distance 0.0000")  # before --from-step the target is the student's own clip
    for missing in ([], ["--bank", str(tmp_path / "no-such.safetensors")]):
        out = subprocess.run([sys.executable, tool, "bank", str(tiny_student_dir), *missing], capture_output=True, text=True)
        assert out.returncode == 2 and "--bank FILE" in out.stderr.splitlines()[-1]
