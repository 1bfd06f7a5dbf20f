"""Copy a trained run's EMA model into framecast/assets/<name>/ with its provenance.

    python tools/bundle_model.py runs/shapes-diffusion-small --name shapes-diffusion \
        --command "framecast train shapes-diffusion-small --set threads=2"

A run that trained on from a bundled model (`--set init_from=NAME`) is bundled with
`--continues NAME`: that model's log comes first and its steps count in.

Writes config.json + model.safetensors (weights in bfloat16 when --bf16, to stay small),
README.md (the model card in the Hugging Face hub's convention: the command, steps, wall time,
final loss, scores, the full training config), train_log.jsonl and loss.png. Write the card's
"intended use" and "limitations" by hand after bundling.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
from pathlib import Path

import torch

from framecast.generators import from_pretrained, save_pretrained
from framecast.train.checkpoint import latest_checkpoint

ASSETS = Path(__file__).resolve().parents[1] / "framecast" / "assets"
SAMPLING_KEYS = ("sampler", "steps", "guidance", "shift", "schedule", "decode", "temperature", "top_k", "top_p", "set_steps",
                 "first_set_steps", "set_refine", "diagonal_refine", "diagonal_delay", "diagonal_stride")


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def loss_plot(log: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in log]
    loss = [r["loss"] for r in log]
    k = max(1, len(loss) // 50)
    smooth = [sum(loss[max(0, i - k): i + 1]) / len(loss[max(0, i - k): i + 1]) for i in range(len(loss))]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    ax.plot(steps, loss, alpha=0.25, lw=0.8, label="loss")
    ax.plot(steps, smooth, lw=1.6, label=f"running mean ({k + 1} logs)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


PIPELINE_TAGS = {"diffusion": "text-to-video", "hybrid": "text-to-video", "autoregressive": "text-to-video"}


def model_card(name: str, family: str, training: dict, scores_path: Path) -> str:
    """The card README.md: YAML front matter (hub convention), then what the model is, how it was
    trained and how it scores. Intended use and limitations are left for a person to write."""
    tag = PIPELINE_TAGS.get(family)
    front = ["---", "license: apache-2.0", "library_name: framecast"] + ([f"pipeline_tag: {tag}"] if tag else [])
    front += ["tags:", "- framecast", f"- {family}", "- shapes-world", "---"]
    t = training
    steps = f"- steps: {t['steps']}"
    if t["prev_steps"]:
        steps += f" ({t['prev_steps']} of them in the run that made `{t['continues']}`, which this one continued)"
    lines = [
        f"# {name}", "", f"A {family} model of framecast, recipe `{t['config'].get('recipe', '')}` "
        "(framecast/train/recipes.py). Load it with `framecast.load(\"" + name + "\")` or `--model " + name + "`.", "",
        "## Intended use", "", "(to be written: what the model is for)", "",
        "## Training", "", f"```bash\n{t['command']}\n```", "",
        f"{steps} at batch {t['batch_size']}, {t['hours']:.2f} h of training "
        "(wall time between logs; resumes and pauses left out)",
        f"- parameters: {t['params'] / 1e6:.2f} M; weights stored in {'bfloat16' if t['bf16'] else 'float32'} (EMA)",
        f"- final loss (mean of the last {t['logs']} logs): {t['loss']:.4f}",
    ]
    if t["defaults"]:
        lines.append("- sampling defaults set at bundling: " + ", ".join(f"{k} = {v}" for k, v in t["defaults"].items()))
    lines += ["", "![loss](loss.png)", ""]
    if scores_path.is_file():
        scores = json.loads(scores_path.read_text())
        lines += ["## Scores", "", f"```bash\n{scores.get('command', '')}\n```", "", "| score | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in scores.items() if k != "command"]
        lines.append("")
    lines += ["## Limitations", "", "(to be written)", "", "<details><summary>Training config</summary>", "",
              f"```json\n{json.dumps(t['config'], indent=2)}\n```", "", "</details>", ""]
    return "\n".join([*front, "", *lines])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--command", required=True, help="the command that trained it, written into the card (README.md)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the run's latest checkpoint")
    ap.add_argument("--assets", type=Path, default=ASSETS, help="where bundled models live (default: framecast/assets)")
    ap.add_argument("--continues", default="",
                    help="the bundled model (name or folder) the run started from through init_from: its log comes first "
                         "and the steps count on from its trained_steps")
    ap.add_argument("--bf16", action="store_true", help="store weights in bfloat16 (half the size)")
    ap.add_argument("--scores", type=Path, default=None, help="a `framecast eval` JSON whose headline numbers go to scores.json")
    ap.add_argument("--scores-command", default="", help="the command that made --scores")
    ap.add_argument("--default", action="append", default=[], metavar="KEY=VALUE",
                    help="a sampling default chosen after training (sampler, steps, guidance, shift, schedule, decode, "
                         "temperature, top_k, top_p, set_steps, first_set_steps, set_refine, diagonal_refine, diagonal_delay, diagonal_stride), "
                         "e.g. --default sampler=euler-stochastic; written into the card")
    ap.add_argument("--decode-with", action="append", default=[], metavar="ORDER=MODEL",
                    help="token models: a bundled sibling that decodes an order this one was not trained for "
                         "(e.g. --decode-with raster=shapes-ar-raster), used when a request asks for it")
    args = ap.parse_args()
    decode_with = {}
    for item in args.decode_with:
        order, _, name = item.partition("=")
        if order not in ("raster", "diagonal", "set") or not name:
            raise SystemExit(f"--decode-with {item}: give ORDER=MODEL with ORDER one of raster, diagonal, set")
        decode_with[order] = name
    ckpt = args.checkpoint or latest_checkpoint(args.run)
    if ckpt is None:
        raise SystemExit(f"no checkpoint in {args.run}")
    state = json.loads((ckpt / "state.json").read_text())
    model = from_pretrained(ckpt)
    if decode_with and model.family != "autoregressive":
        raise SystemExit(f"--decode-with is for token models; {args.run} holds a {model.family} model")
    defaults = {}
    for item in args.default:
        key, _, value = item.partition("=")
        if key not in SAMPLING_KEYS or not value:
            raise SystemExit(f"--default {item}: give KEY=VALUE with KEY one of {', '.join(SAMPLING_KEYS)}")
        old = getattr(model.config, key)
        defaults[key] = type(old)(value) if old is not None else value
        setattr(model.config, key, defaults[key])
    prev_steps, prev_log = 0, []
    if args.continues:  # read before `out` (often the same folder) is replaced
        prev = Path(args.continues) if Path(args.continues).is_dir() else args.assets / args.continues
        if not (prev / "train_log.jsonl").is_file():
            raise SystemExit(f"--continues {args.continues}: no bundled model with a train_log.jsonl there")
        prev_steps = json.loads((prev / "config.json").read_text()).get("trained_steps", 0)
        prev_log = read_log(prev / "train_log.jsonl")
    steps = prev_steps + state["step"]
    log = [r for r in read_log(args.run / "log.jsonl") if r["step"] <= state["step"]]
    if prev_log and log and prev_log[-1]["time"] >= log[0]["time"]:
        raise SystemExit(f"--continues {args.continues}: that bundle's log ends after this run began; "
                         "it already holds this run (bundled twice?), so give the model it started from")
    log = prev_log + [{**r, "step": prev_steps + r["step"]} for r in log]
    out = args.assets / args.name
    if out.exists():
        shutil.rmtree(out)
    save_pretrained(model, out, dtype=torch.bfloat16 if args.bf16 else None,
                    extra={"trained_steps": steps, "recipe": state["train_config"].get("recipe", ""),
                           **({"decode_with": decode_with} if decode_with else {})})
    (out / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    loss_plot(log, out / "loss.png", f"{args.name}: training loss")
    # Time spent training: gaps between logs over 5x the median (a resume, a paused process) left out.
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(log)]
    typical = sorted(gaps)[len(gaps) // 2] if gaps else 0.0
    hours = sum(g for g in gaps if g <= 5 * typical) / 3600
    n_params = sum(p.numel() for p in model.parameters())
    last = log[-20:]
    if args.scores is not None:
        ev = json.loads(args.scores.read_text())
        keys = ("scene_accuracy", "object_accuracy", "presence", "shape", "colour", "direction", "speed_error",
                "teleports_per_clip", "extra_object_rate", "seconds_per_clip", "clips",
                "psnr_db", "psnr_db_min", "scene_accuracy_of_reconstructions")  # the last three: codecs (python -m framecast.eval.codec)
        scores = {k: ev[k] for k in keys if k in ev}
        scores["command"] = args.scores_command
        (out / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")
    training = {"command": args.command, "steps": steps, "prev_steps": prev_steps, "continues": args.continues,
                "batch_size": state["train_config"]["batch_size"], "hours": hours, "params": n_params, "bf16": args.bf16,
                "loss": sum(r["loss"] for r in last) / len(last), "logs": len(last), "defaults": defaults,
                "config": state["train_config"]}
    (out / "README.md").write_text(model_card(args.name, model.family, training, out / "scores.json"))
    print(f"bundled {args.name} -> {out} ({sum(f.stat().st_size for f in out.iterdir()) / 2**20:.1f} MB)")


if __name__ == "__main__":
    main()
