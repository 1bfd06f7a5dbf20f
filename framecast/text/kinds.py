"""The text encoders a model config can name (`text_kind`) and their config classes."""

from __future__ import annotations

from framecast.text.encoder import TextEncoder, WordEncoderConfig, WordTextEncoder
from framecast.text.pretrained import ConnectedTextEncoder, PretrainedEncoderConfig

TEXT_KINDS = {"word": (WordEncoderConfig, WordTextEncoder), "pretrained": (PretrainedEncoderConfig, ConnectedTextEncoder)}


def build_text_encoder(kind: str, config: dict) -> TextEncoder:
    if kind not in TEXT_KINDS:
        raise ValueError(f"unknown text encoder kind '{kind}'; framecast knows: {', '.join(TEXT_KINDS)}")
    config_class, encoder_class = TEXT_KINDS[kind]
    return encoder_class(config_class(**config))
