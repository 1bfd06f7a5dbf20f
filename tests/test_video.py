"""Files: every writer, every reader, clear errors for bad files."""

from pathlib import Path

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
    with pytest.raises(ValueError, match="video path is empty"):  # not the working directory as a folder of frames
        read_video("")
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


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), 0, -8, "fast"])
def test_fps_must_be_a_finite_positive_number(clip, tmp_path, fps):
    with pytest.raises(ValueError, match="fps must be"):
        export_to_video(clip, tmp_path / "c.mp4", fps=fps)
    assert list(tmp_path.iterdir()) == []


def test_outputs_are_checked_and_written_whole(clip, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        export_to_video(clip, tmp_path / "afile" / "c.mp4")
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        export_to_video(clip, tmp_path / "dir.mp4")
    (tmp_path / "c.npy").write_bytes(b"old")
    with pytest.raises(ValueError, match="--overwrite"):
        export_to_video(clip, tmp_path / "c.npy", overwrite=False)
    assert (tmp_path / "c.npy").read_bytes() == b"old"
    with pytest.raises(ValueError, match="expected frames"):  # bad frames: the old file is kept, no temporary left
        export_to_video(np.zeros((0, 4, 4, 3), np.uint8), tmp_path / "c.npy")
    assert (tmp_path / "c.npy").read_bytes() == b"old"
    export_to_video(clip, tmp_path / "c.npy", fps=29.97)
    assert np.array_equal(np.load(tmp_path / "c.npy"), clip)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "c.npy", "dir.mp4"]


def test_a_failed_or_interrupted_write_leaves_nothing(clip, tmp_path, monkeypatch):
    import framecast.video as video

    def interrupted(frames, path, fps):
        Path(path).write_bytes(b"half a video")
        raise KeyboardInterrupt

    monkeypatch.setattr(video, "write_mp4", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_to_video(clip, tmp_path / "c.mp4")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), video.Mp4Stream(tmp_path / "s.mp4") as stream:
        stream.write(clip[:2])
        raise RuntimeError("the generator failed")
    assert list(tmp_path.iterdir()) == []


def test_contact_sheet_carries_the_caption(clip, tmp_path):
    export_to_video(clip, tmp_path / "plain.png", columns=8)
    export_to_video(clip, tmp_path / "captioned.png", columns=8, caption="a big red circle moves right \U0001F600 " * 20)
    plain, captioned = (np.asarray(Image.open(tmp_path / n)) for n in ("plain.png", "captioned.png"))
    assert captioned.shape[1] == plain.shape[1] and captioned.shape[0] > plain.shape[0]
    assert np.array_equal(captioned[-plain.shape[0]:], plain)


def test_resize_undoes_the_writers_upscaling(clip, tmp_path):
    from framecast.video import resize_frames

    export_to_video(clip, tmp_path / "c.mp4")
    back = resize_frames(read_video(tmp_path / "c.mp4"), 32)
    assert back.shape == clip.shape and np.abs(back.astype(int) - clip.astype(int)).mean() < 8
