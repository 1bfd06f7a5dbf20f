"""The server's parts behind the routes and the page: the job store, the workers, the models."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from framecast.serve.events import EventHub
from framecast.serve.jobs import Job, JobStore, QueueFull
from framecast.serve.models import ModelCache
from framecast.serve.request import VideoRequest, check_request
from framecast.serve.worker import Worker
from framecast.threads import choose_threads


@dataclass
class ServeConfig:
    state_dir: Path = Path("framecast-serve")
    models: list[str] | None = None  # None: every bundled model
    queue_size: int = 8  # jobs waiting (not counting running ones) before 429
    workers: int = 1  # 0: accept and queue only (jobs wait for a server with workers)
    api_key: str | None = None
    max_body_bytes: int = 8 * 2**20
    retention_s: float = 7 * 24 * 3600  # finished jobs and their files are kept this long
    device: str = "auto"
    precision: str = "auto"
    torch_threads: int | None = None  # per worker; None leaves PyTorch's setting


class Server:
    def __init__(self, config: ServeConfig):
        self.config = config
        self.store = JobStore(config.state_dir, queue_size=config.queue_size)
        self.hub = EventHub()
        self.caches = [ModelCache(config.models, device=config.device, precision=config.precision) for _ in range(max(1, config.workers))]
        self.workers: list[Worker] = []
        # one computation per worker at a time: generations and the page's lens runs share the cores
        self.compute = threading.BoundedSemaphore(max(1, config.workers))
        self._purged_at = 0.0
        self.rejected = {"queue_full": 0, "invalid": 0}  # for /metrics

    def start(self) -> None:
        if self.config.torch_threads:
            import torch

            torch.set_num_threads(self.config.torch_threads)
        self.purge()
        self.workers = [Worker(self.store, cache, self.hub, self.compute) for cache in self.caches[: self.config.workers]]
        for w in self.workers:
            w.start()

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        for w in self.workers:
            w.join(timeout=30)
        self.workers = []

    def submit(self, req: VideoRequest) -> tuple[Job, int]:
        """Check the request against its model (ValueError with the CLI's sentence), then queue it
        (QueueFull past the queue size)."""
        if self.store.waiting() >= self.config.queue_size:  # before the check: a full queue is answered cheaply
            self.rejected["queue_full"] += 1
            raise QueueFull(f"the queue is full ({self.config.queue_size} jobs waiting); retry later")
        try:
            check_request(self.caches[0].get(req.model), req)
        except ValueError:
            self.rejected["invalid"] += 1
            raise
        self.purge()
        try:
            job, position = self.store.add(req.model_dump())
        except QueueFull:
            self.rejected["queue_full"] += 1
            raise
        self.hub.publish(job.id, "status", {"status": "queued", "queue_position": position})
        for w in self.workers:
            w.wake.set()
        return job, position

    def cancel(self, job_id: str) -> str | None:
        status = self.store.cancel(job_id)
        self.hub.publish(job_id, "status", {"status": status})
        return status

    def retry_after_s(self) -> int:
        """Seconds until a place in the queue is likely free: one job's median run time."""
        d = sorted(self.store.durations())
        return max(1, round(d[len(d) // 2])) if d else 5

    def purge(self, every_s: float = 60.0) -> None:
        if time.time() - self._purged_at >= every_s:
            self._purged_at = time.time()
            self.store.purge(self.config.retention_s)

    def model_cards(self) -> list[dict]:
        loaded = {n for c in self.caches for n in c.loaded()}
        return [{**card, "loaded": card["name"] in loaded} for card in self.caches[0].cards()]


def default_threads(workers: int) -> int:
    """PyTorch threads per worker when --threads is not given: FRAMECAST_THREADS as set, else the
    cores other processes leave free, shared among the workers (framecast.threads)."""
    n, source = choose_threads()
    return n if source != "policy" else max(1, n // max(1, workers))


