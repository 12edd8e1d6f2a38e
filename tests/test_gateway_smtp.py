"""The SMTP gateway as a real process, driven by real SMTP clients, delivering to real downstreams.

Downstream: Postfix's smtp-sink (dumps compared byte for byte), a Maildir,
and Dovecot LMTP (read back over IMAP).
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sendergate.store import hash_message_id
from tests.support.common import free_loopback_port, make_service_dir, remove_service_dir
from tests.support.gateway import GatewayProcess, loopback_dns
from tests.support.postfix import SmtpSink
from tests.support.rawsmtp import RawSMTP as RawClient

MESSAGE = (b"From: Bob <bob@friend.example>\r\nTo: Alice <alice@example.org>\r\nSubject: Lunch?\r\n"
           b"Message-ID: <lunch-1@friend.example>\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n\r\n"
           b"Shall we have lunch on Friday?\r\n.leading dot line\r\n\r\nBob\r\n")


def strip_trace(message: bytes) -> bytes:
    """Drop the headers the gateway prepends (Received, Authentication-Results, X-SenderGate-*)."""
    lines = message.split(b"\n")
    while lines and (lines[0].startswith((b"Received:", b"Authentication-Results:", b"X-SenderGate-"))
                     or lines[0][:1] in (b" ", b"\t")):
        lines.pop(0)
    return b"\n".join(lines)


class DataReply:
    """The end-of-DATA reply, named like smtplib's exceptions (smtplib.data() returns, it does not raise)."""

    def __init__(self, code: int, text: bytes) -> None:
        self.smtp_code, self.smtp_error = code, text
        self.value = self


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    s = SmtpSink(dump=True)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gw(sink: SmtpSink) -> Iterator[GatewayProcess]:
    g = GatewayProcess(delivery=("smtp", f"127.0.0.1:{sink.port}"),
                       extra={"smtp": {"max_recipients": 5, "max_message_size": "200KB",
                                       "xforward_from": ["127.0.0.2"]}})  # the "proxy" below
    alice, _ = g.store.add_user("alice@example.org", name="Alice")
    g.store.add_user("carol@example.org")
    g.store.add_entry(alice.id, "allow", "bob@friend.example")
    g.store.add_entry(alice.id, "block", "@spam.example")
    g.store.add_entry(None, "block", "evil@bad.example")
    g.start()
    yield g
    g.close()


def events_for(gw: GatewayProcess, since: int) -> list:
    return [e for e in gw.events() if e.id > since]


def last_id(gw: GatewayProcess) -> int:
    ev = gw.events()
    return ev[-1].id if ev else 0


def test_ehlo_advertises_the_extensions(gw: GatewayProcess) -> None:
    with gw.smtp() as s:
        for ext in ("size", "8bitmime", "smtputf8", "pipelining", "enhancedstatuscodes"):
            assert s.has_extn(ext), ext
        assert s.esmtp_features["size"] == "200000"
        assert not s.has_extn("starttls") and not s.has_extn("auth")


def test_known_sender_is_delivered_byte_for_byte(gw: GatewayProcess, sink: SmtpSink) -> None:
    before, mark = len(sink.messages()), last_id(gw)
    with gw.smtp() as s:
        s.mail("bob+lists@friend.example")
        assert s.rcpt("alice+work@example.org")[0] == 250
        code, text = s.data(MESSAGE)
    assert (code, text[:5]) == (250, b"2.0.0")
    got = sink.wait_for_messages(before + 1)[-1]
    assert got.envelope_sender == "bob+lists@friend.example"
    assert got.envelope_recipients == ("alice+work@example.org",)
    assert strip_trace(got.message) == MESSAGE.replace(b"\r\n", b"\n")
    assert got.message.startswith(b"Received: from client.test ([127.0.0.1])")
    (ev,) = events_for(gw, mark)
    assert (ev.verdict, ev.recipient, ev.subject, ev.message_id) == (
        "delivered", "alice+work@example.org", "Lunch?", "<lunch-1@friend.example>")
    assert ev.size == len(MESSAGE) and ev.client_ip == "127.0.0.1" and ev.helo == "client.test"


def test_unknown_sender_is_challenged_with_a_reusable_link(gw: GatewayProcess, sink: SmtpSink) -> None:
    before, mark = len(sink.messages()), last_id(gw)
    replies = []
    for _ in range(2):
        with gw.smtp() as s:
            s.mail("stranger@unknown.example")
            assert s.rcpt("alice@example.org")[0] == 250
            err = DataReply(*s.data(MESSAGE))
            replies.append(err)
    for r in replies:
        r = r.value
        assert r.smtp_code == 550
        text = r.smtp_error.decode()
        assert text.startswith("5.7.1 alice@example.org accepts mail only from known senders.")
        assert "https://mx.example.org/c/" in text
    tokens = [r.value.smtp_error.decode().split("/c/")[1].split()[0] for r in replies]
    assert all(len(t) == 22 for t in tokens) and tokens[0] != tokens[1]
    rows = [gw.store.challenge_by_token(t) for t in tokens]
    assert rows[0].id == rows[1].id and rows[1].attempts == 2 and rows[1].status == "pending"
    evs = events_for(gw, mark)
    assert [e.verdict for e in evs] == ["challenged", "challenged"]
    assert evs[0].challenge_id == rows[0].id
    assert len(sink.messages()) == before


BOUNCE = (b"From: Mail Delivery System <MAILER-DAEMON@mx.friend.example>\r\nSubject: Undelivered Mail\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n"
          b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
          b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.friend.example\r\n\r\n"
          b"Final-Recipient: rfc822; gone@friend.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
          b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.org\r\n"
          b"Message-ID: <lunch-invite-3@example.org>\r\n--b--\r\n")


def test_null_sender_bounce_about_sent_mail_is_delivered(gw: GatewayProcess, sink: SmtpSink) -> None:
    """SPEC §4.2 item 5: one recipient per transaction; a DSN about a message the recipient sent goes
    to the inbox (the smtp downstream gets no screening mark)."""
    alice = gw.store.user_by_address("alice@example.org")
    gw.store.add_sent_ids(alice.id, [hash_message_id("<lunch-invite-3@example.org>")])
    before = len(sink.messages())
    with gw.smtp() as s:
        s.mail("<>")
        assert s.rcpt("alice@example.org")[0] == 250
        code, text = s.rcpt("carol@example.org")
        assert (code, text[:5]) == (452, b"4.5.3")  # one recipient per transaction
        assert s.data(BOUNCE)[0] == 250
    got = sink.wait_for_messages(before + 1)[-1]
    assert got.envelope_sender == "" and list(got.envelope_recipients) == ["alice@example.org"]
    assert b"X-SenderGate-Screened" not in got.message


@pytest.mark.parametrize("rcpt", [
    "victim@elsewhere.test", "victim%elsewhere.test@example.org", '"victim@elsewhere.test"@example.org',
    "@example.org:victim@elsewhere.test", "victim@[127.0.0.1]", "elsewhere.test!victim@example.org",
    "victim@example.org.elsewhere.test",
])
def test_never_an_open_relay(gw: GatewayProcess, rcpt: str) -> None:
    c = RawClient(gw.smtp_port)
    try:
        c.cmd("EHLO relay.test")
        assert c.cmd("MAIL FROM:<bob@friend.example>").startswith("250")
        reply = c.cmd(f"RCPT TO:<{rcpt}>")
        assert reply.startswith(("550 5.7.1", "501 5.", "553 5.")), reply
    finally:
        c.close()


def test_rcpt_refusals_are_recorded(gw: GatewayProcess) -> None:
    mark = last_id(gw)
    with gw.smtp() as s:
        s.mail("someone@spam.example")
        assert s.rcpt("alice@example.org")[:2] == (
            550, b"5.7.1 alice@example.org does not accept mail from this sender.")
        s.rset()
        s.mail("evil@bad.example")
        assert s.rcpt("carol@example.org")[0] == 550
        s.rset()
        s.mail("bob@friend.example")
        assert s.rcpt("nobody@example.org")[:2] == (550, b"5.1.1 No such user here")
        assert s.rcpt("x@elsewhere.test")[:2] == (550, b"5.7.1 Relaying denied")
    evs = events_for(gw, mark)
    assert [(e.verdict, e.recipient) for e in evs] == [
        ("blocked", "alice@example.org"), ("blocked", "carol@example.org"),
        ("unknown_recipient", "nobody@example.org"), ("relay_denied", "x@elsewhere.test")]
    assert "globally" in evs[1].reason


def test_a_sender_known_to_one_recipient_reaches_the_other_screened_in_one_transaction(
        gw: GatewayProcess, sink: SmtpSink) -> None:
    before = len(sink.messages())
    with gw.smtp() as s:  # no 452: Exim would fail the deferred recipient with this transaction's 5xx
        s.mail("bob@friend.example")
        assert s.rcpt("carol@example.org")[0] == 250  # bob is unknown to carol
        assert s.rcpt("alice@example.org")[0] == 250  # and known to alice
        assert s.data(MESSAGE)[0] == 250
    got = {d.envelope_recipients[0]: d for d in sink.wait_for_messages(before + 2)[before:]}
    assert sorted(got) == ["alice@example.org", "carol@example.org"]
    assert b"X-SenderGate-Screened" not in got["alice@example.org"].message  # her inbox
    assert b"X-SenderGate-Screened: yes" in got["carol@example.org"].message  # marked for carol
    verdicts = {e.recipient: (e.verdict, e.reason) for e in gw.events()[-2:]}
    assert verdicts["alice@example.org"][0] == "delivered"
    assert verdicts["carol@example.org"][0] == "screened"
    assert "another recipient of the message accepts it" in verdicts["carol@example.org"][1]
    with gw.smtp() as s:  # a stranger's recipients share one transaction (and one link: test_multi_recipient)
        s.mail("stranger@unknown.example")
        assert s.rcpt("alice@example.org")[0] == 250
        assert s.rcpt("carol@example.org")[0] == 250
    with gw.smtp() as s:
        s.mail("<>")
        assert s.rcpt("alice@example.org")[0] == 250
        assert s.rcpt("carol@example.org")[0] == 452  # the null sender: one recipient per transaction


def test_max_recipients(gw: GatewayProcess) -> None:
    with gw.smtp() as s:
        s.mail("bob@friend.example")
        codes = [s.rcpt("alice@example.org")[0] for _ in range(6)]
    assert codes == [250] * 5 + [452]


def test_size_limits(gw: GatewayProcess, sink: SmtpSink) -> None:
    before = len(sink.messages())
    c = RawClient(gw.smtp_port)
    try:
        c.cmd("EHLO big.test")
        assert c.cmd("MAIL FROM:<bob@friend.example> SIZE=999999999").startswith("552 5.3.4")
        assert c.cmd("MAIL FROM:<bob@friend.example>").startswith("250")
        assert c.cmd("RCPT TO:<alice@example.org>").startswith("250")
        assert c.cmd("DATA").startswith("354")
        c.send(b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 300 + b".\r\n")
        assert c.reply().startswith("552 5.3.4")
        assert c.cmd("QUIT").startswith("221")
    finally:
        c.close()
    time.sleep(0.2)
    assert len(sink.messages()) == before


def test_malformed_input_gets_replies_not_hangs(gw: GatewayProcess) -> None:
    c = RawClient(gw.smtp_port)
    try:
        assert c.banner.startswith("220 mx.example.org")
        assert c.cmd("MAIL FROM:<bob@friend.example>").startswith("503")  # before EHLO
        assert c.cmd("EHLO x.test").startswith("250")
        assert c.cmd("FOO bar").startswith("500 5.5.2")
        assert c.cmd("RCPT TO:<alice@example.org>").startswith("503 5.5.1")  # before MAIL
        assert c.cmd("MAIL FROM:bob").startswith(("553", "501"))
        assert c.cmd("MAIL FROM:<bob\rx@friend.example>").startswith(("553", "501"))
        assert c.cmd(b"MAIL FROM:<b\x00b@friend.example>").startswith(("553", "501"))
        assert c.cmd("MAIL FROM:<" + "a" * 600 + "@friend.example>").startswith("500")
        assert c.cmd("X" * 70000).startswith("500")
        assert c.cmd("DATA").startswith("503")
        assert c.cmd("MAIL FROM:<bob@friend.example>").startswith("250")
        assert c.cmd("RCPT TO:<alice\r@example.org>").startswith(("553", "501", "550"))
        assert c.cmd("NOOP").startswith("250")
        assert c.cmd("QUIT").startswith("221")
    finally:
        c.close()


def test_reply_never_echoes_injected_lines(gw: GatewayProcess) -> None:
    c = RawClient(gw.smtp_port)
    try:
        c.cmd("EHLO x.test")
        reply = c.cmd("MAIL FROM:<bob@friend.example>\r250 fake")
        assert "\n250 fake" not in reply
        assert c.cmd("NOOP").startswith("250")
    finally:
        c.close()


def test_eight_bit_and_long_lines_pass_unchanged(gw: GatewayProcess, sink: SmtpSink) -> None:
    before = len(sink.messages())
    body = "Grüße aus Köln — ".encode() * 200  # one 8-bit line longer than 998 octets
    msg = b"Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + b"\r\n"
    c = RawClient(gw.smtp_port)
    try:
        c.cmd("EHLO x.test")
        assert c.cmd("MAIL FROM:<bob@friend.example>").startswith("250")  # no BODY=8BITMIME declared
        c.cmd("RCPT TO:<alice@example.org>")
        c.cmd("DATA")
        c.send(msg + b".\r\n")
        assert c.reply().startswith("250 2.0.0")
    finally:
        c.close()
    got = sink.wait_for_messages(before + 1)[-1]
    assert strip_trace(got.message) == msg.replace(b"\r\n", b"\n")


def test_pipelining(gw: GatewayProcess, sink: SmtpSink) -> None:
    before = len(sink.messages())
    c = RawClient(gw.smtp_port)
    try:
        c.cmd("EHLO pipe.test")
        c.send(b"MAIL FROM:<bob@friend.example>\r\nRCPT TO:<alice@example.org>\r\n"
               b"RCPT TO:<nobody@example.org>\r\nDATA\r\n")
        assert [c.reply()[:3] for _ in range(4)] == ["250", "250", "550", "354"]
        c.send(b"Subject: pipelined\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        assert c.reply().startswith("250 2.0.0") and c.reply().startswith("221")
    finally:
        c.close()
    assert len(sink.wait_for_messages(before + 1)) == before + 1


def test_replies_to_the_users_sent_mail_count_as_known(gw: GatewayProcess, sink: SmtpSink) -> None:
    # A reply counts only when authenticated for its own domain (SPEC §4.5 item 2): SPF pass here.
    loopback_dns().add_txt("new-contact.example", "v=spf1 ip4:127.0.0.1 -all")
    alice = gw.store.user_by_address("alice@example.org")
    gw.store.add_sent_ids(alice.id, [hash_message_id("<question-7@example.org>")])
    before, mark = len(sink.messages()), last_id(gw)
    with gw.smtp() as s:
        s.mail("first.time@new-contact.example")
        s.rcpt("alice@example.org")
        code, _ = s.data(b"Subject: Re: question\r\nIn-Reply-To: <question-7@example.org>\r\n\r\nAnswer.\r\n")
    assert code == 250
    assert len(sink.wait_for_messages(before + 1)) == before + 1
    (ev,) = events_for(gw, mark)
    assert ev.verdict == "delivered" and "reply" in ev.reason


def test_automated_mail_from_strangers_is_refused_as_bulk_without_a_link(gw: GatewayProcess) -> None:
    mark = last_id(gw)
    with gw.smtp() as s:
        s.mail("no-reply@shop.example")
        s.rcpt("alice@example.org")
        err = DataReply(*s.data(b"From: Shop <no-reply@shop.example>\r\nSubject: Your order\r\n\r\nThanks\r\n"))
    assert err.value.smtp_code == 550 and b"/c/" not in err.value.smtp_error
    (ev,) = events_for(gw, mark)
    assert ev.verdict == "bulk" and "machine role" in ev.reason


def test_decisions_are_logged_as_key_value_lines(gw: GatewayProcess) -> None:
    log = gw.read_log()
    assert "decision verdict=challenged" in log and "recipient=alice@example.org" in log


# -- downstream failures -----------------------------------------------------------

@pytest.mark.parametrize("mode,expect", [("soft", (451, "4.3.0")), ("hard", (550, "5.7.1")), ("down", (451, "4.3.0"))])
def test_downstream_failures_never_answer_250(mode: str, expect: tuple[int, str]) -> None:
    if mode == "down":
        port = free_loopback_port()  # nobody listens
        sink = None
    else:
        sink = SmtpSink(dump=True, **({"soft_reject": (".",)} if mode == "soft" else {"hard_reject": (".",)}),
                        **({"hard_reply": "550 5.7.1 rejected by policy"} if mode == "hard" else {}))
        port = sink.port
    try:
        with GatewayProcess(delivery=("smtp", f"127.0.0.1:{port}")) as g:
            alice, _ = g.store.add_user("alice@example.org")
            g.store.add_entry(alice.id, "allow", "bob@friend.example")
            with g.smtp() as s:
                s.mail("bob@friend.example")
                s.rcpt("alice@example.org")
                err = DataReply(*s.data(MESSAGE))
            assert (err.value.smtp_code, err.value.smtp_error[:5].decode()) == expect
            (ev,) = g.events()
            assert ev.verdict == ("tempfail" if expect[0] == 451 else "blocked")
    finally:
        if sink is not None:
            sink.stop()


# -- other delivery modes ------------------------------------------------------------

def test_maildir_delivery() -> None:
    with GatewayProcess() as g:
        alice, _ = g.store.add_user("alice@example.org")
        g.store.add_entry(alice.id, "allow", "bob@friend.example")
        with g.smtp() as s:
            s.mail("bob@friend.example")
            s.rcpt("Alice+x@example.org")
            assert s.data(MESSAGE)[0] == 250
        files = list((g.maildir / "alice@example.org" / "Maildir" / "new").iterdir())
        assert len(files) == 1 and strip_trace(files[0].read_bytes()) == MESSAGE
        assert not list((g.maildir / "alice@example.org" / "Maildir" / "tmp").iterdir())


def test_lmtp_delivery_to_dovecot() -> None:
    from imapclient import IMAPClient

    from tests.support.dovecot import DovecotServer

    with DovecotServer() as dovecot:
        dovecot.add_user("alice@example.org", "secret")
        with GatewayProcess(delivery=("lmtp", f"127.0.0.1:{dovecot.lmtp_port}")) as g:
            alice, _ = g.store.add_user("alice@example.org")
            g.store.add_entry(alice.id, "allow", "bob@friend.example")
            with g.smtp() as s:
                s.mail("bob@friend.example")
                s.rcpt("alice@example.org")
                assert s.data(MESSAGE)[0] == 250
                s.rset()
                s.mail("bob@friend.example")
                s.rcpt("ghost@example.org")  # no such gateway user
        with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False) as imap:
            imap.login("alice@example.org", "secret")
            imap.select_folder("INBOX")
            uids = imap.search("ALL")
            assert len(uids) == 1
            raw = imap.fetch(uids, ["RFC822"])[uids[0]][b"RFC822"]
        body = raw.split(b"\r\n\r\n", 1)[1]
        assert body == MESSAGE.split(b"\r\n\r\n", 1)[1]
        assert b"Subject: Lunch?" in raw


def test_lmtp_unknown_mailbox_is_passed_on() -> None:
    from tests.support.dovecot import DovecotServer

    with DovecotServer() as dovecot:
        with GatewayProcess(delivery=("lmtp", f"127.0.0.1:{dovecot.lmtp_port}")) as g:
            alice, _ = g.store.add_user("alice@example.org")  # a gateway user without a Dovecot mailbox
            g.store.add_entry(alice.id, "allow", "bob@friend.example")
            with g.smtp() as s:
                s.mail("bob@friend.example")
                s.rcpt("alice@example.org")
                err = DataReply(*s.data(MESSAGE))
            assert err.value.smtp_code == 550 and err.value.smtp_error.startswith(b"5.1.1")


# -- resilience ------------------------------------------------------------------------

def test_locked_store_answers_451_not_250() -> None:
    with GatewayProcess() as g:
        alice, _ = g.store.add_user("alice@example.org")
        db = g.store_url.split("///", 1)[1]
        holder = sqlite3.connect(db, timeout=1)
        holder.execute("BEGIN EXCLUSIVE")  # another writer holds the database for longer than busy_timeout
        try:
            with g.smtp(timeout=30) as s:
                s.mail("stranger@unknown.example")
                s.rcpt("alice@example.org")
                err = DataReply(*s.data(MESSAGE))
            assert (err.value.smtp_code, err.value.smtp_error[:5]) == (451, b"4.3.0")
        finally:
            holder.rollback()
            holder.close()
        assert g.proc.poll() is None  # still serving
        with g.smtp() as s:
            s.mail("stranger@unknown.example")
            s.rcpt("alice@example.org")
            err = DataReply(*s.data(MESSAGE))
            assert err.value.smtp_code == 550


def test_unreachable_postgres_answers_451(postgres: object) -> None:
    from tests.support.postgres import PostgresServer

    pg = PostgresServer()
    try:
        url = pg.create_database("gw")
        with GatewayProcess(store_url=url) as g:
            g.store.add_user("alice@example.org")
            g.store.close()
            pg.stop()
            with g.smtp(timeout=30) as s:
                s.mail("stranger@unknown.example")
                code, text = s.rcpt("alice@example.org")
            assert (code, text[:5]) == (451, b"4.3.0")
            assert g.proc.poll() is None
    finally:
        pg.stop()


def test_sigterm_finishes_the_open_transaction(sink: SmtpSink) -> None:
    g = GatewayProcess(delivery=("smtp", f"127.0.0.1:{sink.port}"))
    try:
        alice, _ = g.store.add_user("alice@example.org")
        g.store.add_entry(alice.id, "allow", "bob@friend.example")
        g.start()
        before = len(sink.messages())
        idle = g.smtp()  # an idle session is closed politely
        s = g.smtp()
        s.mail("bob@friend.example")
        s.rcpt("alice@example.org")
        g.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(OSError):  # no new connections
            socket.create_connection(("127.0.0.1", g.smtp_port), timeout=1).recv(10) or (_ for _ in ()).throw(OSError())
        assert s.data(MESSAGE)[0] == 250
        assert len(sink.wait_for_messages(before + 1)) == before + 1
        assert idle.noop()[0] == 421
        assert g.proc.wait(15) == 0
    finally:
        g.close()


def test_several_workers_share_the_port(sink: SmtpSink) -> None:
    with GatewayProcess(delivery=("smtp", f"127.0.0.1:{sink.port}"), workers=2) as g:
        alice, _ = g.store.add_user("alice@example.org")
        results = []

        def client() -> None:
            for _ in range(10):
                with g.smtp() as s:
                    s.mail("stranger@unknown.example")
                    s.rcpt("alice@example.org")
                    results.append(s.data(MESSAGE)[0])

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [550] * 40
        assert len({e.challenge_id for e in g.events()}) == 1  # one challenge, reused across workers
        pids = subprocess.run(["pgrep", "-g", str(g.proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(pids) >= 3  # supervisor + 2 workers


def test_starttls_when_configured() -> None:
    d = make_service_dir("sendergate-tls-")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=mx.example.org", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                       check=True, capture_output=True)
        import ssl
        with GatewayProcess(extra={"smtp": {"tls_cert": str(d / "cert.pem"), "tls_key": str(d / "key.pem")}}) as g:
            alice, _ = g.store.add_user("alice@example.org")
            g.store.add_entry(alice.id, "allow", "bob@friend.example")
            with g.smtp() as s:
                assert s.has_extn("starttls")
                ctx = ssl.create_default_context(cafile=str(d / "cert.pem"))
                ctx.check_hostname = False
                s.starttls(context=ctx)
                s.ehlo("client.test")
                assert not s.has_extn("starttls")
                s.mail("bob@friend.example")
                s.rcpt("alice@example.org")
                assert s.data(MESSAGE)[0] == 250
            msg = next((g.maildir / "alice@example.org" / "Maildir" / "new").iterdir()).read_bytes()
            assert b"with ESMTPS" in msg
    finally:
        remove_service_dir(d)


def test_json_log_format(tmp_path: Path) -> None:
    g = GatewayProcess()
    try:
        g.store.add_user("alice@example.org")
        import sys
        log = open(g.log_path, "ab")
        g.proc = subprocess.Popen([sys.executable, "-m", "sendergate", "gateway", "--config", str(g.config_path),
                                   "--log-format", "json"], stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        g.log = log
        deadline = time.monotonic() + 20
        while "worker 0 ready" not in g.read_log() and time.monotonic() < deadline:
            time.sleep(0.05)
        with g.smtp() as s:
            s.mail("bob@friend.example")
            s.rcpt("nobody@example.org")
        time.sleep(0.3)
        lines = [ln for ln in g.read_log().splitlines() if '"event": "decision"' in ln]
        record = json.loads(lines[-1].split("sendergate.decision: ", 1)[1])
        assert record["verdict"] == "unknown_recipient" and record["recipient"] == "nobody@example.org"
    finally:
        g.close()


def test_connection_limit_answers_421() -> None:
    with GatewayProcess(extra={"smtp": {"max_connections": 3}}) as g:
        held = [RawClient(g.smtp_port) for _ in range(3)]
        try:
            assert all(c.banner.startswith("220") for c in held)
            extra = RawClient.__new__(RawClient)
            extra.sock = socket.create_connection(("127.0.0.1", g.smtp_port), timeout=5)
            extra.buf = b""
            assert extra.reply().startswith("421 4.7.0")
            extra.close()
            held.pop().close()
            time.sleep(0.2)
            again = RawClient(g.smtp_port)  # room again once one left
            assert again.banner.startswith("220")
            again.close()
        finally:
            for c in held:
                c.close()


def test_an_idle_session_is_closed_after_smtp_timeout_and_each_command_moves_the_deadline() -> None:
    with GatewayProcess(extra={"smtp": {"timeout": "1s"}}) as g:
        c = RawClient(g.smtp_port)
        try:
            assert c.cmd("EHLO client.example").startswith("250")
            started = time.monotonic()
            while time.monotonic() - started < 2.5:  # busy for 2.5 timeouts: never closed
                time.sleep(0.3)
                assert c.cmd("NOOP").startswith("250")
            last = time.monotonic()
            c.sock.settimeout(10)
            said = c.rest()  # then idle: 421 4.4.2 and closed (as Postfix; it used to close without a word)
            idle = time.monotonic() - last
            assert 0.9 <= idle < 3, idle
            assert said == b"421 4.4.2 mx.example.org Error: timeout exceeded\r\n", said
        finally:
            c.close()


def test_xforward_from_any_other_loopback_peer_is_refused(gw: GatewayProcess) -> None:
    """XFORWARD only from smtp.xforward_from (SPEC §4.5 item 6): another local process (a web app, a
    user's script) must not name the client, whose address SPF and the events are about."""
    mark = last_id(gw)
    c = RawClient(gw.smtp_port)  # from 127.0.0.1: loopback, but not the configured proxy
    try:
        assert "XFORWARD" not in c.cmd("EHLO proxy.local")
        assert c.cmd("XFORWARD NAME=mail.remote.example ADDR=192.0.2.7 HELO=mail.remote.example").startswith(
            "550 5.7.0")
        assert c.cmd("MAIL FROM:<bob@friend.example>").startswith("250")
        assert c.cmd("RCPT TO:<nobody@example.org>").startswith("550 5.1.1")
    finally:
        c.close()
    (ev,) = events_for(gw, mark)
    assert ev.client_ip == "127.0.0.1"


def test_xforward_from_a_local_proxy_names_the_real_client(gw: GatewayProcess) -> None:
    mark = last_id(gw)
    c = RawClient(gw.smtp_port, source="127.0.0.2")  # listed in smtp.xforward_from
    try:
        assert "XFORWARD NAME ADDR PROTO HELO SOURCE" in c.cmd("EHLO proxy.local")
        assert c.cmd("XFORWARD NAME=mail.remote.example ADDR=192.0.2.7 HELO=mail.remote.example").startswith(
            "250 2.0.0")
        assert c.cmd("XFORWARD ADDR=IPV6:2001:db8::5 PROTO=ESMTP").startswith("250")
        assert c.cmd("XFORWARD BOGUS=1").startswith("501")
        assert c.cmd("MAIL FROM:<bob@friend.example>").startswith("250")
        assert c.cmd("XFORWARD ADDR=192.0.2.9").startswith("503")  # not inside a transaction
        assert c.cmd("RCPT TO:<nobody@example.org>").startswith("550 5.1.1")
    finally:
        c.close()
    (ev,) = events_for(gw, mark)
    assert (ev.client_ip, ev.helo) == ("2001:db8::5", "mail.remote.example")
