"""What the SMTP handler and the web app share inside one worker process: the store, delivery, the
scanners, the sender checks, metrics and the decision log, built from the configuration."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

from . import __version__, logformat
from .config import Config
from .delivery import Deliverer
from .metrics import Metrics
from .policy.decide import AuthResults, EventRecord, ScanOutcome
from .policy.headers import SCREENED_MARK
from .store import AsyncStore, Store, StoreError

log = logging.getLogger("sendergate")
decisions = logging.getLogger("sendergate.decision")


class Runtime:
    """What the SMTP handler and the web app share inside one process."""

    def __init__(self, cfg: Config, *, log_format: str = "kv") -> None:
        self.cfg = cfg
        self.log_format = log_format
        self.store = Store(cfg.store.url)
        self.astore = AsyncStore(self.store)
        self.deliverer = Deliverer(cfg.delivery, cfg.smtp.hostname)
        self.metrics = Metrics(workers=cfg.smtp.workers)  # shared by the pre-forked workers: see metrics.py
        self.scanners: Any = None
        self.authenticator: Any = None
        self.started = time.time()
        self._decision_stream: logging.StreamHandler | bool | None = None  # see logformat.plain_stream_handler
        if cfg.scan.any_scanner:
            from .scan import Scanners
            self.scanners = Scanners(cfg.scan)
            self.scanners.observe = self.metrics.observe_scan
        try:
            from .senderauth import Authenticator
        except ImportError:  # pragma: no cover - until the sender authentication package lands
            log.warning("sender authentication unavailable: allowlist matches are not checked")
        else:
            self.authenticator = Authenticator(cfg.dns)

    async def scan(self, message: bytes, *, spam: bool, virus: bool = True, envelope: Any = None) -> ScanOutcome:
        """`envelope`: a scan.ScanEnvelope (the SMTP facts rspamd scores with), or None."""
        if self.scanners is None:
            return ScanOutcome()
        return await self.scanners.scan(message, spam=spam, virus=virus, envelope=envelope)

    def trace_headers(self, session: Any, tx: Any, auth: AuthResults | None, *, screened: bool) -> bytes:
        peer = session.peer[0] if isinstance(session.peer, tuple) else "unknown"
        helo = "".join(c for c in (session.host_name or "unknown") if 32 < ord(c) < 127)[:100]
        proto = "ESMTPS" if getattr(session, "ssl", None) else "ESMTP"
        now = format_datetime(datetime.now(timezone.utc))
        lines = [f"Received: from {helo} ([{peer}])\r\n\tby {self.cfg.smtp.hostname} (SenderGate) with {proto};\r\n\t{now}"]
        if auth is not None:  # RFC 8601: whenever the checks ran, say what they found
            from .senderauth import authentication_results_header
            lines.insert(0, authentication_results_header(self.cfg.smtp.hostname, auth))
        if screened:
            lines.insert(0, SCREENED_MARK)
        return "".join(l.rstrip("\r\n") + "\r\n" for l in lines).encode("utf-8", "replace")

    def decision_log(self, ev: EventRecord) -> None:
        self.metrics.count(ev.verdict.value)
        if not decisions.isEnabledFor(logging.INFO):
            return
        fields = {"verdict": ev.verdict.value, "client_ip": ev.client_ip, "helo": ev.helo, "sender": ev.sender,
                  "recipient": ev.recipient, "reason": ev.reason}
        if ev.subject:
            fields["subject"] = ev.subject
        if ev.message_id:
            fields["message_id"] = ev.message_id
        if ev.spam_score is not None:
            fields["spam_score"] = ev.spam_score
        if ev.virus:
            fields["virus"] = ev.virus
        if self.log_format == "json":
            line = json.dumps({"event": "decision", **fields}, ensure_ascii=False)
        else:
            line = "decision " + " ".join(f"{k}={logformat.kv(v)}" for k, v in fields.items())
        if self._decision_stream is None:
            self._decision_stream = logformat.plain_stream_handler(decisions) or False
        if self._decision_stream:
            logformat.write_line(self._decision_stream, "INFO", decisions.name, line)
        else:
            decisions.info(line)

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
