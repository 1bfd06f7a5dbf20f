"""Write tests/data/bad_files/: small damaged, mislabelled and hostile files that every entry point
of framecast must refuse with one sentence naming the file (tests/test_bad_files.py).

    python tests/data/make_bad_files.py      # rewrites tests/data/bad_files/

The pickles here are real: unpickling one writes the file named by $FRAMECAST_BAD_FILES_MARKER
(default ./framecast-pickle-ran). The tests assert that framecast never does, and check, in a
separate process, that plain pickle.load would."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "bad_files"
MARKER_CODE = ("import os, pathlib; pathlib.Path(os.environ.get('FRAMECAST_BAD_FILES_MARKER', 'framecast-pickle-ran'))"
               ".write_text('a pickle in the bad-files corpus ran its code')")

# A diffusion model in pixels small enough to commit many times (about 3k values).
TINY_CONFIG = {
    "framecast_format": 1,
    "family": "diffusion",
    "generator": {"prediction": "x0", "frames": 2, "size": 8, "channels": 3, "steps": 2, "guidance": 1.0, "sampler": "euler", "codec": None,
                  "latent_scale": 1.0},
    "backbone": {"channels": 3, "patch_size": 4, "patch_frames": 1, "width": 8, "depth": 1, "heads": 2, "mlp_ratio": 2.0,
                 "context_width": 8, "out_channels": 0},
    "text_kind": "word",
    "text": {"vocabulary": ["a", "ball", "red"], "width": 8, "depth": 1, "heads": 2, "max_words": 4},
}


class RunsCode:
    """Unpickling this runs MARKER_CODE: what a weights file that is a pickle can do."""

    def __reduce__(self):
        return exec, (MARKER_CODE,)


def _tiny_weights(folder: Path, *, nan: bool = False) -> None:
    import torch
    from safetensors.torch import save_file

    from framecast.generators import ModelSpec, build_generator

    torch.manual_seed(0)
    spec = {k: TINY_CONFIG[k] for k in ("family", "generator", "backbone", "text_kind", "text")}
    state = {k: v.contiguous() for k, v in build_generator(ModelSpec(**spec)).state_dict().items()}
    if nan:
        state["backbone.head.weight"] = torch.full_like(state["backbone.head.weight"], float("nan"))
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt", "framecast_format": "1"})


def _model(name: str, config: dict | bytes | None = None, weights: str | bytes | None = "ok") -> Path:
    folder = OUT / name
    folder.mkdir(parents=True)
    config = TINY_CONFIG if config is None else config
    (folder / "config.json").write_bytes(config if isinstance(config, bytes) else (json.dumps(config, indent=1) + "\n").encode())
    if weights == "ok":
        _tiny_weights(folder)
    elif weights == "nan":
        _tiny_weights(folder, nan=True)
    elif isinstance(weights, bytes):
        (folder / "model.safetensors").write_bytes(weights)
    return folder


def _with(path: tuple[str, ...], value) -> dict:
    config = json.loads(json.dumps(TINY_CONFIG))
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return config


def _mp4(path: Path, codec: str = "mpeg4") -> None:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for t in range(8):
            frame = np.zeros((32, 32, 3), np.uint8)
            frame[8:24, 2 + 2 * t : 10 + 2 * t] = (255, 128, 0)  # an orange square moving right
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _audio_only_mp4(path: Path) -> None:
    """An .mp4 whose one stream is AAC audio: a video extension, no video codec at all."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=8000)
        stream.layout = "mono"
        samples = (np.sin(np.arange(4096) * 0.1) * 0.3).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def _png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _torch_zip_pickle() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"weight": RunsCode()}, buf)
    return buf.getvalue()


def _videos() -> None:
    videos = OUT / "videos"
    videos.mkdir(parents=True)
    (videos / "zero_bytes.mp4").write_bytes(b"")
    _mp4(OUT / "whole.mp4")
    whole = (OUT / "whole.mp4").read_bytes()
    (videos / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    (videos / "png_named.mp4").write_bytes(_png_bytes())
    _audio_only_mp4(videos / "audio_only.mp4")
    (videos / "text_named.webm").write_text("this is not a video\n")
    captions = OUT / "captions_latin1"  # a whole clip whose sidecar caption is Latin-1, not UTF-8
    captions.mkdir()
    shutil.move(str(OUT / "whole.mp4"), captions / "clip.mp4")
    (captions / "clip.txt").write_bytes("une balle orangée glisse à droite\n".encode("latin-1"))


def _models() -> None:
    _model("model_ok")
    _model("model_pickle", weights=pickle.dumps({"backbone.head.weight": RunsCode()}, protocol=2))
    _model("model_torch_zip", weights=_torch_zip_pickle())
    _model("model_zero_bytes", weights=b"")
    ok = (OUT / "model_ok" / "model.safetensors").read_bytes()
    _model("model_truncated", weights=ok[: len(ok) // 2])
    _model("model_nan", weights="nan")
    _model("model_wrong_shape", config=_with(("backbone", "mlp_ratio"), 4.0))
    _model("config_not_utf8", config=json.dumps(TINY_CONFIG).replace('"ball"', '"bäll"').encode("latin-1"), weights=None)
    _model("config_invalid_json", config=json.dumps(TINY_CONFIG)[:-20].encode(), weights=None)
    _model("config_heads_zero", config=_with(("backbone", "heads"), 0), weights=None)
    _model("config_width_null", config=_with(("backbone", "width"), None), weights=None)
    _model("config_generator_list", config=_with(("generator",), [1, 2]), weights=None)
    _model("config_unknown_key", config=_with(("backbone", "widht"), 16), weights=None)
    _model("config_huge", config=_with(("backbone",), {**TINY_CONFIG["backbone"], "width": 65536, "depth": 10000}), weights=None)


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    _videos()
    _models()
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {sum(1 for f in OUT.rglob('*') if f.is_file())} files ({total / 1024:.0f} KiB) to {OUT}")


if __name__ == "__main__":
    main()
