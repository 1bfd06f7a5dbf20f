"""Which of the world's colours a model reads for a colour name, judged on its text encoder alone.

For each name and a few sentences ("a big {name} circle moves right", ...), the model's context for
the sentence is compared with its word encoder's context for the seven canonical captions that
differ only in colour; the nearest is the colour it reads. No clip is drawn, so a thousand names
take seconds. The groups:

- `hand-picked`: `COLOUR_WORDS` of the caption augmentation;
- `tables`: the colour names of the augmentation's XKCD / CSS tables (`colour_names()`);
- `held-out`: the table names kept out of training (`colour_names(held_out=True)`), which measure
  what the encoder generalises to names it never read;
- `rewriter`: the colour words of the paraphrase evaluation (`framecast.eval.paraphrase.LEXICON`).

    python tools/colour_words.py shapes-diffusion
    python tools/colour_words.py runs/text-diffusion --show-misses
"""

from __future__ import annotations

import argparse

import torch

from framecast.data.phrasing import COLOUR_WORDS, colour_names
from framecast.data.shapes import COLOURS
from framecast.eval.paraphrase import LEXICON
from framecast.generators import from_pretrained
from framecast.pipeline import resolve_model

SENTENCES = ["a big {} circle moves right", "a small {} square moves up", "a big {} triangle moves left", "a small {} circle moves down"]


def context(emb, i: int, n: int) -> torch.Tensor:
    """Sentence i's first n context states and its pooled vector, flattened."""
    return torch.cat([emb.tokens_BLD[i, :n].float().flatten(), emb.pooled_BD[i].float()])


@torch.no_grad()
def reads(model, names: list[str]) -> list[list[str]]:
    """For each name, the colour read in each of SENTENCES."""
    colours = list(COLOURS)
    out = [[] for _ in names]
    for sentence in SENTENCES:
        canon = model.text.teacher.encode([sentence.format(c) for c in colours])
        n = int(canon.mask_BL[0].sum())
        refs = torch.stack([context(canon, k, n) for k in range(len(colours))])
        said = model.text.encode([sentence.format(name) for name in names])
        for i in range(len(names)):
            dist = ((refs - context(said, i, n)) ** 2).sum(1)
            out[i].append(colours[int(dist.argmin())])
    return out


def groups() -> dict[str, dict[str, str]]:
    """group -> {name: the colour it means}."""
    tables, held = colour_names(), colour_names(held_out=True)
    return {
        "hand-picked": {w: c for c, words in COLOUR_WORDS.items() for w in words},
        "tables": {w: c for c, words in tables.items() for w in words},
        "held-out": {w: c for c, words in held.items() for w in words},
        "rewriter": {w: c for c in COLOURS for w in LEXICON[c]},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a bundled model or model folder that reads plain English (text_kind 'pretrained')")
    p.add_argument("--show-misses", action="store_true", help="print every name read as another colour")
    args = p.parse_args()
    model = from_pretrained(resolve_model(args.model)).float().eval()
    if getattr(model.text, "teacher", None) is None:
        raise SystemExit(f"'{args.model}' has no word encoder beside its text encoder to compare with")
    print(f"| {args.model} | names | read right (each name in {len(SENTENCES)} sentences) |\n|---|---|---|")
    for group, meant in groups().items():
        names = sorted(meant)
        got = reads(model, names)
        right = sum(g == meant[n] for n, gs in zip(names, got) for g in gs) / (len(names) * len(SENTENCES))
        print(f"| {group} | {len(names)} | {right:.3f} |")
        if args.show_misses:
            for n, gs in zip(names, got):
                wrong = [g for g in gs if g != meant[n]]
                if wrong:
                    print(f"    {n} ({meant[n]}): read {', '.join(wrong)}")


if __name__ == "__main__":
    main()
