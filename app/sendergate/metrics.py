"""Prometheus metrics that add up across the gateway's pre-forked worker processes.

Each worker counts into prometheus_client's per-process memory-mapped files in
one directory shared by the gateway's workers; worker 0, which serves /metrics,
merges them (prometheus_client multiprocess mode). The directory is named after
the supervisor process (pid and start time), so workers agree on it without
being told, a restarted worker's counts are kept, and directories of gateways
that have ended are removed by the next one. Challenge counts come from the
store, so they are the same on every node.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .cpus import worker_count

log = logging.getLogger("sendergate.metrics")

_PREFIX = "sendergate-metrics-"
FLUSH_EVERY = 0.1  # seconds an SMTP count waits in the worker before it reaches the shared files
# The held histograms are added to prometheus_client's per-bucket values directly (`_sum`, `_buckets`:
# private, each bucket its own count, summed when rendered), as read in this version of it;
# tests/test_metrics_held.py pins that. With any other version they are observed at once, through the
# public observe(), which is always right and a little slower.
PROMETHEUS_CLIENT_HELD = "0.26.0"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is missing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive_dir_name(pid: int) -> str:
    return f"{_PREFIX}{pid}-{_start_time(pid)}"


def _remove_stale(parent: Path) -> None:
    for d in parent.glob(_PREFIX + "*"):
        try:
            pid = int(d.name[len(_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if d.name != _alive_dir_name(pid):  # that gateway has ended (or the pid was reused)
            shutil.rmtree(d, ignore_errors=True)


def metrics_dir(workers: int) -> Path:
    """The directory this gateway's workers share: named after the supervisor (or this process alone)."""
    parent = Path(os.environ.get("SENDERGATE_METRICS_DIR") or tempfile.gettempdir())
    group = os.getppid() if workers > 1 else os.getpid()
    path = parent / _alive_dir_name(group)
    if not path.exists():
        with contextlib.suppress(OSError):
            _remove_stale(parent)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _installed(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


class Metrics:
    """Counters and latency histograms; the method names are what the SMTP side calls."""

    def __init__(self, *, workers: int = 1) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

        workers = worker_count(workers)  # as the gateway counts them: a supervisor only when there are several
        self.dir = metrics_dir(workers)
        # prometheus_client picks its value store from this variable and module attribute
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.dir)
        values.ValueClass = values.MultiProcessValue()
        reg = self._own_registry = CollectorRegistry()
        self.sessions = Counter("sendergate_smtp_sessions", "SMTP connections accepted", registry=reg)
        self.open_sessions = Gauge("sendergate_smtp_open_sessions", "SMTP connections open now",
                                   registry=reg, multiprocess_mode="livesum")
        self.verdicts = Counter("sendergate_smtp_verdicts", "Final SMTP decisions (events) by verdict",
                                ["verdict"], registry=reg)
        self.data_seconds = Histogram("sendergate_smtp_data_seconds",
                                      "End of DATA to reply: scan, decide, deliver", registry=reg,
                                      buckets=LATENCY_BUCKETS)
        self.scan_seconds = Histogram("sendergate_scan_seconds", "Time spent in each scanner per message",
                                      ["scanner"], registry=reg, buckets=LATENCY_BUCKETS)
        self.delivery_seconds = Histogram("sendergate_delivery_seconds", "Hand-off to the downstream server",
                                          ["result"], registry=reg, buckets=LATENCY_BUCKETS)
        self.confirmations = Counter("sendergate_challenge_confirmations",
                                     "Challenges confirmed by the sender on this node (CAPTCHA solved)",
                                     registry=reg)
        self._verdict_children: dict[str, Any] = {}
        self._delivery_children = {ok: self.delivery_seconds.labels("ok" if ok else "failed") for ok in (True, False)}
        # The SMTP side's counts wait here, per worker, and reach prometheus_client's memory-mapped
        # files every FLUSH_EVERY (each inc there takes a lock and checks the pid): a scrape sees them
        # that much later; flush() before a render and at close().
        self._counts: dict[Any, float] = {}  # counter or gauge child -> amount to add
        self._observed: dict[Any, list[float]] = {}  # histogram child -> [sum, count per bucket...]
        self._flush_on: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on
        installed = _installed("prometheus-client")
        self._hold_histograms = installed == PROMETHEUS_CLIENT_HELD
        if not self._hold_histograms:
            log.info("prometheus-client %s (held histograms were read from %s): observed at once",
                     installed, PROMETHEUS_CLIENT_HELD)
        self.api_seconds = Histogram("sendergate_api_request_seconds", "HTTP API request latency",
                                     ["method", "route", "status"], registry=reg, buckets=LATENCY_BUCKETS)

    # -- what the SMTP side reports ----------------------------------------------------
    def session_opened(self) -> None:
        counts = self._counts
        counts[self.sessions] = counts.get(self.sessions, 0) + 1
        counts[self.open_sessions] = counts.get(self.open_sessions, 0) + 1
        self._later()

    def session_closed(self) -> None:
        counts = self._counts
        counts[self.open_sessions] = counts.get(self.open_sessions, 0) - 1
        self._later()

    def observe_data(self, seconds: float) -> None:
        self._observe(self.data_seconds, seconds)

    def observe_scan(self, scanner: str, seconds: float) -> None:
        """Scanners.observe: called by the scanners once per scanner per scan, by the scan itself
        (their `last_timings` may already be another session's scan)."""
        self.scan_seconds.labels(scanner).observe(seconds)

    def observe_delivery(self, seconds: float, *, ok: bool) -> None:
        self._observe(self._delivery_children[ok], seconds)

    def count(self, verdict: str) -> None:
        child = self._verdict_children.get(verdict)
        if child is None:  # labels() takes a lock and builds a key on every call: once per verdict is enough
            child = self._verdict_children[verdict] = self.verdicts.labels(verdict)
        counts = self._counts
        counts[child] = counts.get(child, 0) + 1
        self._later()

    def _observe(self, child: Any, seconds: float) -> None:
        """Histogram.observe, held: the sum, and one more in the first bucket the value fits (as
        prometheus_client stores buckets: each bucket's own count, summed when rendered)."""
        if not self._hold_histograms:
            child.observe(seconds)
            return
        held = self._observed.get(child)
        if held is None:
            held = self._observed[child] = [0.0] * (len(child._upper_bounds) + 1)
        held[0] += seconds
        held[1 + bisect.bisect_left(child._upper_bounds, seconds)] += 1
        self._later()

    def _later(self) -> None:
        """Have flush() run FLUSH_EVERY from now on this thread's event loop (at once where none runs)."""
        scheduled = self._flush_on
        if scheduled is not None and scheduled.is_running():  # (asking for the running loop costs a getpid())
            return
        loop = asyncio._get_running_loop()  # the public get_running_loop() raises where none runs
        if loop is None:
            self.flush()
        else:  # (a loop that ended before its flush ran: this one flushes)
            self._flush_on = loop
            loop.call_later(FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        """Add what the SMTP side counted since the last flush to the shared files."""
        self._flush_on = None
        counts, self._counts = self._counts, {}
        observed, self._observed = self._observed, {}
        for child, amount in counts.items():
            if amount:
                child.inc(amount)
        for child, (total, *buckets) in observed.items():
            child._sum.inc(total)
            for i, n in enumerate(buckets):
                if n:
                    child._buckets[i].inc(n)

    def count_confirmation(self) -> None:
        self.confirmations.inc()

    def observe_api(self, method: str, route: str, status: int, seconds: float) -> None:
        self.api_seconds.labels(method, route, str(status)).observe(seconds)

    # -- what /metrics serves ------------------------------------------------------------
    def render(self, challenge_counts: dict[str, int] | None = None) -> bytes:
        """Every worker's numbers merged, plus store-wide challenge counts, in Prometheus text format."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import GaugeMetricFamily
        from prometheus_client.multiprocess import MultiProcessCollector
        from prometheus_client.registry import Collector

        self.flush()  # this worker's own counts, to the moment
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.dir))
        text = generate_latest(registry)
        if challenge_counts is not None:
            fam = GaugeMetricFamily("sendergate_challenges", "Challenges in the store by status (all nodes)",
                                    labels=["status"])
            for status, n in sorted(challenge_counts.items()):
                fam.add_metric([status], n)

            class _One(Collector):
                def collect(self) -> Any:
                    yield fam

            extra = CollectorRegistry()
            extra.register(_One())
            text += generate_latest(extra)
        return text

    def close(self) -> None:
        """On a worker's exit: its live gauges stop counting; counters stay in the sum."""
        from prometheus_client import multiprocess
        self.flush()
        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(os.getpid(), str(self.dir))
