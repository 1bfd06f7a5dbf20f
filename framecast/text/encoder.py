"""Text conditioning: the TextEncoder interface and the built-in word-level encoder.

Every encoder turns a batch of prompts into a `TextEmbedding`: per-token states for
cross-attention, a key mask, and a pooled vector for adaLN. The unconditional branch
of classifier-free guidance is a real learned token ([null]), never an all-padding
row (an all-masked attention row returns NaN; docs/sampling.md, "Guidance").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from framecast.data.shapes import VOCABULARY as SHAPES_VOCABULARY
from framecast.data.shapes import parse_caption

PAD, NULL = "[pad]", "[null]"


@dataclass
class TextEmbedding:
    tokens_BLD: torch.Tensor  # per-token states
    mask_BL: torch.Tensor  # True where a token is real
    pooled_BD: torch.Tensor

    def __len__(self) -> int:
        return self.tokens_BLD.shape[0]

    def select(self, rows: torch.Tensor) -> "TextEmbedding":
        """The embeddings of some prompts of the batch (a boolean mask or indices)."""
        return TextEmbedding(tokens_BLD=self.tokens_BLD[rows], mask_BL=self.mask_BL[rows], pooled_BD=self.pooled_BD[rows])

    @staticmethod
    def cat(parts: list["TextEmbedding"]) -> "TextEmbedding":
        L = max(p.tokens_BLD.shape[1] for p in parts)
        pad = lambda t, v: (torch.nn.functional.pad(t, (0, 0, 0, L - t.shape[1]), value=v) if t.dim() == 3  # noqa: E731
                            else torch.nn.functional.pad(t, (0, L - t.shape[1]), value=v))
        return TextEmbedding(
            tokens_BLD=torch.cat([pad(p.tokens_BLD, 0.0) for p in parts]),
            mask_BL=torch.cat([pad(p.mask_BL, False) for p in parts]),
            pooled_BD=torch.cat([p.pooled_BD for p in parts]),
        )


class TextEncoder(nn.Module):
    """Interface: `width` and `encode(prompts) -> TextEmbedding`; `encode_null(n)` for guidance.

    Encoders validate prompts and raise ValueError with a plain sentence for empty
    prompts or words they cannot represent.
    """

    width: int
    kind: str  # the config's text_kind

    def encode(self, prompts: list[str], *, drop: torch.Tensor | None = None) -> TextEmbedding:  # pragma: no cover
        """`drop` (B,) bool: rows encoded as the null prompt instead (condition dropout)."""
        raise NotImplementedError

    def encode_null(self, n: int) -> TextEmbedding:  # pragma: no cover - interface
        raise NotImplementedError


def encode_for_guidance(encoder: "TextEncoder", prompts: list[str], negative_prompts: list[str] | None, guided: bool):
    """(conditional, unconditional) embeddings for classifier-free guidance; the unconditional
    branch is the negative prompt (one, or one per prompt) or the learned null prompt, and None
    when there is no guidance."""
    text = encoder.encode(prompts)
    if not guided:
        return text, None
    neg = check_negative_prompts(negative_prompts)
    if neg is None:
        return text, encoder.encode_null(len(prompts))
    if len(neg) not in (1, len(prompts)):
        raise ValueError(f"give one negative prompt or one per prompt ({len(prompts)}), got {len(neg)}")
    try:
        return text, encoder.encode(neg * len(prompts) if len(neg) == 1 else neg)
    except ValueError as e:
        raise ValueError(f"negative_prompt: {e}") from None


def check_prompts(prompts, name: str = "prompt") -> list[str]:
    """A prompt or a list of them -> a non-empty list of non-empty strings; anything else is
    refused in a sentence that names the argument (`name`: `prompt` or `negative_prompt`)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if prompts is None:
        raise ValueError(f"{name} is missing; give a caption such as 'a big red circle moves right'")
    if not isinstance(prompts, (list, tuple)):
        raise ValueError(f"{name} must be a string or a list of strings, got {type(prompts).__name__}")
    if not prompts:
        raise ValueError(f"{name} is an empty list; give at least one caption")
    for p in prompts:
        if not isinstance(p, str):
            raise ValueError(f"{name} must hold strings, got {type(p).__name__} {shorten(repr(p))}")
        if not p.strip():
            raise ValueError(f"the {name} is empty; give a caption such as 'a big red circle moves right'")
    return list(prompts)


def check_negative_prompts(negatives) -> list[str] | None:
    """The negative prompt(s) checked as prompts, except that an empty one ("", diffusers' default)
    means the unconditional branch: None, which every encoder encodes as its null prompt
    (`encode_null`: the learned [null] token of the word encoder, "" of a pretrained encoder)."""
    if negatives is None:
        return None
    if isinstance(negatives, str):
        negatives = [negatives]
    if isinstance(negatives, (list, tuple)) and negatives and all(isinstance(n, str) and not n.strip() for n in negatives):
        return None
    if isinstance(negatives, (list, tuple)) and any(isinstance(n, str) and not n.strip() for n in negatives):
        raise ValueError("the negative_prompt list mixes empty and non-empty prompts; give all empty (no negative prompt) or none")
    return check_prompts(negatives, "negative_prompt")


def shorten(text: str, limit: int = 80) -> str:
    """Text as an error message quotes it: at most `limit` characters, cut with '...'."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(kw_only=True)
class WordEncoderConfig:
    vocabulary: list[str] = field(default_factory=list)  # real words; [pad] and [null] are added
    width: int = 128
    depth: int = 2
    heads: int = 4
    max_words: int = 24


def split_words(prompt: str) -> list[str]:
    """Lower-case words, punctuation dropped: how the word encoder reads a prompt. A word keeps
    inner apostrophes and hyphens ("don't", "left-hand"), but needs a letter or digit."""
    words = "".join(ch if ch.isalnum() or ch in "'-" else " " for ch in prompt.lower()).split()
    return [w for w in words if any(ch.isalnum() for ch in w)]


def build_vocabulary(captions: list[str]) -> list[str]:
    """Every word of a caption list, sorted: the vocabulary of a word encoder for that data."""
    return sorted({w for c in captions for w in split_words(c)})


class WordTokenizer:
    """Lower-cases and splits into words; every word must be in the vocabulary."""

    def __init__(self, vocabulary: list[str], max_words: int):
        self.words = [PAD, NULL, *vocabulary]
        self.index = {w: i for i, w in enumerate(self.words)}
        self.max_words = max_words
        # A model whose words are exactly the Shapes world's reads only its captions' grammar
        # (docs/shapes.md); a vocabulary built from a user's captions is free text.
        self.shapes_grammar = set(vocabulary) == set(SHAPES_VOCABULARY)

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self._pack([self.ids(p) for p in check_prompts(prompts)])

    def ids(self, prompt: str) -> list[int]:
        """One prompt's word ids; a prompt with no word (emoji, punctuation), an unknown word, too
        many words, or, for a model of the Shapes vocabulary, words outside its grammar, is refused."""
        words = split_words(prompt)
        if not words:
            raise ValueError(f"the prompt '{shorten(prompt)}' has no words (only symbols or punctuation); "
                             "give a caption such as 'a big red circle moves right'")
        unknown = [w for w in words if w not in self.index or w in (PAD, NULL)]
        if unknown:
            raise ValueError(f"unknown word '{shorten(unknown[0], 40)}' in prompt '{shorten(prompt)}'; "
                             f"this model's vocabulary is: {' '.join(self.words[2:])}")
        if len(words) > self.max_words:
            raise ValueError(f"the prompt has {len(words)} words; this model reads at most {self.max_words}")
        if self.shapes_grammar:
            try:
                parse_caption(" ".join(words))
            except ValueError as e:
                raise ValueError(f"the prompt '{shorten(prompt)}' is not a caption this model can read: {e}") from None
        return [self.index[w] for w in words]

    def null(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._pack([[self.index[NULL]]] * n)

    def _pack(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        L = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), L, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != 0


class WordTextEncoder(TextEncoder):
    """Word embeddings + a small pre-norm transformer, trained together with the generator."""

    kind = "word"

    def __init__(self, config: WordEncoderConfig):
        super().__init__()
        self.config = config
        self.width = config.width
        self.tokenizer = WordTokenizer(config.vocabulary, config.max_words)
        self.embed = nn.Embedding(len(self.tokenizer.words), config.width)
        self.pos = nn.Parameter(torch.randn(config.max_words, config.width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            config.width, config.heads, 4 * config.width, dropout=0.0, batch_first=True, norm_first=True, activation="gelu"
        )
        self.blocks = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.width)

    def forward(self, ids_BL: torch.Tensor, mask_BL: torch.Tensor) -> TextEmbedding:
        h = self.embed(ids_BL) + self.pos[: ids_BL.shape[1]]
        h = self.norm(self.blocks(h, src_key_padding_mask=~mask_BL))
        m = mask_BL.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
        return TextEmbedding(tokens_BLD=h, mask_BL=mask_BL, pooled_BD=pooled)

    def _device(self) -> torch.device:
        return self.embed.weight.device

    def encode(self, prompts: list[str], *, drop: torch.Tensor | None = None) -> TextEmbedding:
        """`drop` rows (and, in training, clips without a caption) get the null prompt."""
        if drop is None:
            ids, mask = self.tokenizer(prompts)
        else:
            drop = drop | torch.tensor([not p.strip() for p in prompts])
            kept = [p for p, d in zip(prompts, drop.tolist()) if not d]
            null_ids, _ = self.tokenizer.null(1)
            rows = [[] for _ in prompts]
            if kept:
                kid, kmask = self.tokenizer(kept)
                it = iter(range(len(kept)))
                for r, d in enumerate(drop.tolist()):
                    if not d:
                        j = next(it)
                        rows[r] = kid[j][kmask[j]].tolist()
            rows = [r if r else null_ids[0].tolist() for r in rows]
            ids, mask = self.tokenizer._pack(rows)
        return self(ids.to(self._device()), mask.to(self._device()))

    def encode_null(self, n: int) -> TextEmbedding:
        ids, mask = self.tokenizer.null(n)
        return self(ids.to(self._device()), mask.to(self._device()))

