"""Scene accuracy by kind of scene, and what a prompt set's mix of kinds alone predicts.

Two prompt sets drawn from the same world can differ in how many hard scenes they hold: the
100-clip evaluation (`--prompts train --num 100 --seed 0`) has two objects in 61 clips and a
square in 53, the 300 tuning clips in 46 % and 44 %. This reads `framecast eval` results, counts
clips right by kind (number of objects, number of squares), and predicts each result's scene
accuracy from the first one's per-kind rates weighted by its own mix (direct standardization).
A measured score far below its prediction is a model doing worse on the same kinds of scene,
not a harder mix.

    framecast eval --model shapes-diffusion --prompts compositional --num 100 --output compositional.json
    python -m framecast.eval.composition benchmarks/results/eval-shapes-diffusion.json compositional.json --output composition.json
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

from framecast.data.shapes import parse_caption
from framecast.eval.results import write_result


def kind(caption: str) -> tuple[int, int]:
    """(objects, squares) of a caption."""
    objects = parse_caption(caption)
    return len(objects), sum(o["shape"] == "square" for o in objects)


def by_kind(per_clip: list[dict]) -> dict[tuple[int, int], tuple[int, int]]:
    """kind -> (clips right, clips)."""
    right, total = Counter(), Counter()
    for clip in per_clip:
        k = kind(clip["caption"])
        right[k] += bool(clip["right"])
        total[k] += 1
    return {k: (right[k], total[k]) for k in sorted(total)}


def predicted(reference: dict, target: dict) -> tuple[float, list[tuple[int, int]]]:
    """The scene accuracy `target`'s mix of kinds predicts from `reference`'s per-kind rates, and
    the kinds `reference` has no clip of (left out of the prediction)."""
    missing = [k for k in target if k not in reference]
    n = sum(total for k, (_, total) in target.items() if k in reference)
    rate = sum(reference[k][0] / reference[k][1] * total for k, (_, total) in target.items() if k in reference)
    return (rate / n if n else math.nan), missing


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path, help="framecast eval JSON files; the first is the reference")
    ap.add_argument("--output", type=Path, default=Path("composition.json"))
    args = ap.parse_args(argv)
    runs = []
    for path in args.results:
        try:
            data = json.loads(path.read_text())
            clips = data["per_clip"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            raise SystemExit(f"error: '{path}' is not a framecast eval result (JSON with per_clip); write one with `framecast eval --output`")
        runs.append((path, data, by_kind(clips)))
    reference = runs[0][2]
    kinds = sorted({k for _, _, table in runs for k in table})
    result = {"reference": str(runs[0][0]), "results": []}
    table = ["| result | clips | " + " | ".join(f"{o} obj., {s} sq." for o, s in kinds) + " | scene acc. | predicted from the reference's rates |",
             "|---|---|" + "---|" * len(kinds) + "---|---|"]
    for path, data, counts in runs:
        guess, missing = predicted(reference, counts)
        measured = sum(r for r, _ in counts.values()) / sum(t for _, t in counts.values())
        result["results"].append({
            "file": str(path), "model": data.get("model"), "clips": len(data["per_clip"]), "scene_accuracy": measured,
            "predicted": guess, "kinds_missing_from_reference": [list(k) for k in missing],
            "by_kind": [{"objects": o, "squares": s, "right": r, "clips": t} for (o, s), (r, t) in counts.items()],
        })
        cells = [f"{counts[k][0]}/{counts[k][1]}" if k in counts else "–" for k in kinds]
        table.append(f"| `{path.name}` | {len(data['per_clip'])} | " + " | ".join(cells) + f" | {measured:.3f} | {guess:.3f} |")
    write_result(args.output, result, table)
    return result


if __name__ == "__main__":
    main()
