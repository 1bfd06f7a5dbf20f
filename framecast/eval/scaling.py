"""Test-time scaling: spend more samples, keep what a verifier likes best.

- `best_of_n`: draw N whole clips a prompt and keep the highest-scoring one (any family).
- `chunk_search`: for models that can continue a clip (hybrid and autoregressive), grow the clip
  chunk by chunk, drawing N candidates for each next chunk and keeping the best before going on.

A verifier maps clips and their captions to scores, higher is better:
- `judge`: the Shapes judge (an oracle on Shapes: it is also what `framecast eval` measures);
- `classifier`: log p(caption | clip) under the shipped Shapes classifier, which never sees the
  judge's rules, so gains measured by the judge are not gains of grading one's own homework.

Candidate k of a clip drawn with seed s uses seed s for k = 0 and s + k * 1000003 after, so N = 1
is exactly the plain sample and the candidates of one clip never collide with another clip's.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol

import numpy as np
import torch

from framecast.eval.shapes import judge_clip

SEED_STRIDE = 1_000_003


class Verifier(Protocol):
    name: str
    min_frames: int

    def __call__(self, clips: list[np.ndarray], captions: list[str]) -> np.ndarray: ...


def judge_score(frames: np.ndarray, caption: str) -> float:
    """2 if the scene is right, plus the share of each object's four checks (present, colour,
    shape, direction) that pass, less 0.25 an extra object and 0.05 a teleport."""
    v = judge_clip(frames, caption)
    parts = [(o.present + o.colour_ok + o.shape_ok + o.direction_ok) / 4 for o in v.objects]
    return 2.0 * v.right + float(np.mean(parts)) - 0.25 * len(v.extra_colours) - 0.05 * v.teleports


class JudgeVerifier:
    name, min_frames = "judge", 1

    def __call__(self, clips: list[np.ndarray], captions: list[str]) -> np.ndarray:
        return np.array([judge_score(f, c) for f, c in zip(clips, captions)])


class ClassifierVerifier:
    name = "classifier"

    def __init__(self, directory=None):
        from framecast.eval.classifier import load_classifier

        self.model = load_classifier(directory)
        self.min_frames = self.model.config.frames

    @torch.no_grad()
    def __call__(self, clips: list[np.ndarray], captions: list[str]) -> np.ndarray:
        from framecast.eval.classifier import caption_log_likelihood, classifier_input

        x = classifier_input(self.model, clips, "the classifier verifier")
        return caption_log_likelihood(self.model, x, captions).numpy()


def make_verifier(spec: str | Verifier) -> Verifier:
    """'judge', 'classifier' (the shipped one) or 'classifier:FOLDER'."""
    if not isinstance(spec, str):
        return spec
    if spec == "judge":
        return JudgeVerifier()
    if spec == "classifier":
        return ClassifierVerifier()
    if spec.startswith("classifier:"):
        return ClassifierVerifier(spec.split(":", 1)[1])
    raise ValueError(f"unknown verifier '{spec}': use judge, classifier or classifier:FOLDER")


def candidate_seed(seed: int, k: int) -> int:
    return seed + k * SEED_STRIDE


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"the number of candidates must be >= 1, got {n}")


def best_of_n(pipe, prompts: list[str], n: int, *, seeds: list[int], verifier: str | Verifier = "judge",
              **call_kwargs) -> dict:
    """For each prompt draw n clips (one batch a prompt) and keep the verifier's favourite.
    Returns frames (the kept clips), scores (n per prompt), chosen (index per prompt), seconds."""
    _check_n(n)
    if len(seeds) != len(prompts):
        raise ValueError(f"one seed per prompt: {len(prompts)} prompts, {len(seeds)} seeds")
    verify = make_verifier(verifier)
    frames, scores, chosen, seconds = [], [], [], 0.0
    for prompt, seed in zip(prompts, seeds):
        gens = [torch.Generator().manual_seed(candidate_seed(seed, k)) for k in range(n)]
        t0 = time.perf_counter()
        out = pipe([prompt] * n, generator=gens, **call_kwargs)
        seconds += time.perf_counter() - t0
        s = verify(out.frames, [prompt] * n) if n > 1 else np.zeros(1)
        k = int(np.argmax(s))
        frames.append(out.frames[k])
        scores.append(s.tolist())
        chosen.append(k)
    return {"frames": frames, "scores": scores, "chosen": chosen, "seconds": seconds}


def chunk_search(pipe, prompt: str, n: int, *, seed: int, chunk: int, num_frames: int | None = None,
                 verifier: str | Verifier = "judge", progress: Callable[[int, int], None] | None = None,
                 **call_kwargs) -> dict:
    """Grow one clip chunk by chunk: the first chunk, then each next one continues the clip kept so
    far (`video=..., context_frames=...`), n candidates at a time, the verifier keeping one."""
    _check_n(n)
    if pipe.model.family not in ("hybrid", "autoregressive"):
        raise ValueError(f"per-chunk search continues a clip chunk by chunk; '{pipe.name}' is a {pipe.model.family} model "
                         "(use best-of-N)")
    verify = make_verifier(verifier)
    T = num_frames if num_frames is not None else pipe.model.config.frames
    if chunk <= 0 or chunk >= T:
        raise ValueError(f"the chunk must be between 1 and {T - 1} frames, got {chunk}")
    first = max(chunk, verify.min_frames)
    if first > T:
        raise ValueError(f"the {verify.name} verifier needs {verify.min_frames} frames; the clip has {T}")
    clip, kept, scores, seconds, r = None, [], [], 0.0, 0
    while clip is None or clip.shape[0] < T:
        length = first if clip is None else min(T, clip.shape[0] + chunk)
        gens = [torch.Generator().manual_seed(candidate_seed(seed + r, k)) for k in range(n)]
        context = {} if clip is None else {"video": clip, "context_frames": clip.shape[0]}
        t0 = time.perf_counter()
        out = pipe([prompt] * n, generator=gens, num_frames=length, **context, **call_kwargs)
        seconds += time.perf_counter() - t0
        cands = out.frames if clip is None else [np.concatenate([clip, f[clip.shape[0]:]]) for f in out.frames]
        s = verify(cands, [prompt] * n) if n > 1 else np.zeros(1)
        k = int(np.argmax(s))
        clip = cands[k]
        kept.append(k)
        scores.append(s.tolist())
        r += 1
        if progress is not None:
            progress(clip.shape[0], T)
    return {"frames": clip, "scores": scores, "chosen": kept, "seconds": seconds}


__all__ = ["ClassifierVerifier", "JudgeVerifier", "best_of_n", "candidate_seed", "chunk_search", "judge_score", "make_verifier"]
