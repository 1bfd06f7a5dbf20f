"""Training: configs, atomic checkpoints, bit-exact resume, learning on a fixed batch."""

import json

import pytest
import torch
from safetensors.torch import load_file

from framecast.train.recipes import load_config
from framecast.train.trainer import train


def test_overrides_and_yaml(tmp_path):
    cfg = load_config("shapes-diffusion-tiny", ["optim.lr=0.01", "steps=7", "model.backbone.depth=3", "optim.betas=[0.8, 0.9]"])
    assert cfg.optim.lr == 0.01 and cfg.steps == 7 and cfg.model.backbone["depth"] == 3 and cfg.optim.betas == (0.8, 0.9)
    y = tmp_path / "c.yaml"
    y.write_text("recipe: shapes-diffusion-tiny\nbatch_size: 3\noptim:\n  warmup_steps: 5\n")
    cfg = load_config(str(y), ["seed=4"])
    assert cfg.batch_size == 3 and cfg.optim.warmup_steps == 5 and cfg.seed == 4 and cfg.recipe == "shapes-diffusion-tiny"
    with pytest.raises(ValueError, match="unknown config key"):
        load_config("shapes-diffusion-tiny", ["optim.learning_rate=1"])
    with pytest.raises(ValueError, match="unknown recipe"):
        load_config("no-such-recipe")
    with pytest.raises(ValueError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))


def test_a_run_folder_gives_back_its_config(tmp_path):
    """`framecast train --resume RUN` goes on with the config the run wrote, then the overrides."""
    from framecast.train.recipes import load_run_config

    cfg = load_config("shapes-diffusion-tiny", ["optim.lr=0.01", "model.backbone.depth=3"])
    (tmp_path / "train_config.json").write_text(json.dumps(cfg.to_dict()))
    again = load_run_config(tmp_path, ["steps=9"])
    assert again.optim.lr == 0.01 and again.model.backbone["depth"] == 3 and again.steps == 9
    assert load_run_config(tmp_path / "checkpoints" / "step_000002").optim.lr == 0.01  # a checkpoint of the run
    with pytest.raises(ValueError, match="not a framecast run folder"):
        load_run_config(tmp_path / "elsewhere")


def test_resume_is_bit_exact(tmp_path):
    straight = load_config("shapes-diffusion-tiny", [f"out_dir={tmp_path / 'a'}", "steps=4", "ckpt_every=2"])
    train(straight, progress=False)
    first_half = load_config("shapes-diffusion-tiny", [f"out_dir={tmp_path / 'b'}", "steps=2", "ckpt_every=2"])
    train(first_half, progress=False)
    resumed = load_config("shapes-diffusion-tiny", [f"out_dir={tmp_path / 'b'}", "steps=4", "ckpt_every=2"])
    train(resumed, resume=tmp_path / "b", progress=False)
    a = load_file(str(tmp_path / "a" / "checkpoints" / "step_000004" / "raw.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "step_000004" / "raw.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = lambda d: [json.loads(line)["loss"] for line in (tmp_path / d / "log.jsonl").read_text().splitlines()]  # noqa: E731
    assert losses("a") == losses("b")


def test_a_packed_checkpoint_moves_a_run_to_a_machine_without_it(tmp_path):
    """Pack, delete the run (a fresh machine has only what was committed), resume from the pack:
    the run goes on in its out_dir with its log, from the bf16 weights, the learning rate warming
    up again because AdamW's moments start afresh."""
    import shutil

    from framecast.train.checkpoint import load_checkpoint, pack_checkpoint
    from framecast.train.trainer import lr_at

    run, packed = tmp_path / "run", tmp_path / "packed" / "tiny"
    cfg = load_config("shapes-diffusion-tiny", [f"out_dir={run}", "steps=4", "ckpt_every=2", "optim.warmup_steps=2"])
    train(cfg, progress=False)
    pack_checkpoint(run, packed)
    full = run / "checkpoints" / "step_000004"
    assert not (packed / "optimizer.safetensors").exists()
    packed_raw, full_raw = load_file(str(packed / "raw.safetensors")), load_file(str(full / "raw.safetensors"))
    assert all(v.dtype == torch.bfloat16 for v in packed_raw.values())
    assert all(torch.equal(packed_raw[k], full_raw[k].to(torch.bfloat16)) for k in full_raw)
    size = lambda d: sum(f.stat().st_size for f in d.iterdir() if f.suffix == ".safetensors")  # noqa: E731
    assert size(packed) < size(full) / 3
    with pytest.raises(ValueError, match="already packed"):
        pack_checkpoint(packed, tmp_path / "again")
    with pytest.raises(ValueError, match="nothing to pack"):
        pack_checkpoint(tmp_path / "packed", tmp_path / "again")

    shutil.rmtree(run)
    longer = load_config("shapes-diffusion-tiny", [f"out_dir={run}", "steps=7", "ckpt_every=1", "keep_last=5", "optim.warmup_steps=3"])
    train(longer, resume=packed, progress=False)
    log = lambda: [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]  # noqa: E731
    assert [r["step"] for r in log()] == [1, 2, 3, 4, 5, 6, 7]
    warmed = [r["lr"] for r in log()[4:]]
    assert warmed == pytest.approx([lr_at(4, longer) / 3, lr_at(5, longer) * 2 / 3, lr_at(6, longer)])  # the re-warm-up
    assert (run / "checkpoints" / "step_000007" / "optimizer.safetensors").is_file()
    train(longer, resume=run / "checkpoints" / "step_000005", progress=False)  # a full checkpoint inside the re-warm-up
    assert [r["lr"] for r in log()[4:]] == pytest.approx(warmed)
    assert (run / "model" / "model.safetensors").is_file()
    from framecast.generators.diffusion import ModelSpec
    from framecast.generators.io import build_generator

    spec = json.loads((packed / "train_config.json").read_text())["model"]
    model, ema = build_generator(ModelSpec(**spec)), build_generator(ModelSpec(**spec))
    opt = torch.optim.AdamW(model.parameters())
    assert load_checkpoint(packed, model=model, ema=ema, optimizer=opt)["packed"] and not opt.state
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_checkpoints_are_whole_and_pruned(tmp_path):
    cfg = load_config("shapes-diffusion-tiny", [f"out_dir={tmp_path}", "steps=6", "ckpt_every=2", "keep_last=2", "sample_every=3"])
    train(cfg, progress=False)
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.png")) == ["step_000003.png", "step_000006.png"]
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_000004", "step_000006"]  # no temporary folders left, older ones pruned
    (tmp_path / "checkpoints" / ".tmp_step_000008").mkdir()  # a half-written one is ignored
    from framecast.train.checkpoint import latest_checkpoint

    assert latest_checkpoint(tmp_path).name == "step_000006"
    from framecast.generators import from_pretrained

    assert from_pretrained(tmp_path / "model").family == "diffusion"


def test_loss_falls_on_a_fixed_batch():
    from dataclasses import asdict

    from framecast.data.shapes import shapes_batches
    from framecast.generators import ModelSpec, build_generator

    cfg = load_config("shapes-diffusion-tiny")
    torch.manual_seed(0)
    model = build_generator(ModelSpec(**asdict(cfg.model)))
    batch = next(shapes_batches(batch_size=4, frames=4))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for step in range(60):
        loss = model.loss(batch, generator=torch.Generator().manual_seed(step % 4))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-8:]) / 8 < 0.6 * sum(losses[:8]) / 8


def test_init_from_another_model(tmp_path, tiny_model_dir):
    """A hybrid student starts from a diffusion teacher of the same architecture (CausVid)."""
    cfg = load_config("shapes-diffusion-tiny", [f"out_dir={tmp_path}", "steps=1", f"init_from={tiny_model_dir}", "optim.lr=0"])
    cfg.model.family = "hybrid"
    cfg.model.generator = {**cfg.model.generator, "mask": "frame-causal"}
    train(cfg, progress=False)
    a = load_file(str(tiny_model_dir / "model.safetensors"))
    b = load_file(str(tmp_path / "checkpoints" / "step_000001" / "raw.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # lr = 0: the weights are the teacher's
    bad = load_config("shapes-diffusion-tiny", [f"out_dir={tmp_path / 'x'}", "model.backbone.width=64", f"init_from={tiny_model_dir}"])
    with pytest.raises(ValueError, match="do not fit"):
        train(bad, progress=False)


def test_resuming_an_earlier_checkpoint_rewrites_the_log(tmp_path):
    cfg = load_config("shapes-diffusion-tiny", [f"out_dir={tmp_path}", "steps=4", "ckpt_every=2", "keep_last=3"])
    train(cfg, progress=False)
    train(cfg, resume=tmp_path / "checkpoints" / "step_000002", progress=False)
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_dry_run_keeps_nothing(tmp_path):
    cfg = load_config("shapes-diffusion-tiny", [f"out_dir={tmp_path / 'run'}", "steps=50"])
    train(cfg, progress=False, dry_run=True)
    assert not (tmp_path / "run").exists()
    import time

    t = time.perf_counter()  # a pool of a million clips: a dry run encodes one batch of it, not all
    train(load_config("shapes-ar-tiny", [f"out_dir={tmp_path / 'run'}", "data.latent_pool=1000000"]), progress=False, dry_run=True)
    assert time.perf_counter() - t < 60 and not (tmp_path / "run").exists()
    run = tmp_path / "real"
    train(load_config("shapes-diffusion-tiny", [f"out_dir={run}", "steps=2", "ckpt_every=2"]), progress=False)
    before = {f: f.read_bytes() for f in run.rglob("*") if f.is_file()}
    train(load_config("shapes-diffusion-tiny", [f"out_dir={run}", "steps=2", "ckpt_every=2"]), resume=run, progress=False, dry_run=True)
    assert {f: f.read_bytes() for f in run.rglob("*") if f.is_file()} == before  # resumed in a dry run: the run untouched


def test_activation_checkpointing_gives_the_same_gradients():
    from dataclasses import asdict

    from framecast.data.shapes import shapes_batches
    from framecast.generators import ModelSpec, build_generator
    from framecast.train.distributed import activation_checkpointing

    cfg = load_config("shapes-diffusion-tiny")
    batch = next(shapes_batches(batch_size=2, frames=4))
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = build_generator(ModelSpec(**asdict(cfg.model)))
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.05)
        if ckpt:
            assert activation_checkpointing(model) == len(model.backbone.blocks)
        model(batch, [torch.Generator().manual_seed(i) for i in range(2)]).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_tensorboard_and_jsonl_logs(tmp_path):
    cfg = load_config("shapes-diffusion-tiny", [f"out_dir={tmp_path}", "steps=2"])
    train(cfg, progress=False)
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tensorboard").iterdir())
    rec = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert {"step", "loss", "lr", "grad_norm", "steps_per_s"} <= rec.keys()


def test_partial_init_takes_the_tensors_that_fit(tmp_path, tiny_model_dir):
    """A token transformer starts from a diffusion model's trunk: the blocks and the text encoder
    fit, the output head (a feature per token, not latents) and the special tokens start fresh."""
    cfg = load_config("shapes-ar-tiny", [f"out_dir={tmp_path}", "steps=1", "optim.lr=0", f"init_from={tiny_model_dir}"])
    src = load_file(str(tiny_model_dir / "model.safetensors"))
    cfg.model.backbone.update(width=32, depth=2, heads=2, context_width=32)  # the teacher's trunk
    cfg.model.text = load_config("shapes-diffusion-tiny", []).model.text
    from framecast.codecs.tokenizer import TokenizerConfig, VideoTokenizer
    from framecast.generators import save_pretrained

    save_pretrained(VideoTokenizer(TokenizerConfig(**cfg.model.generator["tokenizer"])), tmp_path / "tok")
    cfg.init_components = {"tokenizer": str(tmp_path / "tok")}  # loaded from its own folder, not expected to fit
    with pytest.raises(ValueError, match="init_partial=true"):
        train(cfg, progress=False)
    cfg.init_partial = True
    train(cfg, progress=False)
    b = load_file(str(tmp_path / "checkpoints" / "step_000001" / "raw.safetensors"))
    taken = [k for k in b if k in src and src[k].shape == b[k].shape]
    assert any(k.startswith("backbone.blocks.") for k in taken) and any(k.startswith("text.") for k in taken)
    assert all(torch.equal(src[k], b[k]) for k in taken)
    assert "head.weight" in b and "head.weight" not in src


def test_a_token_model_trains_from_a_pool_of_codes(tmp_path):
    """The pool holds a token model's codes exactly (integers, not bf16) and training reads them."""
    cfg = load_config("shapes-ar-tiny", [f"out_dir={tmp_path}", "steps=2", "data.latent_pool=4"])
    train(cfg, progress=False)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "latent_pool.safetensors"), "pt") as f:
        codes = f.get_tensor("latents")
    assert codes.dtype == torch.int32 and codes.shape == (4, 4, 4, 4) and int(codes.max()) < 64


def test_bundling_a_run_that_continued_a_bundled_model(tmp_path):
    """tools/bundle_model.py --continues: the earlier bundle's log comes first and steps count on."""
    import runpy
    import sys
    from pathlib import Path

    tool = str(Path(__file__).resolve().parents[1] / "tools" / "bundle_model.py")
    assets = tmp_path / "assets"

    def bundle(run, *extra):
        argv = sys.argv
        try:
            sys.argv = [tool, str(run), "--name", "m", "--command", "test", "--assets", str(assets), *extra]
            runpy.run_path(tool, run_name="__main__")
        finally:
            sys.argv = argv

    train(load_config("shapes-diffusion-tiny", [f"out_dir={tmp_path / 'a'}", "steps=4"]), progress=False)
    bundle(tmp_path / "a")
    train(load_config("shapes-diffusion-tiny", [f"out_dir={tmp_path / 'b'}", "steps=2", f"init_from={assets / 'm'}"]), progress=False)
    bundle(tmp_path / "b", "--continues", "m")
    assert json.loads((assets / "m" / "config.json").read_text())["trained_steps"] == 6
    steps = [json.loads(line)["step"] for line in (assets / "m" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert "steps: 6 (4 of them in the run that made `m`" in (assets / "m" / "README.md").read_text()
    with pytest.raises(SystemExit, match="no bundled model"):
        bundle(tmp_path / "b", "--continues", "nothing-here")
    with pytest.raises(SystemExit, match="already holds this run"):  # bundling run b again onto its own bundle
        bundle(tmp_path / "b", "--continues", "m")
    assert json.loads((assets / "m" / "config.json").read_text())["trained_steps"] == 6  # and the bundle is kept
    with pytest.raises(SystemExit, match="ORDER=MODEL"):
        bundle(tmp_path / "b", "--decode-with", "zigzag=m")
    with pytest.raises(SystemExit, match="for token models"):  # a diffusion model decodes no token orders
        bundle(tmp_path / "b", "--decode-with", "raster=m")


def test_interpolated_weights_lie_between_two_models(tmp_path, tiny_model_dir):
    """tools/interpolate_weights.py (WiSE-FT): (1 - alpha) * first + alpha * second, a new loadable folder;
    a folder that exists or an alpha outside [0, 1] is refused with exit code 2 and nothing written."""
    import runpy
    import shutil
    import sys
    from pathlib import Path

    from safetensors.torch import load_file, save_file

    import framecast

    tool = str(Path(__file__).resolve().parents[1] / "tools" / "interpolate_weights.py")
    second = tmp_path / "second"
    shutil.copytree(tiny_model_dir, second)
    w = load_file(str(second / "model.safetensors"))
    save_file({k: v + 1.0 if v.is_floating_point() else v for k, v in w.items()}, str(second / "model.safetensors"))

    def run(*args):
        argv = sys.argv
        try:
            sys.argv = [tool, *map(str, args)]
            runpy.run_path(tool, run_name="__main__")
        finally:
            sys.argv = argv

    run(tiny_model_dir, second, "--alpha", 0.25, "--out", tmp_path / "mix")
    mix = load_file(str(tmp_path / "mix" / "model.safetensors"))
    key = next(k for k, v in w.items() if v.is_floating_point())
    assert torch.allclose(mix[key], w[key] + 0.25, atol=1e-3)
    framecast.load(str(tmp_path / "mix"), device="cpu")
    for bad in (["--alpha", 0.5, "--out", tmp_path / "mix"], ["--alpha", 1.5, "--out", tmp_path / "other"]):
        with pytest.raises(SystemExit) as e:
            run(tiny_model_dir, second, *bad)
        assert e.value.code == 2
    assert not (tmp_path / "other").exists()
