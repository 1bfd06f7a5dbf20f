"""Files: every writer, every reader, clear errors for bad files."""

import numpy as np
import pytest
import torch
from PIL import Image

from framecast.data.shapes import render_clip
from framecast.video import as_frames, export_to_video, from_uint8, read_video, to_uint8


@pytest.fixture
def clip():
    return render_clip(3).video  # (16, 32, 32, 3)


def test_tensor_conventions_round_trip(clip):
    x = from_uint8(clip)
    assert x.shape == (16, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(to_uint8(x), clip)
    assert np.array_equal(to_uint8(x[None]), clip)


def test_npy_is_lossless(clip, tmp_path):
    export_to_video(clip, tmp_path / "c.npy")
    assert np.array_equal(read_video(tmp_path / "c.npy"), clip)


def test_gif_mp4_png(clip, tmp_path):
    export_to_video(clip, tmp_path / "c.gif", fps=8)
    gif = read_video(tmp_path / "c.gif")
    assert gif.shape[0] == 16 and gif.shape[1] >= 128  # upscaled with nearest neighbour
    assert np.array_equal(gif[:, ::4, ::4], clip)  # palette colours are exact
    export_to_video(torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 127.5 - 1, tmp_path / "c.mp4")
    mp4 = read_video(tmp_path / "c.mp4")
    assert mp4.shape[0] == 16 and mp4.shape[1] == 256
    small = mp4[:, 4::8, 4::8].astype(int)  # centres of the upscaled pixels
    assert np.abs(small - clip.astype(int)).mean() < 8  # H.264 at high quality
    export_to_video(clip, tmp_path / "c.png", columns=8)
    sheet = np.asarray(Image.open(tmp_path / "c.png"))
    assert sheet.shape[1] > sheet.shape[0] > 64


def test_folder_of_frames(clip, tmp_path):
    for i, f in enumerate(clip[:5]):
        Image.fromarray(f).save(tmp_path / f"{i:03d}.png")
    assert np.array_equal(read_video(tmp_path), clip[:5])


def test_bad_files_give_clear_errors(tmp_path, clip):
    with pytest.raises(ValueError, match="does not exist"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_video(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video" * 100)
    with pytest.raises(ValueError, match="cannot read video"):
        read_video(tmp_path / "junk.mp4")
    (tmp_path / "junk.gif").write_bytes(b"GIF89a garbage")
    with pytest.raises(ValueError, match="cannot read GIF"):
        read_video(tmp_path / "junk.gif")
    with pytest.raises(ValueError, match="must end in"):
        export_to_video(clip, tmp_path / "c.avi")
    with pytest.raises(ValueError, match="framecast reads"):
        (tmp_path / "c.txt").write_text("x")
        read_video(tmp_path / "c.txt")
    with pytest.raises(ValueError, match="holds no frames"):
        (tmp_path / "emptydir").mkdir()
        read_video(tmp_path / "emptydir")
    with pytest.raises(ValueError, match="uint8"):
        as_frames(np.zeros((2, 4, 4, 3), dtype=np.float32))
