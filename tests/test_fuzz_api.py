"""Property-based fuzzing of the prompt tokenizer and the request checks: any input either works or
raises a ValueError whose message names an argument it was given, never another exception."""

import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import framecast
from framecast.data.shapes import VOCABULARY
from framecast.generators.base import FAMILY_OPTIONS, GenerationRequest, resolve
from framecast.generators.checks import public
from framecast.pipeline import CALL_ARGUMENTS, OPTIONS
from framecast.text.encoder import WordTokenizer

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 60)), deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow])
PROMPT = "a big red circle moves right"

anything = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(-3, 3), max_size=3), st.just(torch.Generator()),
    st.sampled_from([[torch.Generator()], torch.zeros(1, 4, 3, 32, 32), torch.full((2,), math.nan), object(), b"bytes", 32,
                     np.zeros((32, 32, 3), np.uint8), np.zeros((2, 48, 40, 3), np.uint8), np.full((32, 32, 3), np.nan),
                     torch.zeros(3, 32, 32), "no-such-file.png", ["latents"], lambda *a: None]),
)
small_ints = st.integers(-3, 70)
numbers = st.one_of(small_ints, st.floats(-5, 150), st.sampled_from([math.nan, math.inf, -math.inf, 2**64, 10**12]))
prompts = st.one_of(
    st.text(max_size=200), st.lists(st.text(max_size=40), max_size=3), anything,
    st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=14).map(" ".join),
    st.just(PROMPT), st.just([PROMPT, "a small blue square moves up"]),
)


def names_an_argument(message: str, given: set[str]) -> bool:
    return any(name in message for name in given | {"prompt", "word"})


@FUZZ
@given(prompt=prompts, free_text=st.booleans())
def test_tokenizer_works_or_names_the_prompt(prompt, free_text):
    vocabulary = ["an", "orange", "ball", "rolls", "left", "square"] if free_text else list(VOCABULARY)
    tokenizer = WordTokenizer(vocabulary, max_words=24)
    try:
        ids, mask = tokenizer(prompt)
    except ValueError as e:
        assert names_an_argument(str(e), set()) and len(str(e)) < 400, str(e)
    else:
        assert ids.shape == mask.shape and mask.any(1).all()


FIELDS = ["negative_prompts", "num_frames", "steps", "guidance", "generator", "callback", "context_BTCHW", "latents", "sampler", "sigmas",
          "shift", "schedule", "context_level", "use_cache", "decode", "refine", "temperature", "top_k", "top_p"]
DEFAULTS = {
    "diffusion": dict(num_frames=16, steps=25, guidance=4.0, sampler="euler", shift=1.0, schedule="full"),
    "hybrid": dict(num_frames=16, steps=25, guidance=4.0, sampler="euler", shift=1.0, schedule="autoregressive",
                   context_level=0.0, use_cache=True),
    "autoregressive": dict(num_frames=16, guidance=3.0, decode="set", use_cache=True, refine=0, temperature=1.0, top_k=0, top_p=1.0),
    "wan": dict(num_frames=81, steps=50, guidance=5.0, schedule="full", height=480, width=832, use_cache=True),
}


@FUZZ
@given(family=st.sampled_from(sorted(FAMILY_OPTIONS)), prompt=prompts,
       values=st.dictionaries(st.sampled_from(FIELDS), st.one_of(anything, numbers), max_size=4))
def test_resolve_works_or_names_the_argument(family, prompt, values):
    try:
        r = resolve(GenerationRequest(prompts=prompt, **values), family, DEFAULTS[family])
    except ValueError as e:
        assert names_an_argument(str(e), {public(k) for k in values}), (str(e), values)
    else:
        assert r.num_frames >= 1 and all(isinstance(p, str) for p in r.prompts)


@pytest.fixture(scope="module")
def pipes(tiny_model_dir, tiny_hybrid_dir, tiny_ar_dir):
    return {d.name: framecast.load(str(d), precision="fp32", device="cpu") for d in (tiny_model_dir, tiny_hybrid_dir, tiny_ar_dir)}


def check_call(pipe, prompt, kwargs):
    """Everything a call checks before it samples: the pipeline's arguments, then the generator's."""
    pipe.check(prompt, **kwargs)


KEYS = sorted(set(CALL_ARGUMENTS) - {"prompt"} | OPTIONS | {"steps", "batch_size"})
values_for = {"num_frames": st.one_of(numbers, anything), "num_inference_steps": numbers, "num_videos_per_prompt": numbers}


@FUZZ
@given(which=st.sampled_from(["tiny-diffusion", "tiny-hybrid", "tiny-ar"]), prompt=prompts, data=st.data())
def test_pipeline_arguments_work_or_are_named(pipes, which, prompt, data):
    keys = data.draw(st.lists(st.sampled_from(KEYS), max_size=4, unique=True))
    kwargs = {k: data.draw(values_for.get(k, st.one_of(anything, numbers)), label=k) for k in keys}
    try:
        check_call(pipes[which], prompt, kwargs)
    except ValueError as e:
        given_names = set(kwargs)
        if given_names & {"image", "video", "context_frames"}:
            given_names |= {"image", "video", "num_frames"}  # the context is measured against the clip
        assert names_an_argument(str(e), given_names), (str(e), kwargs)
