"""Pretrained Hugging Face text encoders (UMT5 for Wan 2.1, T5, CLIP, BERT-like) behind the
`TextEncoder` interface, read from a local folder; `transformers` is imported on first use.

Wan's text conditioning (the Wan repository's T5 encoder, diffusers' WanPipeline): the prompt is
cleaned (HTML entities unescaped, runs of white space made one space), tokenized with </s>,
padded to `max_length` = 512 tokens and encoded with the attention mask; the states of padded
positions are then set to zero, and all `max_length` rows go to the transformer's cross-attention,
which reads the zero rows too (so a transformer matching Wan ignores `mask_BL`). There is no
learned null token: the unconditional branch of guidance is the negative prompt, "" by default,
encoded the same way (`encode_null`).

    text = HFTextEncoder.from_folder("Wan2.1-T2V-1.3B-Diffusers/text_encoder",
                                     "Wan2.1-T2V-1.3B-Diffusers/tokenizer", dtype=torch.bfloat16)
    emb = text.encode(["a cat runs"])   # tokens_BLD (1, 512, 4096), zero past the prompt's tokens
    text.release()                       # frees the model; prompts already encoded stay cached
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import torch

from framecast.text.encoder import TextEmbedding, TextEncoder, shorten
from framecast.text.extras import require
from framecast.text.prompt_cache import PromptCache

# config.json's model_type -> the transformers class that holds only the encoder
ENCODER_CLASSES = {"umt5": "UMT5EncoderModel", "t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "clip": "CLIPTextModel",
                   "clip_text_model": "CLIPTextModel"}


def clean_prompt(text: str) -> str:
    """Wan's prompt cleaning: ftfy's text repair where ftfy is installed (as the Wan repository and
    diffusers do), HTML entities unescaped twice, white space collapsed and stripped."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def read_model_type(folder: Path) -> str:
    """The `model_type` of a transformers folder's config.json, or one sentence on what is wrong."""
    path = folder / "config.json"
    if not path.is_file():
        raise ValueError(f"'{folder}' is not a text encoder folder: it has no config.json")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"'{path}' is not valid JSON ({e}); re-download the text encoder") from None
    kind = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"'{path}' names no model_type, so framecast cannot tell which text encoder it is; "
                         "re-download the text encoder")
    return kind


class HFTextEncoder(TextEncoder):
    """A frozen transformers encoder + its tokenizer. `encode` pads every prompt to `max_length`
    and zeroes the states of padded positions (Wan's convention); `encode_null(n)` encodes ""."""

    def __init__(self, model, tokenizer, *, max_length: int = 512, cache_size: int = 32, clean: bool = True):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.clean = clean
        self.cache_size = cache_size
        self._cache = PromptCache(cache_size)  # cleaned prompt -> (states, mask, pooled)
        config = model.config
        self.width = int(getattr(config, "d_model", None) or config.hidden_size)
        self.pooled_from_model = config.model_type.startswith("clip")

    @classmethod
    def from_folder(cls, model_dir: str | Path, tokenizer_dir: str | Path | None = None, *, dtype: torch.dtype | None = None,
                    device: str | torch.device = "cpu", max_length: int = 512, cache_size: int = 32) -> "HFTextEncoder":
        """Load the encoder from `model_dir` (config.json + safetensors; nothing is downloaded and
        no pickle is read) and the tokenizer from `tokenizer_dir` (default: the same folder)."""
        model_dir = Path(model_dir)
        kind = read_model_type(model_dir)
        transformers = require("transformers", why="it runs the text encoder")
        if kind not in require("transformers.models.auto.configuration_auto").CONFIG_MAPPING_NAMES:
            raise ValueError(f"'{model_dir}' holds a model of type '{shorten(kind, 40)}', which transformers "
                             f"{transformers.__version__} does not know; it is not a text encoder framecast can run")
        model_class = getattr(transformers, ENCODER_CLASSES.get(kind, "AutoModel"))
        bars = transformers.utils.logging
        shown = bars.is_progress_bar_enabled()
        bars.disable_progress_bar()  # framecast reports its own progress; transformers' bar is restored below
        try:
            model = model_class.from_pretrained(model_dir, local_files_only=True, use_safetensors=True, dtype=dtype)
            tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir or model_dir, local_files_only=True)
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"the text encoder in '{model_dir}' does not load ({shorten(str(e).splitlines()[0], 120)})") from None
        finally:
            if shown:
                bars.enable_progress_bar()
        return cls(model.to(device), tokenizer, max_length=max_length, cache_size=cache_size)

    def train(self, mode: bool = True) -> "HFTextEncoder":
        """The encoder is frozen: it stays in eval mode (no dropout) whatever the module around it does."""
        super().train(mode)
        if self.model is not None:
            self.model.eval()
        return self

    def _apply(self, fn, *args, **kwargs):
        """`.to()` moves the cached encodings with the model."""
        self._cache = PromptCache(self.cache_size, ((k, tuple(fn(t) for t in v)) for k, v in self._cache.items()))
        return super()._apply(fn, *args, **kwargs)

    def release(self) -> None:
        """Drop the model (for GPU memory once the prompts are encoded); cached prompts still encode."""
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _run(self, prompts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(states_LD with padded rows zeroed, mask_L, pooled_D) per prompt, in one batch."""
        if self.model is None:
            raise ValueError("the text encoder was released and this prompt is not cached; load the model again to encode it")
        batch = self.tokenizer(prompts, padding="max_length", max_length=self.max_length, truncation=True,
                               add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        device = next(self.model.parameters()).device
        ids_BL, mask_BL = batch.input_ids.to(device), batch.attention_mask.to(device)
        with torch.no_grad():
            out = self.model(input_ids=ids_BL, attention_mask=mask_BL)
        keep_BL1 = mask_BL.bool().unsqueeze(-1)
        states_BLD = torch.where(keep_BL1, out.last_hidden_state, torch.zeros((), dtype=out.last_hidden_state.dtype, device=device))
        if self.pooled_from_model:
            pooled_BD = out.pooler_output
        else:
            pooled_BD = states_BLD.sum(1) / keep_BL1.sum(1).clamp(min=1).to(states_BLD.dtype)
        return list(zip(states_BLD, mask_BL.bool(), pooled_BD))

    def _encode(self, prompts: list[str]) -> TextEmbedding:
        keys = [clean_prompt(p) if self.clean else p for p in prompts]
        rows = self._cache.rows(keys, self._run)
        return TextEmbedding(tokens_BLD=torch.stack([r[0] for r in rows]), mask_BL=torch.stack([r[1] for r in rows]),
                             pooled_BD=torch.stack([r[2] for r in rows]))

    def encode(self, prompts: list[str], *, drop: torch.Tensor | None = None) -> TextEmbedding:
        """`drop` (B,) bool: rows encoded as "" (the unconditional prompt) instead."""
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompt must be a string or a non-empty list of strings")
        if drop is not None:
            prompts = ["" if d else p for p, d in zip(prompts, drop.tolist())]
        return self._encode(list(prompts))

    def encode_null(self, n: int) -> TextEmbedding:
        """The unconditional branch: the empty negative prompt "", n times."""
        return self._encode([""] * n)
