"""Captions of a folder of videos, in the layouts people keep them in.

For a clip `a/clip.mp4` (or a frame folder `a/clip/`), in order of precedence:
  - a sidecar text file beside it: `a/clip.txt` or `a/clip.mp4.txt`;
  - `captions.jsonl` at the folder's root, one record a line: {"file": "a/clip.mp4", "caption": "..."}
    or {"video": "a/clip.mp4", "text": "..."};
  - `captions.csv` at the root, with a header row `file,caption` or `video,text`.
A table's path is relative to the root (`./` and backslashes are accepted); a bare file name also
matches a clip in a sub-folder when no other clip has that name. Text files must be UTF-8 (a
byte-order mark is allowed); anything else is refused with a sentence naming the file.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

PATH_KEYS, TEXT_KEYS = ("file", "video"), ("caption", "text")
ACCEPTED = "file,caption or video,text"
SIDECAR, JSONL, CSV = "sidecar .txt", "captions.jsonl", "captions.csv"


def read_text(path: Path) -> str:
    """A caption file's text; a file that is not UTF-8 is refused by name."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"caption file '{path}' is not UTF-8 text (byte {e.start}); save it as UTF-8") from None


def _pick(row: dict, keys: tuple[str, ...]):
    return next((row[k] for k in keys if k in row), None)


def _read_jsonl(path: Path) -> dict[str, str]:
    table = {}
    for i, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        name, text = (_pick(row, PATH_KEYS), _pick(row, TEXT_KEYS)) if isinstance(row, dict) else (None, None)
        if not isinstance(name, str) or not isinstance(text, str):
            raise ValueError(f"{path}, line {i}, is not a caption record; write {{\"file\": \"clip.mp4\", \"caption\": \"...\"}} "
                             "or {\"video\": ..., \"text\": ...} on each line")
        table[name] = text.strip()
    return table


def _read_csv(path: Path) -> dict[str, str]:
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    path_key = next((k for k in PATH_KEYS if k in header), None)
    text_key = next((k for k in TEXT_KEYS if k in header), None)
    if path_key is None or text_key is None:
        found = ",".join(reader.fieldnames or []) or "nothing"
        raise ValueError(f"{path} has the header '{found[:200]}'; framecast reads a header of {ACCEPTED}")
    reader.fieldnames = header
    return {row[path_key].strip(): (row[text_key] or "").strip() for row in reader if row.get(path_key)}


def _normal(name: str) -> str:
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


@dataclass
class Captions:
    """The caption of each clip below `root`, and where it came from."""

    root: Path
    table: dict[str, tuple[str, str]] = field(default_factory=dict)  # normalised path -> (caption, source)
    used: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, root: Path) -> "Captions":
        captions = cls(root)
        for name, reader in ((CSV, _read_csv), (JSONL, _read_jsonl)):  # JSONL over CSV where both name a clip
            if (root / name).is_file():
                for key, text in reader(root / name).items():
                    captions.table[_normal(key)] = (text, name)
        return captions

    def lookup(self, clip: Path) -> tuple[str, str]:
        """(caption, source) of a clip: a video file or a frame folder; ("", "") without one."""
        for sidecar in (clip.with_suffix(".txt"), clip.parent / f"{clip.name}.txt"):
            if sidecar != clip and sidecar.is_file():
                return read_text(sidecar).strip(), SIDECAR
        rel = clip.relative_to(self.root).as_posix()
        key = rel if rel in self.table else self._by_name(clip.name)
        if key is None:
            return "", ""
        self.used.add(key)
        return self.table[key]

    def _by_name(self, name: str) -> str | None:
        hits = [k for k in self.table if k == name or k.rsplit("/", 1)[-1] == name]
        return hits[0] if len(hits) == 1 else None

    def unmatched(self) -> list[str]:
        """Table rows that name no clip of the folder: a typo, or a file that is gone."""
        return sorted(set(self.table) - self.used)


def layout(sources: list[str]) -> str:
    """One line: which caption layouts gave the clips their captions."""
    counts = {s: sources.count(s) for s in (SIDECAR, JSONL, CSV) if s in sources}
    missing = sources.count("")
    parts = [f"{name} ({n} clip{'s' if n != 1 else ''})" for name, n in counts.items()]
    if missing:
        parts.append(f"none for {missing} clip{'s' if missing != 1 else ''}")
    return "captions from " + (", ".join(parts) if parts else "nowhere")
