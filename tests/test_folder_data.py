"""Training on a folder of real video files with captions; broken files are counted and skipped."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from framecast.cli import app
from framecast.data.folder import StepBatchSampler, VideoFolderDataset, collate_clips, scan, summary
from framecast.data.shapes import render_clip
from framecast.video import export_to_video


def _make_folder(root):
    root.mkdir()
    for i in range(4):
        clip = render_clip(i, frames=12, size=64).video
        export_to_video(clip, root / f"clip{i}.mp4")  # upscaled to 256 px by the writer
        (root / f"clip{i}.txt").write_text(render_clip(i).caption)
    frames_dir = root / "frames_clip"
    frames_dir.mkdir()
    from PIL import Image

    for t, f in enumerate(render_clip(9, frames=10).video):
        Image.fromarray(f).save(frames_dir / f"{t:03d}.png")
    (root / "captions.jsonl").write_text(json.dumps({"file": "frames_clip", "caption": "a small red square moves up"}) + "\n")
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    (root / "empty.webm").write_bytes(b"")
    return root


def test_scan_counts_and_skips(tmp_path):
    root = _make_folder(tmp_path / "videos")
    report = scan(root, frames=8)
    assert len(report.entries) == 5 and len(report.skipped) == 2 and report.captioned == 5
    assert report.resolutions == {"256x256": 4, "32x32": 1}
    assert report.layout == "captions from sidecar .txt (4 clips), captions.jsonl (1 clip), none for 2 clips"
    assert dict(report.skipped)[str(root / "empty.webm")] == "video is empty (0 bytes)"
    r = CliRunner().invoke(app, ["data", "scan", str(root), "--frames", "8"])
    assert r.exit_code == 0 and "5 usable clips, 2 skipped" in r.output and "skipped corrupt.mp4: cannot read video" in r.output
    r = CliRunner().invoke(app, ["data", "scan", str(root), "--frames", "11"])  # the 10-frame folder is too short now
    assert "4 usable clips, 3 skipped" in r.output and "skipped frames_clip: 10 frames; a training window needs 11" in r.output


def test_dataset_resizes_crops_and_skips(tmp_path):
    root = _make_folder(tmp_path / "videos")
    ds = VideoFolderDataset(root, size=32, frames=8, stride=1)
    assert len(ds) == 5 and [Path(p).name for p, _ in ds.report.skipped] == ["corrupt.mp4", "empty.webm"]
    assert "cannot read video" in ds.report.skipped[0][1]
    items = [ds[(i, 0, i)] for i in range(len(ds))]
    assert all(it["video"].shape == (8, 3, 32, 32) for it in items)
    batch = collate_clips(items)
    assert batch["video"].shape[0] == 5 and len(batch["caption"]) == 5
    # the upscaled mp4 comes back close to the original clip after resizing
    clip0 = next(it for it in items if it["caption"] == render_clip(0).caption)
    assert clip0["video"].abs().max() > 0.5
    s = StepBatchSampler(len(ds), 4, seed=0, rank=1, world=2)
    assert [k[2] for k in s.indices(3)] == [1, 3]


def _clips(root, names):
    root.mkdir()
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        export_to_video(render_clip(i, frames=4).video, root / name)
    return root


@pytest.mark.parametrize("layout", ["txt", "mp4.txt", "jsonl", "jsonl-video-text", "csv", "csv-video-text", "csv-bom"])
def test_every_caption_layout(tmp_path, layout):
    root = _clips(tmp_path / "v", ["a.mp4", "sub/b.mp4"])
    caps = {"a.mp4": "an orange ball rolls left", "sub/b.mp4": "a purple ball falls down"}
    if layout in ("txt", "mp4.txt"):
        for name, text in caps.items():
            side = (root / name).with_suffix(".txt") if layout == "txt" else root / f"{name}.txt"
            side.write_text(text)
    elif layout.startswith("jsonl"):
        keys = ("video", "text") if layout.endswith("video-text") else ("file", "caption")
        (root / "captions.jsonl").write_text("".join(json.dumps({keys[0]: n, keys[1]: t}) + "\n" for n, t in caps.items()))
    else:
        head = "video,text" if layout.endswith("video-text") else "file,caption"
        text = head + "\n" + "".join(f'./{n},"{t}"\n' for n, t in caps.items())
        (root / "captions.csv").write_bytes((b"\xef\xbb\xbf" if layout == "csv-bom" else b"") + text.encode())
    report = scan(root)
    assert {e.path.relative_to(root).as_posix(): e.caption for e in report.entries} == caps
    source = {"txt": "sidecar .txt", "mp4.txt": "sidecar .txt"}.get(layout, "captions.csv" if "csv" in layout else "captions.jsonl")
    assert report.layout == f"captions from {source} (2 clips)"


def test_caption_files_that_cannot_be_read_are_named(tmp_path):
    root = _clips(tmp_path / "v", ["a.mp4"])
    (root / "captions.csv").write_text("path,description\na.mp4,a ball\n")
    with pytest.raises(ValueError, match=r"captions.csv has the header 'path,description'; framecast reads a header of file,caption or video,text"):
        scan(root)
    (root / "captions.csv").unlink()
    (root / "a.txt").write_bytes("une balle orange roule \u00e0 gauche".encode("latin-1"))
    with pytest.raises(ValueError, match=r"caption file '.*a.txt' is not UTF-8 text"):
        scan(root)
    (root / "a.txt").unlink()
    (root / "captions.jsonl").write_text('{"file": "a.mp4"}\n')
    with pytest.raises(ValueError, match=r"captions.jsonl, line 1, is not a caption record"):
        scan(root)
    r = CliRunner().invoke(app, ["data", "scan", str(root)])
    assert r.exit_code == 2 and "line 1" in r.output


def test_caption_rows_naming_no_clip_are_reported(tmp_path):
    root = _clips(tmp_path / "v", ["a.mp4"])
    (root / "captions.csv").write_text("file,caption\na.mp4,a ball\nmissing.mp4,a cat\n")
    report = scan(root)
    assert report.unmatched == ["missing.mp4"]
    assert any("name no clip in the folder: missing.mp4" in line for line in summary(report))


def test_train_on_the_folder_end_to_end(tmp_path):
    root = _make_folder(tmp_path / "videos")
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "shapes-diffusion-tiny", "--set", "data.source=folder", "--set", f"data.path={root}",
                                 "--set", "steps=3", "--set", "batch_size=4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "model" / "config.json").read_text())
    assert "square" in cfg["text"]["vocabulary"] and len(open(out / "log.jsonl").readlines()) == 3
    r = CliRunner().invoke(app, ["generate", "a small red square moves up", "--model", str(out / "model"), "--steps", "2",
                                 "--output", str(tmp_path / "x.npy")])
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "x.npy").shape == (4, 32, 32, 3)


def test_sampling_at_a_target_frame_rate(tmp_path):
    from framecast.video import video_fps

    root = tmp_path / "v"
    root.mkdir()
    seed = next(s for s in range(500) if len(render_clip(s).scene.objects) == 1
                and (abs(np.diff(render_clip(s).states[0][:, :2], axis=0)).sum(1) == 1).all()
                and len({tuple(np.sign(d)) for d in np.diff(render_clip(s).states[0][:, :2], axis=0)}) == 1)  # no bounce
    clip = render_clip(seed, frames=16).video
    export_to_video(clip, root / "c.mp4", fps=8)
    assert video_fps(root / "c.mp4") == 8
    (root / "c.txt").write_text(render_clip(seed).caption)
    half = VideoFolderDataset(root, size=32, frames=4, fps=4)[(0, 0, 0)]["video"]
    full = VideoFolderDataset(root, size=32, frames=7, fps=8)[(0, 0, 0)]["video"]
    # at 4 fps every second frame of the 8 fps file: the object moves 2 px per sampled frame
    import torch

    def step(v):  # mean centroid displacement between sampled frames, in pixels
        on = (v.max(1).values > 0).float()  # (T, H, W)
        g = torch.arange(32.0)
        c = torch.stack([(on.sum(1) * g).sum(1), (on.sum(2) * g).sum(1)], 1) / on.sum((1, 2))[:, None]
        return c.diff(dim=0).norm(dim=1).mean()

    assert abs(step(half) - 2.0) < 0.5 and abs(step(full) - 1.0) < 0.5
