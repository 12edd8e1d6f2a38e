"""The SMTP decisions, fast: GatewayHandler behind the gateway's own server class (GatewaySMTP, built by
SessionTemplate.from_config as a worker builds it), on a loopback socket inside this process, with a real
store on a temporary SQLite file and fakes for the scanners, the downstream server and the sender check.

What each fake stands in for is proved against the real thing elsewhere: clamd and spamd in
tests/test_gateway_scan.py, SPF/DKIM/DMARC over loopback DNS in tests/test_gateway_auth.py, delivery to
a real Postfix/smtp-sink in tests/test_gateway_smtp.py. Here the point is the handler's mapping from
what they say to the reply, the event and the hand-off.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sendergate.config import Config, from_dict
from sendergate.decisionlog import DecisionLog
from sendergate.delivery import Delivered, DeliveryError, Outbound
from sendergate.policy.decide import AuthResults, EventRecord, ScanOutcome
from sendergate.policy.headers import SCREENED_MARK
from sendergate.runtime import Runtime
from sendergate.smtp.handler import GatewayHandler
from sendergate.smtp.server import GatewaySMTP, SessionTemplate
from sendergate.store import AsyncStore, Store

pytestmark = pytest.mark.fast

HOST = "mx.example.org"
PUBLIC = "https://gw.example.org"


# -- fakes ------------------------------------------------------------------------------------------

class FakeScanners:
    """Fake of scan.Scanners: a virus, a spam score or a scanner failure on demand, which real clamd and
    spamd give only for crafted messages and slowly. Records what it was asked to scan."""

    def __init__(self, outcome: ScanOutcome | None = None) -> None:
        self.outcome = outcome or ScanOutcome(spam_score=0.0)
        self.calls: list[tuple[bool, bool]] = []  # (spam, virus) per call

    async def scan(self, message: bytes, *, spam: bool, virus: bool = True, envelope: object = None) -> ScanOutcome:
        self.calls.append((spam, virus))
        o = self.outcome
        return ScanOutcome(virus=o.virus if virus else None, virus_failed=o.virus_failed if virus else None,
                           spam_score=o.spam_score if spam else None, spam_failed=o.spam_failed if spam else None)

    async def ping(self) -> dict[str, str]:
        return {"clamd": "ok", "spamd": "ok"}


class FakeDeliverer:
    """Fake of delivery.Deliverer: keeps what would be handed to the server behind the gateway, or
    answers as a refusing downstream would (a real one needs a daemon and gives no 5xx on demand)."""

    def __init__(self, refuse: DeliveryError | None = None) -> None:
        self.handed: list[tuple[Outbound, str]] = []
        self.refuse = refuse

    async def deliver(self, out: Outbound, *, folder: str = "") -> Delivered:
        if self.refuse is not None:
            raise self.refuse
        self.handed.append((out, folder))
        return Delivered("250 2.0.0 Ok: queued")

    async def close(self) -> None:
        pass


class FakeAuthenticator:
    """Fake of senderauth.Authenticator: fixed SPF/DKIM/DMARC results, where the real checks need DNS
    zones and signed mail (tests/test_gateway_auth.py does that over loopback DNS)."""

    def __init__(self, results: AuthResults) -> None:
        self.results = results
        self.calls = 0

    def close(self) -> None: ...

    async def check(self, message: bytes, *, envelope_sender: str | None, helo: str, client_ip: str) -> AuthResults:
        self.calls += 1
        return self.results


class FakeMetrics:
    """Fake of metrics.Metrics: the real one switches prometheus_client into multi-process mode for the
    whole test process (environment and module state); tests/test_metrics_wiring.py covers it."""

    def __init__(self) -> None:
        self.verdicts: list[str] = []
        self.open = 0

    def session_opened(self) -> None:
        self.open += 1

    def session_closed(self) -> None:
        self.open -= 1

    def observe_data(self, seconds: float) -> None: ...
    def observe_scan(self, scanner: str, seconds: float) -> None: ...
    def observe_delivery(self, seconds: float, *, ok: bool) -> None: ...

    def count(self, verdict: str) -> None:
        self.verdicts.append(verdict)

    def count_confirmation(self) -> None: ...
    def observe_api(self, method: str, route: str, status: int, seconds: float) -> None: ...

    def render(self, challenge_counts: dict[str, int] | None = None) -> bytes:
        return b""

    def close(self) -> None: ...


def passing(domain: str) -> AuthResults:
    return AuthResults(spf="pass", spf_domain=domain, dkim_pass_domains=(domain,), dmarc="pass", from_domain=domain)


def forged(domain: str) -> AuthResults:
    return AuthResults(spf="fail", spf_domain=domain, dmarc="fail", dmarc_policy="reject", from_domain=domain)


# -- the gateway in this process -------------------------------------------------------------------

@dataclass
class Gateway:
    rt: Runtime
    scanners: FakeScanners
    deliverer: FakeDeliverer
    authenticator: FakeAuthenticator
    metrics: FakeMetrics
    events: list[EventRecord] = field(default_factory=list)


def config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    raw: dict[str, Any] = {"domains": {"local": ["example.org"]}, "store": {"url": f"sqlite:///{tmp_path}/gw.db"},
                           "smtp": {"hostname": HOST}, "http": {"public_url": PUBLIC}}
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return from_dict(raw)


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Gateway]:
    """A runtime on a fresh store (alice and carol at example.org; alice allowlists bob@friend.example and
    blocks spam@bad.example), with fakes; keyword arguments replace a fake or add config sections."""
    stores: list[Store] = []

    def build(*, outcome: ScanOutcome | None = None, auth: AuthResults | None = None,
              deliverer: FakeDeliverer | None = None, **sections: dict[str, Any]) -> Gateway:
        cfg = config(tmp_path, **sections)
        store = Store(cfg.store.url)
        store.migrate()
        stores.append(store)
        alice, _ = store.add_user("alice@example.org")
        store.add_user("carol@example.org")
        store.add_entry(alice.id, "allow", "bob@friend.example")
        store.add_entry(alice.id, "block", "spam@bad.example")
        fakes = (FakeScanners(outcome), deliverer or FakeDeliverer(),
                 FakeAuthenticator(auth or passing("friend.example")), FakeMetrics())
        events: list[EventRecord] = []
        log = DecisionLog("kv", count=fakes[3].count)

        def decision_log(ev: EventRecord) -> None:
            events.append(ev)
            log(ev)

        rt = Runtime(cfg=cfg, store=store, astore=AsyncStore(store), deliverer=fakes[1], metrics=fakes[3],
                     decision_log=decision_log, scanners=fakes[0], authenticator=fakes[2])
        return Gateway(rt, *fakes, events=events)

    yield build
    for s in stores:
        s.close()


@contextlib.asynccontextmanager
async def engine(gw: Gateway) -> AsyncIterator[tuple[int, set[GatewaySMTP], SessionTemplate]]:
    """The gateway's SMTP server on a loopback port of this process, as gateway.Worker starts it: its port,
    its open sessions and the worker's session template."""
    loop = asyncio.get_running_loop()
    handler = GatewayHandler(gw.rt)
    template = SessionTemplate.from_config(handler, gw.rt.cfg.smtp, metrics=gw.rt.metrics)
    sessions: set[GatewaySMTP] = set()
    gw.rt.astore.start()
    server = await loop.create_server(lambda: GatewaySMTP(handler, sessions=sessions, template=template, loop=loop),
                                      "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], sessions, template
    finally:
        server.close()
        for s in list(sessions):
            await s.shutdown_idle()
        if template.inflight:
            await asyncio.wait(list(template.inflight), timeout=10)
        await gw.rt.astore.close()


@contextlib.asynccontextmanager
async def serving(gw: Gateway) -> AsyncIterator[int]:
    """engine's port alone."""
    async with engine(gw) as (port, _sessions, _template):
        yield port


class Client:
    """A raw SMTP client on asyncio streams: exact commands, each reply's lines joined by \\n."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def reply(self) -> str:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 30)).decode().rstrip("\r\n")
            lines.append(line)
            if line[3:4] != "-":
                return "\n".join(lines)

    async def cmd(self, line: str) -> str:
        self.writer.write(line.encode() + b"\r\n")
        return await self.reply()

    async def data(self, message: bytes) -> str:
        assert (await self.cmd("DATA")).startswith("354")
        self.writer.write(message + b"\r\n.\r\n")
        return await self.reply()


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = Client(reader, writer)
    assert (await client.reply()).startswith("220")
    assert (await client.cmd("EHLO client.friend.example")).startswith("250")
    try:
        yield client
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def message(sender: str, to: str = "alice@example.org", subject: str = "Hello", extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <m1@sender.test>\r\n{extra}\r\n"
            "Just a line.\r\n").encode()


async def send(port: int, sender: str, recipients: list[str], content: bytes) -> list[str]:
    """One transaction: the MAIL reply, each RCPT reply, and the DATA reply when a recipient was accepted."""
    async with connect(port) as c:
        replies = [await c.cmd(f"MAIL FROM:<{sender}>")]
        replies += [await c.cmd(f"RCPT TO:<{r}>") for r in recipients]
        if any(r.startswith("250") for r in replies[1:]):
            replies.append(await c.data(content))
        await c.cmd("QUIT")
    return replies


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


# -- the cases --------------------------------------------------------------------------------------

def test_an_unknown_sender_gets_one_link_nothing_is_delivered_and_the_challenge_is_stored(make: Any) -> None:
    gw = make()

    async def go() -> list[str]:
        async with serving(gw) as port:
            return await send(port, "stranger@far.example", ["alice@example.org"], message("stranger@far.example"))

    replies = run(go())
    assert replies[:2] == ["250 2.1.0 Sender ok", "250 2.1.5 Recipient ok"]
    assert replies[2].startswith("550 5.7.1") and f"{PUBLIC}/c/" in replies[2]
    token = replies[2].split(f"{PUBLIC}/c/", 1)[1].split()[0]
    assert [c.sender for c in gw.rt.store.challenges_by_token(token)] == ["stranger@far.example"]
    assert gw.deliverer.handed == []
    assert gw.scanners.calls == [(True, True)]  # a stranger is always spam-scanned
    assert [e.verdict.value for e in gw.events] == ["challenged"] == gw.metrics.verdicts


def test_an_authenticated_allowlisted_sender_is_delivered_with_trace_headers_and_skips_spamd(make: Any) -> None:
    gw = make(auth=passing("friend.example"))

    async def go() -> list[str]:
        async with serving(gw) as port:
            return await send(port, "bob@friend.example", ["alice@example.org"], message("bob@friend.example"))

    replies = run(go())
    assert replies[-1] == "250 2.0.0 Message accepted for delivery"
    [(out, folder)] = gw.deliverer.handed
    assert (out.mail_from, out.recipients, folder) == ("bob@friend.example", ["alice@example.org"], "")
    head = out.message.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith(f"Authentication-Results: {HOST};") and "\r\nReceived: from client.friend.example" in head
    assert SCREENED_MARK.split(":")[0] not in head
    assert gw.scanners.calls == [(False, True)]  # clamd only: SPEC §4.5 item 1
    assert [e.verdict.value for e in gw.events] == ["delivered"]


def test_an_allowlisted_sender_failing_authentication_is_spam_scanned_and_refused_without_a_link(make: Any) -> None:
    gw = make(auth=forged("friend.example"))

    async def go() -> list[str]:
        async with serving(gw) as port:
            return await send(port, "bob@friend.example", ["alice@example.org"], message("bob@friend.example"))

    replies = run(go())
    assert replies[-1].startswith("550 5.7.1") and "/c/" not in replies[-1]
    assert "failed sender authentication" in replies[-1]
    assert gw.scanners.calls == [(False, True), (True, False)]  # spamd after all, once the check failed
    assert gw.deliverer.handed == []
    assert [e.verdict.value for e in gw.events] == ["blocked"]


def test_a_blocked_sender_and_an_unknown_recipient_are_refused_at_rcpt(make: Any) -> None:
    gw = make()

    async def go() -> list[str]:
        async with serving(gw) as port:
            return await send(port, "spam@bad.example", ["alice@example.org", "nobody@example.org",
                                                         "someone@elsewhere.example"], b"")

    replies = run(go())
    assert replies[1].startswith("550 5.7.1")
    assert replies[2] == "550 5.1.1 No such user here"
    assert replies[3] == "550 5.7.1 Relaying denied"
    assert len(replies) == 4  # no recipient accepted: no DATA
    assert [e.verdict.value for e in gw.events] == ["blocked", "unknown_recipient", "relay_denied"]
    assert gw.scanners.calls == [] and gw.deliverer.handed == []


def test_one_recipient_knows_the_sender_the_other_gets_it_screened_in_one_transaction(make: Any) -> None:
    gw = make(auth=passing("friend.example"))

    async def go() -> list[str]:
        async with serving(gw) as port:
            return await send(port, "bob@friend.example", ["alice@example.org", "carol@example.org"],
                              message("bob@friend.example"))

    replies = run(go())
    assert replies[1:] == ["250 2.1.5 Recipient ok", "250 2.1.5 Recipient ok",
                           "250 2.0.0 Message accepted for delivery"]
    (inbox, inbox_folder), (screened, screened_folder) = gw.deliverer.handed
    assert (inbox.recipients, inbox_folder) == (["alice@example.org"], "")
    assert (screened.recipients, screened_folder) == (["carol@example.org"], "Screened")
    assert screened.message.startswith(SCREENED_MARK.encode()) and not inbox.message.startswith(b"X-")
    assert sorted((e.recipient, e.verdict.value) for e in gw.events) == [
        ("alice@example.org", "delivered"), ("carol@example.org", "screened")]


def test_the_null_sender_gets_one_recipient_and_a_non_report_is_refused(make: Any) -> None:
    gw = make()

    async def go() -> list[str]:
        async with serving(gw) as port:
            return await send(port, "", ["alice@example.org", "carol@example.org"], message("someone@far.example"))

    replies = run(go())
    assert replies[1] == "250 2.1.5 Recipient ok"
    assert replies[2].startswith("452 4.5.3")  # one recipient per null-sender transaction (SPEC §4.2 item 5)
    assert replies[3].startswith("550 5.7.1") and "/c/" not in replies[3]
    assert [(e.sender, e.verdict.value) for e in gw.events] == [("", "bulk")]
    assert gw.deliverer.handed == []


def test_a_bounce_about_nothing_alice_sent_is_screened(make: Any) -> None:
    gw = make()
    report = (b"From: MAILER-DAEMON@far.example\r\nTo: alice@example.org\r\nSubject: Undelivered\r\n"
              b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
              b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
              b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; far.example\r\n\r\n"
              b"Final-Recipient: rfc822; x@far.example\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n")

    async def go() -> list[str]:
        async with serving(gw) as port:
            return await send(port, "", ["alice@example.org"], report)

    replies = run(go())
    assert replies[-1] == "250 2.0.0 Message accepted for delivery"
    [(out, folder)] = gw.deliverer.handed
    assert folder == "Screened" and out.mail_from == ""
    assert [e.verdict.value for e in gw.events] == ["screened"]


@pytest.mark.parametrize(("scan", "sender", "on_failure", "reply", "verdict"), [
    (ScanOutcome(virus="Eicar-Test-Signature"), "bob@friend.example", "tempfail", "554 5.7.0", "virus"),
    (ScanOutcome(virus="Eicar-Test-Signature"), "stranger@far.example", "tempfail", "554 5.7.0", "virus"),
    (ScanOutcome(spam_score=25.0), "stranger@far.example", "tempfail", "554 5.7.1", "spam"),
    (ScanOutcome(virus_failed="unreachable"), "bob@friend.example", "tempfail", "451 4.7.0", "tempfail"),
    (ScanOutcome(spam_failed="timed out"), "stranger@far.example", "tempfail", "451 4.7.0", "tempfail"),
    (ScanOutcome(spam_failed="timed out"), "stranger@far.example", "accept", "550 5.7.1", "challenged"),
    (ScanOutcome(virus_failed="unreachable"), "bob@friend.example", "accept", "250 2.0.0", "delivered"),
])
def test_scan_verdicts_map_to_replies(make: Any, scan: ScanOutcome, sender: str, on_failure: str, reply: str,
                                      verdict: str) -> None:
    gw = make(outcome=scan, auth=passing(sender.split("@")[1]), scan={"on_failure": on_failure})

    async def go() -> list[str]:
        async with serving(gw) as port:
            return await send(port, sender, ["alice@example.org"], message(sender))

    replies = run(go())
    assert replies[-1].startswith(reply)
    assert [e.verdict.value for e in gw.events] == [verdict]
    assert len(gw.deliverer.handed) == (verdict == "delivered")


@pytest.mark.parametrize(("refusal", "reply", "verdict"), [
    (DeliveryError(550, "5.1.1", "mailbox unavailable", where="downstream"), "550 5.1.1 mailbox unavailable",
     "unknown_recipient"),
    (DeliveryError(421, "4.4.2", "connection closed by downstream", where="downstream"), "451 4.3.0", "tempfail"),
])
def test_the_downstreams_refusal_is_the_reply(make: Any, refusal: DeliveryError, reply: str, verdict: str) -> None:
    gw = make(deliverer=FakeDeliverer(refuse=refusal))

    async def go() -> list[str]:
        async with serving(gw) as port:
            return await send(port, "bob@friend.example", ["alice@example.org"], message("bob@friend.example"))

    assert run(go())[-1].startswith(reply)
    assert [e.verdict.value for e in gw.events] == [verdict]


def test_the_handler_alone_answers_a_bad_sender_address_without_touching_the_store(make: Any) -> None:
    """GatewayHandler driven directly, without a server: MAIL's syntax check comes before anything else."""
    from aiosmtpd.smtp import Envelope, Session

    gw = make()
    gw.rt.store.close()  # any store access would fail now
    handler = GatewayHandler(gw.rt)
    session, envelope = Session(asyncio.new_event_loop()), Envelope()
    answer = run(handler.handle_MAIL(None, session, envelope, "<a@@b>", []))
    assert answer.startswith("553 5.1.7 Bad sender address syntax")
    assert envelope.mail_from is None and gw.events == []
