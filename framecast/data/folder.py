"""Folders of real videos with captions, for training on your own data.

A folder holds video files (.mp4 .webm .mov .mkv .avi .gif) and/or sub-folders of frames
(.png/.jpg), anywhere below it. Captions come from, in order of precedence:
  - a sidecar `<name>.txt` beside a video (or `<folder>.txt` beside a frame folder),
  - `captions.jsonl` at the root: {"file": "relative/path.mp4", "caption": "..."} per line,
  - `captions.csv` at the root with columns `file,caption`.
A clip without a caption is used unconditionally (its caption is empty, i.e. the null prompt).

Clips are sampled as `frames` frames `stride` apart (or at `fps`, when the file declares its rate),
resized so the short side is `size` and centre-cropped to size x size. A file that cannot be
read, is truncated or is empty is skipped with a warning and counted, never a crash mid-epoch.
"""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from framecast.video import IMAGE_EXTENSIONS, read_video, video_fps

FOLDER_VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")


@dataclass
class Entry:
    path: Path
    caption: str


@dataclass
class ScanReport:
    root: Path
    entries: list[Entry] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    frames: list[int] = field(default_factory=list)
    resolutions: dict[str, int] = field(default_factory=dict)

    @property
    def captioned(self) -> int:
        return sum(1 for e in self.entries if e.caption)


def _captions(root: Path) -> dict[str, str]:
    table: dict[str, str] = {}
    csv_path, jsonl_path = root / "captions.csv", root / "captions.jsonl"
    if csv_path.is_file():
        with open(csv_path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("file") and row.get("caption") is not None:
                    table[row["file"]] = row["caption"].strip()
    if jsonl_path.is_file():
        for i, line in enumerate(jsonl_path.read_text().splitlines()):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                table[row["file"]] = str(row["caption"]).strip()
            except (json.JSONDecodeError, KeyError, TypeError):
                warnings.warn(f"{jsonl_path}:{i + 1} is not a {{\"file\", \"caption\"}} record; skipped", stacklevel=2)
    return table


def find_clips(root: str | Path) -> list[Entry]:
    """Every video file and frame folder below `root`, with its caption."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data folder '{root}' does not exist")
    table = _captions(root)
    entries = []
    for p in sorted(root.rglob("*")):
        is_video = p.is_file() and p.suffix.lower() in FOLDER_VIDEO_EXTENSIONS
        is_frames = p.is_dir() and any(c.suffix.lower() in IMAGE_EXTENSIONS for c in p.iterdir())
        if not (is_video or is_frames):
            continue
        sidecar = p.with_suffix(".txt") if is_video else p.parent / f"{p.name}.txt"
        rel = str(p.relative_to(root))
        caption = sidecar.read_text().strip() if sidecar.is_file() else table.get(rel, "")
        entries.append(Entry(p, caption))
    return entries


def scan(root: str | Path) -> ScanReport:
    """Open every clip once: counts of clips, frames and resolutions, and what could not be read."""
    report = ScanReport(Path(root))
    for e in find_clips(root):
        try:
            frames = read_video(e.path)
        except ValueError as err:
            report.unreadable.append((str(e.path), str(err)))
            continue
        report.entries.append(e)
        report.frames.append(int(frames.shape[0]))
        key = f"{frames.shape[2]}x{frames.shape[1]}"
        report.resolutions[key] = report.resolutions.get(key, 0) + 1
    return report


def resize_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, size, size, 3): short side to `size` (bilinear), centre crop."""
    T, H, W, _ = frames.shape
    scale = size / min(H, W)
    h, w = max(size, round(H * scale)), max(size, round(W * scale))
    out = np.empty((T, size, size, 3), dtype=np.uint8)
    top, left = (h - size) // 2, (w - size) // 2
    for t in range(T):
        im = Image.fromarray(frames[t]).resize((w, h), Image.BILINEAR) if (h, w) != (H, W) else Image.fromarray(frames[t])
        out[t] = np.asarray(im)[top : top + size, left : left + size]
    return out


class VideoFolderDataset(torch.utils.data.Dataset):
    """Item (i, epoch): a clip of `frames` frames from clip file i, starting at a position drawn
    from (seed, i, epoch), so every epoch sees other windows of long videos (a plain int i means
    epoch 0). Unreadable files return None and are counted in `skipped`; `collate_clips` drops them."""

    def __init__(self, root: str | Path, *, size: int = 32, frames: int = 16, stride: int = 1, fps: float = 0.0, seed: int = 0):
        """`fps` > 0: sample at that rate, the stride of each file from its declared frame rate
        (files that declare none use `stride`)."""
        if frames <= 0 or stride <= 0 or size <= 0 or fps < 0:
            raise ValueError("frames, stride and size must be > 0 and fps >= 0")
        self.fps = fps
        self.entries = find_clips(root)
        if not self.entries:
            raise ValueError(f"data folder '{root}' holds no videos or frame folders ({', '.join(FOLDER_VIDEO_EXTENSIONS)})")
        self.size, self.frames, self.stride, self.seed = size, frames, stride, seed
        self.skipped: set[str] = set()

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: int | tuple[int, ...]) -> dict | None:
        """key: i, or (i, epoch[, position in the global batch])."""
        key = key if isinstance(key, tuple) else (key,)
        i, epoch, pos = (*key, 0, 0)[:3]
        e = self.entries[i]
        try:
            video = read_video(e.path)
        except ValueError as err:
            if str(e.path) not in self.skipped:
                warnings.warn(f"skipping {e.path}: {err}", stacklevel=2)
            self.skipped.add(str(e.path))
            return None
        stride = self.stride
        if self.fps:
            native = video_fps(e.path)
            stride = max(1, round(native / self.fps)) if native else self.stride
        span = (self.frames - 1) * stride + 1
        if video.shape[0] < span:  # too short: loop it, so every clip gives a full window
            reps = -(-span // video.shape[0])
            video = np.concatenate([video] * reps)
        rng = np.random.default_rng([self.seed, i, epoch])
        start = int(rng.integers(0, video.shape[0] - span + 1))
        clip = resize_crop(video[start : start + span : stride], self.size)
        x = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return {"video": x, "caption": e.caption, "pos": pos}


def collate_clips(items: list[dict | None]) -> dict:
    items = [it for it in items if it is not None]
    if not items:
        return {"video": torch.empty(0), "caption": [], "index": []}
    return {"video": torch.stack([it["video"] for it in items]), "caption": [it["caption"] for it in items],
            "index": [it.get("pos", 0) for it in items]}


class StepBatchSampler(torch.utils.data.Sampler):
    """Batch k of a run is a pure function of (seed, k): the epoch's permutation, sliced. So a
    resumed run sees the data the uninterrupted run would have, and rank r of `world` takes its
    share of the same global batch (r::world), so many processes see one single-process batch."""

    def __init__(self, n: int, batch_size: int, *, seed: int = 0, start_step: int = 0, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ValueError(f"the global batch ({batch_size}) must divide among {world} processes")
        self.n, self.batch, self.seed, self.step, self.rank, self.world = n, batch_size, seed, start_step, rank, world

    def indices(self, step: int) -> list[tuple[int, int, int]]:
        """(clip index, epoch, position in the global batch) of this process's share of batch `step`."""
        per_epoch = max(1, self.n // self.batch)
        epoch, k = divmod(step, per_epoch)
        perm = np.random.default_rng([self.seed, epoch, 11]).permutation(self.n)
        if self.n < self.batch:  # tiny folders: repeat the permutation
            perm = np.resize(perm, self.batch)
        batch = perm[k * self.batch : (k + 1) * self.batch]
        return [(int(batch[j]), epoch, j) for j in range(self.rank, len(batch), self.world)]

    def __iter__(self):
        while True:
            yield self.indices(self.step)
            self.step += 1

    def __len__(self) -> int:  # endless; DataLoader only needs it for progress
        return 2**31
