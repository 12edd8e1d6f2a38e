"""Sign-up addresses with a real Postfix 3.7 as the sender's server (issue 19 item 4): a shop's Postfix relays
to the gateway; mail to a live tag is delivered on the first attempt (spam-scanned by a real spamd), mail
to a revoked tag comes back to the shop as a bounce quoting 550 5.1.1, with no link in it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.gateway import GatewayProcess
from tests.support.scanners import ScannerDaemon, start_spamd
from tests.support.sender_mtas import PostfixSender
from tests.test_sender_mtas import FIRST_ATTEMPT, Downstream, deferral_reason, wait_for_bounces

ALICE = "alice@example.org"
SHOP = "orders-desk"  # the shop's mailbox at sender.test (where its bounces land)


@pytest.fixture(scope="module")
def spamd() -> Iterator[ScannerDaemon]:
    d = start_spamd()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def downstream() -> Iterator[Downstream]:
    server = Downstream()
    server.up()
    yield server
    server.down()


@pytest.fixture(scope="module")
def gateway(downstream: Downstream, spamd: ScannerDaemon) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(delivery=("smtp", f"127.0.0.1:{downstream.port}"),
                        extra={"scan": {"spamd": spamd.tcp_spec, "timeout": "20s"}})
    gw.store.add_user(ALICE)
    gw.start()
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def postfix(gateway: GatewayProcess) -> Iterator[PostfixSender]:
    server = PostfixSender(routes={"example.org": gateway.smtp_port}, mailboxes=[SHOP])
    yield server
    server.stop()


def message(to: str, subject: str) -> bytes:
    return (f"From: Shop <{SHOP}@sender.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}-{time.time_ns()}@sender.test>\r\n"
            "Date: Sun, 06 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\nThank you for your order.\r\n").encode()


def test_postfix_delivers_to_a_live_tag_at_once(postfix: PostfixSender, gateway: GatewayProcess,
                                                downstream: Downstream) -> None:
    tag = gateway.store.add_tag(None, ALICE, "postfixshop")
    since = len(postfix.log())
    postfix.submit(f"{SHOP}@sender.test", [tag["address"]], message(tag["address"], "order confirmed"))
    got = downstream.wait_for(f"{SHOP}@sender.test", FIRST_ATTEMPT, deferral_reason(postfix, since))
    assert got.rcpt_tos == [tag["address"]]
    # the downstream has the message as soon as it said 250; the gateway records the event after that
    deadline = time.monotonic() + 30
    while not (events := [e for e in gateway.events() if e.tag == "postfixshop"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert events, "no event for the tagged delivery"
    ev = events[-1]
    assert (ev.verdict, ev.tag) == ("delivered", "postfixshop") and ev.spam_score is not None


def test_postfix_bounces_a_revoked_tag_with_550_511_and_no_link(postfix: PostfixSender,
                                                                gateway: GatewayProcess) -> None:
    tag = gateway.store.add_tag(None, ALICE, "leakedshop")
    gateway.store.revoke_tag(None, tag["id"])
    since = len(postfix.log())
    postfix.submit(f"{SHOP}@sender.test", [tag["address"]], message(tag["address"], "newsletter"))
    quoted = wait_for_bounces(postfix, SHOP, {tag["address"]}, since)[tag["address"]]
    assert "550" in quoted and "5.1.1" in quoted and "/c/" not in quoted and "http" not in quoted, quoted
