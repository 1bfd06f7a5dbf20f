"""A model whose weights lie between two models of the same shape (WiSE-FT, Wortsman et al. 2022:
interpolating a fine-tuned model towards the one it started from can keep both one's gains).

    python tools/interpolate_weights.py shapes-ar shapes-ar-orders --alpha 0.5 --out runs/ar-halfway
    framecast eval --model runs/ar-halfway --decode raster --num 25 --seed 0 --batch-size 25

The result is (1 - alpha) * FIRST + alpha * SECOND, tensor by tensor, saved with SECOND's config
(its sampling defaults) into a new model folder.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from framecast.generators.io import CONFIG_NAME, WEIGHTS_NAME
from framecast.pipeline import resolve_model
from framecast.video import atomic_folder


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)


def interpolate(first: Path, second: Path, alpha: float) -> dict:
    a, b = load_file(str(first / WEIGHTS_NAME)), load_file(str(second / WEIGHTS_NAME))
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        fail(f"{first.name} and {second.name} differ in their tensors: only models of one shape interpolate")
    return {k: ((1 - alpha) * a[k].float() + alpha * b[k].float()).to(b[k].dtype) if b[k].is_floating_point() else b[k]
            for k in b}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first", help="a bundled model name or a model folder (alpha 0)")
    ap.add_argument("second", help="a model of the same shape (alpha 1); its config is kept")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:
        fail(f"--alpha {args.alpha}: give a share between 0 and 1")
    if args.out.exists():
        fail(f"--out {args.out}: it exists; give a new folder")
    try:
        first, second = resolve_model(args.first), resolve_model(args.second)
    except ValueError as e:
        fail(str(e))
    weights = interpolate(first, second, args.alpha)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(args.out) as tmp:  # the folder appears whole or not at all
        save_file(weights, str(tmp / WEIGHTS_NAME))
        shutil.copy(second / CONFIG_NAME, tmp / CONFIG_NAME)
    print(f"wrote {args.out}: {1 - args.alpha:g} x {first.name} + {args.alpha:g} x {second.name}")


if __name__ == "__main__":
    main()
