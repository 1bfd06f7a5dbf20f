"""Few-step students by distribution matching (framecast/train/dmd.py) on tiny models."""

import json
import random
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open

from framecast.generators import from_pretrained
from framecast.sampling.schedules import flow_sigmas
from framecast.text.encoder import TextEmbedding
from framecast.train import dmd


def _args(tmp_path, teacher_dir, **kw):
    base = dict(teacher=str(teacher_dir), teacher_dir=teacher_dir, output=str(tmp_path / "student"), iterations=2, batch=2,
                student_steps=2, guidance=None, lr=1e-4, critic_lr=1e-4, critic_steps=1, paraphrase=0.3, save_every=1,
                precision="fp32", seed=0, threads=1, reuse=2, snapshots=True, whole_clip=False, init_student=None, critic_warmup=0, student_shift=None, train_steps=None,
                gan_weight=0.0, score_levels=(0.02, 0.98), disc_lr=1e-3, r1=0.0, disc_kernel=1, disc_warmup=3, disc_steps=1)
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize("fixture", ["tiny_hybrid_dir", "tiny_model_dir"])
def test_rollout_records_every_step_of_the_students_clip(fixture, request):
    from framecast.generators.base import GenerationRequest

    model = from_pretrained(request.getfixturevalue(fixture)).float()
    model.config.steps, model.config.guidance, model.config.sampler = 4, 1.0, "euler"  # deterministic: states can be replayed
    caps = dmd.scene_captions(2, 0)
    r = dmd.rollout(model, caps, torch.Generator().manual_seed(0))
    assert torch.allclose(r.levels, flow_sigmas(4)[:-1])
    again = model.generate_latents(GenerationRequest(prompts=caps, latents=r.states[0]))
    assert torch.allclose(r.clip, again, atol=1e-5)  # the rollout is the student's own sampling
    hybrid = model.family == "hybrid"
    ctx, x, level = r.unit(1 if hybrid else 0, 2)
    assert ctx.shape[1] == (model.patch_frames if hybrid else 0)
    assert x.shape[1] == (model.patch_frames if hybrid else model.config.frames)
    assert torch.allclose(level, torch.full((2,), float(flow_sigmas(4)[2])))
    assert x.abs().sum() > 0 and not torch.equal(x, r.states[0][:, : x.shape[1]])
    if hybrid:  # a folder whose first frame samples with steps of its own still rolls out the student's steps
        model.config.first_steps = 7
        again = dmd.rollout(model, caps, torch.Generator().manual_seed(0))
        assert all(torch.equal(a, b) for a, b in zip(r.states, again.states))


def test_matching_scores_give_no_gradient(tiny_hybrid_dir):
    """With the critic equal to the teacher and no guidance, fake = real: the surrogate's gradient
    in x0 vanishes (the student is already where the teacher is)."""
    teacher, critic = from_pretrained(tiny_hybrid_dir).float(), from_pretrained(tiny_hybrid_dir).float()
    caps = dmd.scene_captions(2, 0)
    text = teacher.text.encode(caps)
    gen = torch.Generator().manual_seed(0)
    ctx, x, _ = dmd.rollout(teacher, caps, gen).unit(1, 0)
    x0 = torch.randn_like(x, requires_grad=True)
    text_g = TextEmbedding.cat([text, teacher.text.encode_null(2)])
    dmd.dmd_loss(x0, ctx, teacher, critic, text_g, text, 1.0, gen).backward()
    assert x0.grad.abs().max() < 1e-6
    critic.backbone.head.weight.data.add_(0.05)  # a critic that differs pushes x0
    x0.grad = None
    dmd.dmd_loss(x0, ctx, teacher, critic, text_g, text, 1.0, gen).backward()
    assert x0.grad.abs().max() > 1e-6


def test_scores_are_taken_at_the_levels_asked_for(tiny_hybrid_dir, monkeypatch):
    teacher = from_pretrained(tiny_hybrid_dir).float()
    caps = dmd.scene_captions(4, 0)
    text = teacher.text.encode(caps)
    ctx, x, _ = dmd.rollout(teacher, caps, torch.Generator().manual_seed(0)).unit(1, 0)
    seen, x0_of = [], dmd.x0_of
    monkeypatch.setattr(dmd, "x0_of", lambda model, c, xt, level, *a, **k: seen.append(level) or x0_of(model, c, xt, level, *a, **k))
    for lo, hi in ((0.02, 0.98), (0.1, 0.3)):
        seen.clear()
        for i in range(5):
            dmd.dmd_loss(x.clone().requires_grad_(), ctx, teacher, teacher, text, text, 1.0, torch.Generator().manual_seed(i), levels=(lo, hi))
        levels = torch.cat(seen)
        assert levels.min() >= lo and levels.max() <= hi and levels.max() - levels.min() > (hi - lo) / 3


def test_every_frame_at_once_is_each_frame_after_its_clean_context(tiny_hybrid_dir):
    """The whole-clip unit: each token-frame at its own recorded step, and one teacher-forcing
    pass gives every frame the x0 a pass of its own after the clean frames before it gives."""
    model = from_pretrained(tiny_hybrid_dir).float()
    model.config.steps, model.config.guidance, model.config.sampler = 3, 1.0, "euler"
    caps = dmd.scene_captions(2, 0)
    r = dmd.rollout(model, caps, torch.Generator().manual_seed(0))
    x, levels = r.every_frame(torch.Generator().manual_seed(1))
    pf, F = r.pf, r.clip.shape[1] // r.pf
    assert levels.shape == (2, F) and len(set(levels.flatten().tolist())) > 1
    text = model.text.encode(caps)
    with torch.no_grad():
        together = dmd.x0_every_frame(model, r.clip, x, levels, text)
        for f in range(F):
            j = [int(torch.isclose(r.levels, lv).nonzero()[0]) for lv in levels[:, f]]
            unit = torch.stack([r.states[jb][b, f * pf : (f + 1) * pf] for b, jb in enumerate(j)])
            assert torch.equal(x[:, f * pf : (f + 1) * pf], unit)
            alone = dmd.x0_of(model, r.clip[:, : f * pf], unit, levels[:, f], text)
            assert torch.allclose(together[:, f * pf : (f + 1) * pf], alone, atol=1e-4)


@pytest.mark.parametrize("fixture", ["tiny_hybrid_dir", "tiny_model_dir"])
def test_run_trains_the_student_and_resumes(fixture, request, tmp_path):
    teacher_dir = request.getfixturevalue(fixture)
    args = _args(tmp_path, teacher_dir)
    out = dmd.run(args)
    config = json.loads((out / "config.json").read_text())["generator"]
    assert (config["steps"], config["guidance"], config["sampler"]) == (2, 1.0, dmd.STUDENT_SAMPLER)
    teacher, student = from_pretrained(teacher_dir), from_pretrained(out)
    moved = [(a - b).abs().max() for a, b in zip(teacher.backbone.parameters(), student.backbone.parameters())]
    assert max(moved) > 0
    dmd.run(_args(tmp_path, teacher_dir, iterations=3))  # resumes at iteration 2
    lines = (out / "dmd_log.jsonl").read_text().splitlines()
    assert [json.loads(x)["iteration"] for x in lines] == [0, 1, 2]
    with safe_open(out / "dmd_checkpoint.safetensors", "pt") as f:
        assert f.metadata()["iteration"] == "3"
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["it-00001", "it-00002", "it-00003"]


def test_whole_clip_run_goes_on_from_a_student(tiny_hybrid_dir, tmp_path):
    """--whole-clip trains on every frame of a rollout; --init-student starts from a student's weights."""
    first = dmd.run(_args(tmp_path, tiny_hybrid_dir, whole_clip=True, student_shift=0.5))
    assert json.loads((first / "config.json").read_text())["generator"]["shift"] == 0.5
    rec = [json.loads(x) for x in (first / "dmd_log.jsonl").read_text().splitlines()]
    assert len(rec) == 2 and all(r["frame"] == -1 for r in rec)
    on = dmd.run(_args(tmp_path, tiny_hybrid_dir, whole_clip=True, iterations=1, save_every=5, output=str(tmp_path / "on"),
                       init_student=str(first), critic_warmup=1))
    a, b = from_pretrained(first), from_pretrained(on)
    assert all(torch.equal(p, q) for p, q in zip(a.backbone.parameters(), b.backbone.parameters()))  # warm-up: the critic alone


def test_adversarial_run_keeps_its_discriminator_and_leaves_the_codec(tiny_hybrid_dir, tmp_path):
    """--gan-weight adds a discriminator on decoded frames: it is checkpointed beside the critic
    and the run resumes with it; only the backbone learns (the codec the frames come from stays)."""
    with pytest.raises(SystemExit, match="--whole-clip"):
        dmd.run(_args(tmp_path, tiny_hybrid_dir, gan_weight=0.5))
    out = dmd.run(_args(tmp_path, tiny_hybrid_dir, whole_clip=True, gan_weight=0.5, output=str(tmp_path / "gan")))
    dmd.run(_args(tmp_path, tiny_hybrid_dir, whole_clip=True, gan_weight=0.5, output=str(tmp_path / "gan"), iterations=3))
    rec = [json.loads(x) for x in (out / "dmd_log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rec] == [0, 1, 2]
    assert all(r["adversarial"] > 0 and r["discriminator"] > 0 for r in rec)
    with safe_open(out / "dmd_checkpoint.safetensors", "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith("discriminator.") for k in keys) and any(k.startswith("critic.") for k in keys)
    teacher, student = from_pretrained(tiny_hybrid_dir), from_pretrained(out)
    assert all(torch.equal(p, q) for p, q in zip(teacher.codec.parameters(), student.codec.parameters()))
    assert any(not torch.equal(p, q) for p, q in zip(teacher.backbone.parameters(), student.backbone.parameters()))


def test_discriminator_tells_hard_edges_from_blurred_ones_and_pushes_towards_them():
    """A square drawn on whole pixels against the same square spread over two pixel columns (the
    students' miss): 150 steps teach the discriminator the difference, and the generator's
    gradient then points from the blurred edge towards a hard one."""
    from framecast.nn.discriminator import PatchDiscriminator

    torch.manual_seed(0)
    real = -torch.ones(8, 2, 3, 16, 16)
    real[..., 4:10, 4:10] = 1.0
    fake = real.clone()
    fake[..., 4:10, 10] = 0.0  # the edge column half on
    fake[..., 4:10, 4] = 0.0
    disc = PatchDiscriminator(width=32)
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3, betas=(0.0, 0.99))
    for _ in range(150):
        loss = dmd.discriminator_loss(disc, fake, real, r1=0.01)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert disc(real).mean() > disc(fake).mean() + 1.0
    x = fake.clone().requires_grad_(True)
    for _ in range(20):  # the generator's steps on the frames themselves
        (g,) = torch.autograd.grad(torch.nn.functional.softplus(-disc(x)).sum(), x)
        x = (x - 0.5 * g).clamp(-1, 1).detach().requires_grad_(True)
    assert x[..., 4:10, 10].abs().mean() > 0.3  # the half-on column is pushed on or off


def test_student_reads_other_words_for_the_same_scene():
    from framecast.data.shapes import parse_caption

    rng = random.Random(0)
    caption = dmd.scene_captions(1, 5)[0]
    said = [dmd.student_caption(caption, rng, 1.0) for _ in range(20)]
    assert any(s != caption for s in said)
    assert all(dmd.student_caption(caption, rng, 0.0) == caption for _ in range(5))
    assert parse_caption(caption)  # the canonical caption is what the critic and teacher read


def test_student_misses_tool_runs_both_checks(tiny_model_dir, tiny_hybrid_dir):
    """tools/student_misses.py on tiny models: both checks print their judged lines; a hybrid
    model handed to `finish` is refused in one line with exit code 2."""
    import subprocess
    import sys
    from pathlib import Path

    tool = str(Path(__file__).resolve().parents[1] / "tools" / "student_misses.py")
    base = [sys.executable, tool, "--num", "2", "--threads", "1"]
    out = subprocess.run([*base, "finish", str(tiny_model_dir), "--teacher", str(tiny_model_dir), "--at", "0", "--teacher-steps", "2"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "student alone" in out.stdout and out.stdout.count("teacher from the student's state at level") == 1
    out = subprocess.run([*base, "finish", str(tiny_model_dir), "--teacher", str(tiny_model_dir), "--at", "0", "--teacher-steps", "2",
                          "--teacher-sampler", "euler-stochastic", "--draws", "2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()[1:]
    assert [w in line for w, line in zip(("draw 0:", "draw 1:", "the mean of the 2 draws' latents:"), lines)] == [True] * 3 and len(lines) == 3
    out = subprocess.run([*base, "snap", str(tiny_hybrid_dir), "--first-steps", "0"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.count("snapped at") == 3, out.stderr
    out = subprocess.run([*base, "finish", str(tiny_hybrid_dir), "--teacher", str(tiny_model_dir)], capture_output=True, text=True)
    assert out.returncode == 2 and "diffusion" in out.stderr.splitlines()[-1]


def test_train_steps_picks_the_steps_an_update_is_taken_on(tiny_model_dir, tmp_path):
    """--train-steps 1: every update is on the student's second step (its first stays as it is)."""
    out = dmd.run(_args(tmp_path, tiny_model_dir, iterations=4, train_steps=[1]))
    assert [json.loads(x)["step"] for x in (out / "dmd_log.jsonl").read_text().splitlines()] == [1, 1, 1, 1]


def test_train_steps_out_of_range_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        dmd.main(["--teacher", "shapes-diffusion", "--output", "x", "--train-steps", "4"])
    assert exc.value.code == 2
    assert "--train-steps 4: give steps from 0 to 3" in capsys.readouterr().err
