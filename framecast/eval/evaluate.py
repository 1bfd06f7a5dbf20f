"""Generate clips for a prompt set and judge them: `framecast eval`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from framecast.data.shapes import SPLITS, render_clip
from framecast.eval.shapes import judge_clip, summarize


def eval_prompts(source: str, num: int | None = None) -> list[str]:
    """A Shapes split (captions of the split's clips of seeds 0, 1, ...) or a text file, one prompt a line."""
    if source in SPLITS:
        n = 100 if num is None else num
        return [render_clip(i, split=source).caption for i in range(n)]
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"prompts '{source}' is neither a Shapes split ({', '.join(SPLITS)}) nor a file")
    prompts = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not prompts:
        raise ValueError(f"prompt file '{source}' holds no prompts")
    return prompts if num is None else [prompts[i % len(prompts)] for i in range(num)]


def evaluate(pipe, prompts: list[str], *, seed: int = 0, batch_size: int = 8, progress: bool = True, **call_kwargs) -> dict:
    """Clip i is drawn with seed `seed + i` whatever the batch size. Returns the judge's summary,
    the time per clip, and the frames (under the key 'frames', not for JSON)."""
    verdicts, frames, seconds = [], [], 0.0
    bar = tqdm(total=len(prompts), disable=not progress, desc=f"eval {pipe.name}", unit="clip")
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        gens = [torch.Generator().manual_seed(seed + start + j) for j in range(len(batch))]
        t0 = time.perf_counter()
        out = pipe(batch, generator=gens, **call_kwargs)
        seconds += time.perf_counter() - t0
        for p, f in zip(batch, out.frames):
            verdicts.append(judge_clip(f, p))
            frames.append(f)
        bar.update(len(batch))
    bar.close()
    summary = summarize(verdicts).to_dict()
    summary["seconds_per_clip"] = seconds / len(prompts)
    summary["seed"] = seed
    summary["model"] = pipe.name
    summary["settings"] = {k: v for k, v in call_kwargs.items() if v is not None}
    summary["frames"] = frames
    return summary


def write_report(summary: dict, path: Path) -> None:
    data = {k: v for k, v in summary.items() if k != "frames"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")


def sheet_of_clips(frames: list[np.ndarray], n: int = 8, every: int = 2) -> np.ndarray:
    """Rows = clips, columns = every `every`-th frame: one picture of an evaluation."""
    from framecast.video import contact_sheet

    rows = [f[::every] for f in frames[:n]]
    cols = rows[0].shape[0]
    return contact_sheet(np.concatenate(rows), columns=cols, scale=2)
