"""Tiny randomly initialised `transformers` text encoders, saved as local folders (nothing downloaded).

Each folder holds a word-level tokenizer (built with `tokenizers`, loaded by AutoTokenizer as a
PreTrainedTokenizerFast) over the Shapes words and a few more, and a model of the given kind.
"""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ("a an the and big small large tiny red green blue yellow cyan magenta white circle square triangle ball box moves "
         "moving right left up down cat playing piano to").split()


def tokenizer(folder: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[SEP]")
    fast.save_pretrained(folder)
    return fast


def encoder_folder(folder: Path, kind: str = "bert", width: int = 32) -> Path:
    """Save a tiny `kind` encoder (bert, t5, umt5 or clip) with its tokenizer in `folder`."""
    import transformers

    folder = Path(folder)
    tok = tokenizer(folder)
    V = len(tok)
    torch.manual_seed(0)
    if kind == "bert":
        model = transformers.BertModel(transformers.BertConfig(vocab_size=V, hidden_size=width, num_hidden_layers=2, num_attention_heads=2,
                                                               intermediate_size=2 * width, max_position_embeddings=64))
    elif kind in ("t5", "umt5"):
        cls = transformers.T5Config if kind == "t5" else transformers.UMT5Config
        config = cls(vocab_size=V, d_model=width, d_kv=width // 2, d_ff=2 * width, num_layers=2, num_heads=2, pad_token_id=0)
        model = (transformers.T5EncoderModel if kind == "t5" else transformers.UMT5EncoderModel)(config)
    elif kind == "clip":
        config = transformers.CLIPTextConfig(vocab_size=V, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                                             num_attention_heads=2, max_position_embeddings=64, eos_token_id=3, bos_token_id=2, pad_token_id=0)
        model = transformers.CLIPTextModel(config)
    else:
        raise ValueError(kind)
    model.save_pretrained(folder)
    return folder
