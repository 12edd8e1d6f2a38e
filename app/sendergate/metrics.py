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

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("sendergate.metrics")

_PREFIX = "sendergate-metrics-"
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


class Metrics:
    """Counters and latency histograms; the method names are what the SMTP side calls."""

    def __init__(self, *, workers: int = 1) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

        workers = workers or os.cpu_count() or 1  # 0: one per core, as smtp.workers says
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
        self.api_seconds = Histogram("sendergate_api_request_seconds", "HTTP API request latency",
                                     ["method", "route", "status"], registry=reg, buckets=LATENCY_BUCKETS)

    # -- what the SMTP side reports ----------------------------------------------------
    def session_opened(self) -> None:
        self.sessions.inc()
        self.open_sessions.inc()

    def session_closed(self) -> None:
        self.open_sessions.dec()

    def observe_data(self, seconds: float) -> None:
        self.data_seconds.observe(seconds)

    def observe_scan(self, scanner: str, seconds: float) -> None:
        """Scanners.observe: called by the scanners once per scanner per scan, by the scan itself
        (their `last_timings` may already be another session's scan)."""
        self.scan_seconds.labels(scanner).observe(seconds)

    def observe_delivery(self, seconds: float, *, ok: bool) -> None:
        self.delivery_seconds.labels("ok" if ok else "failed").observe(seconds)

    def count(self, verdict: str) -> None:
        child = self._verdict_children.get(verdict)
        if child is None:  # labels() takes a lock and builds a key on every call: once per verdict is enough
            child = self._verdict_children[verdict] = self.verdicts.labels(verdict)
        child.inc()

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
        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(os.getpid(), str(self.dir))
