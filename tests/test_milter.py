"""`sendergate milter` behind a real Postfix (smtpd_milters) that delivers to a real Dovecot over LMTP.

The client speaks SMTP to Postfix only; SenderGate decides through the milter
socket and Postfix delivers. Mail is read back over IMAP. clamd is the real
one (tests/support/scanners.py); the second milter in the chain is a small one
started by the test (its own thread and event loop).
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sendergate.milter import protocol as p
from sendergate.store import hash_message_id
from tests.support.common import free_loopback_port
from tests.support.dovecot import DovecotServer
from tests.support.gateway import loopback_dns
from tests.support.milter import MilterProcess
from tests.support.postfix import PostfixInstance
from tests.support.scanners import start_clamd

# Long enough that the reply has several lines: Postfix must pass a multi-line milter reply on whole.
BILINGUAL_REPLY = (
    "{recipient} accepts mail only from known senders. Confirm you are a person at {url} and send your "
    "message again. {recipient} nimmt nur Nachrichten von bekannten Absendern an. Bitte bestaetigen Sie "
    "unter {url}, dass Sie ein Mensch sind, und senden Sie Ihre Nachricht dann noch einmal. The link "
    "works for two weeks; after that, simply write again and you will get a new one. Der Link gilt zwei "
    "Wochen; danach schreiben Sie einfach noch einmal und erhalten einen neuen."
)
TOKEN = re.compile(rb"https://mx\.example\.org/c/([A-Za-z0-9_-]{22})\b")
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
USERS = ("alice", "carol", "dave", "erin")


def message(sender: str, to: str, subject: str, body: bytes = b"Hello.\r\n", extra: bytes = b"") -> bytes:
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@test>\r\n").encode() + extra + b"\r\n" + body


class OtherMilter:
    """A second milter in the chain: adds X-Other-Milter at end of message, refuses one sender at MAIL."""

    REFUSED = "<refused@other.test>"

    def __init__(self) -> None:
        self.port = free_loopback_port()
        self.loop = asyncio.new_event_loop()
        self.mails: list[str] = []
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(asyncio.start_server(
                lambda r, w: p.serve_connection(self._Filter(self), r, w), "127.0.0.1", self.port))
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    class _Filter:
        actions = p.SMFIF_ADDHDRS
        protocol = p.SMFIP_NR_HDR | p.SMFIP_NR_BODY

        def __init__(self, outer: OtherMilter) -> None:
            self.outer = outer

        async def connect(self, c: Any) -> list[p.Action]:
            return [p.CONTINUE]

        async def helo(self, c: Any) -> list[p.Action]:
            return [p.CONTINUE]

        async def mail(self, c: Any, args: list[str]) -> list[p.Action]:
            self.outer.mails.append(args[0])
            if args[0] == OtherMilter.REFUSED:
                return [p.reply("550 5.7.1 The other milter refuses this sender")]
            return [p.CONTINUE]

        async def rcpt(self, c: Any, args: list[str]) -> list[p.Action]:
            return [p.CONTINUE]

        async def header(self, c: Any, n: bytes, v: bytes) -> list[p.Action]:
            return []

        async def body(self, c: Any, chunk: bytes) -> list[p.Action]:
            return []

        async def end_of_message(self, c: Any) -> list[p.Action]:
            return [p.add_header("X-Other-Milter", "seen"), p.CONTINUE]

        def abort(self, c: Any) -> None:
            pass

        def close(self, c: Any) -> None:
            pass

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer()
    for name in USERS:
        server.add_user(f"{name}@example.org", "secret")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clamd() -> Iterator[Any]:
    daemon = start_clamd()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def milter(clamd: Any) -> Iterator[MilterProcess]:
    m = MilterProcess(listen="unix", extra={
        "challenge": {"reply": BILINGUAL_REPLY, "allowlist_auth": "relaxed",
                      "blocked_reply": "{recipient} does not accept mail from this sender (100% sure)."},
        "scan": {"clamd": clamd.tcp_spec},
    })
    users = {name: m.store.add_user(f"{name}@example.org")[0] for name in USERS}
    m.store.add_entry(users["alice"].id, "allow", "bob@friend.example")
    m.store.add_entry(users["erin"].id, "allow", "bob@friend.example")
    m.store.add_entry(users["dave"].id, "block", "bob@friend.example")
    m.store.add_sent_ids(users["alice"].id, [hash_message_id("<alice-wrote@example.org>")])
    m.users = users  # type: ignore[attr-defined]
    m.start()
    yield m
    m.close()


@pytest.fixture(scope="module")
def other() -> Iterator[OtherMilter]:
    o = OtherMilter()
    yield o
    o.stop()


@pytest.fixture(scope="module")
def mx(milter: MilterProcess, other: OtherMilter, dovecot: DovecotServer) -> Iterator[PostfixInstance]:
    """Port 25 of example.org: Postfix with the other milter first and SenderGate last (the order
    deployment.md recommends), delivering to Dovecot LMTP."""
    with PostfixInstance(routes={"example.org": f"lmtp:inet:127.0.0.1:{dovecot.lmtp_port}"},
                         hostname="mx.example.org",
                         main_cf={"mynetworks": "", "milter_protocol": "6", "milter_default_action": "tempfail",
                                  "smtpd_milters": f"inet:127.0.0.1:{other.port}, {milter.postfix_spec}"}) as pf:
        yield pf


def imap_messages(dovecot: DovecotServer, user: str) -> list[bytes]:
    from imapclient import IMAPClient

    with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False, timeout=10) as imap:
        imap.login(f"{user}@example.org", "secret")
        imap.select_folder("INBOX")
        uids = imap.search("ALL")
        return [d[b"RFC822"] for d in imap.fetch(uids, ["RFC822"]).values()] if uids else []


def wait_for(dovecot: DovecotServer, user: str, subject: str, mx: PostfixInstance, timeout: float = 15) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in imap_messages(dovecot, user) if f"Subject: {subject}".encode() in m]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{subject!r} not in {user}'s inbox; queue {mx.queue()}\n{mx.maillog_tail()}")
        time.sleep(0.05)


def subjects(dovecot: DovecotServer, user: str) -> list[bytes]:
    return [re.search(rb"Subject: ([^\r\n]*)", m).group(1) for m in imap_messages(dovecot, user)]  # type: ignore[union-attr]


def transaction(port: int, sender: str, recipients: list[str], data: bytes,
                source: str = "127.0.0.1") -> dict[str, Any]:
    """One SMTP transaction with Postfix; every reply (smtplib joins a reply's lines with \\n)."""
    out: dict[str, Any] = {"rcpt": {}}
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=60,
                      source_address=(source, 0)) as client:
        out["ehlo"] = client.ehlo()
        out["mail"] = client.mail(sender)
        if out["mail"][0] != 250:
            return out
        for r in recipients:
            out["rcpt"][r] = client.rcpt(r)
        if not any(code == 250 for code, _ in out["rcpt"].values()):
            return out
        out["data"] = client.data(data)
    return out


def header_block(raw: bytes) -> list[bytes]:
    """The delivered message's fields, unfolded, in order."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    return re.sub(rb"\r\n[ \t]+", b" ", head).split(b"\r\n")


# -- the tests ---------------------------------------------------------------------------------------

def test_unknown_sender_refused_in_session_with_the_link_intact(mx: PostfixInstance, milter: MilterProcess,
                                                                dovecot: DovecotServer) -> None:
    sent = transaction(mx.port, "stranger@elsewhere.test", ["alice@example.org"],
                       message("stranger@elsewhere.test", "alice@example.org", "Who am I"))
    assert "data" in sent, (sent, mx.maillog_tail(), milter.read_log()[-1500:])
    code, text = sent["data"]
    lines = text.split(b"\n")
    assert code == 550, sent
    assert lines[0].startswith(b"5.7.1 alice@example.org accepts mail only from known senders. Confirm"), lines
    assert len(lines) >= 2 and TOKEN.search(lines[0]), lines  # multi-line, the link on the first line
    assert all(line.startswith(b"5.7.1 ") for line in lines)  # each line keeps its enhanced code
    assert b"nimmt nur Nachrichten" in text  # the whole reply, not only its first line
    token = TOKEN.search(lines[0]).group(1).decode()  # type: ignore[union-attr]
    page = httpx.get(f"{milter.http_url}/c/{token}", timeout=10)
    assert page.status_code == 200 and "alice@example.org" in page.text
    mx.wait_for_empty_queue()
    assert re.search(r"milter-reject: END-OF-MESSAGE from .*: 5\.7\.1 alice@example\.org accepts mail", mx.maillog())
    assert b"Who am I" not in b"".join(subjects(dovecot, "alice"))
    assert [e.verdict for e in milter.events() if e.sender == "stranger@elsewhere.test"] == ["challenged"]


def test_known_sender_delivered_by_postfix_with_our_headers_and_none_forged(
        mx: PostfixInstance, milter: MilterProcess, dovecot: DovecotServer) -> None:
    forged = (b"X-SenderGate-Screened: yes\r\n"
              b"Authentication-Results: mx.example.org; dkim=pass header.d=friend.example\r\n"
              b"X-SenderGate-Screened : yes\r\n"
              b"Authentication-Results: other.example; spf=pass\r\n")
    sent = transaction(mx.port, "bob@friend.example", ["alice@example.org"],
                       message("bob@friend.example", "alice@example.org", "From a friend", extra=forged))
    assert sent["data"][0] == 250 and b"queued as" in sent["data"][1], sent
    fields = header_block(wait_for(dovecot, "alice", "From a friend", mx))
    ours = [f for f in fields if f.lower().startswith(b"authentication-results: mx.example.org;")]
    assert len(ours) == 1, fields  # ours, and the forged one under our name gone
    assert b"spf=none" in ours[0] and b"dmarc=none" in ours[0]
    assert b"Authentication-Results: other.example; spf=pass" in fields  # another server's results stay
    assert not [f for f in fields if f.lower().startswith(b"x-sendergate")], fields
    assert not [f for f in fields if b"(SenderGate)" in f], fields  # Postfix writes the Received line
    received = [i for i, f in enumerate(fields) if f.startswith(b"Received: from client.test")]
    assert received and b"by mx.example.org (Postfix)" in fields[received[0]], fields
    assert fields.index(ours[0]) < received[0], fields  # on top, as the proxy puts it
    assert b"X-Other-Milter: seen" in fields  # the other milter in the chain did its part too
    [event] = [e for e in milter.events() if e.subject == "From a friend"]
    assert (event.verdict, event.client_ip, event.helo) == ("delivered", "127.0.0.1", "client.test")
    queue_id = re.search(rb"queued as ([0-9A-Za-z]+)", sent["data"][1]).group(1).decode()  # type: ignore[union-attr]
    assert f"milter queue_id={queue_id} sender=bob@friend.example" in milter.read_log()  # Postfix's log <-> ours


def test_signed_mail_verifies_as_sent_through_the_milter(mx: PostfixInstance, milter: MilterProcess,
                                                          dovecot: DovecotServer) -> None:
    """The milter sees the message as Postfix passes it (fields one by one, folded lines, body chunks)
    and rebuilds it for the sender checks: a signature with simple/simple canonicalization (every
    byte counts) must verify, or a domain publishing DMARC p=reject would have its mail refused."""
    import dkim

    from tests.support.dkim_keys import make_key

    key = make_key("signed-milter.test")
    dns = loopback_dns()
    dns.add_txt(f"{key.selector}._domainkey.{key.domain}", f"v=DKIM1; k=rsa; p={key.public_b64}")
    dns.add_txt(f"_dmarc.{key.domain}", "v=DMARC1; p=reject")
    milter.store.add_entry(milter.users["alice"].id, "allow", "@signed-milter.test")  # type: ignore[attr-defined]
    raw = (b"From: Shop <orders@signed-milter.test>\r\nTo: Alice <alice@example.org>,\r\n"
           b"\tsomeone else <x@example.org>\r\nSubject: Your order, a subject long enough\r\n"
           b" to be folded over two lines\r\nX-Spaces:    three spaces and a tab\t\r\n"
           b"Message-ID: <signed-1@signed-milter.test>\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n\r\n"
           b"Line one.\r\n\r\n  indented line with trailing space \r\n\r\n\r\n")
    signed = dkim.sign(raw, key.selector.encode(), key.domain.encode(), key.private_pem,
                       canonicalize=(b"simple", b"simple"),
                       include_headers=[b"from", b"to", b"subject", b"x-spaces", b"message-id", b"date"]) + raw
    # From another loopback address: Postfix rewrites no header of a client that is not itself.
    sent = transaction(mx.port, "orders@signed-milter.test", ["alice@example.org"], signed, source="127.0.0.3")
    assert sent["data"][0] == 250, sent
    fields = header_block(wait_for(dovecot, "alice", "Your order, a subject long enough", mx))
    [ours] = [f for f in fields if f.startswith(b"Authentication-Results: mx.example.org;")]
    assert b"dkim=pass header.d=signed-milter.test" in ours and b"dmarc=pass" in ours, ours


def test_virus_refused_through_postfix(mx: PostfixInstance, milter: MilterProcess, dovecot: DovecotServer) -> None:
    sent = transaction(mx.port, "bob@friend.example", ["alice@example.org"],
                       message("bob@friend.example", "alice@example.org", "Invoice attached",
                               body=EICAR + b"\r\n"))
    code, text = sent["data"]
    assert code == 554 and text.startswith(b"5.7.0") and b"EICAR" in text, sent
    mx.wait_for_empty_queue()
    assert b"Invoice attached" not in b"".join(subjects(dovecot, "alice"))
    assert [e.verdict for e in milter.events() if e.subject == "Invoice attached"] == ["virus"]


def test_chain_other_milter_refusal_stands_and_ours_still_refuses_strangers(
        mx: PostfixInstance, milter: MilterProcess, other: OtherMilter) -> None:
    refused = transaction(mx.port, "refused@other.test", ["alice@example.org"], b"")
    assert refused["mail"][0] == 550 and b"other milter" in refused["mail"][1], refused
    # The first milter's refusal ends the transaction: SenderGate was not asked, recorded nothing.
    assert not [e for e in milter.events() if e.sender == "refused@other.test"]
    assert "<refused@other.test>" in other.mails


def test_recipients_of_one_message_never_get_what_their_policy_refuses(
        mx: PostfixInstance, milter: MilterProcess, dovecot: DovecotServer) -> None:
    """bob is allowlisted by alice and erin, a stranger to carol, blocked by dave. dave is refused at
    RCPT (as by the proxy) and gets nothing. carol shares the transaction (as with the proxy): one
    end-of-message reply cannot both accept (alice, erin) and challenge (carol), so carol gets it
    screened. The proxy hands carol's copy on separately; the milter edits the one copy Postfix
    queues for all, so every copy carries the screening mark: never carol's copy unmarked."""
    sent = transaction(mx.port, "bob@friend.example",
                       ["alice@example.org", "carol@example.org", "dave@example.org", "erin@example.org"],
                       message("bob@friend.example", "alice@example.org", "For some of you"))
    codes = {r: c for r, (c, _) in sent["rcpt"].items()}
    assert codes == {"alice@example.org": 250, "carol@example.org": 250, "dave@example.org": 550,
                     "erin@example.org": 250}, sent
    assert b"(100% sure)" in sent["rcpt"]["dave@example.org"][1], sent  # '%' survives Postfix's reading
    assert sent["data"][0] == 250, sent
    for user in ("alice", "carol", "erin"):
        fields = header_block(wait_for(dovecot, user, "For some of you", mx))
        assert b"X-SenderGate-Screened: yes" in fields, (user, fields)
    mx.wait_for_empty_queue()
    assert b"For some of you" not in b"".join(subjects(dovecot, "dave"))
    verdicts = {e.recipient: e.verdict for e in milter.events() if e.sender == "bob@friend.example"
                and (e.subject == "For some of you" or e.recipient == "dave@example.org")}
    assert verdicts == {"alice@example.org": "delivered", "carol@example.org": "screened",
                        "dave@example.org": "blocked", "erin@example.org": "delivered"}


def test_a_virus_to_several_recipients_reaches_none(mx: PostfixInstance, milter: MilterProcess,
                                                     dovecot: DovecotServer) -> None:
    sent = transaction(mx.port, "bob@friend.example", ["alice@example.org", "carol@example.org"],
                       message("bob@friend.example", "alice@example.org", "Shared invoice",
                               body=EICAR + b"\r\n"))
    assert sent["data"][0] == 554, sent
    mx.wait_for_empty_queue()
    for user in ("alice", "carol"):
        assert b"Shared invoice" not in b"".join(subjects(dovecot, user))


def test_one_reply_for_recipients_decided_differently_at_end_of_message(
        mx: PostfixInstance, milter: MilterProcess, dovecot: DovecotServer) -> None:
    """A stranger's reply to mail alice sent: alice knows it (delivered), carol does not (she would be
    challenged). One end-of-message reply cannot be both, so carol gets it screened; the one copy
    Postfix queues then carries the screening mark for both (never carol's copy unmarked)."""
    loopback_dns().add_txt("replies-milter.test", "v=spf1 ip4:127.0.0.1 -all")  # a reply must authenticate
    extra = b"In-Reply-To: <alice-wrote@example.org>\r\n"
    sent = transaction(mx.port, "newcomer@replies-milter.test", ["alice@example.org", "carol@example.org"],
                       message("newcomer@replies-milter.test", "alice@example.org", "Re your note", extra=extra))
    assert [c for c, _ in sent["rcpt"].values()] == [250, 250], sent
    assert sent["data"][0] == 250, sent
    for user in ("alice", "carol"):
        fields = header_block(wait_for(dovecot, user, "Re your note", mx))
        assert b"X-SenderGate-Screened: yes" in fields, (user, fields)
        assert any(f.startswith(b"Authentication-Results: mx.example.org; spf=pass") for f in fields), fields
    verdicts = {e.recipient: e.verdict for e in milter.events() if e.subject == "Re your note"}
    assert verdicts == {"alice@example.org": "delivered", "carol@example.org": "screened"}


def test_milter_down_postfix_answers_451(milter: MilterProcess, dovecot: DovecotServer) -> None:
    """milter_default_action = tempfail: with the milter unreachable Postfix tells every client to come
    back later (451 4.7.1 at MAIL FROM) and queues nothing."""
    dead = f"unix:{milter.dir}/not-running.sock"
    with PostfixInstance(routes={"example.org": f"lmtp:inet:127.0.0.1:{dovecot.lmtp_port}"},
                         hostname="mx.example.org",
                         main_cf={"mynetworks": "", "milter_protocol": "6", "milter_default_action": "tempfail",
                                  "smtpd_milters": dead}) as down:
        sent = transaction(down.port, "bob@friend.example", ["alice@example.org"],
                           message("bob@friend.example", "alice@example.org", "While down"))
        assert down.queue() == []
        log = down.maillog()
    code, text = sent["mail"]
    assert code == 451 and text.startswith(b"4.7.1"), sent
    assert sent["ehlo"][0] == 250, sent  # Postfix greets and answers EHLO, then refuses each MAIL FROM
    assert "connect to Milter service" in log, log[-2000:]
    assert b"While down" not in b"".join(subjects(dovecot, "alice"))
