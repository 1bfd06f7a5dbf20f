"""The models a server offers, each loaded once on first use and kept."""

from __future__ import annotations

import threading


class ModelCache:
    """Pipelines by name. `allowed` (from `--models`) limits what may be asked for; None allows
    every bundled model. One cache per worker, so no two generations share a model's state."""

    def __init__(self, allowed: list[str] | None = None, *, device: str = "auto", precision: str = "auto"):
        self.allowed, self.device, self.precision = allowed, device, precision
        self._pipes: dict = {}
        self._lock = threading.Lock()

    def check_name(self, name: str) -> None:
        if self.allowed is not None and name not in self.allowed:
            raise ValueError(f"model '{name}' is not served here; this server offers {', '.join(self.allowed)}")

    def get(self, name: str):
        """The pipeline for `name`, loading it the first time (ValueError: no such model)."""
        from framecast.pipeline import load

        self.check_name(name)
        with self._lock:
            if name not in self._pipes:
                self._pipes[name] = load(name, device=self.device, precision=self.precision)
            return self._pipes[name]

    def loaded(self) -> list[str]:
        return list(self._pipes)

    def cards(self) -> list[dict]:
        """The offered generators with their cards (family, parameters, scores, README)."""
        from framecast.pipeline import GENERATOR_FAMILIES, bundled_models, model_card, resolve_model

        names = self.allowed if self.allowed is not None else list(bundled_models())
        out = []
        for name in names:
            path = resolve_model(name)
            card = {**model_card(path), "name": name}
            if card["family"] not in GENERATOR_FAMILIES:
                continue  # codecs and classifiers are parts, not models to ask for clips
            readme = path / "README.md"
            card["card"] = readme.read_text() if readme.is_file() else None
            card.pop("path", None)
            out.append(card)
        return out
