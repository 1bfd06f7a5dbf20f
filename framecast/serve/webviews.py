"""The page's Lens and Arena tabs: a lens run's pictures, and the committed arena report."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

ARENA_DIR = Path(__file__).resolve().parents[2] / "docs" / "arena"  # the repository's committed report


def lens_pictures(server, model: str, prompt: str, seed: int, steps) -> list[tuple[str, str]]:
    """Run the lens (framecast.eval.lens) and return its pictures with captions: the predicted
    clean clip at every step, every layer's read-out, the clip, and the noise-level matrix."""
    from PIL import Image

    from framecast.eval.lens import ar_lens, diffusion_lens, write_lens
    from framecast.sampling.noise_matrix import matrix_image

    pipe = server.caches[0].get(model)
    kw = {"num_inference_steps": int(steps)} if steps else {}
    out = Path(tempfile.mkdtemp(prefix="framecast-lens-"))
    with server.compute:  # one computation per worker: the lens waits its turn like a job
        if pipe.model.family == "autoregressive":
            result = ar_lens(pipe, prompt, seed=int(seed))
        else:
            result = diffusion_lens(pipe, prompt, seed=int(seed), **kw)
        matrix_png = None
        if pipe.model.family == "hybrid":
            matrix_png = out / "matrix.png"
            Image.fromarray(matrix_image(pipe.noise_matrix(prompt, **kw), cell=8, cell_width=32)).save(matrix_png)
    write_lens(result, out, f"{model}: {prompt}", matrix_png)
    captions = {"steps.png": "predicted clean clip at every step (rows: steps, columns: frames)",
                "layers.png": f"every layer's read-out at step {result.get('layer_step', '')} (rows: layers)",
                "final.png": "the generated clip", "matrix.png": "the run's noise-level matrix (white: noise, black: clean)"}
    return [(str(out / name), caption) for name, caption in captions.items() if (out / name).is_file()]


def _f(x, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def arena_tables(folder: Path = ARENA_DIR) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The arena report's tables by title: (headers, rows). Empty when no report is committed."""
    path = folder / "report.json"
    if not path.is_file():
        return {}
    results = json.loads(path.read_text())["results"]
    point = ["model", "setting", "clips", "scene acc.", "object acc.", "passes / clip", "s / clip"]

    def row(r, p):
        return [r["model"], p["label"], p["clips"], _f(p["scene_accuracy"]), _f(p["object_accuracy"]), _f(p.get("forward_passes"), 0),
                _f(p["seconds_per_clip"])]

    return {
        "Models at their defaults": (["model", "family", "params (M)", "scene acc.", "object acc.", "s / clip", "peak RSS MB"],
                                     [[r["model"], r["family"], _f(r["params"] / 1e6, 1), _f(r["main"]["scene_accuracy"]),
                                       _f(r["main"]["object_accuracy"]), _f(r["main"]["seconds_per_clip"]),
                                       _f(r.get("peak_rss_main_mb"), 0)] for r in results]),
        "Quality against time": (point, [row(r, p) for r in results for p in r.get("sweep", [])]),
        "Drift against clip length": (["model", "frames", "right colour and shape (last 16)", "presence (last 16)", "s / clip"],
                                      [[r["model"], d["frames"], _f(d["last16_present_colour_shape"]), _f(d["last16_presence"]),
                                        _f(d["seconds_per_clip"])] for r in results for d in r.get("drift", [])]),
        "Best of N": (point, [row(r, p) for r in results for p in r.get("best_of", [])]),
    }


def arena_plots(folder: Path = ARENA_DIR) -> list[tuple[str, str]]:
    return [(str(p), p.stem.replace("_", " ")) for p in sorted(folder.glob("*.png"))]
