"""The composition root: what the SMTP handler and the web app share inside one worker process (store,
delivery, scanners, sender checks, metrics, decision log), typed by what they are asked to do, and
`build_runtime`, the one place that builds the real parts from the configuration."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from . import __version__, delivery
from .config import Config
from .decisionlog import DecisionLog
from .delivery import Delivered, Outbound
from .metrics import Metrics
from .policy.decide import AuthResults, EventRecord, ScanOutcome
from .senderauth import Authenticator
from .store import AsyncStore, Store, StoreError

if TYPE_CHECKING:  # the scanners' package loads aiospamc; only where one is configured
    from .scan.rspamd import ScanEnvelope

log = logging.getLogger("sendergate")


class Scanner(Protocol):
    """Virus and spam scanning at the end of DATA (scan.Scanners). Never raises for scanner trouble:
    that is `virus_failed`/`spam_failed` in the outcome."""

    async def scan(self, message: bytes, *, spam: bool, virus: bool = True,
                   envelope: ScanEnvelope | None = None) -> ScanOutcome:
        """`envelope`: the SMTP facts rspamd scores with, or None."""
        ...

    async def ping(self) -> dict[str, str]:
        """scanner name -> "ok" or why not (for /healthz and check-config)."""
        ...


class Deliverer(Protocol):
    """Hands accepted mail on (delivery.Deliverer); raises delivery.DeliveryError with the downstream's reply."""

    async def deliver(self, out: Outbound, *, folder: str = "") -> Delivered: ...

    async def close(self) -> None:
        """At the worker's end: pooled downstream connections closed (QUIT)."""
        ...


class SenderAuthenticator(Protocol):
    """SPF, DKIM and DMARC for one message (senderauth.Authenticator); raises
    senderauth.SenderCheckUnavailable when the checks cannot run."""

    async def check(self, message: bytes, *, envelope_sender: str | None, helo: str,
                    client_ip: str) -> AuthResults: ...

    def close(self) -> None:
        """Stop its worker threads (lookups under way finish)."""
        ...


class MetricsSink(Protocol):
    """What the SMTP side and the web app report (metrics.Metrics), and what /metrics serves."""

    def session_opened(self) -> None: ...
    def session_closed(self) -> None: ...
    def observe_data(self, seconds: float) -> None: ...
    def observe_scan(self, scanner: str, seconds: float) -> None: ...
    def observe_delivery(self, seconds: float, *, ok: bool) -> None: ...
    def count(self, verdict: str) -> None: ...
    def count_confirmation(self) -> None: ...
    def observe_api(self, method: str, route: str, status: int, seconds: float) -> None: ...
    def render(self, challenge_counts: dict[str, int] | None = None) -> bytes: ...

    def close(self) -> None:
        """At the worker's end: its live gauges stop counting."""
        ...


class DecisionSink(Protocol):
    """Called once per SMTP decision (decisionlog.DecisionLog): the log line and the verdict count."""

    def __call__(self, ev: EventRecord) -> None: ...


@dataclass(eq=False)
class Runtime:
    """One worker's parts. The store is the concrete class: it has one implementation, and tests use
    it for real on a temporary SQLite file; every other part is a Protocol, so a test fake, the
    milter's Postfix-side delivery or another scanner fits without touching the handler."""

    cfg: Config
    store: Store
    astore: AsyncStore
    deliverer: Deliverer
    metrics: MetricsSink
    decision_log: DecisionSink
    scanners: Scanner | None = None  # None: no scanner configured
    authenticator: SenderAuthenticator | None = None
    log_format: str = "kv"  # "kv" or "json", for the lines other parts write (the confirmation page's)
    started: float = field(default_factory=time.time)

    async def health(self) -> dict[str, Any]:
        """`ok` or `degraded`, overall and per part. Served to anyone (/healthz), so no error text:
        store URLs, exception strings and scanner replies go to the log only (SPEC §4.5 item 6)."""
        out: dict[str, Any] = {"status": "ok", "version": __version__}
        try:
            await self.astore.run(self.store.ping)
            out["store"] = "ok"
        except StoreError as exc:
            log.warning("health: store unreachable: %s", exc)
            out["store"] = "unreachable"
            out["status"] = "degraded"
        if self.scanners is not None:
            scanners = await self.scanners.ping()
            out["scanners"] = {}
            for name, state in scanners.items():
                if state != "ok":
                    log.warning("health: scanner %s: %s", name, state)
                out["scanners"][name] = "ok" if state == "ok" else "unavailable"
            if any(v != "ok" for v in scanners.values()):
                out["status"] = "degraded"
        return out

    async def close(self) -> None:
        """At the worker's end: the store's threads and connections, the sender check's threads, the
        metrics' live gauges."""
        await self.deliverer.close()
        await self.astore.close()
        self.store.close()
        if self.authenticator is not None:
            self.authenticator.close()
        self.metrics.close()


def build_runtime(cfg: Config, *, log_format: str = "kv", workers: int | None = None) -> Runtime:
    """The real parts, as the configuration asks for them. `workers`: how many processes the running
    command forked (the milter's differ from smtp.workers); metrics' shared directory depends on it."""
    store = Store(cfg.store.url)
    # shared by the pre-forked workers: see metrics.py
    metrics = Metrics(workers=cfg.smtp.workers if workers is None else workers)
    scanners: Scanner | None = None
    if cfg.scan.any_scanner:
        from .scan import Scanners  # aiospamc and its loguru only where a scanner is configured

        configured = Scanners(cfg.scan)
        configured.observe = metrics.observe_scan
        scanners = configured
    return Runtime(cfg=cfg, store=store, astore=AsyncStore(store),
                   deliverer=delivery.Deliverer(cfg.delivery, cfg.smtp.hostname), metrics=metrics,
                   decision_log=DecisionLog(log_format, count=metrics.count), scanners=scanners,
                   authenticator=Authenticator(cfg.dns), log_format=log_format)
