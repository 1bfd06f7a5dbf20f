import pytest
import torch

from framecast.data.shapes import VOCABULARY
from framecast.text.encoder import WordEncoderConfig, WordTextEncoder


@pytest.fixture
def enc():
    torch.manual_seed(0)
    return WordTextEncoder(WordEncoderConfig(vocabulary=list(VOCABULARY), width=32, depth=1, heads=2))


def test_encode_shapes_and_null(enc):
    e = enc.encode(["a big red circle moves right", "a small blue square moves left and a big green circle moves left"])
    assert e.tokens_BLD.shape == (2, 13, 32) and e.mask_BL.sum(1).tolist() == [6, 13]
    assert e.pooled_BD.shape == (2, 32) and torch.isfinite(e.tokens_BLD).all()
    n = enc.encode_null(3)
    assert n.mask_BL.all() and n.tokens_BLD.shape[:2] == (3, 1) and torch.isfinite(n.tokens_BLD).all()
    dropped = enc.encode(["a big red circle moves right"] * 2, drop=torch.tensor([True, False]))
    assert torch.allclose(dropped.pooled_BD[0], n.pooled_BD[0], atol=1e-6)
    assert not torch.allclose(dropped.pooled_BD[1], n.pooled_BD[0])


def test_prompt_errors(enc):
    with pytest.raises(ValueError, match="empty"):
        enc.encode(["  "])
    with pytest.raises(ValueError, match="unknown word 'purple'"):
        enc.encode(["a big purple circle moves right"])
    with pytest.raises(ValueError, match="unknown word"):
        enc.encode(["[null]"])
    with pytest.raises(ValueError, match="at most"):
        enc.encode(["a " * 40])


def test_prompts_without_words_are_refused(enc):
    for prompt in ["\U0001F600\U0001F680", "!!! ... ???", "--", "\u200b"]:
        with pytest.raises(ValueError, match="no words|empty"):
            enc.encode([prompt])


def test_shapes_vocabulary_reads_its_grammar_only(enc):
    assert enc.encode(["A big red circle moves right."]).mask_BL.sum() == 6  # case and punctuation are not words
    for prompt in ["square square square", "a big red circle", "moves a big red circle right",
                   "a big red circle moves right and a small blue square moves up and a big green circle moves left"]:
        with pytest.raises(ValueError, match="not a caption this model can read"):
            enc.encode([prompt])


def test_free_text_vocabulary_is_not_held_to_the_shapes_grammar():
    enc = WordTextEncoder(WordEncoderConfig(vocabulary=["an", "orange", "ball", "rolls", "left", "square"], width=32, depth=1, heads=2))
    assert enc.encode(["an orange ball rolls left", "square square square"]).mask_BL.sum(1).tolist() == [5, 3]


def test_quoted_prompts_are_cut(enc):
    with pytest.raises(ValueError, match="unknown word 'dragon'") as e:
        enc.encode(["dragon " * 20000])
    assert len(str(e.value)) < 400 and "..." in str(e.value)
    with pytest.raises(ValueError, match="prompt must hold strings, got int"):
        enc.encode(["a big red circle moves right", 3])


def test_negative_prompt_errors_name_it(enc):
    from framecast.text.encoder import encode_for_guidance

    with pytest.raises(ValueError, match="negative_prompt: the prompt '!!!' has no words"):
        encode_for_guidance(enc, ["a big red circle moves right"], ["!!!"], guided=True)
    with pytest.raises(ValueError, match="negative_prompt is an empty list"):
        encode_for_guidance(enc, ["a big red circle moves right"], [], guided=True)
