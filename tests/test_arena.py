"""The arena: every family measured on the same prompts, one report with tables and plots."""

import json

import pytest

from framecast.eval.arena import ArenaPlan, default_models, run_arena

PLAN = ArenaPlan(num=2, sweep_num=1, steps=(1,), drift_num=1, drift_frames=(8,), best_of=(1, 2), best_of_num=1, verifier="judge")


@pytest.fixture(scope="module")
def three_families(tiny_model_dir, tiny_hybrid_dir, tiny_ar_dir):
    return [str(tiny_model_dir), str(tiny_hybrid_dir), str(tiny_ar_dir)]


def test_arena_report_covers_every_family(three_families, tmp_path):
    report = run_arena(three_families, tmp_path / "arena", PLAN, isolate=False, command="framecast arena --test", progress=lambda m: None)
    text = report.read_text()
    data = json.loads((tmp_path / "arena" / "report.json").read_text())
    families = [r["family"] for r in data["results"]]
    assert families == ["diffusion", "hybrid", "autoregressive"]
    diffusion, hybrid, ar = data["results"]
    # Euler: one forward pass a step (guidance doubles the batch, not the passes); the sweep adds the 1-step point
    assert diffusion["main"]["forward_passes"] == 3 and [p["label"] for p in diffusion["sweep"]] == ["default", "1 steps"]
    assert {"schedule full", "schedule pyramid"} <= {p["label"] for p in hybrid["sweep"]}
    assert [p["label"] for p in ar["sweep"]] == ["default", "decode diagonal"] and ar["main"]["forward_passes"] > 0
    for r in data["results"]:
        assert [p["extra"]["n"] for p in r["best_of"]] == [1, 2] and r["verifier"] == "judge"
        assert set(r["main"]["extra"]) >= {"flicker", "warping_error", "motion_smoothness", "dynamic_degree", "frames_per_second"}
        assert r["peak_rss_main_mb"] >= r["rss_loaded_mb"] > 0
    for name in ("quality_vs_time.png", "drift.png", "best_of_n.png", "index.html"):
        assert (tmp_path / "arena" / name).stat().st_size > 0
    assert "| autoregressive, raster order |" in text  # a token model's row names its decoding order
    assert "framecast arena --test" in text and text.count("| tiny-") >= 3 and "<table>" in (tmp_path / "arena" / "index.html").read_text()


def test_a_set_token_model_sweeps_every_decoding_order():
    from types import SimpleNamespace

    from framecast.eval.arena import sweep_settings
    from framecast.generators.autoregressive import ARConfig

    pipe = SimpleNamespace(model=SimpleNamespace(family="autoregressive", config=ARConfig(order="set", set_steps=8, set_refine=1)))
    labels = [label for label, _ in sweep_settings(pipe, PLAN)]
    assert labels == ["2 passes a token-frame", "4 passes a token-frame", "16 passes a token-frame", "no Gibbs sweep",
                      "decode raster", "decode diagonal"]


def test_arena_measures_a_model_in_its_own_process(tiny_model_dir, tmp_path):
    plan = ArenaPlan(num=1, sweep_num=1, steps=(), drift_num=1, drift_frames=(4,), best_of=(1,), best_of_num=1, verifier="judge")
    report = run_arena([str(tiny_model_dir)], tmp_path / "docs" / "arena.md", plan, progress=lambda m: None)
    r = json.loads((tmp_path / "docs" / "arena" / "report.json").read_text())["results"][0]
    assert r["family"] == "diffusion" and r["main"]["clips"] == 1
    # a .md output: the report there, its pictures in the folder of the same name, linked from the report
    assert report == tmp_path / "docs" / "arena.md" and "](arena/drift.png)" in report.read_text()
    assert (tmp_path / "docs" / "arena" / "drift.png").is_file() and "src='drift.png'" in (tmp_path / "docs" / "arena" / "index.html").read_text()


def test_arena_errors():
    with pytest.raises(ValueError, match="no models to compare"):
        run_arena([], "unused", PLAN)
    assert "shapes-diffusion" in default_models()


def test_an_interrupted_arena_reuses_the_models_it_finished(tiny_model_dir, tmp_path, monkeypatch):
    import framecast.eval.arena as arena

    plan = ArenaPlan(num=1, sweep_num=1, steps=(), drift_num=1, drift_frames=(4,), best_of=(1,), best_of_num=1, verifier="judge")
    run_arena([str(tiny_model_dir)], tmp_path, plan, isolate=False, progress=lambda m: None)
    first = json.loads((tmp_path / "report.json").read_text())["results"][0]

    def must_not_run(*a, **k):
        raise AssertionError("measured again")

    monkeypatch.setattr(arena, "measure_model", must_not_run)
    said = []
    run_arena([str(tiny_model_dir)], tmp_path, plan, isolate=False, progress=said.append)
    assert "reusing" in said[0] and json.loads((tmp_path / "report.json").read_text())["results"][0] == first
    # another plan is measured again
    with pytest.raises(AssertionError, match="measured again"):
        run_arena([str(tiny_model_dir)], tmp_path, ArenaPlan(**{**plan.__dict__, "num": 2}), isolate=False, progress=lambda m: None)


def test_an_order_handed_to_a_sibling_is_counted_and_named_there(tiny_ar_dir, tmp_path):
    """A set model whose config hands raster order to a sibling (`decode_with`): the arena's raster point
    counts the sibling's passes (a pass a token) and its row names the sibling."""
    from dataclasses import asdict

    import framecast
    from framecast.eval.arena import _point
    from framecast.eval.evaluate import eval_prompts
    from framecast.generators import save_pretrained
    from framecast.train.recipes import shapes_ar_tiny
    from tests.tiny_models import perturbed_generator

    folder = save_pretrained(perturbed_generator(asdict(shapes_ar_tiny("set").model), 0.1), tmp_path / "set",
                             extra={"decode_with": {"raster": str(tiny_ar_dir)}})
    pipe = framecast.load(str(folder), precision="fp32", device="cpu")
    prompts = eval_prompts("train", 1)
    raster, _ = _point(pipe, "decode raster", prompts, 0, decode="raster", num_frames=2)
    assert raster.extra["decoded_by"] == tiny_ar_dir.name
    assert raster.forward_passes == pipe.total_steps(prompts[0], decode="raster", num_frames=2)  # the sibling's, a pass a token
    own, _ = _point(pipe, "decode diagonal", prompts, 0, decode="diagonal", num_frames=2)
    assert "decoded_by" not in own.extra and own.forward_passes > 0
