"""The Pending screener's sender context (issue 17 item 1) through a real gateway process: strangers are
refused over SMTP from their own loopback addresses, with SPF and DKIM answered by the loopback DNS
server (as in test_gateway_auth.py), and GET /api/v1/challenges is read as each user and the admin.

What must not happen: a display name that passes for an address, control or bidi characters in a
name, a user learning whom else in the office a sender wrote to."""

from __future__ import annotations

import base64
import re
import smtplib
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import httpx
import pytest

from sendergate.policy.decide import EventRecord, Verdict
from sendergate.web.confirm import expected_answer
from tests.support.dkim_keys import Zones, sign, signing_zones
from tests.support.gateway import GatewayProcess
from tests.test_confirm import other_than

GOOD_IP = "127.0.0.2"  # the senders' own server, in their SPF records
STRANGER_IP = "127.0.0.66"  # nobody's server
ALICE, ALICE_ALIAS, BOB = "alice@example.org", "sales@example.org", "bob@example.org"


@pytest.fixture(scope="module")
def zones() -> Iterator[Zones]:
    with signing_zones(["signed.test"]) as zones:
        s = zones.server
        s.add_txt("spf.test", f"v=spf1 ip4:{GOOD_IP} -all")
        s.add_txt("soft.test", f"v=spf1 ip4:{GOOD_IP} ~all")
        s.add_txt("dmarcnone.test", f"v=spf1 ip4:{GOOD_IP} ~all")
        s.add_txt("_dmarc.dmarcnone.test", "v=DMARC1; p=none")  # fails, yet gets a link (SPEC §4.5 item 3)
        s.add("signed.test", "A", "192.0.2.7")  # no SPF record
        yield zones


@pytest.fixture(scope="module")
def gw(zones: Zones) -> Iterator[GatewayProcess]:
    g = GatewayProcess(extra={"dns": {"nameservers": ["{}:{}".format(*zones.server.address)], "timeout": "1s"},
                              "http": {"trusted_proxies": ["127.0.0.1"]}})
    g.start()
    alice, g.alice_token = g.store.add_user(ALICE, name="Alice")  # type: ignore[attr-defined]
    g.store.add_alias(ALICE, ALICE_ALIAS)
    bob, g.bob_token = g.store.add_user(BOB, name="Bob")  # type: ignore[attr-defined]
    _, g.admin_token = g.store.add_user("admin@example.org", admin=True)  # type: ignore[attr-defined]
    g.alice_id, g.bob_id = alice.id, bob.id  # type: ignore[attr-defined]
    yield g
    g.close()


def send(gw: GatewayProcess, sender: str, from_header: bytes, *, ip: str, rcpt: str = ALICE,
         subject: str = "Lunch", key: object = None) -> tuple[int, str]:
    msg = b"From: " + from_header + (f"\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
                                     f"Date: Mon, 06 Jan 2025 10:00:00 +0000\r\n"
                                     f"Message-ID: <{time.monotonic_ns()}@t>\r\n\r\n"
                                     "Hello,\r\nsee you at noon.\r\n").encode()
    if key is not None:
        msg = sign(msg, key)  # type: ignore[arg-type]
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=20, source_address=(ip, 0)) as s:
        s.ehlo("client.test")
        s.mail(sender)
        code, text = s.rcpt(rcpt)
        assert code == 250, text
        code, reply = s.data(msg)
    return code, reply.decode()


def encoded(text: str) -> bytes:
    """An RFC 2047 encoded word: how a sender puts any character in a header."""
    return b"=?utf-8?b?" + base64.b64encode(text.encode()) + b"?="


def pending(gw: GatewayProcess, token: str) -> dict[str, dict]:
    r = httpx.get(gw.http_url + "/api/v1/challenges", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return {(c["sender"], c["recipient"]): c for c in r.json()["items"]}  # type: ignore[misc]


def one(gw: GatewayProcess, token: str, sender: str, rcpt: str = ALICE) -> dict:
    return pending(gw, token)[(sender, rcpt)]  # type: ignore[index]


def test_authentication_seen_verified_vs_could_not_verify_vs_failed(gw: GatewayProcess, zones: Zones) -> None:
    assert send(gw, "ann@spf.test", b"Ann <ann@spf.test>", ip=GOOD_IP)[0] == 550
    assert send(gw, "sig@signed.test", b"Sig <sig@signed.test>", ip=STRANGER_IP,
                key=zones.keys["signed.test"])[0] == 550
    assert send(gw, "sam@soft.test", b"Sam <sam@soft.test>", ip=STRANGER_IP)[0] == 550
    # signed, but by another domain: a signature proves nothing about soft.test
    assert send(gw, "tom@soft.test", b"Tom <tom@soft.test>", ip=STRANGER_IP, key=zones.keys["signed.test"])[0] == 550
    assert send(gw, "dee@dmarcnone.test", b"Dee <dee@dmarcnone.test>", ip=STRANGER_IP)[0] == 550
    token = gw.alice_token  # type: ignore[attr-defined]
    ann, sig = one(gw, token, "ann@spf.test"), one(gw, token, "sig@signed.test")
    assert (ann["auth_status"], ann["auth_detail"]) == ("verified", "SPF pass for spf.test")
    assert (sig["auth_status"], sig["auth_detail"]) == ("verified", "DKIM signature by signed.test")
    sam, tom = one(gw, token, "sam@soft.test"), one(gw, token, "tom@soft.test")
    assert sam["auth_status"] == "unverified" and "SPF softfail" in sam["auth_detail"]
    assert tom["auth_status"] == "unverified" and "DKIM pass by signed.test" in tom["auth_detail"]
    dee = one(gw, token, "dee@dmarcnone.test")
    assert dee["auth_status"] == "failed" and "DMARC fail" in dee["auth_detail"]


def test_display_name_is_shown_cleaned_and_never_as_an_address(gw: GatewayProcess) -> None:
    token = gw.alice_token  # type: ignore[attr-defined]
    send(gw, "jurgen@soft.test", b"=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jurgen@soft.test>", ip=STRANGER_IP)
    assert one(gw, token, "jurgen@soft.test")["display_name"] == "J\u00fcrgen M\u00fcller"
    # a name dressed as another address: not shown, and the row says why; the address stays the envelope's
    for sender, header in [("x1@soft.test", b'"service@bank.example" <x1@soft.test>'),
                           ("x2@soft.test", encoded("service\uff20bank.example") + b" <x2@soft.test>"),  # fullwidth @
                           ("x3@soft.test", encoded("ceo\ufe6bexample.org") + b" <x3@soft.test>"),  # small @
                           ("x4@soft.test", encoded("ceo@example.org") + b" <x4@soft.test>")]:
        assert send(gw, sender, header, ip=STRANGER_IP)[0] == 550
        c = one(gw, token, sender)
        assert (c["display_name"], c["display_name_hidden"], c["sender"]) == ("", True, sender), header
    # control characters, bidi overrides and line breaks (smuggled in an encoded word): gone
    evil = "Eve\u202e\u2066gnp.exe\x07\r\nBcc: x\u200b"
    send(gw, "eve@soft.test", encoded(evil) + b" <eve@soft.test>", ip=STRANGER_IP)
    name = one(gw, token, "eve@soft.test")["display_name"]
    assert name == "Evegnp.exe Bcc: x"
    assert not any(ord(ch) < 32 or 0x202A <= ord(ch) <= 0x202E or 0x2066 <= ord(ch) <= 0x2069 for ch in name)
    # the name repeated as the address: nothing to show, nothing hidden
    send(gw, "plain@soft.test", b'"plain@soft.test" <plain@soft.test>', ip=STRANGER_IP)
    c = one(gw, token, "plain@soft.test")
    assert (c["display_name"], c["display_name_hidden"]) == ("", False)
    # a later message's name replaces the first; one without a From name keeps nothing stale
    send(gw, "jurgen@soft.test", b"Juergen <jurgen@soft.test>", ip=STRANGER_IP, subject="Again")
    c = one(gw, token, "jurgen@soft.test")
    assert (c["display_name"], c["subject"], c["attempts"]) == ("Juergen", "Again", 2)


def test_captcha_tried_counts_wrong_answers(gw: GatewayProcess) -> None:
    code, reply = send(gw, "cap@soft.test", b"Cap <cap@soft.test>", ip=STRANGER_IP)
    assert code == 550
    link = re.search(r"/c/([A-Za-z0-9_-]+)", reply)
    assert link, reply
    assert one(gw, gw.alice_token, "cap@soft.test")["confirm_failures"] == 0  # type: ignore[attr-defined]
    http = httpx.Client(base_url=gw.http_url, timeout=10, headers={"X-Forwarded-For": "192.0.2.50"})
    page = http.get(f"/c/{link.group(1)}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert csrf and nonce, page.text
    r = http.post(f"/c/{link.group(1)}", data={"csrf": csrf.group(1), "nonce": nonce.group(1),
                                                 "answer": other_than(expected_answer(gw.store, link.group(1),
                                                                                     nonce.group(1)))})
    assert r.status_code == 400 and 'name="nonce"' in r.text  # wrong: a new CAPTCHA
    assert one(gw, gw.alice_token, "cap@soft.test")["confirm_failures"] == 1  # type: ignore[attr-defined]


def test_history_counts_earlier_refusals_and_shows_only_recipients_the_caller_may_see(gw: GatewayProcess) -> None:
    sender = "hist@soft.test"
    # Earlier mail from this sender, before this challenge (seeded: a spam refusal ten days ago to Alice,
    # and one to Bob), then today's refusals over SMTP: to Alice, to Alice's alias, to Bob.
    day = 86400

    def ago(seconds: float) -> datetime:
        return datetime.fromtimestamp(time.time() - seconds, timezone.utc)
    gw.store.add_events([
        EventRecord(ts=ago(10 * day), verdict=Verdict.SPAM, sender="Hist@Soft.test", recipient=ALICE,
                    user_id=gw.alice_id, reason="spam"),  # type: ignore[attr-defined]
        EventRecord(ts=ago(9 * day), verdict=Verdict.BLOCKED, sender=sender, recipient=BOB,
                    user_id=gw.bob_id, reason="blocked"),  # type: ignore[attr-defined]
        EventRecord(ts=ago(8 * day), verdict=Verdict.DELIVERED, sender=sender, recipient=ALICE,
                    user_id=gw.alice_id, reason="not a refusal"),  # type: ignore[attr-defined]
    ])
    for rcpt in (ALICE, ALICE_ALIAS, BOB):
        assert send(gw, sender, b"Hist <hist@soft.test>", ip=STRANGER_IP, rcpt=rcpt)[0] == 550
    alice_view = one(gw, gw.alice_token, sender)  # type: ignore[attr-defined]
    h = alice_view["history"]
    # Alice's challenge holds her two refusals today (one per address); the spam one is earlier
    assert alice_view["attempts"] == 2
    assert h["earlier_refusals"] == 1 and h["first_refused"] is not None
    assert h["other_recipients"] == [ALICE_ALIAS] and h["other_recipient_count"] == 1
    # Bob's view of the same sender says nothing about Alice's mail, and Alice's nothing about Bob's
    bob_view = one(gw, gw.bob_token, sender, BOB)  # type: ignore[attr-defined]
    assert bob_view["history"]["other_recipients"] == [] and bob_view["history"]["earlier_refusals"] == 1
    assert BOB not in str(pending(gw, gw.alice_token))  # type: ignore[attr-defined]
    assert ALICE not in str(pending(gw, gw.bob_token))  # type: ignore[attr-defined]
    # The admin (the office's owner) sees every recipient this sender wrote to
    admin = pending(gw, gw.admin_token)  # type: ignore[attr-defined]
    assert admin[(sender, ALICE)]["history"]["other_recipients"] == [BOB, ALICE_ALIAS]  # sorted
    assert admin[(sender, BOB)]["history"]["other_recipients"] == [ALICE, ALICE_ALIAS]
    # one challenge's own view carries the same
    r = httpx.get(f"{gw.http_url}/api/v1/challenges/{alice_view['id']}",
                  headers={"Authorization": f"Bearer {gw.alice_token}"}, timeout=10)  # type: ignore[attr-defined]
    assert r.json()["history"] == h


def test_the_live_stream_carries_the_name_and_status_but_no_history(gw: GatewayProcess) -> None:
    # the stream's rows come from the poller for every user: no per-caller history there (documented)
    from sendergate.web.convert import challenge_out
    row = gw.store.get_challenge(None, one(gw, gw.alice_token, "ann@spf.test")["id"])  # type: ignore[attr-defined]
    out = challenge_out(row)
    assert (out.display_name, out.auth_status, out.history) == ("Ann", "verified", None)
