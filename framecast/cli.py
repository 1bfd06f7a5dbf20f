"""Layer 1, the command line: parse, validate, call a pipeline, print. `framecast --help`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="framecast: train, generate and measure video generators.")


@app.callback()
def _root() -> None:
    """framecast: train, generate and measure video generators."""


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def train(
    recipe: Optional[str] = typer.Argument(None, help="a recipe name (e.g. shapes-diffusion-small) or a YAML file"),
    set_: List[str] = typer.Option([], "--set", help="override a config key: --set optim.lr=1e-4 (repeatable)"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="a run folder (or checkpoint folder) to continue"),
    out: Optional[Path] = typer.Option(None, "--out", help="run folder (default: the recipe's out_dir)"),
):
    """Train a model from a recipe or YAML; checkpoints are atomic and `--resume` continues exactly."""
    from framecast.train.config import load_config
    from framecast.train.trainer import train as run_train

    try:
        if recipe is None:
            if resume is None:
                fail("give a recipe or YAML file to train, or --resume RUN_DIR")
            cfg = _config_of_run(resume, set_)
        else:
            cfg = load_config(recipe, set_)
        if out is not None:
            cfg.out_dir = str(out)
        run_dir = run_train(cfg, resume=resume)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"trained {cfg.steps} steps; model written to {run_dir / 'model'}")


def _config_of_run(resume: Path, overrides: list[str]):
    import json

    from framecast.train.config import TrainConfig, apply_override, _flatten
    from framecast.train.recipes import get_recipe

    path = resume / "train_config.json" if (resume / "train_config.json").is_file() else resume.parent.parent / "train_config.json"
    if not path.is_file():
        fail(f"'{resume}' is not a framecast run folder (no train_config.json)")
    raw = json.loads(path.read_text())
    cfg: TrainConfig = get_recipe(raw.get("recipe") or "shapes-diffusion-small")
    for k, v in _flatten(raw):
        apply_override(cfg, k, v)
    for item in overrides:
        k, v = item.split("=", 1)
        apply_override(cfg, k, v)
    return cfg


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
