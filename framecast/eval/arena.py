"""The arena: the families side by side on the same prompts and seeds (`framecast arena`).

For each model it measures, on clips of the `train` split (clip i with seed + i):
- the main evaluation at the model's defaults: the Shapes judge (scene and object accuracy), FVD
  with the shipped Shapes classifier (when there is one), temporal coherence (flicker, warping
  error, motion smoothness, dynamic degree), forward passes a clip, seconds a clip, frames a
  second, resident memory (each model is measured in its own process, so the peaks are its own);
- quality against time: the same prompts at other step counts, schedules or decoding orders;
- drift against clip length: the judge on the last 16 frames of longer clips;
- test-time scaling: best-of-N for N = 1, 2, 4, (8) with a verifier.

It writes report.md, index.html, report.json and the plots into one folder. Each model's
measurements are kept in measured/ as soon as it finishes, so a rerun after an interruption
measures only the models still missing (a changed plan or retrained weights are measured again).
"""

from __future__ import annotations

import html
import json
import os
import re
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from framecast.eval.evaluate import eval_prompts, evaluate, sheet_of_clips
from framecast.eval.shapes import judge_clip, summarize
from framecast.precision import resolve_precision


@dataclass
class ArenaPlan:
    num: int = 100  # clips of the main evaluation
    sweep_num: int = 30  # clips per point of the quality-time curve
    steps: tuple[int, ...] = (5, 10, 25, 50)  # extra step counts (diffusion and hybrid)
    drift_num: int = 10
    drift_frames: tuple[int, ...] = (16, 64, 128)
    best_of: tuple[int, ...] = (1, 2, 4, 8)
    best_of_num: int = 30
    verifier: str = "classifier"  # falls back to the judge when no classifier is shipped
    seed: int = 0


QUICK = ArenaPlan(num=20, sweep_num=8, steps=(5, 10), drift_num=3, drift_frames=(16, 48), best_of=(1, 2, 4), best_of_num=8)
FULL = ArenaPlan()


@dataclass
class Point:
    label: str
    settings: dict
    clips: int
    scene_accuracy: float
    object_accuracy: float
    seconds_per_clip: float
    forward_passes: float
    extra: dict = field(default_factory=dict)


class PassCounter:
    """Counts the backbone's forward passes, and the tokens pushed through it, while active."""

    def __init__(self, model):
        self.model, self.calls, self.tokens = model, 0, 0

    def __enter__(self):
        # the first block sees every pass, whether the model calls the backbone on clips or on token ids
        self.handle = self.model.backbone.blocks[0].register_forward_pre_hook(self._hook)
        return self

    def _hook(self, _module, args):
        self.calls += 1
        self.tokens += args[0].shape[1]  # (B, N, D): tokens in this pass

    def __exit__(self, *exc):
        self.handle.remove()


def memory_mb(device="cpu", peak: bool = False) -> float:
    """Memory in use on `device`: CUDA's allocator (current or peak) on a GPU; on a CPU the
    process's resident set (current from /proc, peak from getrusage)."""
    if torch.device(device).type == "cuda":
        return (torch.cuda.max_memory_allocated(device) if peak else torch.cuda.memory_allocated(device)) / 2**20
    if peak:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _point(pipe, label: str, prompts: list[str], seed: int, batch_size: int = 1, **kw) -> tuple[Point, list[np.ndarray]]:
    """One batch a clip, so forward passes and seconds are those of making one clip. A token model
    that hands this order to a `decode_with` sibling has the sibling's passes counted, and the point says so."""
    decoder = pipe.decoded_by(kw.get("decode")) or pipe
    with PassCounter(decoder.model) as count:
        s = evaluate(pipe, prompts, seed=seed, batch_size=batch_size, progress=False, **kw)
    p = Point(label=label, settings={k: v for k, v in kw.items() if v is not None}, clips=len(prompts),
              scene_accuracy=s["scene_accuracy"], object_accuracy=s["object_accuracy"], seconds_per_clip=s["seconds_per_clip"],
              forward_passes=count.calls * batch_size / len(prompts))
    if decoder is not pipe:
        p.extra["decoded_by"] = decoder.name
    return p, s["frames"]


def sweep_settings(pipe, plan: ArenaPlan) -> list[tuple[str, dict]]:
    """The other ways to run this model that trade time for quality."""
    family, c = pipe.model.family, pipe.model.config
    if family == "autoregressive":
        if c.order == "set":  # passes a token-frame trade time for quality; a set model also decodes raster and diagonal
            out = [(f"{k} passes a token-frame", {"num_inference_steps": k}) for k in (2, 4, 16) if k != c.set_steps]
            out += [("no Gibbs sweep", {"refine": 0})] if c.set_refine else []
            return out + [(f"decode {o}", {"decode": o}) for o in ("raster", "diagonal")]
        return [(f"decode {o}", {"decode": o}) for o in ("raster", "diagonal") if o != (c.decode or c.order)]
    out = [(f"{s} steps", {"num_inference_steps": s}) for s in plan.steps if s != c.steps]
    if family == "hybrid":
        out += [(f"schedule {s}", {"schedule": s}) for s in ("full", "pyramid", "autoregressive") if s != c.schedule]
    return out


def measure_model(name: str, plan: ArenaPlan, threads: int | None = None) -> dict:
    """Everything the arena reports about one model. Runs in its own process under run_arena."""
    from framecast.eval.metrics import coherence
    from framecast.pipeline import load, model_card

    if threads:
        torch.set_num_threads(threads)
    t_start = time.perf_counter()
    rss_start = memory_mb("cpu", peak=True)
    pipe = load(name, device="cpu")  # the report is of CPU seconds and resident memory
    card = model_card(pipe.path)
    rss_loaded = memory_mb("cpu", peak=True)
    prompts = eval_prompts("train", plan.num)
    main, frames = _point(pipe, "default", prompts, plan.seed)
    rss_main = memory_mb("cpu", peak=True)
    coh = [coherence(f) for f in frames]
    main.extra.update({k: float(np.mean([c[k] for c in coh])) for k in coh[0]})
    main.extra["frames_per_second"] = frames[0].shape[0] / main.seconds_per_clip
    try:
        from framecast.eval.fvd import shapes_fvd

        main.extra.update(shapes_fvd(frames, split="train", network="shapes"))
    except ValueError as e:  # no shipped classifier: say so in the report
        main.extra["fvd_note"] = str(e)
    sweep = [main]
    for label, kw in sweep_settings(pipe, plan):
        sweep.append(_point(pipe, label, prompts[: plan.sweep_num], plan.seed, **kw)[0])
    drift = []
    for T in plan.drift_frames:
        try:
            p, clips = _point(pipe, f"{T} frames", prompts[: plan.drift_num], plan.seed, num_frames=T)
        except ValueError as e:
            drift.append({"frames": T, "error": str(e)})
            continue
        last = [judge_clip(c[-16:], q) for c, q in zip(clips, prompts)]
        objs = [o for v in last for o in v.objects]
        drift.append({"frames": T, "seconds_per_clip": p.seconds_per_clip,
                      "last16_present_colour_shape": float(np.mean([o.present and o.colour_ok and o.shape_ok for o in objs])),
                      "last16_presence": float(np.mean([o.present for o in objs])),
                      "first16_scene_accuracy": summarize([judge_clip(c[:16], q) for c, q in zip(clips, prompts)]).scene_accuracy})
    verifier = plan.verifier
    if verifier == "classifier":
        from framecast.eval.classifier import DEFAULT_PATH

        verifier = "classifier" if DEFAULT_PATH.is_dir() else "judge"
    best = []
    for n in plan.best_of:
        p, _ = _point(pipe, f"best of {n}", prompts[: plan.best_of_num], plan.seed, best_of=n, verifier=verifier)
        p.extra["n"] = n
        best.append(p)
    return {
        "model": pipe.name, "family": pipe.model.family, "params": card["params"], "size_mb": card["size_mb"],
        "decode": (pipe.model.config.decode or pipe.model.config.order) if pipe.model.family == "autoregressive" else None,
        "rss_start_mb": rss_start, "rss_loaded_mb": rss_loaded, "peak_rss_main_mb": rss_main,
        "main": asdict(main), "sweep": [asdict(p) for p in sweep], "drift": drift, "best_of": [asdict(p) for p in best],
        "verifier": verifier, "sheet": sheet_of_clips(frames, n=4), "seconds": time.perf_counter() - t_start,
    }


def _in_own_process(name: str, plan: ArenaPlan, threads: int) -> dict:
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as ex:
        return ex.submit(measure_model, name, plan, threads).result()


def default_models() -> list[str]:
    """One bundled generator of each family, the first by name."""
    from framecast.generators.io import read_config
    from framecast.pipeline import GENERATOR_FAMILIES, bundled_models

    chosen: dict[str, str] = {}
    for name, path in bundled_models().items():
        family = read_config(path).get("family")
        if family in GENERATOR_FAMILIES:
            chosen.setdefault(family, name)
    return [chosen[f] for f in GENERATOR_FAMILIES if f in chosen]


def arena_folder(output: str | Path) -> Path:
    """Where the pictures, data and index.html go for --output: the folder itself, or for a .md
    report the folder of the same name beside it."""
    output = Path(output)
    return output.with_suffix("") if output.suffix == ".md" else output


def run_arena(models: list[str], out_dir: Path, plan: ArenaPlan = FULL, *, isolate: bool = True, command: str = "",
              progress=print) -> Path:
    """out_dir: a folder (report.md goes into it), or a .md path: the report goes there and the
    pictures, data and index.html into the folder of the same name beside it (docs/arena.md, docs/arena/)."""
    if not models:
        raise ValueError("no models to compare: give --models or install bundled ones")
    report_md = Path(out_dir) if Path(out_dir).suffix == ".md" else None
    out_dir = arena_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    results = []
    for name in models:
        r = _finished(out_dir, name, plan)
        if r is not None:
            progress(f"arena: {name} was measured by an earlier run with the same plan and weights: reusing it")
        else:
            progress(f"arena: measuring {name} ...")
            r = _in_own_process(name, plan, threads) if isolate else measure_model(name, plan)
            _keep(out_dir, name, plan, r)
            progress(f"arena: {name} done in {r['seconds']:.0f} s: scene accuracy {r['main']['scene_accuracy']:.2f}, "
                     f"{r['main']['seconds_per_clip']:.2f} s a clip")
        results.append(r)
    return write_report(results, out_dir, plan, command=command, report_md=report_md)


# --- an interrupted arena resumes: each model's measurements are kept as it finishes ------------
def _fingerprint(name: str) -> str:
    """The model's config and weights, hashed: a retrained model is measured again."""
    import hashlib

    from framecast.generators.io import CONFIG_NAME, WEIGHTS_NAME
    from framecast.pipeline import resolve_model

    path = resolve_model(name)
    h = hashlib.sha256()
    for f in (CONFIG_NAME, WEIGHTS_NAME):
        h.update((path / f).read_bytes())
    return h.hexdigest()


def _kept_path(out_dir: Path, name: str) -> Path:
    return out_dir / "measured" / (str(name).strip("/").replace("/", "_") + ".json")


def _keep(out_dir: Path, name: str, plan: ArenaPlan, result: dict) -> None:
    from framecast.generators.io import write_atomic

    path = _kept_path(out_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"plan": asdict(plan), "fingerprint": _fingerprint(name), "result": {**result, "sheet": result["sheet"].tolist()}}
    write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(data, default=float)))


def _finished(out_dir: Path, name: str, plan: ArenaPlan) -> dict | None:
    path = _kept_path(out_dir, name)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("plan") != json.loads(json.dumps(asdict(plan))) or data.get("fingerprint") != _fingerprint(name):
        return None
    r = data["result"]
    r["sheet"] = np.asarray(r["sheet"], dtype=np.uint8)
    return r


# --- the report ---------------------------------------------------------------------------------
FAMILY_COLOURS = {"diffusion": "tab:blue", "hybrid": "tab:green", "autoregressive": "tab:red"}


def _plots(results: list[dict], out_dir: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    files = {}

    def figure(name: str, draw) -> None:
        """One plot: `draw(ax)` for every model's lines and the labels, then legend and file."""
        fig, ax = plt.subplots(figsize=(6, 4))
        draw(ax)
        ax.set(ylim=(-0.02, 1.02))
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}.png", dpi=120)
        files[name] = f"{name}.png"
        plt.close(fig)

    def quality_vs_time(ax):
        for r in results:
            pts = sorted(r["sweep"], key=lambda p: p["seconds_per_clip"])
            ax.plot([p["seconds_per_clip"] for p in pts], [p["scene_accuracy"] for p in pts], "o-",
                    color=FAMILY_COLOURS.get(r["family"]), label=f"{r['model']} ({r['family']})")
            for p in pts:
                ax.annotate(p["label"], (p["seconds_per_clip"], p["scene_accuracy"]), fontsize=7, alpha=0.7)
        ax.set(xscale="log", xlabel="seconds a clip (CPU)", ylabel="scene accuracy", title="Quality against time")
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))  # 0.2, 0.5, 1, 2, 5 ...
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # the default 2x10^-1 labels overlap

    def drift(ax):
        for r in results:
            pts = [d for d in r["drift"] if "error" not in d]
            if pts:
                ax.plot([d["frames"] for d in pts], [d["last16_present_colour_shape"] for d in pts], "o-",
                        color=FAMILY_COLOURS.get(r["family"]), label=r["model"])
        ax.set(xlabel="clip length (frames)", ylabel="objects present, right colour and shape\nin the last 16 frames",
               title="Drift against clip length")

    def best_of_n(ax):
        for r in results:
            pts = r["best_of"]
            ax.plot([p["extra"]["n"] for p in pts], [p["scene_accuracy"] for p in pts], "o-", color=FAMILY_COLOURS.get(r["family"]),
                    label=f"{r['model']} ({r['verifier']} verifier)")
        ax.set(xscale="log", xlabel="candidates a clip (N, compute in units of one clip)", ylabel="scene accuracy",
               title="Test-time scaling: best of N")
        ns = [p["extra"]["n"] for p in results[0]["best_of"]]
        ax.set_xticks(ns, [str(n) for n in ns])

    figure("quality_vs_time", quality_vs_time)
    figure("drift", drift)
    figure("best_of_n", best_of_n)
    return files


def _f(x, digits=2) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def headline_table(results: list[dict]) -> list[str]:
    rows = ["| model | family | params | scene acc. | object acc. | FVD (floor) | flicker | warping err. | motion smooth. | "
            "dynamic deg. | passes / clip | s / clip | frames / s | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        m, e = r["main"], r["main"]["extra"]
        fvd = f"{e['fvd']:.1f} ({e['fvd_real_vs_real']:.1f})" if "fvd" in e else "–"
        family = f"{r['family']}, {r['decode']} order" if r.get("decode") else r["family"]  # a token model: which decoding order
        rows.append(f"| {r['model']} | {family} | {r['params'] / 1e6:.1f} M | {m['scene_accuracy']:.2f} | {m['object_accuracy']:.2f} | "
                    f"{fvd} | {_f(e['flicker'], 4)} | {_f(e['warping_error'], 4)} | {_f(e['motion_smoothness'], 3)} | "
                    f"{_f(e['dynamic_degree'])} | {m['forward_passes']:.0f} | {m['seconds_per_clip']:.2f} | "
                    f"{e['frames_per_second']:.1f} | {r['peak_rss_main_mb']:.0f} |")
    return rows


def write_report(results: list[dict], out_dir: Path, plan: ArenaPlan, *, command: str = "", report_md: Path | None = None) -> Path:
    """report_md: where the Markdown goes (default out_dir/report.md); everything else is written into out_dir."""
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(results, out_dir)
    for r in results:
        Image.fromarray(r["sheet"]).save(out_dir / f"clips-{r['model']}.png")
    md = ["# framecast arena", ""]
    if command:
        md += ["```bash", command, "```", ""]
    md += [f"Clips of the Shapes `train` split, clip i drawn with seed {plan.seed} + i, the same for every model; "
           f"{plan.num} clips for the main table, {plan.sweep_num} a point of the quality-time curve, {plan.best_of_num} for "
           f"best-of-N, {plan.drift_num} for drift. Times are wall-clock on the CPU it ran on ({torch.get_num_threads()} threads, "
           f"{resolve_precision('auto', 'cpu')}), one clip at a time. Peak RSS is the model's own process after its main evaluation.", ""]
    md += headline_table(results) + [""]
    md += ["Flicker and warping error: mean absolute difference between consecutive frames, raw and after warping by the "
           "optical flow (OpenCV DIS), in 0-255 pixel units. Motion smoothness: mean change of the flow from one frame pair to "
           "the next, in pixels (lower is smoother). Dynamic degree: share of frame pairs with motion. FVD: against the real "
           "clips of the same prompts, with the floor (real against other real clips at this N) in brackets.", ""]
    notes = {r["main"]["extra"].get("fvd_note") for r in results} - {None}
    md += [f"FVD: {n}" for n in notes] + ([""] if notes else [])
    md += ["## Quality against time", "", f"![quality against time]({plots['quality_vs_time']})", "",
           "| model | setting | clips | scene acc. | object acc. | passes / clip | s / clip |", "|---|---|---|---|---|---|---|"]
    for r in results:
        for p in r["sweep"]:
            by = f" (by {p['extra']['decoded_by']})" if "decoded_by" in p["extra"] else ""
            md.append(f"| {r['model']} | {p['label']}{by} | {p['clips']} | {p['scene_accuracy']:.2f} | {p['object_accuracy']:.2f} | "
                      f"{p['forward_passes']:.0f} | {p['seconds_per_clip']:.2f} |")
    md += ["", "## Drift against clip length", "", f"![drift]({plots['drift']})", "",
           "| model | frames | objects present, right colour and shape (last 16) | presence (last 16) | scene acc. (first 16) | s / clip |",
           "|---|---|---|---|---|---|"]
    for r in results:
        for d in r["drift"]:
            if "error" in d:
                md.append(f"| {r['model']} | {d['frames']} | cannot: {d['error']} | | | |")
            else:
                md.append(f"| {r['model']} | {d['frames']} | {d['last16_present_colour_shape']:.2f} | {d['last16_presence']:.2f} | "
                          f"{d['first16_scene_accuracy']:.2f} | {d['seconds_per_clip']:.2f} |")
    md += ["", "## Test-time scaling (best of N)", "", f"![best of N]({plots['best_of_n']})", "",
           "| model | verifier | N | scene acc. | object acc. | s / clip |", "|---|---|---|---|---|---|"]
    for r in results:
        for p in r["best_of"]:
            md.append(f"| {r['model']} | {r['verifier']} | {p['extra']['n']} | {p['scene_accuracy']:.2f} | {p['object_accuracy']:.2f} | "
                      f"{p['seconds_per_clip']:.2f} |")
    md += ["", "## Clips", ""]
    for r in results:
        md += [f"{r['model']}: the first 4 clips, every other frame", "", f"![{r['model']}](clips-{r['model']}.png)", ""]
    data = {"plan": asdict(plan), "command": command, "results": [{k: v for k, v in r.items() if k != "sheet"} for r in results]}
    (out_dir / "report.json").write_text(json.dumps(data, indent=2, default=float) + "\n")
    (out_dir / "index.html").write_text(_html(md))
    report = Path(report_md) if report_md else out_dir / "report.md"
    if report.parent != out_dir:  # the pictures stay in out_dir: link them from where the report is
        rel = os.path.relpath(out_dir, report.parent)
        md = [re.sub(r"!\[([^\]]*)\]\(", rf"![\1]({rel}/", line) for line in md]
    report.write_text("\n".join(md) + "\n")
    return report


def _html(md_lines: list[str]) -> str:
    """A small Markdown subset (headings, tables, images, code) to HTML: enough for this report."""
    out, in_table, in_code = [], False, False
    for line in md_lines:
        if line.startswith("```"):
            out.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
            continue
        if in_code:
            out.append(html.escape(line))
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            tag = "th" if not in_table else "td"
            out.append(("<table>" if not in_table else "") + "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            in_table = True
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            out.append(f"<p><img alt='{html.escape(alt)}' src='{html.escape(src.rstrip(')'))}'></p>")
        elif line:
            out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto} table{border-collapse:collapse;font-size:13px} "
             "td,th{border:1px solid #ccc;padding:3px 6px} img{image-rendering:pixelated;max-width:100%}")
    return f"<!doctype html><meta charset='utf-8'><title>framecast arena</title><style>{style}</style>\n" + "\n".join(out) + "\n"


__all__ = ["FULL", "QUICK", "ArenaPlan", "default_models", "measure_model", "run_arena", "sweep_settings", "write_report"]
