"""How much of a 100-clip score is the noise draw: the same prompts judged under several seeds.

`framecast eval --prompts train --num 100 --seed S` draws clip i from seed S + i, so results of
one model with different S share their prompts and differ only in the sampler's noise. This
reads such results and reports each draw's scene accuracy, their mean, standard deviation and
standard error, the one-sided 95 % lower bound of the mean (mean - 1.645 standard errors), and how
many prompts were right in every draw, in none, or in some.

    for s in 0 1000 2000; do framecast eval --model shapes-diffusion --prompts train --num 100 --seed $s \\
        --output runs/draws/seed$s.json; done
    python -m framecast.eval.draws runs/draws/seed*.json --output benchmarks/results/draws-shapes-diffusion.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from framecast.eval.results import write_result


def load_draws(paths: list[Path]) -> list[dict]:
    """The eval results, sorted by seed; one-line errors for a file that is not one, or for
    results of different prompts or models."""
    draws = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
            data["per_clip"], data["seed"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            raise SystemExit(f"error: '{path}' is not a framecast eval result (JSON with per_clip and seed); write one with `framecast eval --output`")
        data["file"] = str(path)
        draws.append(data)
    draws.sort(key=lambda d: d["seed"])
    captions = [c["caption"] for c in draws[0]["per_clip"]]
    for d in draws[1:]:
        if [c["caption"] for c in d["per_clip"]] != captions:
            raise SystemExit(f"error: '{d['file']}' judged other prompts than '{draws[0]['file']}'; give results of the same --prompts and --num")
        if d.get("model") != draws[0].get("model") or d.get("settings") != draws[0].get("settings"):
            raise SystemExit(f"error: '{d['file']}' is another model or other settings than '{draws[0]['file']}'")
    if len({d["seed"] for d in draws}) != len(draws):
        raise SystemExit("error: two results share a seed, so they are the same draw; give each seed once")
    return draws


def summarize_draws(draws: list[dict]) -> dict:
    scores = [sum(bool(c["right"]) for c in d["per_clip"]) / len(d["per_clip"]) for d in draws]
    n = len(scores)
    mean = sum(scores) / n
    sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1)) if n > 1 else math.nan
    se = sd / math.sqrt(n)
    right_count = [sum(bool(d["per_clip"][i]["right"]) for d in draws) for i in range(len(draws[0]["per_clip"]))]
    return {
        "model": draws[0].get("model"), "settings": draws[0].get("settings"), "clips": len(right_count),
        "draws": [{"seed": d["seed"], "scene_accuracy": s, "file": d["file"]} for d, s in zip(draws, scores)],
        "mean": mean, "sd": sd, "se": se, "lower_95": mean - 1.645 * se,
        "prompts_always_right": sum(c == n for c in right_count), "prompts_never_right": sum(c == 0 for c in right_count),
        "prompts_sometimes_right": sum(0 < c < n for c in right_count),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path, help="framecast eval JSON files of one model, same prompts, different --seed")
    ap.add_argument("--output", type=Path, default=Path("draws.json"))
    args = ap.parse_args(argv)
    s = summarize_draws(load_draws(args.results))
    table = [
        f"{s['model']} on the same {s['clips']} prompts, {len(s['draws'])} noise draws (seed S: clip i from seed S + i)",
        "",
        "| seed S | scene acc. |",
        "|---|---|",
        *[f"| {d['seed']} | {d['scene_accuracy']:.2f} |" for d in s["draws"]],
        "",
        "| mean | sd | se | one-sided 95 % lower bound | prompts right in every draw / none / some |",
        "|---|---|---|---|---|",
        (f"| {s['mean']:.3f} | {s['sd']:.3f} | {s['se']:.3f} | {s['lower_95']:.3f} | "
        f"{s['prompts_always_right']} / {s['prompts_never_right']} / {s['prompts_sometimes_right']} |"),
    ]
    write_result(args.output, s, table)
    return s


if __name__ == "__main__":
    main()
