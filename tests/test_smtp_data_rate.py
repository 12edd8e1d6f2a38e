"""DATA's deadline moves with progress above `smtp.min_data_rate` (smtp/server.py, SessionTemplate's rule).

A real gateway process with `smtp.timeout = 2s` and the default 500 bytes/s; raw sockets on loopback pace
the body. A sender that keeps delivering at or above the rate is never cut, however long the body takes; a
sender that stalls for the timeout, or trickles below the rate (slowloris), is cut with "421 4.4.2" and
nothing of that message is recorded or delivered. Bounds are generous (the rule's own bound plus seconds):
the sweep checks deadlines every timeout/8, and a loaded machine adds latency.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select

from sendergate.store import schema
from tests.support.gateway import GatewayProcess
from tests.support.rawsmtp import RawSMTP

TIMEOUT = 2.0
RATE = 500  # bytes per second (the default, set explicitly)
KNOWN, STRANGER, ALICE = "bob@friend.example", "mallory@stranger.example", "alice@example.org"
HEAD = b"From: Bob <bob@friend.example>\r\nTo: alice@example.org\r\nSubject: slow\r\n\r\n"
LINE = b"x" * 98 + b"\r\n"  # 100 bytes; never a "." line


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayProcess]:
    g = GatewayProcess(extra={"smtp": {"timeout": f"{TIMEOUT}s", "min_data_rate": RATE}})
    alice, _ = g.store.add_user(ALICE)
    g.store.add_entry(alice.id, "allow", KNOWN)
    g.start()
    yield g
    g.close()


def delivered(gw: GatewayProcess) -> list[Path]:
    new = gw.maildir / ALICE / "Maildir" / "new"
    return sorted(new.iterdir()) if new.exists() else []


def recorded(gw: GatewayProcess) -> tuple[int, int, int]:
    """Events, challenges, delivered files: what a message leaves behind."""
    with gw.store.engine.connect() as conn:
        events = conn.execute(sql_select(func.count()).select_from(schema.events)).scalar_one()
        challenges = conn.execute(sql_select(func.count()).select_from(schema.challenges)).scalar_one()
    return events, challenges, len(delivered(gw))


def pace(c: RawSMTP, seconds: float, chunk: bytes, every: float) -> float | None:
    """Send `chunk` every `every` s for `seconds`. Returns when the server cut the connection (seconds
    from the start), or None when it was still open at the end. What the server said is left in c.buf."""
    start = time.monotonic()
    due = start
    while (now := time.monotonic()) - start < seconds:
        readable, _, _ = select.select([c.sock], [], [], max(0.0, min(due, start + seconds) - now))
        if readable:
            try:
                data = c.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            c.buf += data
            if not data:
                return time.monotonic() - start
            continue  # a reply mid-DATA: kept in c.buf, the connection is watched on
        if time.monotonic() >= due:
            try:
                c.sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start
            due += every
    return None


def cut_within(c: RawSMTP, seconds: float) -> float | None:
    """Send nothing; seconds until the server closes the connection, or None within `seconds`."""
    return pace(c, seconds, b"", seconds + 1)


def opened(gw: GatewayProcess, sender: str = KNOWN) -> RawSMTP:
    c = RawSMTP(gw.smtp_port, timeout=30)
    c.transaction(sender, ALICE)
    c.send(HEAD)
    return c


def test_a_body_sent_steadily_over_several_timeouts_is_delivered_and_the_idle_timeout_still_holds(
        gw: GatewayProcess) -> None:
    """4,000 bytes/s (8 x the rate) for 3.5 timeouts: delivered whole. Then the session is a command
    session again: a NOOP a second keeps it, silence is cut at the timeout with 421 4.4.2, not before."""
    before = len(delivered(gw))
    c = opened(gw)
    assert pace(c, 3.5 * TIMEOUT, LINE * 4, 0.1) is None, c.buf  # the old code cut this at 2 s
    assert c.cmd(".").startswith("250"), c.buf
    (msg,) = delivered(gw)[before:]
    assert msg.read_bytes().count(LINE) >= 3.5 * TIMEOUT * 10 * 4 * 0.8  # all of it (paced sends may lag)
    for _ in range(3):  # 3 s of commands: longer than the timeout, never cut
        assert c.cmd("NOOP").startswith("250")
        time.sleep(1.0)
    started = time.monotonic()
    cut = cut_within(c, 3 * TIMEOUT + 5)
    idle = time.monotonic() - started
    assert cut is not None and TIMEOUT - 1.0 <= idle <= 3 * TIMEOUT + 5
    assert c.buf.startswith(b"421 4.4.2 "), c.buf
    c.close()


def test_a_stall_longer_than_the_timeout_mid_data_is_cut_and_nothing_is_recorded(gw: GatewayProcess) -> None:
    """Steady above the rate for 2.5 timeouts, then silence: 421 4.4.2 about a timeout after the last byte
    (the credit earned never lasts longer than `timeout`), and the half message leaves no event, no
    challenge and no delivery, for a known sender and for a stranger alike."""
    for sender in (KNOWN, STRANGER):
        before = recorded(gw)
        c = opened(gw, sender)
        assert pace(c, 2.5 * TIMEOUT, LINE * 4, 0.1) is None, c.buf  # the old code cut this at 2 s
        cut = cut_within(c, 3 * TIMEOUT + 5)
        assert cut is not None and TIMEOUT - 1.0 <= cut, cut
        assert c.buf.startswith(b"421 4.4.2 "), c.buf
        c.close()
        time.sleep(0.5)
        assert recorded(gw) == before
    with gw.smtp() as s:  # the worker goes on serving
        assert s.noop()[0] == 250


@pytest.mark.parametrize(("chunk", "every"), [(b"x", 0.5), (b"y" * 38 + b"\r\n", 0.2)],
                         ids=["a-byte-every-half-second", "200-bytes-a-second"])
def test_a_trickle_below_the_rate_is_cut_whatever_came_before(gw: GatewayProcess, chunk: bytes,
                                                               every: float) -> None:
    """A burst of 200 KB (400 s of credit, were credit banked) and 2.5 timeouts above the rate, then a
    trickle below it: cut within timeout / (1 - r / rate) of the trickle's start (2 s and 3.3 s here), which
    the test allows 3 timeouts plus 5 s for. Nothing is delivered."""
    before = recorded(gw)
    c = opened(gw)
    c.send(LINE * 2000)
    assert pace(c, 2.5 * TIMEOUT, LINE * 4, 0.1) is None, c.buf  # the old code cut this at 2 s
    cut = pace(c, 3 * TIMEOUT + 5, chunk, every)
    assert cut is not None, "a trickle below smtp.min_data_rate held the session"
    assert c.buf.startswith(b"421 4.4.2 ") or not c.buf, c.buf  # the 421 may be lost to a reset mid-send
    c.close()
    time.sleep(0.5)
    assert recorded(gw) == before


def test_a_fast_pipelined_sender_is_unaffected(gw: GatewayProcess) -> None:
    """Everything in one write (2 MB of body, a second transaction, QUIT): the replies come in order."""
    before = len(delivered(gw))
    body = HEAD + LINE * 20_000
    c = RawSMTP(gw.smtp_port, timeout=30)
    try:
        c.send(b"EHLO client.test\r\n" + (f"MAIL FROM:<{KNOWN}>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n".encode()
                                           + body + b".\r\n") * 2 + b"QUIT\r\n")
        codes = [c.reply()[:3] for _ in range(10)]
        assert codes == ["250"] + ["250", "250", "354", "250"] * 2 + ["221"], codes
    finally:
        c.close()
    assert len(delivered(gw)) == before + 2
