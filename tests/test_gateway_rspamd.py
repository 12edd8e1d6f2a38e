"""rspamd instead of spamd, through the real gateway: Debian's rspamd started on loopback
(tests/support/scanners.py), real clamd beside it, smtp-sink downstream that must receive nothing
refused. rspamd's actions are honoured as its milter honours them, or our threshold decides."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from email.utils import formatdate

import httpx
import pytest

from tests.support.gateway import GatewayProcess
from tests.support.postfix import SmtpSink
from tests.support.scanners import EICAR, GTUBE, ScannerDaemon, start_clamd, start_rspamd

HEAD = "From: Someone <someone@x.example>\r\nTo: Alice <alice@example.org>\r\nSubject: {subject}\r\n"


def message(subject: str, body: bytes, *, date: bool = True, message_id: bool = True) -> bytes:
    """With the test rspamd's stock rules: a Date and a Message-ID score 0; without a Date
    MISSING_DATE (1.0), without a Message-ID MISSING_MID (2.5), without both 3.5."""
    head = HEAD.format(subject=subject) + (f"Date: {formatdate()}\r\n" if date else "")
    if message_id:
        head += f"Message-ID: <{time.time_ns()}@x.example>\r\n"
    return (head + "\r\n").encode() + body + b"\r\n"


def send(gw: GatewayProcess, sender: str, msg: bytes, rcpt: str = "alice@example.org") -> tuple[int, bytes]:
    with gw.smtp(timeout=60) as s:
        s.mail(sender)
        assert s.rcpt(rcpt)[0] == 250
        return s.data(msg)


@pytest.fixture(scope="module")
def clamd() -> Iterator[ScannerDaemon]:
    d = start_clamd()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def rspamd() -> Iterator[ScannerDaemon]:
    d = start_rspamd()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def banded_rspamd() -> Iterator[ScannerDaemon]:
    """Action scores that the test messages fall between: greylist from 0.5, add header from 2,
    soft reject from 3 (rspamd picks the highest action whose score is reached)."""
    d = start_rspamd(actions={"greylist": 0.5, "add_header": 2, "soft_reject": 3, "reject": 100})
    yield d
    d.stop()


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    s = SmtpSink(dump=True)
    yield s
    s.stop()


def make_gateway(sink: SmtpSink, *, clamd: str = "", rspamd: str, **scan: object) -> GatewayProcess:
    g = GatewayProcess(delivery=("smtp", f"127.0.0.1:{sink.port}"),
                       extra={"scan": {"clamd": clamd, "rspamd": rspamd, "timeout": "3s", **scan}})
    alice, _ = g.store.add_user("alice@example.org")
    g.store.add_entry(alice.id, "allow", "bob@friend.example")  # allowlist_auth "off": spam-scanned
    return g.start()


@pytest.fixture(scope="module")
def gw(sink: SmtpSink, clamd: ScannerDaemon, rspamd: ScannerDaemon) -> Iterator[GatewayProcess]:
    g = make_gateway(sink, clamd=clamd.unix_spec, rspamd=rspamd.url)
    yield g
    g.close()


def details(ev) -> dict:
    return json.loads(ev.details) if isinstance(ev.details, str) else dict(ev.details or {})


def rspamd_log_line(daemon: ScannerDaemon, queue_id: str) -> str:
    """rspamd's log line for the message it logged under this Queue-Id."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in daemon.log_path.read_text(errors="replace").splitlines():
            if "rspamd_task_write_log" in line and f"qid: <{queue_id}>" in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no rspamd log line for qid {queue_id}:\n{daemon.log()}")


def test_health_reports_clamd_and_rspamd(gw: GatewayProcess) -> None:
    health = httpx.get(f"{gw.http_url}/healthz", timeout=10).json()
    assert health["scanners"] == {"clamd": "ok", "rspamd": "ok"}


def test_gtube_is_refused_as_spam_with_rspamds_symbols_in_the_event(gw: GatewayProcess, sink: SmtpSink,
                                                                   rspamd: ScannerDaemon) -> None:
    before = len(sink.messages())
    code, text = send(gw, "stranger@unknown.example", message("offer", GTUBE))
    assert code == 554 and text.startswith(b"5.7.1"), text
    # rspamd's action decided ("honour"): the reply names the score, not our threshold
    assert text.endswith(b"Message refused as spam (score 15.0).")
    ev = gw.events()[-1]
    assert ev.verdict == "spam" and ev.spam_score == 15
    d = details(ev)
    assert d["spam_symbols"] == ["GTUBE"] and d["spam_action"] == "reject"
    assert "rspamd action 'reject'" in ev.reason
    # The envelope went along as rspamd's headers: its log has our Queue-Id, the client, MAIL FROM, RCPT.
    line = rspamd_log_line(rspamd, d["scan_id"])
    assert "ip: 127.0.0.1" in line and "from: <stranger@unknown.example>" in line
    assert "rcpts: <alice@example.org>" in line
    # ... and the decision log carries the score
    assert "verdict=spam" in gw.read_log() and "spam_score=15" in gw.read_log()
    time.sleep(0.2)
    assert len(sink.messages()) == before


def test_gtube_from_an_allowlisted_address_it_did_not_authenticate_is_refused(gw: GatewayProcess,
                                                                              sink: SmtpSink) -> None:
    """SPEC §4.5 item 1 with rspamd as the spam scanner: a match on the address alone is scanned."""
    before = len(sink.messages())
    code, text = send(gw, "bob@friend.example", message("test pattern", GTUBE))
    assert code == 554 and text.startswith(b"5.7.1"), text
    time.sleep(0.2)
    assert len(sink.messages()) == before


def test_clean_mail_is_delivered_with_rspamds_score_in_the_event(gw: GatewayProcess, sink: SmtpSink) -> None:
    before = len(sink.messages())
    code, _ = send(gw, "bob@friend.example", message("lunch", b"Noon at the usual place?"))
    assert code == 250
    delivered = sink.wait_for_messages(before + 1)[-1]
    assert b"Noon at the usual place?" in delivered.message
    assert b"X-SenderGate-Screened" not in delivered.message
    ev = gw.events()[-1]
    assert ev.verdict == "delivered" and ev.spam_score is not None and ev.spam_score < 1
    d = details(ev)
    assert d["spam_action"] == "no action" and d["spam_symbols"] and d["scan_id"]


def test_clean_mail_from_an_unknown_sender_is_challenged(gw: GatewayProcess) -> None:
    code, text = send(gw, "stranger@unknown.example", message("hello", b"Just a plain note."))
    assert code == 550 and b"/c/" in text
    ev = gw.events()[-1]
    assert ev.verdict == "challenged" and ev.spam_score is not None


def test_eicar_is_still_refused_by_clamd_when_rspamd_scans_for_spam(gw: GatewayProcess, sink: SmtpSink) -> None:
    before = len(sink.messages())
    code, text = send(gw, "bob@friend.example", message("invoice", EICAR))
    assert code == 554 and text.startswith(b"5.7.0") and b"EICAR" in text
    ev = gw.events()[-1]
    assert ev.verdict == "virus" and "EICAR" in ev.virus
    time.sleep(0.2)
    assert len(sink.messages()) == before


@pytest.mark.parametrize("on_failure", ["tempfail", "accept"])
def test_rspamd_down_follows_on_failure(sink: SmtpSink, clamd: ScannerDaemon, on_failure: str) -> None:
    """rspamd unreachable: 451 and nothing delivered ("tempfail"), or delivered and said so ("accept")."""
    down = start_rspamd()
    g = make_gateway(sink, clamd=clamd.tcp_spec, rspamd=down.url, on_failure=on_failure)
    try:
        assert send(g, "bob@friend.example", message("before", b"fine"))[0] == 250
        down.stop()
        before = len(sink.messages())
        code, text = send(g, "bob@friend.example", message("after", b"fine"))
        ev = g.events()[-1]
        if on_failure == "tempfail":
            assert (code, text[:5]) == (451, b"4.7.0")
            assert ev.verdict == "tempfail" and ev.reason.startswith("rspamd failed: unreachable at http://127.0.0.1:")
            time.sleep(0.2)
            assert len(sink.messages()) == before
        else:
            assert code == 250
            assert len(sink.wait_for_messages(before + 1)) == before + 1
            assert ev.verdict == "delivered" and "not scanned by rspamd: unreachable" in details(ev)["scan"]
        health = httpx.get(f"{g.http_url}/healthz", timeout=10).json()
        assert health["scanners"] == {"clamd": "ok", "rspamd": "unavailable"}
    finally:
        g.close()
        down.stop()


def test_rspamd_slower_than_the_timeout_tempfails(sink: SmtpSink) -> None:
    slow = start_rspamd()
    g = make_gateway(sink, rspamd=slow.url, timeout="1s")
    try:
        slow.pause()
        started = time.monotonic()
        code, text = send(g, "stranger@unknown.example", message("hello", b"note"))
        assert (code, text[:5]) == (451, b"4.7.0")
        assert time.monotonic() - started < 10
        assert g.events()[-1].reason == "rspamd failed: timed out after 1 s"
    finally:
        slow.resume()
        g.close()
        slow.stop()


def test_rspamd_over_its_unix_socket(sink: SmtpSink, rspamd: ScannerDaemon) -> None:
    g = make_gateway(sink, rspamd=rspamd.unix_spec)
    try:
        code, _ = send(g, "stranger@unknown.example", message("offer", GTUBE))
        assert code == 554 and details(g.events()[-1])["spam_symbols"] == ["GTUBE"]
    finally:
        g.close()


# -- rspamd's actions ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def banded(sink: SmtpSink, banded_rspamd: ScannerDaemon) -> Iterator[GatewayProcess]:
    g = make_gateway(sink, rspamd=banded_rspamd.url)
    yield g
    g.close()


def test_greylist_is_not_a_deferral(banded: GatewayProcess, sink: SmtpSink) -> None:
    """"greylist" is a score band; rspamd's greylist module says "soft reject" when it defers.
    Deferring on "greylist" would defer the retry too, forever (rspamd's milter accepts it)."""
    before = len(sink.messages())
    code, _ = send(banded, "bob@friend.example", message("no date", b"note", date=False))
    assert code == 250
    sink.wait_for_messages(before + 1)
    ev = banded.events()[-1]
    assert ev.verdict == "delivered" and details(ev)["spam_action"] == "greylist"


def test_soft_reject_is_451(banded: GatewayProcess, sink: SmtpSink) -> None:
    before = len(sink.messages())
    code, text = send(banded, "bob@friend.example", message("neither", b"note", date=False, message_id=False))
    assert (code, text[:5]) == (451, b"4.7.1"), text
    ev = banded.events()[-1]
    assert ev.verdict == "tempfail" and "rspamd action 'soft reject'" in ev.reason
    time.sleep(0.2)
    assert len(sink.messages()) == before


def test_add_header_is_refused_as_spam_by_default(banded: GatewayProcess, sink: SmtpSink) -> None:
    before = len(sink.messages())
    code, text = send(banded, "bob@friend.example", message("no id", b"note", message_id=False))
    assert code == 554 and text.startswith(b"5.7.1"), text
    ev = banded.events()[-1]
    assert ev.verdict == "spam" and details(ev)["spam_action"] == "add header"
    assert text.endswith(f"(score {ev.spam_score:.1f}).".encode())
    time.sleep(0.2)
    assert len(sink.messages()) == before


def test_add_header_screened_when_so_configured(sink: SmtpSink, banded_rspamd: ScannerDaemon) -> None:
    """rspamd_add_header = "screen": what would be delivered goes to the Screened folder with the
    mark; an unknown sender is challenged as usual (never delivered because rspamd only marked it)."""
    g = make_gateway(sink, rspamd=banded_rspamd.url, rspamd_add_header="screen")
    try:
        before = len(sink.messages())
        assert send(g, "bob@friend.example", message("no id", b"marked note", message_id=False))[0] == 250
        delivered = sink.wait_for_messages(before + 1)[-1]
        assert b"marked note" in delivered.message and b"X-SenderGate-Screened: yes" in delivered.message
        ev = g.events()[-1]
        assert ev.verdict == "screened" and "screened: rspamd action 'add header'" in ev.reason
        code, text = send(g, "stranger@unknown.example", message("no id", b"note", message_id=False))
        assert code == 550 and b"/c/" in text
        assert g.events()[-1].verdict == "challenged"
        assert len(sink.messages()) == before + 1
    finally:
        g.close()


def test_score_mode_uses_our_threshold_on_rspamds_score(sink: SmtpSink, banded_rspamd: ScannerDaemon) -> None:
    """rspamd_action = "score": its soft reject (3.5) is not ours to follow; spam_threshold decides."""
    g = make_gateway(sink, rspamd=banded_rspamd.url, rspamd_action="score", spam_threshold=3)
    try:
        code, text = send(g, "bob@friend.example", message("neither", b"note", date=False, message_id=False))
        ev = g.events()[-1]
        assert code == 554 and f"score {ev.spam_score:.1f} >= 3".encode() in text, text
        assert ev.verdict == "spam" and ev.reason == f"spam score {ev.spam_score:g} >= 3"
        assert details(ev)["spam_action"] == "soft reject"  # recorded, not followed
        before = len(sink.messages())
        assert send(g, "bob@friend.example", message("no id", b"note", message_id=False))[0] == 250  # add header, < 3
        sink.wait_for_messages(before + 1)
        ev = g.events()[-1]
        assert ev.verdict == "delivered" and details(ev)["spam_action"] == "add header" and ev.spam_score < 3
    finally:
        g.close()


# -- configuration ------------------------------------------------------------------------------

def check_config(tmp_path, scan: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "sendergate.toml"
    cfg.write_text(f'[domains]\nlocal = ["example.org"]\n[store]\nurl = "sqlite:///{tmp_path}/s.db"\n'
                   f'[scan]\ntimeout = "2s"\n{scan}\n')
    return subprocess.run([sys.executable, "-m", "sendergate", "check-config", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60)


def test_check_config_reports_rspamd_answering(tmp_path, rspamd: ScannerDaemon) -> None:
    ok = check_config(tmp_path, f'rspamd = "{rspamd.url}"')
    assert ok.returncode == 0, ok.stderr
    down = check_config(tmp_path, 'rspamd = "http://127.0.0.1:9"')
    assert down.returncode != 0
    assert "scan.rspamd: unreachable at http://127.0.0.1:9: Connection refused" in down.stderr
    assert "Traceback" not in down.stderr


def test_check_config_refuses_spamd_and_rspamd_together(tmp_path) -> None:
    r = check_config(tmp_path, 'spamd = "tcp:127.0.0.1:783"\nrspamd = "http://127.0.0.1:11333"')
    assert r.returncode != 0
    assert "scan.rspamd: set scan.spamd or scan.rspamd, not both" in r.stderr and "Traceback" not in r.stderr
