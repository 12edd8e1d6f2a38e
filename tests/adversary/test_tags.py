"""A tag never skips the spam scan (issue 19; SPEC §4.5 item 1): even the one sender who skips spamd at a plain
address, an allowlisted sender authenticated for its own domain, is scanned when writing to a sign-up address.
Real gateway, real spamd, the loopback DNS zones of tests/adversary/test_known_paths.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adversary.test_known_paths import (  # noqa: F401  (zones and spamd are fixtures used by name)
    GOOD_IP,
    RCPT,
    event,
    gateway,
    gtube_body,
    message,
    send,
    spamd,
    where,
    zones,
)
from tests.support.dkim_keys import Zones
from tests.support.gateway import GatewayProcess
from tests.support.scanners import ScannerDaemon


@pytest.fixture(scope="module")
def relaxed(zones: Zones, spamd: ScannerDaemon) -> Iterator[GatewayProcess]:  # noqa: F811
    gw = gateway(zones, "relaxed", spamd)
    yield gw
    gw.close()


def test_gtube_from_an_authenticated_allowlisted_sender_to_a_tag_is_spam(relaxed: GatewayProcess) -> None:
    t = relaxed.store.add_tag(None, RCPT, "friends")
    msg, msgid = message("Bob <bob@friend.test>", body=gtube_body())
    code, text = send(relaxed, msg, sender="bob@friend.test", ip=GOOD_IP, rcpts=(t["address"],))
    assert code == 554 and text.startswith("5.7.1"), text
    ev = event(relaxed, msgid)
    assert ev.verdict == "spam" and ev.spam_score >= 1000
    assert where(relaxed, msgid) is None


def test_clean_mail_from_the_same_sender_to_the_tag_is_delivered_scanned(relaxed: GatewayProcess) -> None:
    t = relaxed.store.add_tag(None, RCPT, "friends2")
    msg, msgid = message("Bob <bob@friend.test>")
    code, text = send(relaxed, msg, sender="bob@friend.test", ip=GOOD_IP, rcpts=(t["address"],))
    assert code == 250, text
    ev = event(relaxed, msgid)
    assert ev.verdict == "delivered" and ev.spam_score is not None
    assert ev.reason.startswith("sign-up address friends2; allowlisted sender")
    assert where(relaxed, msgid) == "inbox"
