"""Shared by the benchmarks: write the JSON result and its Markdown table side by side."""

from __future__ import annotations

import json
from pathlib import Path


def write_report(path: Path, result: dict, table: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    path.with_suffix(".md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
