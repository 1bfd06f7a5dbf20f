"""How predictable are a token model's codes? For the first token-frame of held-out clips (made
from the text alone in generation), mask one token at a time, keep every other token and the
caption, and ask the model for the masked one. Reported by region of the token's pixels: background
(no object pixel in the token's patch, in any frame of the token-frame), inside (all object), edge.

    python -m framecast.eval.token_predictability --model shapes-ar --num 12

A model that has learned the world picks a background token's code almost surely; what it cannot
pick given all the others is what its tokenizer's codes hold beyond their own patch (see the
"patch determinism" of `framecast.eval.codec`). Held-out clips: the train split's clips of seeds
0 .. num - 1 (training draws from a 2^62 range), no guidance, fp32.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from framecast.data.shapes import render_clip
from framecast.eval.results import write_result
from framecast.nn.attention import MaskSpec
from framecast.pipeline import load
from framecast.video import from_uint8


def measure(name: str, num: int) -> dict:
    model = load(name, precision="fp32").model
    if getattr(model.config, "order", None) != "set":
        raise SystemExit(f"'{name}' is not a set-order token model")
    n = model.tokens_per_chunk
    pt = model.frames_per_chunk
    h, w = model.grid_hw
    d = model.config.size // h  # pixels a token covers
    rows: dict[str, list] = {"background": [], "edge": [], "inside": []}
    with torch.no_grad():
        for i in range(num):
            clip = render_clip(i, size=model.config.size, frames=model.config.frames)
            codes = model.to_latent(from_uint8(clip.video)[None]).reshape(1, -1)[:, :n].long()
            ids = codes.repeat(n, 1)
            ids[torch.arange(n), torch.arange(n)] = model.mask_id  # row j: token j masked alone
            text = model.text.encode([clip.caption] * n)
            logits = model._chunk_logits(ids, torch.full((n, 1), 1.0 / n), text, mask=MaskSpec("frame-causal"))
            logp = logits.float().log_softmax(-1)[torch.arange(n), torch.arange(n)]  # (n, V)
            lit = clip.video[:pt].max(-1) > 0  # (pt, S, S)
            cover = lit.reshape(pt, h, d, w, d).mean((2, 4)).reshape(-1)  # token order (t, y, x)
            for j in range(n):
                region = "background" if cover[j] == 0 else "inside" if cover[j] == 1 else "edge"
                rows[region].append((logp[j, codes[0, j]].item(), float(logp[j].argmax() == codes[0, j]), logp[j].exp().max().item()))
    out = {"model": name, "clips": num, "regions": {}}
    for region, r in rows.items():
        a = np.array(r) if r else np.zeros((0, 3))
        out["regions"][region] = {"tokens": len(a), "right_code_top": float(a[:, 1].mean()) if len(a) else None,
                                  "log_prob_right_code": float(a[:, 0].mean()) if len(a) else None,
                                  "top_prob": float(a[:, 2].mean()) if len(a) else None}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="shapes-ar", help="set-order token models, comma-separated")
    ap.add_argument("--num", type=int, default=12)
    ap.add_argument("--output", type=Path, default=Path("token_predictability.json"))
    args = ap.parse_args(argv)
    results = [measure(name, args.num) for name in args.model.split(",")]
    table = ["| model | region | tokens | right code on top | log p(right code) | top probability |", "|---|---|---|---|---|---|"]
    for r in results:
        for region, s in r["regions"].items():
            if s["tokens"]:
                table.append(f"| {r['model']} | {region} | {s['tokens']} | {s['right_code_top']:.3f} | {s['log_prob_right_code']:.2f} | {s['top_prob']:.3f} |")
    result = results[0] if len(results) == 1 else {"models": results}
    write_result(args.output, result, table)
    return result


if __name__ == "__main__":
    main()
