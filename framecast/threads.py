"""How many PyTorch threads to compute with: the cores this process may use, less those other
processes keep busy.

PyTorch's intra-op threads (OpenMP) meet at a barrier after every parallel region, so a step is
as slow as its slowest thread. When the machine is oversubscribed (more runnable threads than
cores), a thread that the scheduler has set aside holds every other one at the barrier while the
others spin: on a 2-core CPU beside one busy process, a 4-step generation took 14.8 s with 2
threads and 1.5 s with 1 (docs/performance.md, "Speed ledger"). Too few threads cost at most the
idle cores; too many cost many times more, so the policy leaves a core to a neighbour that keeps
it more than half busy.

The order: an explicit count (`--threads N`) wins, then the FRAMECAST_THREADS environment
variable, then the policy (`threads_for`) applied to the process's CPU affinity and how busy those
CPUs are now (sampled from /proc/stat over a tenth of a second, in two halves of which the
quieter counts, so that a process that runs for a moment is not taken for a busy neighbour; the
1-minute load average where /proc/stat is missing). A process allowed one CPU does not sample.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

ENV = "FRAMECAST_THREADS"
SAMPLE_S = 0.1  # how long /proc/stat is watched: long enough for a few scheduler ticks (100 Hz)


def check_threads(value, name: str = "--threads") -> int:
    """A thread count given by the user: a whole number >= 1, else a one-line refusal."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1 or str(value).strip() != str(n):
        raise ValueError(f"{name} must be a whole number of threads >= 1, got '{value}'")
    return n


def threads_for(cores: int, busy_cores: float) -> int:
    """The policy: the cores left free by other processes' load, rounded so that a core more than
    half busy counts as taken; at least 1, at most `cores`."""
    free = cores - max(0.0, busy_cores)
    return max(1, min(cores, math.floor(free + 0.5 - 1e-9)))


def _cpu_times(cpus: set[int]) -> tuple[float, float] | None:
    """(busy, total) jiffies summed over `cpus`, from /proc/stat; None where it cannot be read."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = 0.0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        values = [float(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        total += sum(values)
        busy += sum(values) - values[3] - values[4]
    return (busy, total) if total else None


def busy_cores(cpus: set[int], interval_s: float = SAMPLE_S, windows: int = 2) -> float:
    """How many of `cpus` other processes keep busy now (this process sleeps while it looks): the
    least over `windows` consecutive windows sharing `interval_s`, since a neighbour that keeps a
    core is busy in every window and a passing spike in one."""
    times = [_cpu_times(cpus)]
    if times[0] is None:  # no /proc/stat (not Linux): the 1-minute load average, capped at the cores
        return min(float(len(cpus)), os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0.0
    for _ in range(max(1, windows)):
        time.sleep(interval_s / max(1, windows))
        times.append(_cpu_times(cpus))
    shares = [(b[0] - a[0]) / (b[1] - a[1]) for a, b in zip(times, times[1:]) if a is not None and b is not None and b[1] > a[1]]
    return len(cpus) * min(shares) if shares else 0.0


def usable_cpus() -> set[int]:
    """The CPUs this process may run on (its affinity; every CPU where affinity is unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def choose_threads(requested: int | None = None, *, environ=None, cpus: set[int] | None = None,
                   busy: float | None = None) -> tuple[int, str]:
    """(threads, where the number came from: '--threads', ENV or 'policy'). `cpus` and `busy`
    replace the machine's own affinity and load (tests, benchmarks)."""
    if requested is not None:
        return check_threads(requested), "--threads"
    environ = os.environ if environ is None else environ
    if environ.get(ENV, "").strip():
        return check_threads(environ[ENV], ENV), ENV
    cpus = usable_cpus() if cpus is None else cpus
    if len(cpus) == 1:  # nothing to choose
        return 1, "policy"
    busy = busy_cores(cpus) if busy is None else busy
    return threads_for(len(cpus), busy), "policy"


def apply_threads(requested: int | None = None) -> int:
    """Choose the thread count (see `choose_threads`) and give it to PyTorch; returns it."""
    import torch

    n, _ = choose_threads(requested)
    torch.set_num_threads(n)
    return n
