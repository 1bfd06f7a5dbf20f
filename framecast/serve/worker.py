"""A worker: takes the oldest queued job, runs it through the pipeline, stores the result.

One generation at a time per worker: PyTorch already spreads one generation over the cores, and
two at once in one process each run many times slower. Progress comes from the pipeline's
`callback_on_step_end`; the same callback looks up the job's status and stops a cancelled job at
its next step. Models that stream (hybrid and token models) run through `pipe.stream`, so each
finished chunk of frames is published as it is made.
"""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np

from framecast.serve.events import EventHub
from framecast.serve.jobs import Job, JobStore
from framecast.serve.models import ModelCache
from framecast.serve.request import VideoRequest, pipeline_kwargs


class Cancelled(Exception):
    """Raised from the step callback when the job was cancelled."""


def png_strip(frames_THW3: np.ndarray, min_side: int = 64) -> str:
    """Frames side by side as a base64 PNG (for the events stream)."""
    from PIL import Image

    from framecast.video import contact_sheet

    scale = max(1, min_side // frames_THW3.shape[1])
    buf = io.BytesIO()
    Image.fromarray(contact_sheet(frames_THW3, columns=frames_THW3.shape[0], scale=scale)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


class Worker(threading.Thread):
    def __init__(self, store: JobStore, models: ModelCache, hub: EventHub, compute: threading.Semaphore | None = None, *,
                 poll_s: float = 0.05, progress_every_s: float = 0.25):
        super().__init__(daemon=True, name="framecast-worker")
        self.store, self.models, self.hub, self.poll_s, self.progress_every_s = store, models, hub, poll_s, progress_every_s
        self.compute = compute or threading.Semaphore(1)
        self.stopping = threading.Event()
        self.wake = threading.Event()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            with self.compute:  # claimed only when the cores are free for it
                job = self.store.claim()
                if job is not None:
                    self.run_job(job)
            if job is None:
                self.wake.wait(self.poll_s)
                self.wake.clear()

    def run_job(self, job: Job) -> None:
        self.hub.publish(job.id, "status", {"status": "running"})
        try:
            frames, fmt, fps = self._generate(job)
            from framecast.video import export_to_video

            path = self.store.write_result(job.id, fmt, lambda p: export_to_video(frames, p, fps=fps))
            if not self.store.finish(job.id, path, int(frames.shape[0])):
                path.unlink(missing_ok=True)  # cancelled while the file was written
                raise Cancelled()
            self.hub.publish(job.id, "status", {"status": "succeeded", "frames": int(frames.shape[0])})
        except Cancelled:
            self.hub.publish(job.id, "status", {"status": "cancelled"})
        except ValueError as e:
            self.store.fail(job.id, str(e))
            self.hub.publish(job.id, "status", {"status": "failed", "error": str(e)})
        except Exception as e:  # a bug, not a bad request: the job fails, the worker goes on
            message = f"internal error: {type(e).__name__}: {e}"
            self.store.fail(job.id, message)
            self.hub.publish(job.id, "status", {"status": "failed", "error": message})

    def _generate(self, job: Job) -> tuple[np.ndarray, str, int]:
        """-> (T, H, W, 3) uint8 frames, the output format and fps."""
        import torch

        req = VideoRequest(**job.request)
        pipe = self.models.get(req.model)
        kw = pipeline_kwargs(req)
        for line in pipe.prompt_warnings(req.prompt):  # a prompt far from the model's training still generates
            self.hub.publish(job.id, "warning", {"message": line})
        total = self._total_steps(pipe, req.prompt, kw)
        started = time.perf_counter()
        state = {"frames": 0, "saved": 0.0}

        def on_step(_pipe, step, sigma, tensors):
            if job.id in self.store.cancelled:
                raise Cancelled()
            progress = min(1.0, (step + 1) / total) if total else 0.0
            if time.perf_counter() - state["saved"] >= self.progress_every_s:  # each write is a committed transaction
                state["saved"] = time.perf_counter()
                self.store.set_progress(job.id, progress, state["frames"])
            self.hub.publish(job.id, "progress", {"step": step + 1, "steps": total, "progress": progress,
                                                  "seconds": time.perf_counter() - started})

        kw.update(generator=torch.Generator().manual_seed(req.seed), callback_on_step_end=on_step)
        if hasattr(pipe.model, "stream"):
            chunks = []
            for chunk_kHW3 in pipe.stream(req.prompt, **kw):
                start = state["frames"]
                state["frames"] += chunk_kHW3.shape[0]
                chunks.append(chunk_kHW3)
                self.hub.publish(job.id, "chunk", {"frames": [start, state["frames"]], "png": png_strip(chunk_kHW3)})
            frames = np.concatenate(chunks)
        else:
            frames = pipe(req.prompt, **kw).frames[0]
        if job.id in self.store.cancelled:
            raise Cancelled()
        return frames, req.format, req.fps

    @staticmethod
    def _total_steps(pipe, prompt: str, kw: dict) -> int:
        """Step callbacks the run will make (`pipe.total_steps`: denoising steps, or a token
        model's decoding passes); 0 where the request cannot say."""
        try:
            return int(pipe.total_steps(prompt, **kw))
        except ValueError:
            return 0
