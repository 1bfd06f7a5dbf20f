"""`GET /metrics`: Prometheus text exposition (queue length, jobs by status, seconds per job)."""

from __future__ import annotations


def _quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] if sorted_values else float("nan")


def prometheus_text(server) -> str:
    counts = server.store.counts()
    seconds = sorted(server.store.durations())
    lines = [
        "# HELP framecast_queue_length Jobs waiting for a worker.",
        "# TYPE framecast_queue_length gauge",
        f"framecast_queue_length {counts['queued']}",
        "# HELP framecast_jobs Jobs in the store by status.",
        "# TYPE framecast_jobs gauge",
        *(f'framecast_jobs{{status="{s}"}} {n}' for s, n in counts.items()),
        "# HELP framecast_rejected_total Requests refused before queueing, by reason.",
        "# TYPE framecast_rejected_total counter",
        *(f'framecast_rejected_total{{reason="{r}"}} {n}' for r, n in server.rejected.items()),
        "# HELP framecast_job_seconds Seconds from a job's start to its result (succeeded jobs in the store).",
        "# TYPE framecast_job_seconds summary",
        *(f'framecast_job_seconds{{quantile="{q}"}} {_quantile(seconds, q):.4f}' for q in (0.5, 0.9, 0.99)),
        f"framecast_job_seconds_sum {sum(seconds):.4f}",
        f"framecast_job_seconds_count {len(seconds)}",
        "# HELP framecast_workers Worker threads, one generation at a time each.",
        "# TYPE framecast_workers gauge",
        f"framecast_workers {len(server.workers)}",
    ]
    return "\n".join(lines) + "\n"
