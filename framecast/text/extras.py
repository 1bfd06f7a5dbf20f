"""Optional dependencies: `transformers` (Hugging Face text encoders) and `diffusers` (schedulers
framecast does not implement itself) come with `pip install framecast[wan]`; importing framecast
never imports them, and a missing one is one sentence that names the install command."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str = "wan", why: str = "") -> ModuleType:
    """Import `module` on first use; if it is not installed, a ValueError naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise ValueError(f"'{top}' is not installed{' (' + why + ')' if why else ''}; "
                         f"run `pip install framecast[{extra}]`") from None
