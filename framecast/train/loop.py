"""The shape every framecast training loop shares (as torchtitan's Trainer): `build` once, then
`step`, `log` and `checkpoint` for each step, `finish`, and `close` whatever happened. The
generators' `Trainer` (framecast.train.trainer) and the Shapes classifier's trainer
(framecast.eval.classifier) are both one."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm


def progress_bar(total: int, *, desc: str, initial: int = 0, enabled: bool = True) -> tqdm:
    """The one progress bar of a training run: steps done out of `total`."""
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="step", dynamic_ncols=True)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """Parameters are averaged; buffers are copied (a VQ codebook is already its own moving
    average, and it must match the encoder it is used with)."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


class TrainLoop:
    """Subclasses fill in the hooks; `train` runs them. `build` sets `start`, `steps` and `bar`;
    `step(k)` takes optimizer step k (0-based) and returns its loss; `log(done, loss)` and
    `checkpoint(done)` see the count of steps done; `finish` returns what `train` returns; `close` also runs when
    `build` stops half-way, so it frees only what was made."""

    start: int = 0
    steps: int = 0
    bar: tqdm | None = None

    def build(self) -> None:
        raise NotImplementedError

    def step(self, step: int) -> float:
        raise NotImplementedError

    def log(self, done: int, loss: float) -> None:
        pass

    def checkpoint(self, done: int) -> None:
        pass

    def finish(self):
        return None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def train(self):
        try:
            self.build()
            for step in range(self.start, self.steps):
                loss = self.step(step)
                self.bar.update(1)
                self.log(step + 1, loss)
                self.checkpoint(step + 1)
            return self.finish()
        finally:
            self.close()
