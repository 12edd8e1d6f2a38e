"""The sender's server is a real MTA: Exim 4.96, OpenSMTPD 6.8 and Postfix 3.7 relay to a real
gateway process, and what they do with its answers is what the sender sees (issue 13).

    sender ─SMTP─▶ Exim | OpenSMTPD | Postfix ─SMTP, no TLS─▶ gateway ─SMTP─▶ downstream (in-process)
                        └─ their bounces ─▶ the sender's Maildir at that MTA (read by the test)

Each case waits at most a minute for what must happen on the MTA's FIRST attempt, and stops
waiting as soon as the MTA logs a temporary failure instead: none of them tries again within the
minute (Postfix after ~5 min, OpenSMTPD ~6m40s, Exim 15 min with Debian's retry rule), so a
deferral is the failure, quoted from the MTA's own log.
"""

from __future__ import annotations

import email
import email.policy
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from sendergate.store import schema
from sendergate.web.confirm import expected_answer
from tests.support.common import ServiceError, free_loopback_port
from tests.support.gateway import GatewayProcess, write_config
from tests.support.sender_mtas import EximSender, OpenSMTPDSender, PostfixSender, SenderMTA, unfold

ALICE = "alice@example.org"
BOB = "bob@example.org"
FIRST_ATTEMPT = 60.0  # seconds: what "at once" means for a sender's server
CASES = ("stranger", "known", "two", "down", "mixed", "rolefirst", "alicefirst")
MTAS = ("exim", "opensmtpd", "postfix")

# A temporary failure in each MTA's log (the first attempt did not settle the message).
DEFERRED = {
    "exim": re.compile(r"^.* == (\S+) .*$", re.M),
    "opensmtpd": re.compile(r'^.*mta delivery .* to=<([^>]+)> .*result="TempFail".*$', re.M),
    "postfix": re.compile(r"^.* to=<([^>]+)>, .*status=deferred.*$", re.M),
}


# --- the gateway's downstream: a mail server that can go away and come back ---------------------


@dataclass
class Downstream:
    """An in-process SMTP server behind the gateway, recording what it accepts."""

    port: int = field(default_factory=free_loopback_port)
    received: list[Envelope] = field(default_factory=list)
    controller: Controller | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return "250 2.0.0 Stored"

    def up(self) -> None:
        if self.controller is None:
            self.controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                         server_hostname="mailstore.example.org")
            self.controller.start()

    def down(self) -> None:
        """Nothing listens on the port any more: the gateway's delivery is refused."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def wait_for(self, sender: str, timeout: float, failed: Callable[[], str | None]) -> Envelope:
        """The message from sender, waiting for it; `failed` ends the wait early with its reason."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.received if e.mail_from == sender]
            if found:
                return found[0]
            reason = failed()
            if reason:
                pytest.fail(f"no delivery from {sender}: {reason}")
            if time.monotonic() > deadline:
                pytest.fail(f"no delivery from {sender} within {timeout:g} s")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def downstream() -> Iterator[Downstream]:
    server = Downstream()
    server.up()
    yield server
    server.down()


@pytest.fixture(scope="module")
def gateway(downstream: Downstream) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(delivery=("smtp", f"127.0.0.1:{downstream.port}"))
    gw.sections["http"]["public_url"] = gw.http_url  # links the test can follow over HTTP
    write_config(gw.config_path, gw.sections)
    gw.start()
    gw.store.add_user(ALICE)
    gw.store.add_user(BOB)
    yield gw
    gw.close()


@pytest.fixture(scope="module", params=MTAS)
def mta(request: pytest.FixtureRequest, gateway: GatewayProcess) -> Iterator[SenderMTA]:
    """One sender's server per MTA for the module, relaying example.org to the gateway."""
    routes = {"example.org": gateway.smtp_port}
    mailboxes = [mailbox(case, request.param) for case in CASES]
    server: SenderMTA
    if request.param == "exim":
        server = EximSender(routes=routes, mailboxes=mailboxes)
    elif request.param == "opensmtpd":
        server = OpenSMTPDSender(routes=routes, mailboxes=mailboxes)
    else:
        server = PostfixSender(routes=routes, mailboxes=mailboxes)
    yield server
    server.stop()


# --- helpers ------------------------------------------------------------------------------------


def mailbox(case: str, mta: str) -> str:
    """The sender's local part: one sender per case and MTA (the gateway's store is shared)."""
    return f"{case}-{mta}"


def message(sender: str, recipients: list[str], subject: str) -> bytes:
    return (f"From: <{sender}>\r\nTo: {', '.join(recipients)}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@sender.test>\r\n"
            "Date: Sun, 06 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\nHello, this is a first message.\r\n").encode()


def deferrals(mta: SenderMTA, since: int) -> list[str]:
    """Log lines since offset `since` in which the MTA put a delivery off for later."""
    return [m.group(0) for m in DEFERRED[mta.name].finditer(mta.log()[since:])]


def deferral_reason(mta: SenderMTA, since: int) -> Callable[[], str | None]:
    def reason() -> str | None:
        lines = deferrals(mta, since)
        if lines:
            return f"{mta.name} deferred it, so its next try is minutes away:\n" + "\n".join(lines)
        return None
    return reason


def failed_recipients(bounce: bytes) -> dict[str, str]:
    """recipient -> the remote reply the MTA quotes for it, from the delivery-status part
    (Final-Recipient + Diagnostic-Code), else from the human-readable part's
    "recipient: reply" lines (OpenSMTPD's report has no Diagnostic-Code)."""
    parsed = email.message_from_bytes(bounce, policy=email.policy.compat32)
    found: dict[str, str] = {}
    text = ""
    for part in parsed.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload()[1:]:
                recipient = str(block.get("Final-Recipient", "")).split(";")[-1].strip().lower()
                diagnostic = block.get("Diagnostic-Code")
                if recipient and diagnostic:
                    found[recipient] = unfold(str(diagnostic).encode()).decode()
        elif part.get_content_type() == "text/plain" and not text:
            text = unfold(part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    if not found:
        for line in text.splitlines():
            quoted = re.match(r"<?([^\s<>:]+@[^\s<>:]+)>?: (.+)", line.strip())
            if quoted:
                found[quoted.group(1).lower()] = quoted.group(2)
    return found


def wait_for_bounces(mta: SenderMTA, box: str, recipients: set[str], since: int) -> dict[str, str]:
    """recipient -> quoted reply, from the bounces in box, once every recipient has one."""
    deadline = time.monotonic() + FIRST_ATTEMPT
    while True:
        quoted: dict[str, str] = {}
        for bounce in mta.mail(box):
            quoted.update(failed_recipients(bounce))
        if recipients <= quoted.keys():
            return quoted
        missing = ", ".join(sorted(recipients - quoted.keys()))
        reason = deferral_reason(mta, since)()
        if reason:
            pytest.fail(f"no bounce for {missing}: {reason}")
        if time.monotonic() > deadline:
            pytest.fail(f"no bounce for {missing} within {FIRST_ATTEMPT:g} s; {mta.name} log tail:\n"
                        f"{mta.log()[since:][-3000:]}")
        time.sleep(0.05)


def links(gateway: GatewayProcess, text: str) -> list[str]:
    return re.findall(rf"{re.escape(gateway.http_url)}/c/([A-Za-z0-9_-]{{22}})", text)


def pending_challenge(gateway: GatewayProcess, recipient: str, sender: str) -> object | None:
    c = schema.challenges
    with gateway.store.engine.connect() as conn:
        return conn.execute(select(c).where(c.c.recipient == recipient, c.c.sender == sender,
                                            c.c.status == "pending")).first()


def allowed(gateway: GatewayProcess, recipient: str, sender: str) -> bool:
    user = gateway.store.user_by_address(recipient)
    e = schema.list_entries
    with gateway.store.engine.connect() as conn:
        return conn.execute(select(e).where(e.c.user_id == user.id, e.c.value == sender,
                                            e.c.action == "allow")).first() is not None


def confirm(gateway: GatewayProcess, token: str) -> None:
    """Answer the link's CAPTCHA rightly over HTTP (the answer read from the store's secret)."""
    with httpx.Client(base_url=gateway.http_url, timeout=10) as http:
        page = http.get(f"/c/{token}").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        nonce = re.search(r'name="nonce" value="([^"]+)"', page)
        assert csrf and nonce, page
        answered = http.post(f"/c/{token}", data={"csrf": csrf.group(1), "nonce": nonce.group(1),
                                                  "answer": expected_answer(gateway.store, token, nonce.group(1))})
        assert answered.status_code == 200, answered.text


def known(gateway: GatewayProcess, sender: str) -> None:
    user = gateway.store.user_by_address(ALICE)
    gateway.store.add_entry(user.id, "allow", sender)


# --- the matrix ---------------------------------------------------------------------------------


def test_a_strangers_first_attempt_bounces_with_a_working_link(mta: SenderMTA, gateway: GatewayProcess) -> None:
    box = mailbox("stranger", mta.name)
    sender = f"{box}@sender.test"
    since = len(mta.log())
    mta.submit(sender, [ALICE], message(sender, [ALICE], f"stranger via {mta.name}"))

    quoted = wait_for_bounces(mta, box, {ALICE}, since)
    assert "550" in quoted[ALICE], quoted
    [token] = links(gateway, quoted[ALICE])
    challenge = gateway.store.challenge_by_token(token)
    assert challenge is not None and challenge.status == "pending", challenge
    assert (challenge.recipient, challenge.sender) == (ALICE, sender)
    page = httpx.get(f"{gateway.http_url}/c/{token}", timeout=10)
    assert page.status_code == 200 and ALICE in page.text


def test_b_a_known_senders_first_attempt_is_delivered(mta: SenderMTA, gateway: GatewayProcess,
                                                      downstream: Downstream) -> None:
    box = mailbox("known", mta.name)
    sender = f"{box}@sender.test"
    known(gateway, sender)
    since = len(mta.log())
    mta.submit(sender, [ALICE], message(sender, [ALICE], f"known via {mta.name}"))

    delivered = downstream.wait_for(sender, FIRST_ATTEMPT, deferral_reason(mta, since))
    assert delivered.rcpt_tos == [ALICE]
    assert f"Subject: known via {mta.name}".encode() in (delivered.original_content or b"")
    wait_until_gone(mta, sender)
    assert mta.mail(box) == []  # no bounce, no delay warning
    assert [e.mail_from for e in downstream.received].count(sender) == 1  # delivered once


def test_c_a_stranger_writing_to_two_gets_a_usable_challenge_for_each(mta: SenderMTA,
                                                                      gateway: GatewayProcess) -> None:
    box = mailbox("two", mta.name)
    sender = f"{box}@sender.test"
    since = len(mta.log())
    mta.submit(sender, [ALICE, BOB], message(sender, [ALICE, BOB], f"two via {mta.name}"))

    quoted = wait_for_bounces(mta, box, {ALICE, BOB}, since)
    tokens: dict[str, list[str]] = {r: links(gateway, quoted[r]) for r in (ALICE, BOB)}
    for recipient, found in tokens.items():
        assert found, f"the bounce holds no link for {recipient}: {quoted[recipient]}"
        for token in found:
            page = httpx.get(f"{gateway.http_url}/c/{token}", timeout=10)
            # The link quoted for a recipient is one that recipient's challenge answers to, never another's.
            assert page.status_code == 200 and recipient in page.text, \
                f"the link {mta.name} quoted for {recipient} is not theirs: {quoted[recipient]}"
        assert pending_challenge(gateway, recipient, sender), f"no pending challenge for {recipient}: {quoted}"
    for token in {t for found in tokens.values() for t in found}:
        confirm(gateway, token)
    assert allowed(gateway, ALICE, sender) and allowed(gateway, BOB, sender)


def test_d_downstream_down_the_message_waits_in_the_queue_and_is_delivered_after(
        mta: SenderMTA, gateway: GatewayProcess, downstream: Downstream) -> None:
    box = mailbox("down", mta.name)
    sender = f"{box}@sender.test"
    known(gateway, sender)
    since = len(mta.log())
    downstream.down()
    try:
        mta.submit(sender, [ALICE], message(sender, [ALICE], f"down via {mta.name}"))
        deadline = time.monotonic() + FIRST_ATTEMPT
        while not (lines := deferrals(mta, since)):
            assert time.monotonic() < deadline, f"{mta.name} did not try within {FIRST_ATTEMPT:g} s"
            time.sleep(0.05)
        # The gateway said "try again later"; the MTA neither gave up nor lost the connection.
        assert "451" in lines[0] and "4.3.0" in lines[0], lines
        assert mta.queued(sender) == 1
    finally:
        downstream.up()
    mta.flush()
    delivered = downstream.wait_for(sender, FIRST_ATTEMPT, lambda: None)
    assert f"Subject: down via {mta.name}".encode() in (delivered.original_content or b"")
    wait_until_gone(mta, sender)
    assert mta.mail(box) == []  # no bounce, no delay warning
    assert [e.mail_from for e in downstream.received].count(sender) == 1  # delivered once


def wait_until_gone(mta: SenderMTA, sender: str, timeout: float = 10.0) -> None:
    """Wait until nothing from sender is left in the MTA's queue."""
    deadline = time.monotonic() + timeout
    while mta.queued(sender):
        if time.monotonic() > deadline:
            raise ServiceError(f"{mta.name} still holds mail from {sender} after {timeout:g} s:\n"
                               f"{mta.log()[-2000:]}")
        time.sleep(0.1)


@pytest.mark.parametrize("order", ["stranger-first", "known-first"])
def test_e_a_sender_known_to_one_recipient_reaches_both_on_the_first_attempt(
        mta: SenderMTA, gateway: GatewayProcess, downstream: Downstream, order: str) -> None:
    """Known to bob, unknown to alice, one message to both. With a 452 split Exim 4.96 failed bob with
    alice's 550 and link (stranger first) and Postfix/OpenSMTPD deferred one of them for minutes: now
    both are accepted in one transaction, bob's copy for his inbox, alice's screened, no bounce."""
    box = mailbox("mixed", mta.name)
    sender = f"{box}-{order}@sender.test"
    gateway.store.add_entry(gateway.store.user_by_address(BOB).id, "allow", sender)
    recipients = [ALICE, BOB] if order == "stranger-first" else [BOB, ALICE]
    since = len(mta.log())
    mta.submit(sender, recipients, message(sender, recipients, f"mixed {order} via {mta.name}"))

    delivered = downstream.wait_for(sender, FIRST_ATTEMPT, deferral_reason(mta, since))
    deadline = time.monotonic() + FIRST_ATTEMPT
    while len(copies := [e for e in downstream.received if e.mail_from == sender]) < 2:
        assert time.monotonic() < deadline, f"only {[c.rcpt_tos for c in copies]} delivered"
        time.sleep(0.05)
    by_rcpt = {tuple(c.rcpt_tos): c for c in copies}
    assert set(by_rcpt) == {(ALICE,), (BOB,)}, by_rcpt.keys()
    assert b"X-SenderGate-Screened: yes" in (by_rcpt[(ALICE,)].original_content or b"")
    assert b"X-SenderGate-Screened" not in (by_rcpt[(BOB,)].original_content or b"")
    assert delivered is not None
    wait_until_gone(mta, sender)
    assert mta.mail(box) == []  # no bounce for either


@pytest.mark.parametrize("order", ["role-first", "alice-first"])
def test_f_a_stranger_to_postmaster_and_alice(mta: SenderMTA, gateway: GatewayProcess, downstream: Downstream,
                                              order: str) -> None:
    """SPEC §4.6: postmaster@ (nobody has it: the first admin receives it) is not challenged, alice is; the
    gateway puts the second recipient off (452 4.5.3) to a transaction of its own. Whatever the MTA makes
    of that, alice never receives the stranger's mail and is never silently dropped: her copy is
    challenged (a bounce with a link) or waits in the MTA's queue for its retry."""
    if gateway.store.role_owner("") is None:
        gateway.store.add_user("owner@example.org", admin=True)
    box = mailbox(order.replace("-", ""), mta.name)
    sender = f"{box}@sender.test"  # its bounces come to this mailbox
    recipients = ["postmaster@example.org", ALICE] if order == "role-first" else [ALICE, "postmaster@example.org"]
    seen = len(mta.mail(box))
    since = len(mta.log())
    mta.submit(sender, recipients, message(sender, recipients, f"role {order} via {mta.name}"))
    deadline = time.monotonic() + FIRST_ATTEMPT
    quoted: dict[str, str] = {}
    outcome = ""
    while time.monotonic() < deadline and not outcome:
        for bounce in mta.mail(box)[seen:]:
            quoted.update(failed_recipients(bounce))
        outcome = "bounced" if ALICE in quoted else "deferred" if mta.queued(sender) and deferrals(mta, since) else ""
        time.sleep(0.1)
    copies = [e for e in downstream.received if e.mail_from == sender]
    assert all(c.rcpt_tos == ["owner@example.org"] for c in copies), [c.rcpt_tos for c in copies]
    assert outcome, (f"{mta.name}: alice neither bounced nor queued within {FIRST_ATTEMPT:g} s:\n"
                     f"{mta.log()[since:][-3000:]}")
    if outcome == "bounced":
        assert links(gateway, quoted[ALICE]), quoted
    print(f"{mta.name} {order}: alice {outcome}; postmaster copies delivered: {len(copies)}; "
          f"postmaster bounced: {'postmaster@example.org' in quoted}")
