"""A gateway killed (SIGKILL) under load loses nothing it answered for.

Every 550 with a link that a client received names a challenge, a token and an event that are in the
store after the crash: the group-commit writer settles a session's wait only after the commit that holds
its rows returned. Real gateway process, two workers (two writers on one SQLite file), many clients.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess
from tests.support.rawsmtp import RawSMTP

LINK = re.compile(r"/c/([A-Za-z0-9_-]{22})")
BODY = ("From: {s}\r\nTo: alice@example.org\r\nSubject: hello\r\nMessage-ID: <{s}>\r\n\r\nHello.\r\n"
        ".")  # RawSMTP.cmd adds the CRLF that ends the data


def refuse_until_killed(port: int, client: int, answered: list[tuple[str, str]], stop: threading.Event) -> None:
    """Unknown senders, one message a session, until the gateway is gone; keeps each 550's token."""
    n = 0
    while not stop.is_set():
        n += 1
        sender = f"c{client}-m{n}@stranger{client}.example"
        try:
            s = RawSMTP(port, timeout=10)
            s.transaction(sender, "alice@example.org")
            reply = s.cmd(BODY.format(s=sender))
            s.close()
        except (OSError, AssertionError, ConnectionError):
            return  # the gateway died mid-session: nothing was answered for
        m = LINK.search(reply)
        answered.append((sender, m.group(1) if reply.startswith("550") and m else f"no link: {reply}"))


@pytest.mark.parametrize("cycle", range(3))
def test_every_link_answered_before_a_sigkill_is_in_the_store(cycle: int) -> None:
    with GatewayProcess(workers=2, extra={"smtp": {"max_connections_per_ip": 1000},
                                          "challenge": {"max_pending": 0}}) as gw:
        gw.store.add_user("alice@example.org")
        answered: list[tuple[str, str]] = []
        stop = threading.Event()
        clients = [threading.Thread(target=refuse_until_killed, args=(gw.smtp_port, c, answered, stop))
                   for c in range(12)]
        for t in clients:
            t.start()
        deadline = time.monotonic() + 30
        while len(answered) < 150 + 50 * cycle and time.monotonic() < deadline:  # killed at a different moment
            time.sleep(0.01)
        gw.kill()  # SIGKILL to the whole process group: no shutdown, no flush
        stop.set()
        for t in clients:
            t.join(15)
        assert len(answered) >= 100, "too few refusals before the kill to mean anything"
        assert not [t for _, t in answered if t.startswith("no link")], answered[:3]
        db = gw.store_url.split("///", 1)[1]
        check = sqlite3.connect(db)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        check.close()
        challenged = {e.challenge_id for e in gw.events() if e.verdict == "challenged"}
        lost: list[Any] = []
        for sender, token in answered:
            row = gw.store.challenge_by_token(token)
            if row is None or row.sender != sender:
                lost.append((sender, token, "challenge/token"))
                continue
            if row.id not in challenged:
                lost.append((sender, token, "event"))
        assert not lost, f"{len(lost)} of {len(answered)} answered refusals missing after the crash: {lost[:5]}"
