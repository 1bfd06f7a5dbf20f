"""Tensor conventions and video files.

In memory a clip is a float tensor (B, T, C, H, W) in [-1, 1]. On disk and for judging it
is (T, H, W, 3) uint8. Writers: .mp4 (H.264 via PyAV), .gif, .png (contact sheet), .npy
(lossless). Readers: .mp4/.webm/.mov/.mkv/.avi, .gif, .npy and folders of frames.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import tempfile
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

WRITE_EXTENSIONS = (".mp4", ".gif", ".png", ".npy")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi")
READ_EXTENSIONS = (*VIDEO_EXTENSIONS, ".gif", ".npy")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


# --- conventions ----------------------------------------------------------------------------
def to_uint8(video: torch.Tensor) -> np.ndarray:
    """(T, C, H, W) or (1, T, C, H, W) float in [-1, 1] -> (T, H, W, 3) uint8."""
    if video.dim() == 5:
        if video.shape[0] != 1:
            raise ValueError(f"to_uint8 takes one clip; got a batch of {video.shape[0]}")
        video = video[0]
    if video.dim() != 4 or video.shape[1] != 3:
        raise ValueError(f"expected a (T, 3, H, W) clip, got shape {tuple(video.shape)}")
    x = ((video.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def from_uint8(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float in [-1, 1]."""
    frames = check_frames(frames)
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3 and frames.shape[-1] == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"expected frames shaped (T, H, W, 3) with T >= 1, got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {frames.dtype}")
    return frames


def as_frames(video) -> np.ndarray:
    """Anything a pipeline returns or a user holds -> (T, H, W, 3) uint8."""
    if hasattr(video, "frames"):  # a pipeline output: its first clip
        video = video.frames[0]
    if isinstance(video, torch.Tensor):
        return to_uint8(video)
    if isinstance(video, (list, tuple)) and video and isinstance(video[0], Image.Image):
        return np.stack([np.asarray(im.convert("RGB")) for im in video])
    return check_frames(video)


def upscale_nearest(frames: np.ndarray, factor: int) -> np.ndarray:
    return frames if factor <= 1 else frames.repeat(factor, axis=1).repeat(factor, axis=2)


def _display_factor(frames: np.ndarray, min_side: int) -> int:
    return max(1, -(-min_side // min(frames.shape[1:3])))


# --- output paths ---------------------------------------------------------------------------
def check_fps(fps) -> float:
    """A frame rate a writer can use: a finite number > 0 (at most 1000)."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"fps must be a number, got {fps!r}") from None
    if not math.isfinite(value) or value <= 0 or value > 1000:
        raise ValueError(f"fps must be a finite number between 0 and 1000 (e.g. 8), got {fps}")
    return value


def _rate(fps: float) -> Fraction:
    """The frame rate as the exact fraction a container stores (8 -> 8/1, 29.97 -> 2997/100)."""
    return Fraction(fps).limit_denominator(1001)


def check_output(path: str | Path, *, overwrite: bool = True, extensions: tuple[str, ...] | None = WRITE_EXTENSIONS,
                 folder: bool = False) -> Path:
    """Refuse, before any work, an output that could not be written: an unknown extension, a path
    that is a folder (or, with `folder`, a file), a parent that is missing, a file or not writable,
    and an existing output unless `overwrite`."""
    path = Path(path)
    if not folder and path.is_dir():
        raise ValueError(f"output '{path}' is a folder; give a file name in it, e.g. '{path / ('clip' + (extensions or ('.mp4',))[0])}'")
    if extensions is not None and path.suffix.lower() not in extensions:
        raise ValueError(f"cannot write '{path}': the output must end in {', '.join(extensions)}")
    if folder and path.exists() and not path.is_dir():
        raise ValueError(f"output '{path}' is a file, but a folder is written there; give another name")
    parent = path.absolute().parent
    existing = next(p for p in (parent, *parent.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"cannot write '{path}': '{existing}' is a file, not a folder; choose another output path")
    if existing != parent:
        raise ValueError(f"cannot write '{path}': folder '{path.parent}' does not exist; create it first (mkdir -p '{path.parent}')")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write '{path}': folder '{path.parent}' is not writable; choose another output path")
    if path.exists() and not overwrite:
        raise ValueError(f"'{path}' exists; pass --overwrite to replace it (overwrite=True in Python) or choose another name")
    return path


def _umask() -> int:
    """The process's umask: mkstemp and mkdtemp make owner-only entries, an output gets the usual mode."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary name in the output's folder (with the same extension, which the writers
    read); on success it is renamed onto `path`, on any failure or Ctrl-C it is removed: the
    requested path never holds a partial file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".partial{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_folder(path: str | Path):
    """As atomic_path, for a folder of outputs: written under a temporary name beside it, then
    put in its place (an existing folder of that name is replaced only once the new one is whole)."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(dir=path.absolute().parent, prefix=f".{path.name}.", suffix=".partial"))
    old = None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            old = path.with_name(f".{path.name}.{tmp.name}.old")
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover)


# --- writing --------------------------------------------------------------------------------
def caption_above(sheet: np.ndarray, caption: str, *, max_lines: int = 3) -> np.ndarray:
    """The sheet with `caption` written above it (PIL's built-in font; long captions wrap and are cut)."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default()
    text = caption.encode("latin-1", "replace").decode("latin-1")  # the built-in font is Latin-1 only
    per_line = max(8, (sheet.shape[1] - 8) // 6)
    lines = textwrap.wrap(text, per_line) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: per_line - 3] + "..."
    line_h = 12
    canvas = Image.new("RGB", (sheet.shape[1], sheet.shape[0] + line_h * len(lines) + 6), (64, 64, 64))
    canvas.paste(Image.fromarray(sheet), (0, line_h * len(lines) + 6))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((4, 3 + i * line_h), line, fill=(235, 235, 235), font=font)
    return np.asarray(canvas)


def contact_sheet(frames: np.ndarray, *, columns: int | None = None, scale: int = 1, gap: int = 1) -> np.ndarray:
    """(T, H, W, 3) -> one image with the frames in a grid (grey gaps)."""
    frames = upscale_nearest(check_frames(frames), scale)
    T, H, W, _ = frames.shape
    columns = columns or min(T, 8)
    rows = -(-T // columns)
    sheet = np.full((rows * (H + gap) + gap, columns * (W + gap) + gap, 3), 64, dtype=np.uint8)
    for i, f in enumerate(frames):
        r, c = divmod(i, columns)
        sheet[gap + r * (H + gap): gap + r * (H + gap) + H, gap + c * (W + gap): gap + c * (W + gap) + W] = f
    return sheet


def write_mp4(frames: np.ndarray, path: Path, fps: float = 8, min_side: int = 256) -> None:
    with Mp4Stream(path, fps=fps, min_side=min_side, atomic=False) as stream:
        stream.write(frames)


class Mp4Stream:
    """An .mp4 written frame by frame, for streaming generation: each frame is encoded as it
    arrives, into a temporary file beside `path` that close() renames onto it; discard() (or
    leaving a `with` block by an exception) removes it, so `path` never holds a partial video."""

    def __init__(self, path: str | Path, fps: float = 8, min_side: int = 256, *, atomic: bool = True):
        import av

        self.path, self.fps, self.min_side = Path(path), check_fps(fps), min_side
        self._atomic = atomic_path(self.path) if atomic else None
        self.target = self._atomic.__enter__() if atomic else self.path
        try:
            self.container = av.open(str(self.target), mode="w")
        except BaseException:
            self._leave(*sys.exc_info())
            raise
        self.stream = None
        self.frames = 0

    def _leave(self, *exc) -> None:
        if self._atomic is not None:
            atomic, self._atomic = self._atomic, None
            atomic.__exit__(*exc)

    def write(self, frames: np.ndarray) -> None:
        import av

        frames = check_frames(frames)
        frames = upscale_nearest(frames, _display_factor(frames, self.min_side))
        H, W = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2  # yuv420p needs even sides
        if self.stream is None:
            self.stream = self.container.add_stream("libx264", rate=_rate(self.fps))
            self.stream.width, self.stream.height, self.stream.pix_fmt = W, H, "yuv420p"
            self.stream.options = {"crf": "12", "preset": "medium"}
        for f in frames[:, :H, :W]:
            for packet in self.stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                self.container.mux(packet)
            self.frames += 1

    def close(self) -> None:
        try:
            if self.stream is not None:
                for packet in self.stream.encode():
                    self.container.mux(packet)
            self.container.close()
        except BaseException:
            self.discard()
            raise
        self._leave(None, None, None)

    def discard(self) -> None:
        """Stop without keeping anything at `path` (the temporary file is removed)."""
        with contextlib.suppress(Exception):
            self.container.close()
        self._leave(RuntimeError, RuntimeError("discarded"), None)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            self.close()
        else:
            self.discard()


def write_gif(frames: np.ndarray, path: Path, fps: float = 8, min_side: int = 128) -> None:
    frames = upscale_nearest(frames, _display_factor(frames, min_side))
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0,
                   optimize=False)


def export_to_video(video, path: str | Path, fps: float = 8, *, columns: int | None = None, caption: str | None = None,
                    overwrite: bool = True) -> Path:
    """Write a clip; the extension picks the format. Small clips are upscaled with nearest
    neighbour in .mp4/.gif/.png so they can be seen; .npy keeps the exact frames. A .png contact
    sheet carries `caption` (e.g. the prompt) above it. The file is written under a temporary
    name and renamed, so `path` holds either the whole clip or what it held before."""
    path = Path(path)
    fps = check_fps(fps)
    with contextlib.suppress(OSError):  # a parent that cannot be made is named by check_output
        path.parent.mkdir(parents=True, exist_ok=True)
    check_output(path, overwrite=overwrite)
    frames = as_frames(video)
    ext = path.suffix.lower()
    with atomic_path(path) as tmp:
        if ext == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, frames)
        elif ext == ".png":
            sheet = contact_sheet(frames, columns=columns, scale=_display_factor(frames, 64))
            Image.fromarray(caption_above(sheet, caption) if caption else sheet).save(tmp, format="PNG")
        elif ext == ".gif":
            write_gif(frames, tmp, fps)
        else:
            write_mp4(frames, tmp, fps)
    return path


def resize_frames(frames: np.ndarray, side: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, side, side, 3): area-averaged when shrinking (undoing the nearest-neighbour
    upscaling framecast's writers apply exactly), bilinear when growing."""
    frames = check_frames(frames)
    if frames.shape[1:3] == (side, side):
        return frames
    kind = Image.BOX if min(frames.shape[1:3]) >= side else Image.BILINEAR
    return np.stack([np.asarray(Image.fromarray(f).resize((side, side), kind)) for f in frames])


# --- reading --------------------------------------------------------------------------------
def _read_container(path: Path) -> np.ndarray:
    import av

    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, IndexError, ValueError, OSError) as e:
        raise ValueError(f"cannot read video '{path}': {e.__class__.__name__}; is it a whole, playable video file?") from None
    if not frames:
        raise ValueError(f"video '{path}' has no frames")
    return np.stack(frames)


def video_fps(path: str | Path) -> float | None:
    """Frames per second a video file declares (None for .npy, frame folders, or unknown)."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() not in (*VIDEO_EXTENSIONS, ".gif"):
        return None
    if path.suffix.lower() == ".gif":
        try:
            with Image.open(path) as im:
                ms = im.info.get("duration")
            return 1000.0 / ms if ms else None
        except (OSError, ValueError):
            return None
    import av

    try:
        with av.open(str(path)) as container:
            rate = container.streams.video[0].average_rate
            return float(rate) if rate else None
    except (av.error.FFmpegError, IndexError, ValueError, OSError):
        return None


def read_image(path: str | Path) -> np.ndarray:
    """One image -> (H, W, 3) uint8."""
    if not str(path).strip():
        raise ValueError("the image path is empty; give an image file")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image '{path}' does not exist")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read image '{path}': {e}") from None


def read_video(path: str | Path) -> np.ndarray:
    """A video file, .gif, .npy or folder of frames -> (T, H, W, 3) uint8."""
    if not str(path).strip():
        raise ValueError("the video path is empty; give a video file, a .gif, a .npy or a folder of frames")
    path = Path(path)
    if not path.exists():
        raise ValueError(f"video '{path}' does not exist")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ValueError(f"folder '{path}' holds no frames ({', '.join(IMAGE_EXTENSIONS)})")
        frames = [read_image(f) for f in files]
        if len({f.shape for f in frames}) > 1:
            raise ValueError(f"the frames in '{path}' do not all have the same size")
        return np.stack(frames)
    ext = path.suffix.lower()
    if path.stat().st_size == 0:
        raise ValueError(f"video '{path}' is empty (0 bytes)")
    if ext == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise ValueError(f"cannot read '{path}' as a .npy array: {e}") from None
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8 or arr.shape[0] == 0:
            raise ValueError(f"'{path}' must hold (T, H, W, 3) uint8 frames, got {arr.shape} {arr.dtype}")
        return arr
    if ext == ".gif":
        try:
            with Image.open(path) as im:
                frames = []
                for i in range(getattr(im, "n_frames", 1)):
                    im.seek(i)
                    frames.append(np.asarray(im.convert("RGB")))
        except (OSError, ValueError, EOFError) as e:
            raise ValueError(f"cannot read GIF '{path}': {e}") from None
        return np.stack(frames)
    if ext in VIDEO_EXTENSIONS:
        return _read_container(path)
    raise ValueError(f"cannot read '{path.name}': framecast reads {', '.join(READ_EXTENSIONS)} and folders of frames")
