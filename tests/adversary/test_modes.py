"""Mailbox modes and role mailboxes through the real gateway (SPEC §4.6, §4.5): a `sendergate gateway`
process with real clamd (EICAR) and spamd (GTUBE), Maildir delivery read back from disk, on SQLite and on
PostgreSQL. The attacker's view: observe and off never weaken scanning; the sender cannot choose the mode;
a role mailbox is no way around the gate for another recipient of the same transaction; a flood to
postmaster@ meets the same per-client limits as any other mail. The full mode matrix is in
tests/inprocess/test_modes.py."""

from __future__ import annotations

import contextlib
import itertools
import smtplib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import GatewayProcess
from tests.support.scanners import EICAR, GTUBE, ScannerDaemon, start_clamd, start_spamd

STRANGER = "someone@stranger.test"
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def scanners() -> Iterator[tuple[ScannerDaemon, ScannerDaemon]]:
    spamd = start_spamd()
    try:
        clamd = start_clamd()
    except BaseException:
        spamd.stop()
        raise
    yield clamd, spamd
    clamd.stop()
    spamd.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gw(request: pytest.FixtureRequest, scanners: tuple[ScannerDaemon, ScannerDaemon]) -> Iterator[GatewayProcess]:
    clamd, spamd = scanners
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database("gwmodes_" + uuid.uuid4().hex[:10])
    g = GatewayProcess(store_url=url, extra={
        "scan": {"clamd": clamd.tcp_spec, "spamd": spamd.tcp_spec, "timeout": "20s"},
        "smtp": {"max_connections_per_ip": 3},
        "challenge": {"role_owner": "carol@example.org"}})
    g.store.add_user("alice@example.org", name="Alice")  # enforce (the default)
    dora, _ = g.store.add_user("dora@example.org", name="Dora")
    g.store.set_user_mode(dora.id, "observe")
    erin, _ = g.store.add_user("erin@example.org", name="Erin")
    g.store.set_user_mode(erin.id, "off")
    g.store.add_user("carol@example.org", name="Carol", admin=True)
    g.start()
    yield g
    g.close()


def message(to: str, body: str = "Hello,\r\nare you free on Tuesday?\r\n") -> tuple[bytes, str]:
    msgid = f"<modes-{next(_ids)}-{time.monotonic_ns()}@stranger.test>"
    head = f"From: Someone <{STRANGER}>\r\nTo: {to}\r\nSubject: Tuesday\r\nMessage-ID: {msgid}\r\n"
    return (head + "\r\n" + body).encode(), msgid


def transaction(gw: GatewayProcess, rcpts: list[str], msg: bytes, sender: str = STRANGER) -> list[tuple[int, str]]:
    """MAIL, each RCPT, and DATA when one was accepted: every reply."""
    out = []
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=60) as s:
        s.ehlo("client.stranger.test")
        out.append(s.mail(sender))
        out += [s.rcpt(r) for r in rcpts]
        if any(code == 250 for code, _ in out[1:]):
            try:
                out.append(s.data(msg))
            except smtplib.SMTPDataError as exc:
                out.append((exc.smtp_code, exc.smtp_error))
    return [(c, t.decode() if isinstance(t, bytes) else t) for c, t in out]


def events_for(gw: GatewayProcess, msgid: str) -> list[tuple[str, str, str]]:
    return [(e.recipient, e.verdict, e.reason) for e in gw.events() if e.message_id == msgid]


def delivered_to(gw: GatewayProcess, msgid: str) -> list[str]:
    """The Maildir mailboxes (inbox or a folder) holding the message."""
    found = []
    for f in gw.maildir.glob("*/Maildir/**/new/*"):
        if msgid.encode() in f.read_bytes():
            found.append(f.relative_to(gw.maildir).parts[0] + ("/" + f.parts[-3] if f.parts[-3] != "Maildir" else ""))
    return found


# -- modes -----------------------------------------------------------------------------------------

def test_observe_delivers_and_records_what_would_have_been_challenged(gw: GatewayProcess) -> None:
    msg, msgid = message("dora@example.org")
    replies = transaction(gw, ["dora@example.org"], msg)
    assert replies[-1][0] == 250, replies
    [(_, verdict, reason)] = events_for(gw, msgid)
    assert verdict == "observed" and "would have been challenged" in reason
    assert delivered_to(gw, msgid) == ["dora@example.org"]  # the inbox, not Screened


def test_off_delivers_with_the_mode_in_the_reason(gw: GatewayProcess) -> None:
    msg, msgid = message("erin@example.org")
    replies = transaction(gw, ["erin@example.org"], msg)
    assert replies[-1][0] == 250, replies
    [(_, verdict, reason)] = events_for(gw, msgid)
    assert verdict == "delivered" and "mode off" in reason
    assert delivered_to(gw, msgid) == ["erin@example.org"]


@pytest.mark.parametrize("rcpt", ["dora@example.org", "erin@example.org", "postmaster@example.org",
                                  "abuse@example.org"])
@pytest.mark.parametrize(("payload", "verdict"), [(GTUBE, "spam"), (EICAR, "virus")])
def test_observe_off_and_role_never_weaken_scanning(gw: GatewayProcess, rcpt: str, payload: bytes,
                                                     verdict: str) -> None:
    msg, msgid = message(rcpt, "Look:\r\n" + payload.decode() + "\r\n")
    replies = transaction(gw, [rcpt], msg)
    assert replies[-1][0] == 554, replies
    assert [v for _, v, _ in events_for(gw, msgid)] == [verdict]
    assert delivered_to(gw, msgid) == []


@pytest.mark.parametrize("rcpt", ["dora+enforce@example.org", "DORA@example.org"])
def test_tag_and_case_keep_the_mailboxs_mode(gw: GatewayProcess, rcpt: str) -> None:
    msg, msgid = message(rcpt)
    assert transaction(gw, [rcpt], msg)[-1][0] == 250
    assert [v for _, v, _ in events_for(gw, msgid)] == ["observed"]


@pytest.mark.parametrize("rcpt", ["alice+off@example.org", "alice+postmaster@example.org", "Alice@EXAMPLE.ORG"])
def test_sender_cannot_choose_a_weaker_mode(gw: GatewayProcess, rcpt: str) -> None:
    msg, msgid = message(rcpt)
    replies = transaction(gw, [rcpt], msg)
    assert replies[-1][0] == 550 and "/c/" in replies[-1][1], replies
    assert [v for _, v, _ in events_for(gw, msgid)] == ["challenged"]


def test_cli_sets_the_mode_and_the_running_gateway_applies_it(gw: GatewayProcess) -> None:
    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "sendergate", "users", *args, "--config", str(gw.config_path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout
    gw.store.add_user("frank@example.org")
    assert "frank@example.org" in cli("mode", "frank@example.org", "observe")
    assert "mode: observe" in next(line for line in cli("list").splitlines() if line.startswith("frank@"))
    msg, msgid = message("frank@example.org")
    assert transaction(gw, ["frank@example.org"], msg)[-1][0] == 250
    assert [v for _, v, _ in events_for(gw, msgid)] == ["observed"]
    cli("mode", "frank@example.org", "default")
    assert "mode: enforce (default)" in next(line for line in cli("list").splitlines() if line.startswith("frank@"))
    msg, msgid = message("frank@example.org")
    assert transaction(gw, ["frank@example.org"], msg)[-1][0] == 550
    bad = subprocess.run([sys.executable, "-m", "sendergate", "users", "mode", "frank@example.org", "lax",
                          "--config", str(gw.config_path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "invalid choice" in bad.stderr


# -- role mailboxes --------------------------------------------------------------------------------

@pytest.mark.parametrize("rcpt", ["postmaster@example.org", "abuse@example.org", "PostMaster@example.org",
                                  "postmaster@sub.example.org", "Postmaster"])
def test_role_mailbox_nobody_has_reaches_the_owner(gw: GatewayProcess, rcpt: str) -> None:
    msg, msgid = message(rcpt)
    replies = transaction(gw, [rcpt], msg)
    assert replies[-1][0] == 250, replies
    [(_, verdict, reason)] = events_for(gw, msgid)
    assert verdict == "delivered" and "role mailbox" in reason
    assert delivered_to(gw, msgid) == ["carol@example.org"]


def test_role_looking_addresses_elsewhere_are_relaying(gw: GatewayProcess) -> None:
    for rcpt in ("postmaster@stranger.test", "@example.org:postmaster@stranger.test",
                 "postmaster%stranger.test@example.org"):
        replies = transaction(gw, [rcpt], b"")
        # refused at RCPT: relaying denied, or (the source route) a syntax error from the SMTP parser
        assert replies[1][0] in (550, 553) and len(replies) == 2, (rcpt, replies)


@pytest.mark.parametrize("order", [("postmaster@example.org", "alice@example.org"),
                                   ("alice@example.org", "postmaster@example.org")])
def test_role_mailbox_is_no_way_around_the_gate_for_alice(gw: GatewayProcess, order: tuple[str, str]) -> None:
    """A stranger to postmaster@ and alice@ at once: the second recipient is sent to its own transaction
    (452 4.5.3, as a real MTA retries it); postmaster's copy is delivered, alice is still challenged."""
    msg, msgid = message("postmaster@example.org, alice@example.org")
    replies = transaction(gw, list(order), msg)
    assert replies[1][0] == 250 and replies[2][0] == 452 and "4.5.3" in replies[2][1], replies
    retry = transaction(gw, [order[1]], msg)  # what the sending server does next
    assert sorted(v for _, v, _ in events_for(gw, msgid)) == ["challenged", "delivered"]
    assert delivered_to(gw, msgid) == ["carol@example.org"]  # alice got nothing, not even screened
    challenged = [r for r, v, _ in events_for(gw, msgid) if v == "challenged"]
    assert challenged == ["alice@example.org"]
    assert (replies[-1] if order[1] == "alice@example.org" else retry[-1])[0] in (250, 550)


def test_flood_to_postmaster_meets_the_per_client_connection_cap(gw: GatewayProcess) -> None:
    """smtp.max_connections_per_ip = 3 here: a fourth concurrent session to send to postmaster@ is refused
    like any other (the role mailbox adds no exemption)."""
    held = []
    try:
        for _ in range(3):
            s = smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30)
            s.ehlo("flood.test")
            assert s.mail(STRANGER)[0] == 250 and s.rcpt("postmaster@example.org")[0] == 250
            held.append(s)
        with socket.create_connection(("127.0.0.1", gw.smtp_port), timeout=30) as fourth:
            greeting = fourth.recv(512)
        assert greeting.startswith(b"421"), greeting
    finally:
        for s in held:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                s.quit()


def test_maildir_names_are_the_owners(gw: GatewayProcess) -> None:
    assert not (gw.maildir / "postmaster@example.org").exists() and not Path(gw.maildir / "abuse@example.org").exists()
