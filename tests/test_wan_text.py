"""The Hugging Face text encoder (UMT5 for Wan) against diffusers' WanPipeline's own prompt encoding."""

import json

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("diffusers")

from wan_tiny import save_tiny_wan, tiny_wan_pipeline  # noqa: E402

from framecast.text.umt5 import HFTextEncoder, clean_prompt  # noqa: E402

PROMPTS = ["a big red circle moves left", "the  cat &amp; dog\n runs quickly", "a"]


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    folder = save_tiny_wan(tmp_path_factory.mktemp("wan") / "tiny")
    return folder, tiny_wan_pipeline()


def test_embeddings_equal_wan_pipeline(wan):
    folder, pipe = wan
    enc = HFTextEncoder.from_folder(folder / "text_encoder", folder / "tokenizer")
    ours = enc.encode(PROMPTS)
    ref, ref_neg = pipe.encode_prompt(PROMPTS, negative_prompt="", max_sequence_length=512, device="cpu")
    assert ours.tokens_BLD.shape == ref.shape == (3, 512, 32)
    assert (ours.tokens_BLD - ref).abs().max() <= 1e-5
    null = enc.encode_null(3)
    assert (null.tokens_BLD - ref_neg).abs().max() <= 1e-5
    # Wan's convention: padded positions are zero, the mask marks the prompt's tokens (</s> included)
    lengths = ours.mask_BL.sum(1)
    assert lengths.tolist()[2] == 2 and null.mask_BL.sum(1).tolist() == [1, 1, 1]
    assert (ours.tokens_BLD[2, 2:] == 0).all() and ours.tokens_BLD[2, :2].abs().sum() > 0
    assert enc.width == 32 and ours.pooled_BD.shape == (3, 32)


def test_drop_rows_are_the_empty_prompt(wan):
    folder, _ = wan
    enc = HFTextEncoder.from_folder(folder / "text_encoder", folder / "tokenizer")
    out = enc.encode(PROMPTS[:2], drop=torch.tensor([False, True]))
    assert torch.equal(out.tokens_BLD[1], enc.encode_null(1).tokens_BLD[0])
    assert torch.equal(out.tokens_BLD[0], enc.encode(PROMPTS[:1]).tokens_BLD[0])


def test_cache_and_release(wan):
    folder, _ = wan
    enc = HFTextEncoder.from_folder(folder / "text_encoder", folder / "tokenizer", cache_size=2)
    calls = []
    enc.model.register_forward_hook(lambda *a: calls.append(1))
    first = enc.encode([PROMPTS[0], PROMPTS[0]])
    assert len(calls) == 1 and len(enc._cache) == 1
    again = enc.encode([PROMPTS[0]])
    assert len(calls) == 1 and torch.equal(again.tokens_BLD[0], first.tokens_BLD[0])
    assert clean_prompt(PROMPTS[1]) == "the cat & dog runs quickly"
    enc.encode(PROMPTS[1:])  # two new prompts in one call: the oldest entry leaves the cache of 2
    assert len(calls) == 2 and list(enc._cache) == [clean_prompt(p) for p in PROMPTS[1:]]
    enc.release()
    assert enc.model is None and enc.encode([PROMPTS[2]]).tokens_BLD.shape == (1, 512, 32)
    with pytest.raises(ValueError, match="released"):
        enc.encode([PROMPTS[0]])


def test_encoder_stays_frozen_in_eval_mode(wan):
    folder, _ = wan
    enc = HFTextEncoder.from_folder(folder / "text_encoder", folder / "tokenizer").train()
    assert not enc.model.training and not any(p.requires_grad for p in enc.parameters())


@pytest.mark.parametrize("config, match", [
    (None, "has no config.json"),
    ("{not json", "is not valid JSON"),
    ({"d_model": 32}, "names no model_type"),
    ({"model_type": "no-such-model"}, "of type 'no-such-model', which transformers .* does not know"),
    ({"model_type": "umt5"}, "does not load"),
])
def test_a_broken_folder_is_refused_in_one_sentence(tmp_path, config, match):
    if config is not None:
        (tmp_path / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(ValueError, match=match) as e:
        HFTextEncoder.from_folder(tmp_path)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


def test_transformers_and_diffusers_stay_optional(tmp_path):
    """Importing framecast imports neither; without them, using a Wan part is one sentence naming the extra."""
    import subprocess
    import sys

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "umt5"}))
    code = f"""
import sys, framecast, framecast.text.umt5, framecast.sampling.external, framecast.generators.wan_describe
print('transformers' in sys.modules, 'diffusers' in sys.modules)
sys.modules['transformers'] = sys.modules['diffusers'] = None
from framecast.sampling.external import build_scheduler, read_scheduler_config
for run in (lambda: framecast.text.umt5.HFTextEncoder.from_folder({str(tmp_path)!r}),
            lambda: build_scheduler(read_scheduler_config({{"_class_name": "UniPCMultistepScheduler"}}))):
    try:
        run()
    except ValueError as e:
        print(e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].split() == ["False", "False"]
    assert out[1] == "'transformers' is not installed (it runs the text encoder); run `pip install framecast[wan]`"
    assert out[2].startswith("'diffusers' is not installed") and out[2].endswith("run `pip install framecast[wan]`")
