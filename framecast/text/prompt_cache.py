"""The encodings of recently seen prompts, shared by the pretrained text encoders: a prompt repeated
across calls, within a batch or in a serve queue is encoded once."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable


class PromptCache(OrderedDict):
    """Key -> encoding of the last `size` keys; the least recently used is dropped first."""

    def __init__(self, size: int, items=()):
        super().__init__(items)
        self.size = size

    def rows(self, keys: list[str], run: Callable[[list[str]], list]) -> list:
        """Each key's encoding, in order; `run` encodes the keys not cached, each once, in one batch.
        A batch longer than `size` is returned whole; the cache keeps its last `size` keys."""
        missing = list(dict.fromkeys(k for k in keys if k not in self))
        if missing:
            for key, row in zip(missing, run(missing)):
                self[key] = row
        found = []
        for key in keys:
            self.move_to_end(key)
            found.append(self[key])
        while len(self) > self.size:
            self.popitem(last=False)
        return found
