"""aiosmtpd's protocol object, tuned for a gateway: enhanced status codes on every reply,
tracking of open transactions for graceful shutdown, and limits on connections."""

from __future__ import annotations

import asyncio
import re
import ssl
from typing import Any

from aiosmtpd.smtp import SMTP

# aiosmtpd's own replies carry no RFC 3463 code; add the fitting one.
_ENHANCED_FOR = {
    221: "2.0.0", 250: "2.0.0", 421: "4.3.0", 451: "4.3.0", 452: "4.3.1", 500: "5.5.2", 501: "5.5.4",
    502: "5.5.1", 503: "5.5.1", 504: "5.5.4", 530: "5.7.0", 550: "5.7.1", 552: "5.3.4", 553: "5.1.3",
    554: "5.7.0", 555: "5.5.4",
}
_HAS_ENHANCED = re.compile(rb"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")
_AIOSMTPD_TEXT = {
    b"552 Error: message size exceeds fixed maximum message size": b"552 5.3.4 Message size exceeds fixed maximum message size",
    b"552 Error: Too much mail data": b"552 5.3.4 Message size exceeds fixed maximum message size",
    b"500 Line too long (see RFC5321 4.5.3.1.6)": b"500 5.5.2 Line too long",
}


class GatewaySMTP(SMTP):
    """One SMTP connection. Long lines in DATA are passed on unchanged (up to 64 KiB a line)."""

    line_length_limit = 65536

    def __init__(self, *args: Any, sessions: set["GatewaySMTP"], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sessions = sessions
        self._in_ehlo = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sessions.add(self)
        _metrics(self).session_opened()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        _metrics(self).session_closed()
        super().connection_lost(error)

    @property
    def in_transaction(self) -> bool:
        return self.envelope is not None and bool(self.envelope.mail_from)

    async def smtp_EHLO(self, hostname: str) -> None:
        self._in_ehlo = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_ehlo = False

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            status = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii", "replace")
        status = _AIOSMTPD_TEXT.get(status, status)
        if not self._in_ehlo and len(status) >= 4 and status[:3].isdigit() and not _HAS_ENHANCED.match(status):
            code = int(status[:3])
            enhanced = _ENHANCED_FOR.get(code)
            if enhanced and code != 220:
                sep = status[3:4]
                status = status[:3] + sep + enhanced.encode() + b" " + status[4:].replace(b"Error: ", b"")
        await super().push(status)

    async def shutdown_idle(self) -> None:
        """Close this connection politely if no transaction is open (used on SIGTERM)."""
        if self.transport is not None and not self.transport.is_closing():
            try:
                await super().push(b"421 4.3.2 Service shutting down, try again later")
            except (ConnectionError, OSError):
                pass
            self.transport.close()


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


class _NoMetrics:
    def session_opened(self) -> None: ...
    def session_closed(self) -> None: ...


def _metrics(server: SMTP) -> Any:
    """The runtime's metrics (a handler without a runtime, as in unit tests, counts nothing)."""
    return getattr(getattr(server.event_handler, "rt", None), "metrics", None) or _NoMetrics()
