"""Folders of real videos with captions, for training on your own data.

A folder holds video files (.mp4 .webm .mov .mkv .avi .gif) and/or sub-folders of frames
(.png/.jpg), anywhere below it, with captions in one of the layouts `framecast.data.captions`
reads (sidecar `clip.txt` or `clip.mp4.txt`, `captions.jsonl`, `captions.csv`).

`scan` opens every clip once, before training, and keeps the clips that can be used: a clip is
skipped, with its name and the reason, when it has no caption (most often a misnamed sidecar; a
model cannot learn a prompt from it), cannot be decoded, is empty, or holds fewer frames than one
training window (`frames` frames `stride` apart). A folder where nothing is usable is refused
(`require_usable`) before anything trains.

Clips are sampled as `frames` frames `stride` apart (or at `fps`, when the file declares its rate),
resized so the short side is `size` and centre-cropped to size x size.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from framecast.data.captions import Captions, layout
from framecast.video import IMAGE_EXTENSIONS, read_video, video_fps

FOLDER_VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
NO_CAPTION = "no caption (give it clip.txt, clip.mp4.txt, or a row in captions.jsonl or captions.csv)"


@dataclass
class Entry:
    path: Path
    caption: str
    source: str = ""  # where the caption came from (framecast.data.captions)
    frames: int = 0  # frames in the file, once scanned
    stride: int = 1  # frames between sampled frames in this file
    height: int = 0
    width: int = 0


@dataclass
class ScanReport:
    root: Path
    entries: list[Entry] = field(default_factory=list)  # the usable clips
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    resolutions: dict[str, int] = field(default_factory=dict)
    layout: str = ""  # which caption layouts were used, one line
    unmatched: list[str] = field(default_factory=list)  # caption rows that name no clip
    window: int = 1  # frames a training window needs (at stride 1)

    @property
    def frames(self) -> list[int]:
        return [e.frames for e in self.entries]

    @property
    def captioned(self) -> int:
        return sum(1 for e in self.entries if e.caption)

    def name(self, path: str | Path) -> str:
        p = Path(path)
        return str(p.relative_to(self.root)) if p.is_relative_to(self.root) else str(p)


def find_clips(root: str | Path) -> tuple[list[Entry], Captions]:
    """Every video file and frame folder below `root`, with its caption (empty without one)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data folder '{root}' does not exist or is not a folder")
    captions = Captions.read(root)
    entries = []
    for p in sorted(root.rglob("*")):
        is_video = p.is_file() and p.suffix.lower() in FOLDER_VIDEO_EXTENSIONS
        is_frames = p.is_dir() and any(c.suffix.lower() in IMAGE_EXTENSIONS for c in p.iterdir())
        if is_video or is_frames:
            entries.append(Entry(p, *captions.lookup(p)))
    return entries, captions


def file_stride(path: Path, stride: int, fps: float) -> int:
    """Frames between sampled frames: `stride`, or the file's declared rate over `fps`."""
    native = video_fps(path) if fps else None
    return max(1, round(native / fps)) if native else stride


def _reason(path: Path, err: ValueError) -> str:
    """read_video's sentence without the path, which the report prints beside it."""
    return str(err).replace(f" '{path}'", "").replace(f"'{path}' ", "")


def scan(root: str | Path, *, frames: int = 1, stride: int = 1, fps: float = 0.0, progress: bool = False) -> ScanReport:
    """Open every clip once: the usable clips, with their frame counts and resolutions, and each
    skipped file with the reason."""
    if frames <= 0 or stride <= 0 or fps < 0:
        raise ValueError(f"frames and stride must be > 0 and fps >= 0, got frames={frames}, stride={stride}, fps={fps}")
    entries, captions = find_clips(root)
    report = ScanReport(Path(root), window=frames)
    for e in tqdm(entries, desc="checking clips", unit="clip", disable=not progress or len(entries) < 20, dynamic_ncols=True):
        why = _unusable(e, frames, stride, fps)
        if why:
            report.skipped.append((str(e.path), why))
            continue
        report.entries.append(e)
    for e in report.entries:
        key = f"{e.width}x{e.height}"
        report.resolutions[key] = report.resolutions.get(key, 0) + 1
    report.layout = layout([e.source for e in entries])
    report.unmatched = captions.unmatched()
    return report


def _unusable(e: Entry, frames: int, stride: int, fps: float) -> str:
    """Why a clip cannot train ("" when it can); fills in its frame count, stride and size."""
    try:
        video = read_video(e.path)
    except ValueError as err:
        return _reason(e.path, err)
    e.frames, e.stride = int(video.shape[0]), file_stride(e.path, stride, fps)
    e.height, e.width = int(video.shape[1]), int(video.shape[2])
    span = (frames - 1) * e.stride + 1
    if e.frames < span:
        return f"{e.frames} frames; a training window needs {span} ({frames} frames {e.stride} apart): lower data.frames"
    if not e.caption:
        return NO_CAPTION
    return "" if any(ch.isalnum() for ch in e.caption) else f"its caption '{e.caption[:40]}' has no words"


def require_usable(report: ScanReport, shown: int = 3) -> None:
    """Refuse a folder where no clip can train, naming a few files and why."""
    if report.entries:
        return
    if not report.skipped:
        raise ValueError(f"data folder '{report.root}' holds no videos or frame folders ({', '.join(FOLDER_VIDEO_EXTENSIONS)})")
    some = "; ".join(f"{report.name(p)}: {why}" for p, why in report.skipped[:shown])
    more = f"; and {len(report.skipped) - shown} more (framecast data scan lists them)" if len(report.skipped) > shown else ""
    raise ValueError(f"data folder '{report.root}' holds no usable clip: {some}{more}")


def summary(report: ScanReport, shown: int = 10) -> list[str]:
    """What a run will train on: one line of counts and caption layout, then each skipped file."""
    n = len(report.entries)
    lines = [f"data: {report.root}: {n} usable clip{'s' if n != 1 else ''}, {len(report.skipped)} skipped; {report.layout}"]
    lines += [f"  skipped {report.name(p)}: {why}" for p, why in report.skipped[:shown]]
    if len(report.skipped) > shown:
        lines.append(f"  ... and {len(report.skipped) - shown} more (framecast data scan {report.root} lists them all)")
    if report.unmatched:
        names = ", ".join(report.unmatched[:shown])
        lines.append(f"  {len(report.unmatched)} caption row(s) name no clip in the folder: {names}")
    return lines


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


def _to_tensor(clip_THWC: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(clip_THWC).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def windows(entries: list[Entry], frames: int, *, cap: int = 0, seed: int = 0) -> list[tuple[int, int]]:
    """Every training window the clips hold, as (clip index, first frame): a clip of n frames
    sampled `stride` apart holds n - (frames - 1) * stride of them. With `cap` > 0 and more
    windows than that, a seeded random `cap` of them."""
    every = [(i, s) for i, e in enumerate(entries) for s in range(max(0, e.frames - (frames - 1) * e.stride))]
    if cap and len(every) > cap:
        keep = np.sort(np.random.default_rng([seed, 13]).choice(len(every), size=cap, replace=False))
        every = [every[k] for k in keep]
    return every


def read_windows(entries: list[Entry], chosen: list[tuple[int, int]], *, size: int, frames: int) -> Iterator[tuple[torch.Tensor, str]]:
    """(clip (frames, 3, size, size) in [-1, 1], caption) of each window, each file decoded once."""
    by_clip: dict[int, list[int]] = {}
    for i, start in chosen:
        by_clip.setdefault(i, []).append(start)
    for i, starts in by_clip.items():
        e = entries[i]
        video = read_video(e.path)
        for s in starts:
            yield _to_tensor(resize_crop(video[s : s + (frames - 1) * e.stride + 1 : e.stride], size)), e.caption


class VideoFolderDataset(torch.utils.data.Dataset):
    """Item (i, epoch): a clip of `frames` frames from usable clip i, starting at a position drawn
    from (seed, i, epoch), so every epoch sees other windows of long videos (a plain int i means
    epoch 0). The folder is scanned first (`scan`; or give its `report`) and refused when nothing
    in it is usable. A file that becomes unreadable after the scan returns None, is warned about
    once and named in `skipped`; `collate_clips` drops it."""

    def __init__(self, root: str | Path, *, size: int = 32, frames: int = 16, stride: int = 1, fps: float = 0.0, seed: int = 0,
                 report: ScanReport | None = None):
        """`fps` > 0: sample at that rate, the stride of each file from its declared frame rate
        (files that declare none use `stride`)."""
        if frames <= 0 or stride <= 0 or size <= 0 or fps < 0:
            raise ValueError("frames, stride and size must be > 0 and fps >= 0")
        self.report = report if report is not None else scan(root, frames=frames, stride=stride, fps=fps)
        require_usable(self.report)
        self.entries = self.report.entries
        self.size, self.frames, self.seed = size, frames, seed
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
                warnings.warn(f"skipping {e.path}: {_reason(e.path, err)}", stacklevel=2)
            self.skipped.add(str(e.path))
            return None
        span = (self.frames - 1) * e.stride + 1
        if video.shape[0] < span:  # the file changed after the scan: loop it to a full window
            video = np.concatenate([video] * -(-span // video.shape[0]))
        rng = np.random.default_rng([self.seed, i, epoch])
        start = int(rng.integers(0, video.shape[0] - span + 1))
        return {"video": _to_tensor(resize_crop(video[start : start + span : e.stride], self.size)), "caption": e.caption, "pos": pos}


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
