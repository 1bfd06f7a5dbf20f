"""Copy one model folder's plain-English text encoder (connector, caption bank, threshold) into another.

A few-step student is its teacher's backbone trained on, and reads prompts through the text
encoder it was distilled with. When the teacher takes a connector distilled from other data
(`python -m framecast.train.connector`), this gives a student (or any folder with the same word
encoder, which it checks first) that connector. The bundled students keep theirs; their cards give
the scores of both.

    cp -r framecast/assets/shapes-diffusion-fast runs/fast-new-text
    python tools/copy_text_encoder.py --source shapes-diffusion --into runs/fast-new-text
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from framecast.generators.io import write_atomic
from framecast.pipeline import resolve_model

TEXT = "text."
TEACHER = "text.teacher."


def copy_text_encoder(source: Path, into: Path) -> int:
    """Replace `into`'s text weights and text config by `source`'s; returns the tensors copied."""
    for folder in (source, into):
        if not ((folder / "model.safetensors").is_file() and (folder / "config.json").is_file()):
            raise SystemExit(f"'{folder}' is not a model folder (no model.safetensors and config.json)")
    src, dst = load_file(source / "model.safetensors"), load_file(into / "model.safetensors")
    src_cfg, dst_cfg = (json.loads((p / "config.json").read_text()) for p in (source, into))
    if src_cfg.get("text_kind") != "pretrained" or dst_cfg.get("text_kind") != "pretrained":
        raise SystemExit("both folders must read prompts with a pretrained encoder and connector (text_kind 'pretrained')")
    teachers = [{k: v for k, v in w.items() if k.startswith(TEACHER)} for w in (src, dst)]
    if teachers[0].keys() != teachers[1].keys() or any(not torch.equal(teachers[0][k].float(), teachers[1][k].float()) for k in teachers[0]):
        raise SystemExit(f"'{source}' and '{into}' have different word encoders; distil a connector for '{into}' instead")
    text = {k: v.to(dst[k].dtype if k in dst else v.dtype) for k, v in src.items() if k.startswith(TEXT)}
    weights = {k: v for k, v in dst.items() if not k.startswith(TEXT)} | text
    dst_cfg["text"] = src_cfg["text"]
    with safe_open(str(into / "model.safetensors"), "pt") as f:
        metadata = f.metadata()
    write_atomic(into / "model.safetensors", lambda p: save_file(weights, p, metadata=metadata))
    write_atomic(into / "config.json", lambda p: Path(p).write_text(json.dumps(dst_cfg, indent=2) + "\n"))
    return len(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="the model folder (or bundled name) whose text encoder is copied")
    p.add_argument("--into", required=True, type=Path, help="the model folder that takes it")
    args = p.parse_args()
    n = copy_text_encoder(resolve_model(args.source), args.into)
    print(f"copied {n} text tensors and the text config into {args.into}")


if __name__ == "__main__":
    main()
