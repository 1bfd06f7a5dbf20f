"""Shared by the benchmarks: write the JSON result and its Markdown table side by side."""

from __future__ import annotations

import json
from pathlib import Path


def write_report(path: Path, result: dict, table: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    path.with_suffix(".md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


def timed_clips(pipe, prompts: list[str], frames: int, seed: int, **kw) -> dict:
    """Generate one clip per prompt (clip i with seed + i), judge each, and count the backbone's
    forward passes and the tokens pushed through it. Per-clip averages."""
    import time

    import torch

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
