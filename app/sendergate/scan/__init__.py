"""Virus and spam scanning at the end of DATA (SPEC §4.2 item 1).

`Scanners` is the shell around clamd and the spam scanner (spamd, or rspamd
instead: `scan.rspamd`; never both) that the SMTP handler calls: both scans
run concurrently, each bounded by `scan.timeout`, so the added
latency is the slower of the two. Scanner trouble never raises: it becomes
`virus_failed` / `spam_failed` with a short reason, and the pure policy
(`policy.decide.decide_data`) turns that into 451 or accept per
`scan.on_failure`.

Size caps (clamd: a message above the cap passes unscanned by it, and the
outcome says so in `virus_skipped`):
- spamd: `scan.spamd_max_size` (default 500 kB, as spamc's). A bigger message
  is scanned on its first part: the whole header block and the body up to the
  cap, cut at a line end (`spam_partial` says how much). Never skipped: a
  spammer would only have to pad his message (SPEC §4.5 item 1).
- clamd: `scan.clamd_max_size`; 0 (default) means "clamd's own
  StreamMaxLength". clamd has no command that reports its configuration, so
  rather than guess we stream the message and let clamd say
  "INSTREAM size limit exceeded", which is recorded as skipped, not failed.
  The SMTP size limit (25 MB by default) bounds what we stream.

clamd is spoken to by our own small protocol module (`scan.clamd`, see its
docstring for why aioclamd does not fit); spamd through aiospamc
(`scan.spamd`); rspamd by our own HTTP client (`scan.rspamd`, see its
docstring for why not httpx). rspamd gets the whole message (as its milter
does) up to `scan.rspamd_max_size` (rspamd's own max_message, 50 MiB by default:
above it rspamd would refuse it, so a bigger one is scanned on its first part) and
the envelope.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from sendergate.config import ScanConfig, parse_rspamd_url, parse_socket_spec
from sendergate.policy.decide import ScanOutcome

from . import clamd
from .clamd import ClamdError
from .rspamd import RspamdClient, RspamdError, ScanEnvelope, new_queue_id
from .spamd import SpamdClient, SpamdError

T = TypeVar("T")

__all__ = ["Scanners", "ScanOutcome", "ScanEnvelope", "PING_TIMEOUT", "first_part", "merge"]

log = logging.getLogger("sendergate.scan")

# /healthz and check-config must answer promptly even when scan.timeout is long.
PING_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class _Half:
    """One scanner's share of a ScanOutcome."""

    outcome: ScanOutcome
    seconds: float


class Scanners:
    """clamd and spamd (or rspamd) as configured by `[scan]`; any may be off ("")."""

    def __init__(self, config: ScanConfig) -> None:
        self.config = config
        self.clamd_address = parse_socket_spec(config.clamd) if config.clamd else None
        self.spamd_address = parse_socket_spec(config.spamd) if config.spamd else None
        self._spamd = SpamdClient(self.spamd_address, config.timeout) if self.spamd_address else None
        self._rspamd = RspamdClient(parse_rspamd_url(config.rspamd)) if config.rspamd else None
        # Seconds the latest scan spent in each scanner. With concurrent SMTP
        # sessions "latest" may be another session's scan: for metrics prefer
        # `observe`, called once per scanner per scan.
        self.last_timings: dict[str, float] = {}
        self.observe: Callable[[str, float], None] | None = None

    async def scan(self, message: bytes, *, spam: bool, virus: bool = True,
                   envelope: ScanEnvelope | None = None) -> ScanOutcome:
        """Virus-scan the message (unless `virus` is False: scanned already); spam-scan it too
        when `spam` (every path but an authenticated allowlisted sender). `envelope`: the SMTP
        facts rspamd scores with (spamd reads the message only)."""
        jobs: dict[str, Awaitable[_Half]] = {}
        if virus and self.clamd_address is not None:
            jobs["clamd"] = self._timed(self._virus_scan, message)
        if spam and self._spamd is not None:
            jobs["spamd"] = self._timed(self._spam_scan, message)
        if spam and self._rspamd is not None:
            jobs["rspamd"] = self._timed(lambda m: self._rspamd_scan(m, envelope), message)
        halves = await asyncio.gather(*jobs.values())
        self.last_timings = {name: half.seconds for name, half in zip(jobs, halves, strict=True)}
        if self.observe is not None:
            for name, seconds in self.last_timings.items():
                try:
                    self.observe(name, seconds)
                except Exception:  # a metrics bug must not cost the message its scan result
                    log.exception("scan timing observer failed for %s", name)
        outcome = ScanOutcome()
        for half in halves:
            outcome = _merge(outcome, half.outcome)
        return outcome

    async def ping(self) -> dict[str, str]:
        """Does each configured scanner answer PING? {"clamd": "ok", "spamd": "unreachable at ...: ..."}."""
        checks: dict[str, Awaitable[str]] = {}
        if (clamd_address := self.clamd_address) is not None:
            checks["clamd"] = self._ping_one(lambda: clamd.ping(clamd_address))
        if self._spamd is not None:
            checks["spamd"] = self._ping_one(self._spamd.ping)
        if self._rspamd is not None:
            checks["rspamd"] = self._ping_one(self._rspamd.ping)
        answers = await asyncio.gather(*checks.values())
        return dict(zip(checks, answers, strict=True))

    # -- one scanner each -------------------------------------------------

    async def _virus_scan(self, message: bytes) -> ScanOutcome:
        address = self.clamd_address
        if address is None:  # no clamd configured: scan() does not call this
            return ScanOutcome()
        cap = self.config.clamd_max_size
        if cap and len(message) > cap:
            return ScanOutcome(virus_skipped=f"over size cap ({len(message)} > {cap} bytes)")
        verdict, reason = await self._bounded("clamd", self.config.clamd, clamd.instream(address, message))
        if verdict is None:
            return ScanOutcome(virus_failed=reason)
        if verdict.over_limit:
            return ScanOutcome(virus_skipped=f"over clamd's StreamMaxLength ({len(message)} bytes)")
        return ScanOutcome(virus=verdict.virus)

    async def _spam_scan(self, message: bytes) -> ScanOutcome:
        cap = self.config.spamd_max_size
        partial = None
        if cap and len(message) > cap:
            size = len(message)
            message = first_part(message, cap)
            partial = f"first {len(message)} of {size} bytes"
        assert self._spamd is not None
        report, reason = await self._bounded("spamd", self.config.spamd, self._spamd.symbols(message))
        if report is None:
            return ScanOutcome(spam_failed=reason)
        return ScanOutcome(spam_score=report.score, spam_symbols=report.symbols, spam_partial=partial)

    async def _rspamd_scan(self, message: bytes, envelope: ScanEnvelope | None) -> ScanOutcome:
        assert self._rspamd is not None
        queue_id = new_queue_id()
        cap = self.config.rspamd_max_size
        partial = None
        if cap and len(message) > cap:  # above rspamd's max_message it would fail: scan the first part
            size = len(message)
            message = first_part(message, cap)
            partial = f"first {len(message)} of {size} bytes"
        report, reason = await self._bounded("rspamd", f"{self.config.rspamd} (queue id {queue_id})",
                                             self._rspamd.check(message, envelope, queue_id))
        if report is None:
            return ScanOutcome(spam_scanner="rspamd", spam_failed=reason, scan_id=queue_id)
        # Whether its action or our threshold decides is the policy's (scan.rspamd_action).
        return ScanOutcome(spam_scanner="rspamd", spam_score=report.score, spam_symbols=report.symbols,
                           spam_action=report.action, spam_required=report.required_score, scan_id=queue_id,
                           spam_partial=partial)

    async def _bounded(self, name: str, where: str, call: Awaitable[T]) -> tuple[T | None, str]:
        """One scanner's answer within scan.timeout, or (None, why not): a scanner's trouble, even a bug
        of ours or its library's, fails this scan and keeps the session."""
        try:
            async with asyncio.timeout(self.config.timeout):
                return await call, ""
        except TimeoutError:
            reason = f"timed out after {self.config.timeout:g} s"
        except (ClamdError, SpamdError, RspamdError) as exc:
            reason = str(exc)
        except Exception as exc:
            log.exception("%s %s: unexpected error", name, where)
            reason = f"internal error: {exc.__class__.__name__}: {exc}"
        log.warning("%s %s failed: %s", name, where, reason)
        return None, reason

    async def _ping_one(self, call: Callable[[], Awaitable[None]]) -> str:
        timeout = min(self.config.timeout, PING_TIMEOUT)
        try:
            async with asyncio.timeout(timeout):
                await call()
        except TimeoutError:
            return f"no answer within {timeout:g} s"
        except (ClamdError, SpamdError, RspamdError) as exc:
            return str(exc)
        return "ok"

    @staticmethod
    async def _timed(scan: Callable[[bytes], Awaitable[ScanOutcome]], message: bytes) -> _Half:
        started = time.perf_counter()
        outcome = await scan(message)
        return _Half(outcome, time.perf_counter() - started)


def first_part(message: bytes, cap: int) -> bytes:
    """The first `cap` bytes of a message cut at a line end, and never less than its header block."""
    head_end = message.find(b"\r\n\r\n")
    limit = max(cap, head_end + 4) if head_end >= 0 else cap
    if limit >= len(message):
        return message
    cut = message.rfind(b"\n", 0, limit)
    return message[:cut + 1] if cut >= max(head_end, 0) else message[:limit]


def merge(into: ScanOutcome, part: ScanOutcome) -> ScanOutcome:
    """One outcome from two scans of the same message (each sets only its own scanner's fields)."""
    return _merge(into, part)


def _merge(into: ScanOutcome, part: ScanOutcome) -> ScanOutcome:
    """Each half sets only its own scanner's fields."""
    defaults = ScanOutcome()
    changes = {name: getattr(part, name) for name in ScanOutcome.__slots__
               if getattr(part, name) != getattr(defaults, name)}
    return replace(into, **changes)
