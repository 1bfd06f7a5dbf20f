"""Tensor conventions and video files.

In memory a clip is a float tensor (B, T, C, H, W) in [-1, 1]. On disk and for judging it
is (T, H, W, 3) uint8. Writers: .mp4 (H.264 via PyAV), .gif, .png (contact sheet), .npy
(lossless). Readers: .mp4/.webm/.mov/.mkv/.avi, .gif, .npy and folders of frames.
"""

from __future__ import annotations

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


# --- writing --------------------------------------------------------------------------------
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


def write_mp4(frames: np.ndarray, path: Path, fps: int = 8, min_side: int = 256) -> None:
    import av

    frames = upscale_nearest(frames, _display_factor(frames, min_side))
    H, W = frames.shape[1:3]
    frames = frames[:, : H - H % 2, : W - W % 2]  # yuv420p needs even sides
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "medium"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


class Mp4Stream:
    """An .mp4 written frame by frame, for streaming generation: each frame is encoded as it arrives."""

    def __init__(self, path: str | Path, fps: int = 8, min_side: int = 256):
        import av

        self.path, self.fps, self.min_side = Path(path), fps, min_side
        self.container = av.open(str(self.path), mode="w")
        self.stream = None
        self.frames = 0

    def write(self, frames: np.ndarray) -> None:
        import av

        frames = check_frames(frames)
        frames = upscale_nearest(frames, _display_factor(frames, self.min_side))
        H, W = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2
        if self.stream is None:
            self.stream = self.container.add_stream("libx264", rate=self.fps)
            self.stream.width, self.stream.height, self.stream.pix_fmt = W, H, "yuv420p"
            self.stream.options = {"crf": "12", "preset": "medium"}
        for f in frames[:, :H, :W]:
            for packet in self.stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                self.container.mux(packet)
            self.frames += 1

    def close(self) -> None:
        if self.stream is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_gif(frames: np.ndarray, path: Path, fps: int = 8, min_side: int = 128) -> None:
    frames = upscale_nearest(frames, _display_factor(frames, min_side))
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0, optimize=False)


def export_to_video(video, path: str | Path, fps: int = 8, *, columns: int | None = None) -> Path:
    """Write a clip; the extension picks the format. Small clips are upscaled with nearest
    neighbour in .mp4/.gif/.png so they can be seen; .npy keeps the exact frames."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in WRITE_EXTENSIONS:
        raise ValueError(f"cannot write '{path.name}': the output must end in {', '.join(WRITE_EXTENSIONS)}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    frames = as_frames(video)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".npy":
        np.save(path, frames)
    elif ext == ".png":
        sheet = contact_sheet(frames, columns=columns, scale=_display_factor(frames, 64))
        Image.fromarray(sheet).save(path)
    elif ext == ".gif":
        write_gif(frames, path, fps)
    else:
        write_mp4(frames, path, fps)
    return path


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
