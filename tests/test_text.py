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
