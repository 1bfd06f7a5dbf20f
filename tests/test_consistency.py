"""Few-step students by consistency distillation (framecast/train/consistency.py) on tiny models."""

import json
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open

from framecast.generators import from_pretrained
from framecast.train import consistency as cd
from framecast.train.dmd import STUDENT_SAMPLER, per_unit


def _args(tmp_path, teacher_dir, **kw):
    base = dict(teacher=str(teacher_dir), teacher_dir=teacher_dir, output=str(tmp_path / "student"), iterations=2, batch=2,
                pool=3, student_steps=2, grid=5, guidance=None, ema=0.5, lr=1e-4, paraphrase=0.3, save_every=1,
                precision="fp32", seed=0, threads=1, snapshots=True)
    return SimpleNamespace(**{**base, **kw})


def test_ode_step_follows_a_straight_flow_trajectory():
    """On x_t = (1 - t) x0 + t eps the ODE's velocity is constant: one Euler step with the true x0
    lands exactly on the same trajectory, at the clean end too, each unit (token-frame) at its own level."""
    x0, eps = torch.randn(3, 4, 2, 2, 2), torch.randn(3, 4, 2, 2, 2)
    t, t_next = torch.tensor([[0.9, 0.7], [0.5, 0.5], [0.3, 0.1]]), torch.tensor([[0.6, 0.5], [0.2, 0.2], [0.0, 0.0]])
    x = (1 - per_unit(t, x0)) * x0 + per_unit(t, x0) * eps
    stepped = (1 - per_unit(t_next, x0)) * x0 + per_unit(t_next, x0) * eps
    assert torch.allclose(cd.ode_step(x, x0, t, t_next), stepped, atol=1e-6)


def test_loss_at_the_last_level_pulls_towards_the_teachers_clean_step(tiny_model_dir):
    """With a two-level grid [1, 0] every unit's target is the teacher's own step to the clean end
    (the boundary): a student equal to the teacher (guidance 1) has loss 0, a perturbed one does not."""
    teacher = from_pretrained(tiny_model_dir).float().eval()
    student, target = from_pretrained(tiny_model_dir).float(), from_pretrained(tiny_model_dir).float()
    x0, captions = cd.clean_latents(teacher, [1, 2])
    text = teacher.text.encode(captions)
    grid = torch.tensor([1.0, 0.0])
    gen = torch.Generator().manual_seed(0)
    same = cd.consistency_loss(student, target, teacher, x0, grid, text, text, text, 1.0, gen)
    assert same.item() < 1e-10
    with torch.no_grad():
        for p in student.backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    moved = cd.consistency_loss(student, target, teacher, x0, grid, text, text, text, 1.0, torch.Generator().manual_seed(0))
    assert moved.item() > 1e-6
    moved.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.backbone.parameters())


def test_ema_moves_the_target_towards_the_student():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = a.weight.detach().clone()
    cd.ema_update(a, b, 0.75)
    assert torch.allclose(a.weight, 0.75 * before + 0.25 * b.weight)
    cd.ema_update(a, b, 0.0)
    assert torch.equal(a.weight, b.weight)


def test_run_trains_the_student_resumes_and_samples_in_its_steps(tiny_model_dir, tmp_path):
    out = cd.run(_args(tmp_path, tiny_model_dir))
    config = json.loads((out / "config.json").read_text())["generator"]
    assert (config["steps"], config["guidance"], config["sampler"]) == (2, 1.0, STUDENT_SAMPLER)
    teacher, student = from_pretrained(tiny_model_dir), from_pretrained(out)
    assert max((a - b).abs().max() for a, b in zip(teacher.backbone.parameters(), student.backbone.parameters())) > 0
    pool = (out / "latent_pool.safetensors").stat().st_mtime_ns
    cd.run(_args(tmp_path, tiny_model_dir, iterations=3))  # resumes at iteration 2, reads the pool back
    assert (out / "latent_pool.safetensors").stat().st_mtime_ns == pool
    latents, _ = cd.latent_pool(teacher, 2, out / "latent_pool.safetensors")  # another pool: encoded again
    assert (out / "latent_pool.safetensors").stat().st_mtime_ns != pool and latents.shape[0] == 2
    assert [json.loads(x)["iteration"] for x in (out / "cd_log.jsonl").read_text().splitlines()] == [0, 1, 2]
    with safe_open(out / "cd_checkpoint.safetensors", "pt") as f:
        assert f.metadata()["iteration"] == "3"
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["it-00001", "it-00002", "it-00003"]
    from framecast.generators.base import GenerationRequest

    clip = from_pretrained(out).generate(GenerationRequest(prompts=["a big red circle moves right"], generator=torch.Generator().manual_seed(0)))
    assert clip.shape[0] == 1 and torch.isfinite(clip).all()


def test_a_hybrid_student_learns_every_token_frame_after_clean_context(tiny_hybrid_dir, tmp_path):
    """A hybrid's token-frames each take their own level after the clean frames before them: a
    student equal to the teacher has loss 0 on the last level, and a run moves its weights."""
    teacher = from_pretrained(tiny_hybrid_dir).float().eval()
    x0, captions = cd.clean_latents(teacher, [3, 4])
    text = teacher.text.encode(captions)
    same = cd.consistency_loss(teacher, teacher, teacher, x0, torch.tensor([1.0, 0.0]), text, text, text, 1.0, torch.Generator().manual_seed(0))
    assert same.item() < 1e-10
    out = cd.run(_args(tmp_path, tiny_hybrid_dir))
    student = from_pretrained(out)
    assert max((a - b).abs().max() for a, b in zip(teacher.backbone.parameters(), student.backbone.parameters())) > 0


def test_a_token_model_is_refused(tiny_ar_dir, tmp_path):
    with pytest.raises(SystemExit, match="diffusion and hybrid"):
        cd.run(_args(tmp_path, tiny_ar_dir))
