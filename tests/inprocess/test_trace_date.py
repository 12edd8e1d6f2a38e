"""The Received header's date (smtp/trace.py) is made once a second (issue 18 item 1): it is still the
date of the second the message is handed on, as email.utils.format_datetime writes it."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime
from types import SimpleNamespace

import pytest

from sendergate.smtp import trace

pytestmark = pytest.mark.fast


def test_each_second_has_its_own_date(monkeypatch: pytest.MonkeyPatch) -> None:
    session = SimpleNamespace(peer=("192.0.2.7", 2525), host_name="mail.far.test")
    for now in (1_780_000_000.2, 1_780_000_000.9, 1_780_000_001.0, 1_780_003_601.5, 1_780_000_000.1):
        monkeypatch.setattr("time.time", lambda now=now: now)
        expected = format_datetime(datetime.fromtimestamp(int(now), timezone.utc))
        assert expected.endswith("+0000")
        head = trace.trace_headers("mx.example.org", session, None, screened=False)
        assert head == (f"Received: from mail.far.test ([192.0.2.7])\r\n\tby mx.example.org (SenderGate) with ESMTP;"
                        f"\r\n\t{expected}\r\n").encode()
