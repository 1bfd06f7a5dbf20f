"""Give latent generators a new decoder for the VAE they were trained on.

    python tools/swap_codec.py runs/shapes-vae-decoder/model --into shapes-diffusion shapes-hybrid \
        --note "framecast train shapes-vae-decoder"

The VAE's encoder must be the generators' own, tensor for tensor (a decoder fine-tuned with
freeze_encoder=true), so the latents they learnt stay the same; only `codec.decoder.*` changes.
Each generator folder is rewritten in place (weights in bfloat16 when they were), its config's
`codec` becomes the VAE's, and its model card (README.md) says which decoder it now holds.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, is_dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from framecast.generators import from_pretrained, save_pretrained
from framecast.generators.io import WEIGHTS_NAME, read_config
from framecast.pipeline import resolve_model


def swap(vae_folder: Path, generator_folder: Path, note: str) -> None:
    vae = from_pretrained(vae_folder)
    model = from_pretrained(generator_folder)
    old_config = read_config(generator_folder)
    if getattr(model.config, "codec", None) is None:
        raise SystemExit(f"{generator_folder} works in pixels: it has no codec to give a decoder")
    mine = model.codec.encoder.state_dict()
    theirs = vae.encoder.state_dict()
    if mine.keys() != theirs.keys() or not all(torch.equal(mine[k].float(), theirs[k].float()) for k in mine):
        raise SystemExit(f"{vae_folder}'s encoder is not {generator_folder}'s: its latents would change; "
                         "fine-tune the decoder with freeze_encoder=true from the generator's own VAE")
    model.codec.decoder.load_state_dict(vae.decoder.state_dict())
    model.config.codec = asdict(vae.config)
    with safe_open(str(generator_folder / WEIGHTS_NAME), "pt") as f:  # the stored precision, from one tensor
        bf16 = f.get_slice(next(iter(f.keys()))).get_dtype() == "BF16"
    spec = model.spec()
    own_keys = set(asdict(spec) if is_dataclass(spec) else spec) | {"framecast_format"}
    extra = {k: v for k, v in old_config.items() if k not in own_keys}
    save_pretrained(model, generator_folder, dtype=torch.bfloat16 if bf16 else None, extra=extra)
    card = generator_folder / "README.md"
    if card.is_file():
        with card.open("a") as f:
            f.write(f"\n## Decoder\n\nThe VAE decoder was replaced by `{vae_folder}`'s (same encoder, so the same latents), "
                    "made with:\n\n"
                    f"```bash\n{note}\n```\n")
    print(f"{generator_folder}: decoder from {vae_folder} ({model.family})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vae", help="a VAE model folder or bundled name")
    ap.add_argument("--into", nargs="+", required=True, help="generator folders or bundled names, rewritten in place")
    ap.add_argument("--note", required=True, help="the command that made the decoder, for the model card")
    args = ap.parse_args()
    vae = resolve_model(args.vae)
    for g in args.into:
        swap(vae, resolve_model(g), args.note)


if __name__ == "__main__":
    main()
