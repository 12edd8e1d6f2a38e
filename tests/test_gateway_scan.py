"""Virus and spam scanning through the real gateway: real clamd (EICAR signature), real spamd (GTUBE),
real SMTP clients, a real downstream (smtp-sink) that must receive nothing that was refused."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest

from tests.support.gateway import GatewayProcess
from tests.support.postfix import SmtpSink
from tests.support.scanners import ScannerDaemon, start_clamd, start_spamd

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def message(subject: str, body: bytes) -> bytes:
    return (f"From: someone@x.example\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <{time.time_ns()}@x.example>\r\n\r\n").encode() + body + b"\r\n"


def with_attachment(payload: bytes) -> bytes:
    b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return (b"From: bob@friend.example\r\nTo: alice@example.org\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
            b"See attached.\r\n--XX\r\nContent-Type: application/octet-stream; name=invoice.com\r\n"
            b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=invoice.com\r\n\r\n"
            + b64 + b"--XX--\r\n")


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
def spamd() -> Iterator[ScannerDaemon]:
    d = start_spamd()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    s = SmtpSink(dump=True)
    yield s
    s.stop()


def make_gateway(sink: SmtpSink, clamd: str, spamd: str, **scan: object) -> GatewayProcess:
    g = GatewayProcess(delivery=("smtp", f"127.0.0.1:{sink.port}"),
                       extra={"scan": {"clamd": clamd, "spamd": spamd, "timeout": "3s", **scan}})
    alice, _ = g.store.add_user("alice@example.org")
    g.store.add_entry(alice.id, "allow", "bob@friend.example")
    return g.start()


@pytest.fixture(scope="module")
def gw(sink: SmtpSink, clamd: ScannerDaemon, spamd: ScannerDaemon) -> Iterator[GatewayProcess]:
    g = make_gateway(sink, clamd.unix_spec, spamd.tcp_spec)
    yield g
    g.close()


def last_event(gw: GatewayProcess):
    return gw.events()[-1]


def test_health_reports_both_scanners(gw: GatewayProcess) -> None:
    import httpx
    health = httpx.get(f"{gw.http_url}/healthz", timeout=10).json()
    assert health["scanners"] == {"clamd": "ok", "spamd": "ok"}


def test_eicar_from_a_known_sender_is_refused(gw: GatewayProcess, sink: SmtpSink) -> None:
    before = len(sink.messages())
    code, text = send(gw, "bob@friend.example", message("hello", EICAR))
    assert code == 554 and text.startswith(b"5.7.0") and b"EICAR" in text
    ev = last_event(gw)
    assert ev.verdict == "virus" and "EICAR" in ev.virus
    time.sleep(0.2)
    assert len(sink.messages()) == before


def test_eicar_in_a_base64_attachment_is_refused(gw: GatewayProcess) -> None:
    code, text = send(gw, "bob@friend.example", with_attachment(EICAR))
    assert code == 554 and b"5.7.0" in text


def test_eicar_from_the_null_sender_is_refused(gw: GatewayProcess) -> None:
    code, _ = send(gw, "<>", message("Undelivered Mail Returned to Sender", EICAR))
    assert code == 554


def test_gtube_from_an_unknown_sender_is_refused_as_spam(gw: GatewayProcess) -> None:
    code, text = send(gw, "stranger@unknown.example", message("offer", GTUBE))
    assert code == 554 and text.startswith(b"5.7.1")
    assert b"score" in text and b">= 5" in text
    ev = last_event(gw)
    assert ev.verdict == "spam" and ev.spam_score >= 1000
    import json
    assert "GTUBE" in json.loads(ev.details)["spam_symbols"]


def test_gtube_from_an_allowlisted_address_in_off_mode_is_refused(gw: GatewayProcess, sink: SmtpSink) -> None:
    """SPEC §4.5 item 1: "off" matches the address alone, which anyone can write: spam-scanned.
    (The one path that skips spamd, an authenticated allowlisted sender, is in tests/adversary.)"""
    before = len(sink.messages())
    code, text = send(gw, "bob@friend.example", message("test pattern", GTUBE))
    assert code == 554 and text.startswith(b"5.7.1"), text
    ev = last_event(gw)
    assert ev.verdict == "spam" and ev.spam_score >= 1000
    time.sleep(0.2)
    assert len(sink.messages()) == before


def test_clean_message_from_an_unknown_sender_is_challenged(gw: GatewayProcess) -> None:
    code, text = send(gw, "stranger@unknown.example", message("hello", b"Just a plain note."))
    assert code == 550 and b"/c/" in text
    ev = last_event(gw)
    assert ev.verdict == "challenged" and ev.spam_score is not None and ev.spam_score < 5


def test_clamd_killed_mid_run_tempfails_and_delivers_nothing(sink: SmtpSink, spamd: ScannerDaemon) -> None:
    own = start_clamd()
    g = make_gateway(sink, own.tcp_spec, spamd.tcp_spec)
    try:
        assert send(g, "bob@friend.example", message("before", b"fine"))[0] == 250
        before = len(sink.messages())
        own.kill()
        code, text = send(g, "bob@friend.example", message("after", b"fine"))
        assert (code, text[:5]) == (451, b"4.7.0")
        ev = g.events()[-1]
        assert ev.verdict == "tempfail" and "clamd" in ev.reason
        time.sleep(0.2)
        assert len(sink.messages()) == before
    finally:
        g.close()
        own.stop()


def test_spamd_slower_than_the_timeout_tempfails(sink: SmtpSink, clamd: ScannerDaemon) -> None:
    slow = start_spamd()
    g = make_gateway(sink, clamd.tcp_spec, slow.tcp_spec, timeout="1s")
    try:
        slow.pause()
        started = time.monotonic()
        code, text = send(g, "stranger@unknown.example", message("hello", b"note"))
        assert (code, text[:5]) == (451, b"4.7.0")
        assert time.monotonic() - started < 10
        assert "spamd" in g.events()[-1].reason
    finally:
        slow.resume()
        g.close()
        slow.stop()


def test_on_failure_accept_lets_mail_continue_and_says_so(sink: SmtpSink) -> None:
    g = make_gateway(sink, "tcp:127.0.0.1:9", "tcp:127.0.0.1:9", on_failure="accept")  # nobody listens there
    try:
        before = len(sink.messages())
        assert send(g, "bob@friend.example", message("unscanned", b"fine"))[0] == 250
        assert len(sink.wait_for_messages(before + 1)) == before + 1
        ev = g.events()[-1]
        assert ev.verdict == "delivered" and "not scanned by clamd" in ev.reason
        code, _ = send(g, "stranger@unknown.example", message("hi", b"note"))
        assert code == 550 and "not scanned by spamd" in g.events()[-1].details
    finally:
        g.close()


def test_refusal_texts_are_templates(sink: SmtpSink, clamd: ScannerDaemon, spamd: ScannerDaemon) -> None:
    g = make_gateway(sink, clamd.tcp_spec, spamd.tcp_spec,
                     virus_reply="Rejected: {virus} found in mail to {recipient}",
                     spam_reply="Looks like spam to us ({score}/{threshold})")
    try:
        code, text = send(g, "bob@friend.example", message("x", EICAR))
        assert code == 554 and b"Rejected: SenderGate.Test.EICAR" in text and b"to alice@example.org" in text
        code, text = send(g, "stranger@unknown.example", message("x", GTUBE))
        assert code == 554 and b"Looks like spam to us (" in text and b"/5)" in text
    finally:
        g.close()


def test_check_config_reports_each_scanner(tmp_path, clamd: ScannerDaemon) -> None:
    import subprocess
    import sys
    cfg = tmp_path / "sendergate.toml"
    cfg.write_text(f'[domains]\nlocal = ["example.org"]\n[store]\nurl = "sqlite:///{tmp_path}/s.db"\n'
                   f'[scan]\nclamd = "{clamd.unix_spec}"\nspamd = "tcp:127.0.0.1:9"\ntimeout = "2s"\n')
    r = subprocess.run([sys.executable, "-m", "sendergate", "check-config", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "scan.spamd: unreachable" in r.stderr and "scan.clamd" not in r.stderr and "Traceback" not in r.stderr
