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


PARAPHRASE = "paraphrase"  # the train split's captions, rewritten (framecast.eval.paraphrase)


def eval_set(source: str, num: int | None = None) -> tuple[list[str], list[str]]:
    """(prompts, the caption each is judged against): they differ for `paraphrase`, where each of
    the train split's captions is rewritten in other words and judged against the canonical one."""
    if source == PARAPHRASE:
        from framecast.eval.paraphrase import paraphrases

        captions = eval_prompts("train", num)
        return paraphrases(captions), captions
    prompts = eval_prompts(source, num)
    return prompts, prompts


def eval_prompts(source: str, num: int | None = None) -> list[str]:
    """A Shapes split (captions of the split's clips of seeds 0, 1, ...) or a text file, one prompt a line."""
    if source == PARAPHRASE:
        return eval_set(source, num)[0]
    if source in SPLITS:
        n = 100 if num is None else num
        return [render_clip(i, split=source).caption for i in range(n)]
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"prompts '{source}' is neither a Shapes split ({', '.join(SPLITS)}), '{PARAPHRASE}', nor a file")
    prompts = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not prompts:
        raise ValueError(f"prompt file '{source}' holds no prompts")
    return prompts if num is None else [prompts[i % len(prompts)] for i in range(num)]


def evaluate(pipe, prompts: list[str], *, seed: int = 0, batch_size: int = 8, progress: bool = True, best_of: int = 1,
             verifier: str = "judge", chunk: int | None = None, meanings: list[str] | None = None, **call_kwargs) -> dict:
    """Clip i is drawn with seed `seed + i` whatever the batch size. With best_of > 1 each clip is
    the verifier's pick of that many candidates (framecast.eval.scaling), of whole clips or, with
    `chunk`, of each next chunk. Returns the judge's summary, the time per clip, and the frames
    (under the key 'frames', not for JSON). `meanings`: the caption each prompt is judged against
    (default: the prompt itself)."""
    from framecast.eval.scaling import best_of_n, chunk_search, make_verifier

    if best_of < 1:
        raise ValueError(f"best-of must be >= 1, got {best_of}")
    searching = best_of > 1 or chunk is not None
    verify = make_verifier(verifier) if searching else None  # once: the classifier loads from disk
    verdicts, frames, seconds = [], [], 0.0
    bar = tqdm(total=len(prompts), disable=not progress, desc=f"eval {pipe.name}", unit="clip")
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        seeds = [seed + start + j for j in range(len(batch))]
        if chunk is not None:
            found = [chunk_search(pipe, p, best_of, seed=s, chunk=chunk, verifier=verify, **call_kwargs) for p, s in zip(batch, seeds)]
            made, spent = [f["frames"] for f in found], sum(f["seconds"] for f in found)
        elif best_of > 1:
            found = best_of_n(pipe, batch, best_of, seeds=seeds, verifier=verify, **call_kwargs)
            made, spent = found["frames"], found["seconds"]
        else:
            t0 = time.perf_counter()
            made = pipe(batch, generator=[torch.Generator().manual_seed(s) for s in seeds], **call_kwargs).frames
            spent = time.perf_counter() - t0
        seconds += spent
        for p, f in zip((meanings or prompts)[start : start + batch_size], made):
            verdicts.append(judge_clip(f, p))
            frames.append(f)
        bar.update(len(batch))
    bar.close()
    summary = summarize(verdicts).to_dict()
    summary["seconds_per_clip"] = seconds / len(prompts)
    summary["seed"] = seed
    summary["model"] = pipe.name
    summary["settings"] = {k: v for k, v in call_kwargs.items() if v is not None}
    if searching:
        summary["settings"].update(best_of=best_of, verifier=verify.name, chunk=chunk)
    if meanings is not None and meanings != prompts:
        for clip, prompt in zip(summary["per_clip"], prompts):
            clip["prompt"] = prompt
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
