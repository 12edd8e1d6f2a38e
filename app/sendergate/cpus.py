"""How many SMTP workers a gateway runs, from the CPUs this process may use (gateway.py forks them;
metrics.py names the directory they share after the supervisor only when there is one)."""

from __future__ import annotations

import os


def usable_cpus() -> list[int]:
    """The CPUs this process may run on, in order: its affinity mask where the system has one (a
    container's cpuset, taskset), else every CPU."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def worker_count(configured: int) -> int:
    """`smtp.workers` resolved: 0 is one per usable CPU; one where the system cannot fork (Windows)."""
    workers = configured or len(usable_cpus())
    return workers if workers > 1 and hasattr(os, "fork") else 1
