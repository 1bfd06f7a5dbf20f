"""Reading weights: safetensors only, its header checked before a tensor is read, every tensor
finite. Nothing here unpickles: a pickle (what `torch.save` writes) can run any code when it is
loaded, so a file that holds one is refused by its first bytes, never opened as a pickle."""

from __future__ import annotations

import struct
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

PICKLE_PROTOCOL_BYTE = 0x80  # a pickle of protocol >= 2 starts with the PROTO opcode
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default: a zip archive around a pickle
HEADER_LIMIT = 100 * 2**20  # safetensors refuses headers above 100 MB


def _diagnose(path: Path, error: str) -> str:
    """One sentence on why `path` is not a whole safetensors file, from its size and first bytes."""
    size = path.stat().st_size
    if size == 0:
        return f"'{path}' is empty (0 bytes): it was never written whole"
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:1] == bytes([PICKLE_PROTOCOL_BYTE]) or head[:4] == ZIP_MAGIC:
        return (f"'{path}' is not a safetensors file: it is a Python pickle (as torch.save writes), which framecast never "
                "opens because loading one can run any code; convert a copy you trust with safetensors.torch.save_file")
    header_len = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else 0
    json_header = head[8:9] == b"{" and header_len <= HEADER_LIMIT
    if size < 9 or (json_header and ("incomplete" in error or "header length" in error)):
        return f"'{path}' is truncated ({size} bytes; its header describes more): it was not written whole"
    return f"'{path}' is not a readable safetensors file ({error})"


def tensor_shapes(path: str | Path, fix: str = "re-download or re-write it") -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file, from its header alone. The library
    checks that the header's offsets cover the file exactly, so a truncated file fails here."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"'{path}' does not exist; {fix}")
    try:
        with safe_open(str(path), "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except SafetensorError as e:
        why = _diagnose(path, str(e))
        raise ValueError(why if "pickle" in why else f"{why}; {fix}") from None
    except OSError as e:
        raise ValueError(f"cannot read '{path}': {e.strerror or e}") from None


def check_shapes(path: Path, shapes: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]) -> None:
    """The header's tensors are exactly the model's, shape for shape."""
    missing, unexpected = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"the weights in '{path}' belong to another model: {len(missing)} tensors missing (e.g. {missing[:1]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:1]})"
        )
    bad = [k for k in expected if tuple(expected[k]) != shapes[k]]
    if bad:
        raise ValueError(f"the weights in '{path}' do not fit the config: '{bad[0]}' is {shapes[bad[0]]}, expected {tuple(expected[bad[0]])}")


def check_finite(path: Path, tensors: dict[str, torch.Tensor], fix: str) -> None:
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"'{path}' holds NaN or inf in '{name}' (a diverged run or a damaged file); {fix}")


def read_tensors(path: str | Path, expected: dict[str, tuple[int, ...]] | None = None, *,
                 fix: str = "re-download or re-write it") -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, after its header was checked (against `expected`
    names and shapes when given); refuses a file holding NaN or inf. `fix` ends each refusal."""
    path = Path(path)
    shapes = tensor_shapes(path, fix)
    if expected is not None:
        check_shapes(path, shapes, expected)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"'{path}' does not read ({e}); {fix}") from None
    check_finite(path, tensors, fix)
    return tensors
