"""Write an analysis's result: the JSON beside its Markdown table (`x.json` and `x.md`)."""

from __future__ import annotations

import json
from pathlib import Path


def write_result(path: Path, result: dict, table: list[str]) -> None:
    """Write `result` to `path` and `table` (Markdown lines) to the same name with `.md`, and print the table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    path.with_suffix(".md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
