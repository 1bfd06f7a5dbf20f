"""Shared by the speed benchmarks: the machine a timing depends on, the command that made it, and
the JSON result written beside its Markdown table."""

from __future__ import annotations

import contextlib
import platform
import shlex
import sys
from pathlib import Path

import torch

from framecast.eval.results import write_result
from framecast.precision import has_fast_bf16, resolve_precision


def cpu_name() -> str:
    """The CPU's model name (Linux), else what platform knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> dict:
    """What a timing depends on: CPU (and GPU), threads, ISA, torch, and the precision `auto` picks on `device`."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = torch.device(device).type
    m = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "isa": torch.backends.cpu.get_cpu_capability(),
         "fast_bf16": has_fast_bf16(kind), "torch": torch.__version__, "precision": resolve_precision("auto", kind)}
    if kind == "cuda":
        m["gpu"] = torch.cuda.get_device_name()
    return m


def describe(m: dict) -> str:
    """One line for a table's footer: 'AMD EPYC, 2 threads, AVX2, fp32'."""
    where = m.get("gpu") or f"{m['cpu']}, {m['threads']} thread{'s' if m['threads'] != 1 else ''}, {m.get('isa', '?')}"
    return f"{where}, {m['precision']}"


def result_path(stem: str, model: str, default_model: str = "shapes-hybrid") -> Path:
    """benchmarks/results/STEM.json for the benchmark's default model, STEM-MODEL.json for another
    (a folder by its name), so each model keeps one canonical result."""
    name = Path(model).name
    return Path("benchmarks/results") / (f"{stem}.json" if name == default_model else f"{stem}-{name}.json")


def write_report(path: Path, result: dict, table: list[str], *, device: str = "cpu", precision: str | None = None) -> None:
    """Write the result with the machine and the command that made it; the table gets both as its last line.
    `precision` names what the rows ran in where it is not the one `auto` picks (a benchmark of several)."""
    command = shlex.join(["python", *sys.argv])
    result = {**result, "machine": machine(device) | ({"precision": precision} if precision else {}), "command": command}
    write_result(path, result, [*table, "", f"Measured on {describe(result['machine'])} with `{command}`."])


def timed_clips(pipe, prompts: list[str], frames: int, seed: int, **kw) -> dict:
    """Generate one clip per prompt (clip i with seed + i), judge each, and count the backbone's
    forward passes and the tokens pushed through it. Per-clip averages."""
    import time

    from framecast.eval.arena import PassCounter
    from framecast.eval.shapes import judge_clip, summarize

    verdicts, seconds = [], 0.0
    with PassCounter(pipe.model) as count:
        for i, p in enumerate(prompts):
            t = time.perf_counter()
            out = pipe(p, num_frames=frames, generator=torch.Generator().manual_seed(seed + i), **kw)
            seconds += time.perf_counter() - t
            verdicts.append(judge_clip(out.frames[0], p))
    s, n = summarize(verdicts), len(prompts)
    return {"forward_passes": count.calls / n, "tokens_through_backbone": count.tokens / n, "seconds_per_clip": seconds / n,
            "scene_accuracy": s.scene_accuracy, "object_accuracy": s.object_accuracy, "clips": n}
