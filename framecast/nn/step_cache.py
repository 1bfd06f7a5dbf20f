"""Training-free step caching: skip a denoising step's later blocks when its first block barely
changed (First-Block Cache, as in ParaAttention and diffusers' FirstBlockCache; a sibling of
TeaCache, Liu et al. 2024, which decides from the timestep-modulated input instead).

Between neighbouring denoising steps the residual a transformer's blocks add changes slowly, and
the first block's residual tracks how much the rest would. Every pass runs block 0; when the
relative L1 change of its residual against the one of the last fully computed pass,
`mean|r - r_prev| / mean|r_prev|`, is below `threshold`, the pass adds the residual blocks 1..
added in that pass instead of running them. Otherwise every block runs and the references are
renewed. 0 never skips (and the generators then use no cache). On the bundled Shapes models 0.15
skips about a tenth of the block passes and 0.3 a third (diffusion) to a half (hybrid), 1.4-1.7x
faster (docs/performance.md, "Step caching").

One decision covers the whole batch: the largest change over its rows (clips, and the conditional
and unconditional halves of classifier-free guidance) must be below the threshold, so both halves
of the guidance always come from the same pass and no row is skipped on another's account. A clip
made with others may therefore differ from the same clip made alone once caching is on.

The cached residuals belong to one set of tokens: a pass over other tokens (another shape, a
different KV-cache length, or another `scope`, e.g. the frames a stream denoises now) renews them.
One StepCache serves one generation; its counters add up over every pass it saw.
"""

from __future__ import annotations

from typing import Callable, Hashable

import torch

BlockFn = Callable[[int, torch.Tensor], torch.Tensor]  # (block index, h_BND) -> h_BND after that block


class StepCache:
    def __init__(self, threshold: float):
        self.threshold = threshold  # checked where a request carries it (framecast.generators.checks)
        self.computed = 0  # block passes run
        self.skipped = 0  # block passes replaced by the cached residual
        self.scope: Hashable = None
        self.reset()

    def reset(self) -> None:
        """Forget the cached residuals (the counters stay)."""
        self._key: Hashable = None
        self._first_BND: torch.Tensor | None = None  # block 0's residual at the last fully computed pass
        self._rest_BND: torch.Tensor | None = None  # what blocks 1.. added in that pass

    def summary(self) -> dict:
        """The counts a pipeline reports in its output's `info`."""
        total = self.computed + self.skipped
        return {"threshold": self.threshold, "block_passes": total, "skipped_block_passes": self.skipped,
                "skipped_share": self.skipped / total if total else 0.0}

    def changed(self, first_BND: torch.Tensor) -> bool:
        """Whether block 0's residual moved by `threshold` or more (relative L1) in some row."""
        prev = self._first_BND.flatten(1).float()
        change_B = (first_BND.flatten(1).float() - prev).abs().mean(1) / prev.abs().mean(1).clamp(min=1e-12)
        return bool(change_B.max() >= self.threshold)

    def __call__(self, block: BlockFn, depth: int, h_BND: torch.Tensor, key: Hashable) -> torch.Tensor:
        """Run `depth` blocks on h_BND, or block 0 and the cached rest. `key` names the tokens of the
        pass (the backbone gives their shape and the KV cache's length)."""
        key = (self.scope, key)
        out_BND = block(0, h_BND)
        first_BND = out_BND - h_BND
        if key == self._key and not self.changed(first_BND):
            self.computed += 1
            self.skipped += depth - 1
            return out_BND + self._rest_BND
        after_first = out_BND
        for i in range(1, depth):
            out_BND = block(i, out_BND)
        self._key, self._first_BND, self._rest_BND = key, first_BND, out_BND - after_first
        self.computed += depth
        return out_BND


def step_cache_for(value: float | StepCache | None) -> StepCache | None:
    """A request's `step_cache` (a threshold, or a StepCache that counts for the caller) -> the
    cache a generation uses, its residuals forgotten; None when off (no value, or threshold 0)."""
    if value is None:
        return None
    cache = value if isinstance(value, StepCache) else StepCache(float(value))
    if cache.threshold <= 0:
        return None
    cache.reset()
    cache.scope = None
    return cache
