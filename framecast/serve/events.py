"""Each job's events (progress per step, finished chunks of frames) kept in memory for the
`/events` stream: a client that connects late reads them from the start."""

from __future__ import annotations

import threading
from collections import OrderedDict


class EventHub:
    def __init__(self, keep_jobs: int = 64):
        self.keep_jobs = keep_jobs
        self._events: OrderedDict[str, list[tuple[str, dict]]] = OrderedDict()
        self._cond = threading.Condition()

    def publish(self, job_id: str, kind: str, data: dict) -> None:
        with self._cond:
            self._events.setdefault(job_id, []).append((kind, data))
            self._events.move_to_end(job_id)
            while len(self._events) > self.keep_jobs:
                self._events.popitem(last=False)
            self._cond.notify_all()

    def since(self, job_id: str, start: int, timeout: float) -> list[tuple[str, dict]]:
        """Events from index `start` on, waiting up to `timeout` seconds for one to come."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._events.get(job_id, ())) > start, timeout=timeout)
            return list(self._events.get(job_id, ())[start:])
