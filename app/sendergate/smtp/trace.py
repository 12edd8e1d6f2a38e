"""The trace headers the gateway puts on a message it hands on: Received (RFC 5321 §4.4), our own
Authentication-Results (RFC 8601) and, for a screened copy, the screening mark."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

from ..policy.decide import AuthResults
from ..policy.headers import SCREENED_MARK
from ..senderauth import authentication_results_header


def trace_headers(hostname: str, session: Any, auth: AuthResults | None, *, screened: bool) -> bytes:
    """The header lines to put before the message, CRLF-ended. `session` is aiosmtpd's (peer, host_name, ssl)."""
    peer = session.peer[0] if isinstance(session.peer, tuple) else "unknown"
    helo = "".join(c for c in (session.host_name or "unknown") if 32 < ord(c) < 127)[:100]
    proto = "ESMTPS" if getattr(session, "ssl", None) else "ESMTP"
    now = _date()
    lines = [f"Received: from {helo} ([{peer}])\r\n\tby {hostname} (SenderGate) with {proto};\r\n\t{now}"]
    if auth is not None:  # RFC 8601: whenever the checks ran, say what they found
        lines.insert(0, authentication_results_header(hostname, auth))
    if screened:
        lines.insert(0, SCREENED_MARK)
    return "".join(line.rstrip("\r\n") + "\r\n" for line in lines).encode("utf-8", "replace")


_dated: list[Any] = [None, ""]  # (second, its RFC 5322 date): the date has whole seconds, made once for each


def _date() -> str:
    sec = int(time.time())
    if _dated[0] != sec:
        _dated[:] = [sec, format_datetime(datetime.fromtimestamp(sec, timezone.utc))]
    return str(_dated[1])
