"""The SMTP boundary as an attacker who has read the source tries it (issue 12 doors 7-11, issue 13 item 1).

Every test drives a real `sendergate gateway` process over raw sockets (exact bytes:
smtplib would dot-stuff and fix line ends for us) and looks at what reached the
other side: a real Postfix 3.7 (a real victim of SMTP smuggling), a recording
downstream that keeps the exact wire bytes, a real Dovecot (LMTP in, IMAP out), a
Maildir, the gateway's own /proc figures and its store.
"""

from __future__ import annotations

import re
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.common import make_service_dir, remove_service_dir
from tests.support.gateway import GatewayProcess
from tests.support.postfix import PostfixInstance
from tests.support.rawsmtp import RawSMTP as Raw

KNOWN = "bob@friend.example"
HEAD = (b"From: Bob <bob@friend.example>\r\nTo: Alice <alice@example.org>\r\nSubject: Lunch\r\n"
        b"Message-ID: <lunch@friend.example>\r\n\r\n")


def send_raw(port: int, sender: str, rcpt: str, data: bytes) -> str:
    """One transaction whose DATA is exactly `data` (it must end with CRLF.CRLF); the end-of-DATA reply."""
    c = Raw(port)
    try:
        c.transaction(sender, rcpt)
        c.sock.sendall(data)
        reply = c.reply()
        c.cmd("QUIT")
        return reply
    finally:
        c.close()


# -- a downstream that records the exact wire bytes ------------------------------------------------

class Recorder:
    """A minimal SMTP server: accepts everything, keeps each DATA exactly as it came over the wire
    (from after the 354 up to and including the CRLF.CRLF that ends it), and each session's bytes."""

    def __init__(self, final_delay: float = 0.0) -> None:
        self.data: list[bytes] = []
        self.sessions: list[bytes] = []
        self.final_delay = final_delay
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._serve(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(30)
        seen = b""
        buf = b""

        def line() -> bytes | None:
            nonlocal buf, seen
            while b"\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                buf += chunk
                seen += chunk
            out, buf = buf.split(b"\r\n", 1)
            return out

        try:
            sock.sendall(b"220 recorder ESMTP\r\n")
            while (cmd := line()) is not None:
                verb = cmd[:4].upper()
                if verb in (b"EHLO", b"LHLO"):
                    sock.sendall(b"250-recorder\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                elif verb == b"DATA":
                    sock.sendall(b"354 go ahead\r\n")
                    while b"\r\n.\r\n" not in b"\r\n" + buf:  # the one end of DATA RFC 5321 defines
                        chunk = sock.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                        seen += chunk
                    end = (b"\r\n" + buf).index(b"\r\n.\r\n") + 3
                    with self.lock:
                        self.data.append(buf[:end])
                    buf = buf[end:]
                    time.sleep(self.final_delay)
                    sock.sendall(b"250 2.0.0 recorded\r\n")
                elif verb == b"QUIT":
                    sock.sendall(b"221 bye\r\n")
                    return
                else:
                    sock.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            with self.lock:
                self.sessions.append(seen)
            sock.close()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wire_problems(wire: bytes, authserv: bytes = b"mx.example.org") -> list[str]:
    """What must never reach a server behind the gateway, read the laxest way a receiver might."""
    problems = []
    if re.search(rb"\r(?!\n)|(?<!\r)\n", wire):
        problems.append("a CR or LF outside a CRLF pair")
    lines = re.split(rb"\r\n|\r|\n", wire)
    if lines[-2:] != [b".", b""]:
        problems.append("DATA does not end with the dot line")
    if b"." in lines[:-2]:
        problems.append("a lone-dot line before the end")
    head_lines = []
    for ln in lines:
        if ln == b"":
            break
        head_lines.append(ln)
    fields: list[bytes] = []
    for ln in head_lines:
        if ln[:1] in (b" ", b"\t") and fields:
            fields[-1] += b" " + ln
        else:
            fields.append(ln)
    for f in fields:
        name = f.split(b":", 1)[0].strip().lower()
        if name.startswith(b"x-sendergate-"):
            problems.append(f"forged {f[:60]!r}")
        if name == b"authentication-results" and b":" in f:
            value = re.sub(rb"\([^()]*\)", b" ", f.split(b":", 1)[1].split(b";", 1)[0]).replace(b'"', b" ")
            if value.split()[:1] == [authserv]:
                problems.append(f"forged {f[:60]!r}")
    return problems


# -- door 7: smuggling ---------------------------------------------------------------------------

SMUGGLE = (b"From: bob@friend.example\r\nTo: alice@example.org\r\nSubject: innocent\r\n\r\nhello\n.\r\n"
           b"MAIL FROM:<attacker@evil.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n"
           b"From: ceo@bank.example\r\nSubject: smuggled\r\n\r\npay now\r\n.\r\n")


def test_smuggling_lf_dot_crlf_injects_no_second_message_into_a_real_postfix() -> None:
    """Stand-alone: `<LF>.<CR><LF>` then SMTP commands inside DATA. Debian 12's Postfix 3.7 ends DATA
    at a bare-LF dot, so if the gateway forwarded it unstuffed, Postfix would run the rest as
    commands from the gateway (trusted: 127.0.0.1) and queue a second, unscanned message."""
    with PostfixInstance(mailbox_domain="example.org", mailboxes=("alice",), hostname="store.example.org") as mx:
        gw = GatewayProcess(delivery=("smtp", f"127.0.0.1:{mx.port}"))
        try:
            alice, _ = gw.store.add_user("alice@example.org")
            gw.store.add_entry(alice.id, "allow", KNOWN)
            gw.start()
            reply = send_raw(gw.smtp_port, KNOWN, "alice@example.org", SMUGGLE)
            new = mx.mail_dir / "alice" / "new"
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not (new.is_dir() and any(new.iterdir())):
                time.sleep(0.05)
            time.sleep(1.0)  # room for a second (smuggled) message to be queued and delivered
            mx.flush()
            mx.wait_for_empty_queue(timeout=15)
            delivered = [p.read_bytes() for p in sorted(new.glob("*"))]
            log = mx.maillog()
        finally:
            gw.close()
    assert reply.startswith("250"), reply
    assert len(delivered) == 1, delivered
    assert "attacker@evil.example" not in log
    first = delivered[0]
    # One message, holding the attacker's "commands" as its text, the dot line made harmless.
    head, _, body = first.replace(b"\r\n", b"\n").partition(b"\n\n")
    assert b"Subject: innocent" in head and b"smuggled" not in head
    assert b"MAIL FROM:<attacker@evil.example>" in body and b"Subject: smuggled" in body


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def recorded_gw(recorder: Recorder) -> Iterator[GatewayProcess]:
    g = GatewayProcess(delivery=("smtp", f"127.0.0.1:{recorder.port}"))
    alice, _ = g.store.add_user("alice@example.org")
    g.store.add_entry(alice.id, "allow", KNOWN)
    g.start()
    yield g
    g.close()


def last_data(recorder: Recorder, before: int, timeout: float = 10) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with recorder.lock:
            if len(recorder.data) > before:
                return recorder.data[-1]
        time.sleep(0.01)
    raise AssertionError("nothing reached the recording downstream")


def test_smuggling_no_lone_dot_line_reaches_the_wire_but_as_crlf_dot_crlf(recorder: Recorder,
                                                                          recorded_gw: GatewayProcess) -> None:
    before = len(recorder.data)
    reply = send_raw(recorded_gw.smtp_port, KNOWN, "alice@example.org", SMUGGLE)
    assert reply.startswith("250"), reply
    wire = last_data(recorder, before)
    assert wire_problems(wire) == [], wire
    assert b"\r\n..\r\nMAIL FROM:<attacker@evil.example>" in wire or \
        b"\r\n\r\nMAIL FROM:<attacker@evil.example>" in wire  # the dot line, unstuffed then stuffed again


ENDS = st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r", b"\r\n"])
LINES = st.one_of(
    st.sampled_from([b".", b"..", b"", b". leading dot", b"Authentication-Results: mx.example.org; dkim=pass",
                     b"Authentication-Results : MX.example.org.; spf=pass", b"X-SenderGate-Screened: yes",
                     b"x-sendergate-anything: 1", b"Authentication-Results: (our name) mx.example.org; dmarc=pass",
                     b"Subject: hello", b"MAIL FROM:<attacker@evil.example>", b" folded", b"\tfolded", b"QUIT"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(str.encode),
)


@st.composite
def data_mixes(draw: st.DrawFn) -> bytes:
    """A header block and a body of random lines joined by random line ends; only the real end
    (CRLF.CRLF, appended) may end DATA, so inputs that would end it early are left out."""
    head = [b"From: bob@friend.example"] + draw(st.lists(LINES, max_size=8))
    body = draw(st.lists(LINES, max_size=8))
    parts = []
    for line in head + [b""] + body:
        parts.append(line + draw(ENDS))
    payload = b"".join(parts)
    if not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    while b"\r\n.\r\n" in b"\r\n" + payload:
        if payload.startswith(b".\r\n"):
            payload = b"." + payload
        payload = payload.replace(b"\r\n.\r\n", b"\r\n..\r\n")
    return payload + b".\r\n"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=data_mixes())
def test_smuggling_line_end_mixes_reach_the_downstream_only_as_crlf(recorder: Recorder,
                                                                    recorded_gw: GatewayProcess, data: bytes) -> None:
    before = len(recorder.data)
    reply = send_raw(recorded_gw.smtp_port, KNOWN, "alice@example.org", data)
    assert reply.startswith("250"), reply
    wire = last_data(recorder, before)
    assert wire_problems(wire) == [], (data, wire)


# -- door 8: memory ---------------------------------------------------------------------------------

def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} for {pid}")


def test_memory_data_without_line_ends_stays_bounded() -> None:
    """100 MB of DATA without a line end to a gateway with max_message_size = 1MB: the worker's peak
    RSS grows by far less than what was sent (it grew by ~306 MB for 300 MB before), and the answer
    is 552 5.3.4."""
    with GatewayProcess(extra={"smtp": {"max_message_size": "1MB"}}) as g:  # workers = 1: the process is the worker
        alice, _ = g.store.add_user("alice@example.org")
        g.store.add_entry(alice.id, "allow", KNOWN)
        pid = g.proc.pid  # type: ignore[union-attr]
        c = Raw(g.smtp_port, timeout=120)
        try:
            c.transaction(KNOWN, "alice@example.org")
            before = _status(pid, "VmRSS")
            chunk = b"A" * (1 << 20)
            for _ in range(100):
                c.sock.sendall(chunk)
            c.sock.sendall(b"\r\n.\r\n")
            reply = c.reply()
            peak = _status(pid, "VmHWM")
            assert c.cmd("QUIT").startswith("221")
        finally:
            c.close()
    assert reply.startswith("552 5.3.4"), reply
    assert peak - before < 30 * 2**20, f"RSS grew by {(peak - before) / 2**20:.0f} MB"


# -- door 9: header forgery, read back from a real Dovecot ----------------------------------------

FORGERIES = [
    b"Subject: bare LF\nAuthentication-Results: mx.example.org; dkim=pass header.d=bank.example\r\n",
    b"Subject: bare CR\rX-SenderGate-Screened: yes\r\n",
    b"Subject: obsolete colon\r\nAuthentication-Results : mx.example.org; spf=pass\r\n",
    b"Subject: comment\r\nAuthentication-Results: (trusted) mx.example.org; dmarc=pass\r\n",
    b"Subject: folded\r\nAuthentication-Results:\r\n mx.example.org;\r\n dkim=pass\r\n",
    b"Subject: after junk\r\nnot a header line\r\nX-SenderGate-Screened: yes\r\n",
    b"Subject: mixed\n\rX-SENDERGATE-SCREENED: yes\r\rAuthentication-Results: \"mx.example.org\"; dkim=pass\n",
]


def test_header_forgery_under_our_name_never_reaches_dovecot() -> None:
    from imapclient import IMAPClient

    from tests.support.dovecot import DovecotServer

    with DovecotServer() as dovecot:
        dovecot.add_user("alice@example.org", "pw")
        with GatewayProcess(delivery=("lmtp", f"127.0.0.1:{dovecot.lmtp_port}")) as g:
            alice, _ = g.store.add_user("alice@example.org")
            g.store.add_entry(alice.id, "allow", KNOWN)
            for forged in FORGERIES:
                data = b"From: bob@friend.example\r\n" + forged + b"\r\nbody\r\n.\r\n"
                reply = send_raw(g.smtp_port, KNOWN, "alice@example.org", data)
                assert reply.startswith("250"), (forged, reply)
        with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False) as imap:
            imap.login("alice@example.org", "pw")
            imap.select_folder("INBOX", readonly=True)
            fetched = imap.fetch(imap.search("ALL"), ["BODY.PEEK[HEADER]"])
            headers = [v[b"BODY[HEADER]"] for v in fetched.values()]
            screened_search = imap.search(["HEADER", "X-SenderGate-Screened", ""])
            ar_search = imap.search(["HEADER", "Authentication-Results", "mx.example.org"])
    assert len(headers) == len(FORGERIES)
    for head in headers:
        assert wire_problems(head + b".\r\n") == [], head
    assert screened_search == [] and ar_search == []


# -- door 10: Maildir paths ---------------------------------------------------------------------------

def test_maildir_catch_all_rcpt_with_a_path_writes_under_the_users_own_maildir() -> None:
    outside = make_service_dir("sendergate-outside-")
    try:
        with GatewayProcess() as g:
            alice, _ = g.store.add_user("alice@example.org")
            g.store.add_alias("alice@example.org", "@example.org")  # catch-all
            g.store.add_entry(alice.id, "allow", KNOWN)
            replies = {}
            for rcpt in (f"{outside}/x@example.org", "../../x@example.org", "..@example.org",
                         ".hidden@example.org", "x/../../y@example.org"):
                c = Raw(g.smtp_port)
                try:
                    assert c.cmd("EHLO client.test").startswith("250")
                    assert c.cmd(f"MAIL FROM:<{KNOWN}>").startswith("250")
                    r = c.cmd(f"RCPT TO:<{rcpt}>")
                    if r.startswith("250"):
                        assert c.cmd("DATA").startswith("354")
                        c.sock.sendall(HEAD + b"hi\r\n.\r\n")
                        r = c.reply()
                    replies[rcpt] = r
                finally:
                    c.close()
            written = sorted(p.relative_to(g.maildir) for p in g.maildir.rglob("*") if p.is_file())
            escaped = [p for p in outside.rglob("*") if p.name != ".owner"]  # .owner: the test dir's mark
            root_parent = sorted(p.name for p in g.maildir.parent.iterdir())
    finally:
        remove_service_dir(outside)
    assert escaped == [], escaped
    assert replies[f"{outside}/x@example.org"].startswith("250"), replies
    # everything that was delivered is in alice's own Maildir (the canonical stored address)
    assert written and all(p.parts[:3] == ("alice@example.org", "Maildir", "new") for p in written), written
    assert "x@example.org" not in root_parent and "y@example.org" not in root_parent


# -- door 11: session limits ---------------------------------------------------------------------------

def test_rcpt_flood_ends_with_421_at_the_error_limit_and_stores_few_events() -> None:
    with GatewayProcess(extra={"smtp": {"error_limit": 10}}) as g:
        g.store.add_user("alice@example.org")
        c = Raw(g.smtp_port)
        try:
            assert c.cmd("EHLO client.test").startswith("250")
            assert c.cmd("MAIL FROM:<spammer@evil.example>").startswith("250")
            # pipelined, as a flood would be: 30 guessed recipients in one write
            c.sock.sendall(b"".join(f"RCPT TO:<guess{i}@example.org>\r\n".encode() for i in range(30)))
            tail = c.rest().decode()
        finally:
            c.close()
        events = g.events()
    replies = [line for line in tail.split("\r\n") if line]
    assert [r[:3] for r in replies] == ["550"] * 10 + ["421"], replies
    assert replies[-1].startswith("421 4.7.0")
    assert 1 <= len(events) <= 5, len(events)  # refused RCPTs: a few stored, the rest in the log only


def test_error_limit_counts_from_the_last_delivered_message() -> None:
    with GatewayProcess(extra={"smtp": {"error_limit": 3}}) as g:
        alice, _ = g.store.add_user("alice@example.org")
        g.store.add_entry(alice.id, "allow", KNOWN)
        c = Raw(g.smtp_port)
        try:
            assert c.cmd("EHLO client.test").startswith("250")
            for _ in range(3):
                assert c.cmd("MAIL FROM:<bob@friend.example>").startswith("250")
                assert c.cmd("RCPT TO:<nobody@example.org>").startswith("550")
                assert c.cmd("RCPT TO:<nobody2@example.org>").startswith("550")
                assert c.cmd("RCPT TO:<alice@example.org>").startswith("250")
                assert c.cmd("DATA").startswith("354")
                c.sock.sendall(HEAD + b"hi\r\n.\r\n")
                assert c.reply().startswith("250")  # delivered: the count starts again
            assert c.cmd("NOOP").startswith("250")
        finally:
            c.close()


def test_connection_cap_per_client_address_holds_across_workers() -> None:
    with GatewayProcess(workers=2, extra={"smtp": {"max_connections_per_ip": 4}}) as g:
        held: list[Raw] = []
        refused = 0
        try:
            for _ in range(12):
                try:
                    c = Raw(g.smtp_port, timeout=10)
                except ConnectionError as exc:
                    assert "421 4.7.0" in str(exc), exc
                    refused += 1
                    continue
                if c.banner.startswith("421"):
                    assert c.banner.startswith("421 4.7.0"), c.banner
                    refused += 1
                    c.close()
                else:
                    held.append(c)
            other = Raw(g.smtp_port, source="127.0.0.2")  # another client is not affected
            assert other.banner.startswith("220")
            other.close()
            held.pop().close()
            time.sleep(0.3)
            again = Raw(g.smtp_port)  # a session ended: room for one more
            assert again.banner.startswith("220"), again.banner
            again.close()
        finally:
            for c in held:
                c.close()
    assert len(held) + 1 == 4 and refused == 8


def test_peer_key_counts_ipv6_per_64_and_mapped_ipv4_as_ipv4() -> None:
    from sendergate.smtp.server import PeerTable, peer_key

    assert peer_key(("2001:db8:1:2::5", 25)) == peer_key(("2001:db8:1:2:ffff::9", 25))
    assert peer_key(("2001:db8:1:2::5", 25)) != peer_key(("2001:db8:1:3::5", 25))
    assert peer_key(("::ffff:192.0.2.1", 25)) == peer_key(("192.0.2.1", 25))
    assert peer_key(("192.0.2.1", 25)) != peer_key(("192.0.2.2", 25))
    table = PeerTable(workers=2, slots=4)
    table.use_region(0)
    key = peer_key(("192.0.2.1", 25))
    assert key is not None
    slots = [table.enter(key, 3) for _ in range(4)]
    assert slots[3] is None and None not in slots[:3]
    table.leave(slots[0])  # type: ignore[arg-type]
    assert table.enter(key, 3) is not None


# -- issue 13: Exim's pipelined "." and QUIT, then a half-close -----------------------------------------

def exim_like(port: int, sender: str, rcpt: str, message: bytes) -> list[str]:
    """What Exim 4.96 does on a fresh delivery without TLS: the content, ".", QUIT in one write, then
    shutdown(SHUT_WR); then it reads every reply until the server closes."""
    c = Raw(port)
    try:
        c.transaction(sender, rcpt)
        c.sock.sendall(message + b".\r\nQUIT\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        rest = c.rest()
    finally:
        c.close()
    return [line.decode() for line in rest.split(b"\r\n") if line]


@pytest.fixture(scope="module")
def maildir_gw() -> Iterator[GatewayProcess]:
    g = GatewayProcess()
    alice, _ = g.store.add_user("alice@example.org")
    g.store.add_entry(alice.id, "allow", KNOWN)
    g.start()
    yield g
    g.close()


def test_exim_pipelined_quit_after_half_close_known_sender_is_delivered_and_answered(
        maildir_gw: GatewayProcess) -> None:
    lines = exim_like(maildir_gw.smtp_port, KNOWN, "alice@example.org", HEAD + b"pipelined\r\n")
    assert [line[:3] for line in lines] == ["250", "221"], lines
    new = list((maildir_gw.maildir / "alice@example.org" / "Maildir" / "new").glob("*"))
    assert any(b"pipelined" in p.read_bytes() for p in new)
    assert [e.verdict for e in maildir_gw.events() if e.sender == KNOWN][-1] == "delivered"


def test_exim_pipelined_quit_after_half_close_stranger_gets_the_link(maildir_gw: GatewayProcess) -> None:
    lines = exim_like(maildir_gw.smtp_port, "stranger@elsewhere.example", "alice@example.org", HEAD + b"hi\r\n")
    assert lines[-1].startswith("221"), lines
    refusal = "\n".join(lines[:-1])
    assert refusal.startswith("550") and "https://mx.example.org/c/" in refusal, lines


def test_client_reset_during_delivery_leaves_no_delivery_without_its_event() -> None:
    """The client sends "." and resets the connection (RST) while the gateway is delivering: the
    transaction still finishes, and what was delivered has its event."""
    slow = Recorder(final_delay=1.5)
    try:
        with GatewayProcess(delivery=("smtp", f"127.0.0.1:{slow.port}")) as g:
            alice, _ = g.store.add_user("alice@example.org")
            g.store.add_entry(alice.id, "allow", KNOWN)
            c = Raw(g.smtp_port)
            c.transaction(KNOWN, "alice@example.org")
            c.sock.sendall(HEAD + b"reset\r\n.\r\n")
            time.sleep(0.5)  # the gateway is now waiting for the downstream's final reply
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.sock.close()  # RST
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not [e for e in g.events() if e.sender == KNOWN]:
                time.sleep(0.1)
            events = [e.verdict for e in g.events() if e.sender == KNOWN]
    finally:
        slow.stop()
    assert len(slow.data) == 1 and events == ["delivered"], (len(slow.data), events)
