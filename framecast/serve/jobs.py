"""The job store: one SQLite table under the state folder, and the result files beside it.

Every state change is one statement in its own transaction, so a server killed with SIGKILL and
started again finds each job in the state it last committed: queued jobs run, running ones go back
to the queue and run again from the start (`runs` counts their starts), finished ones keep their
files. Result files are written to a temporary name and renamed, so a file that exists is whole.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    frames_done INTEGER NOT NULL DEFAULT 0,
    runs INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
"""


class QueueFull(Exception):
    """The queue holds `queue_size` waiting jobs; the client should retry later."""


@dataclass
class Job:
    id: str
    status: str
    request: dict
    progress: float
    frames_done: int
    runs: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    result: str | None

    def public(self) -> dict:
        """The job as `GET /v1/videos/{id}` shows it: uploaded pixels summarised, not echoed."""
        request = {k: (f"<{len(v)} base64 characters>" if k in ("image", "video") and v else v) for k, v in self.request.items()}
        out = {"id": self.id, "status": self.status, "progress": self.progress, "frames_done": self.frames_done,
               "created_at": self.created_at, "started_at": self.started_at, "finished_at": self.finished_at, "request": request}
        if self.error:
            out["error"] = self.error
        return out


class JobStore:
    def __init__(self, state_dir: str | Path, *, queue_size: int = 8):
        self.dir = Path(state_dir)
        self.results = self.dir / "results"
        self.results.mkdir(parents=True, exist_ok=True)
        self.queue_size = queue_size
        self._lock = threading.Lock()
        self.cancelled: set[str] = set()  # cancelled in this process: workers check it at every step without a query
        self._db = sqlite3.connect(str(self.dir / "jobs.sqlite"), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a 202 means the job is on disk
        self._db.executescript(SCHEMA)
        self.recover()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def recover(self) -> int:
        """Jobs a killed server left running go back to the queue; returns how many."""
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET status='queued', progress=0, frames_done=0, started_at=NULL WHERE status='running'")
            for tmp in self.results.glob("*.tmp*"):
                tmp.unlink(missing_ok=True)
            return cur.rowcount

    def waiting(self) -> int:
        return self._run("SELECT COUNT(*) FROM jobs WHERE status='queued'")[0][0]

    def add(self, request: dict) -> tuple[Job, int]:
        """Queue a request; -> the job and its place in the queue (0: next). QueueFull when full."""
        job_id = uuid.uuid4().hex
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                waiting = self._db.execute("SELECT COUNT(*) FROM jobs WHERE status='queued'").fetchone()[0]
                if waiting >= self.queue_size:
                    raise QueueFull(f"the queue is full ({self.queue_size} jobs waiting); retry later")
                self._db.execute("INSERT INTO jobs (id, status, request, created_at) VALUES (?, 'queued', ?, ?)",
                                 (job_id, json.dumps(request), time.time()))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.get(job_id), waiting

    def get(self, job_id: str) -> Job | None:
        rows = self._run("SELECT id, status, request, progress, frames_done, runs, created_at, started_at, finished_at, error, result "
                         "FROM jobs WHERE id=?", (job_id,))
        if not rows:
            return None
        r = list(rows[0])
        r[2] = json.loads(r[2])
        return Job(*r)

    def queue_position(self, job_id: str) -> int | None:
        rows = self._run("SELECT COUNT(*) FROM jobs WHERE status='queued' AND seq < (SELECT seq FROM jobs WHERE id=? AND status='queued')",
                         (job_id,))
        job = self.get(job_id)
        return rows[0][0] if job and job.status == "queued" else None

    def claim(self) -> Job | None:
        """The oldest queued job, marked running (one statement, so two workers never share one)."""
        rows = self._run("UPDATE jobs SET status='running', started_at=?, runs=runs+1 WHERE seq = "
                         "(SELECT seq FROM jobs WHERE status='queued' ORDER BY seq LIMIT 1) RETURNING id", (time.time(),))
        return self.get(rows[0][0]) if rows else None

    def set_progress(self, job_id: str, progress: float, frames_done: int) -> None:
        self._run("UPDATE jobs SET progress=?, frames_done=? WHERE id=? AND status='running'", (progress, frames_done, job_id))

    def finish(self, job_id: str, result: Path, frames: int) -> bool:
        """Mark a running job succeeded with its result file; False if it was cancelled meanwhile."""
        rows = self._run("UPDATE jobs SET status='succeeded', progress=1, frames_done=?, finished_at=?, result=? "
                         "WHERE id=? AND status='running' RETURNING id", (frames, time.time(), str(result), job_id))
        return bool(rows)

    def fail(self, job_id: str, error: str) -> None:
        self._run("UPDATE jobs SET status='failed', finished_at=?, error=? WHERE id=? AND status='running'", (time.time(), error, job_id))

    def cancel(self, job_id: str) -> str | None:
        """Cancel a queued or running job; -> its status afterwards (None: no such job)."""
        self.cancelled.add(job_id)
        self._run("UPDATE jobs SET status='cancelled', finished_at=? WHERE id=? AND status IN ('queued', 'running')", (time.time(), job_id))
        job = self.get(job_id)
        return job.status if job else None

    def counts(self) -> dict[str, int]:
        found = dict(self._run("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
        return {s: found.get(s, 0) for s in STATUSES}

    def durations(self) -> list[float]:
        """Seconds from start to finish of the succeeded jobs."""
        return [r[0] for r in self._run("SELECT finished_at - started_at FROM jobs WHERE status='succeeded' AND started_at IS NOT NULL")]

    def result_path(self, job_id: str, fmt: str) -> Path:
        return self.results / f"{job_id}.{fmt}"

    def write_result(self, job_id: str, fmt: str, write) -> Path:
        """`write(path)` to a temporary name in the results folder, then renamed into place."""
        final = self.result_path(job_id, fmt)
        tmp = final.with_name(f"{job_id}.tmp{os.getpid()}.{fmt}")
        write(tmp)
        os.replace(tmp, final)
        return final

    def purge(self, older_than_s: float) -> int:
        """Remove finished jobs (and their files) that finished more than `older_than_s` ago."""
        cutoff = time.time() - older_than_s
        rows = self._run("DELETE FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < ? RETURNING result",
                         (cutoff,))
        for (result,) in rows:
            if result:
                Path(result).unlink(missing_ok=True)
        return len(rows)
