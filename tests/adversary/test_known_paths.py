"""An attacker who has read the source tries every path delivered without a challenge (issue 12,
doors 1-6 and the DNS part of 11; SPEC §4.2 items 5-8, §4.5 items 1-3 and 5).

Real `sendergate gateway` processes, real spamd (GTUBE), Maildir delivery read back from disk, and
an authoritative DNS server on loopback holding the zones of the people involved:

- friend.test: Bob's domain, allowlisted by Alice; SPF -all for GOOD_IP, DKIM, DMARC p=reject;
- attacker.test: the attacker's own, fully authenticated domain (SPF pass from ATTACKER_IP, DKIM);
- lists.proj.test: a list Alice reads (List-Id and List-Post allowlisted); SPF -all for LIST_IP, DKIM;
- softlist.test: a list whose domain publishes `~all`;
- nothing.test: a domain that publishes nothing (SPF none, no DMARC): Carol, allowlisted;
- dead.test: its DNS never answers.

Each "client" connects from its own 127.0.0.x address so SPF sees distinct servers.
"""

from __future__ import annotations

import itertools
import json
import smtplib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sendergate.config import Config
from sendergate.store import hash_message_id
from tests.support.dkim_keys import Zones, sign, signing_zones
from tests.support.gateway import GatewayProcess
from tests.support.scanners import GTUBE, ScannerDaemon, start_spamd

GOOD_IP = "127.0.0.2"  # friend.test's own server
LIST_IP = "127.0.0.3"  # the list server (lists.proj.test, softlist.test)
ATTACKER_IP = "127.0.0.66"  # attacker.test's server: SPF pass for attacker.test, nothing else
RCPT = "alice@example.org"
SENT_ID = "<lunch-plan-42@example.org>"  # a Message-ID Alice sent (its hash uploaded by the app)
DNS_TIMEOUT = "1s"

_ids = itertools.count(1)
SIGNERS = ("friend.test", "attacker.test", "lists.proj.test")


@pytest.fixture(scope="module")
def zones() -> Iterator[Zones]:
    with signing_zones(SIGNERS) as zones:
        server = zones.server
        server.add_txt("friend.test", f"v=spf1 ip4:{GOOD_IP} -all")
        server.add_txt("_dmarc.friend.test", "v=DMARC1; p=reject")
        server.add_txt("monitor.test", f"v=spf1 ip4:{GOOD_IP} -all")
        server.add_txt("_dmarc.monitor.test", "v=DMARC1; p=none")  # publishes DMARC to monitor only
        server.add_txt("attacker.test", f"v=spf1 ip4:{ATTACKER_IP} -all")
        server.add_txt("lists.proj.test", f"v=spf1 ip4:{LIST_IP} -all")
        server.add_txt("softlist.test", f"v=spf1 ip4:{LIST_IP} ~all")
        server.add("nothing.test", "A", "192.0.2.7")  # exists, publishes no SPF, no DMARC
        for name in ("dead.test", "_dmarc.dead.test"):
            server.drop(name)
        yield zones


@pytest.fixture(scope="module")
def spamd() -> Iterator[ScannerDaemon]:
    daemon = start_spamd()
    yield daemon
    daemon.stop()


def gateway(zones: Zones, mode: str, spamd: ScannerDaemon | None, **sections: dict) -> GatewayProcess:
    """A started gateway delivering into a Maildir, with Alice's allowlist and sent mail."""
    extra: dict[str, dict] = {"dns": {"nameservers": ["{}:{}".format(*zones.server.address)], "timeout": DNS_TIMEOUT},
                              "challenge": {"allowlist_auth": mode}}
    if spamd is not None:
        extra["scan"] = {"spamd": spamd.tcp_spec, "timeout": "20s"}
    for name, values in sections.items():
        extra.setdefault(name, {}).update(values)
    gw = GatewayProcess(extra=extra)
    alice, _ = gw.store.add_user(RCPT, name="Alice")
    gw.store.add_user("carol@example.org")
    for pattern in ("bob@friend.test", "carol@nothing.test", "sam@dead.test",
                    "list:dev.lists.proj.test", "dev@lists.proj.test", "list:talk.softlist.test"):
        gw.store.add_entry(alice.id, "allow", pattern)
    gw.store.add_sent_ids(alice.id, [hash_message_id(SENT_ID)])
    return gw.start()


@pytest.fixture(scope="module")
def relaxed(zones: Zones, spamd: ScannerDaemon) -> Iterator[GatewayProcess]:
    gw = gateway(zones, "relaxed", spamd)  # delivery.screened_folder left at its default
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def strict(zones: Zones, spamd: ScannerDaemon) -> Iterator[GatewayProcess]:
    gw = gateway(zones, "strict", spamd)
    yield gw
    gw.close()


# -- messages, sending, reading back ------------------------------------------------

def message(from_header: str, *, body: str = "Hello Alice,\r\nsee you at noon.\r\n", subject: str = "Lunch",
            headers: tuple[tuple[str, str], ...] = ()) -> tuple[bytes, str]:
    msgid = f"<adv-{next(_ids)}-{time.monotonic_ns()}@client.test>"
    lines = [f"From: {from_header}", f"To: {RCPT}", f"Subject: {subject}",
             "Date: Mon, 06 Jan 2025 10:00:00 +0000", f"Message-ID: {msgid}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8"), msgid


def report(kind: str, about: str, *, body_note: str = "Your message could not be delivered.") -> tuple[bytes, str]:
    """A null-sender report about the message `about`: a DSN (RFC 3464) returning its headers or the
    whole message, an MDN (RFC 8098), or an auto-reply (RFC 3834)."""
    if kind == "auto-reply":
        return message("Bob <bob@friend.test>", subject="Out of office", body="I am away until Monday.\r\n",
                       headers=(("Auto-Submitted", "auto-replied"), ("In-Reply-To", about)))
    if kind == "mdn":
        report_type, second = "disposition-notification", (
            "Content-Type: message/disposition-notification\r\n\r\nReporting-UA: mua.friend.test\r\n"
            f"Original-Recipient: rfc822;bob@friend.test\r\nOriginal-Message-ID: {about}\r\n"
            "Disposition: manual-action/MDN-sent-manually; displayed\r\n")
        third = ""
    else:
        report_type, second = "delivery-status", (
            "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.friend.test\r\n\r\n"
            "Final-Recipient: rfc822; gone@friend.test\r\nAction: failed\r\nStatus: 5.1.1\r\n")
        returned = f"From: Alice <{RCPT}>\r\nTo: gone@friend.test\r\nSubject: Lunch\r\nMessage-ID: {about}\r\n"
        third = (f"--rb\r\nContent-Type: text/rfc822-headers\r\n\r\n{returned}" if kind == "dsn-headers" else
                 f"--rb\r\nContent-Type: message/rfc822\r\n\r\n{returned}\r\nLunch at noon?\r\n")
    body = (f"--rb\r\nContent-Type: text/plain\r\n\r\n{body_note}\r\n--rb\r\n{second}{third}--rb--\r\n")
    return message("Mail Delivery System <MAILER-DAEMON@mx.friend.test>", subject="Returned mail", body=body,
                   headers=(("MIME-Version", "1.0"),
                            ("Content-Type", f'multipart/report; report-type={report_type}; boundary="rb"')))


def send(gw: GatewayProcess, msg: bytes, *, sender: str, ip: str, helo: str = "client.test",
         rcpts: tuple[str, ...] = (RCPT,)) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=60, source_address=(ip, 0)) as s:
        s.ehlo(helo)
        code, text = s.mail(sender)
        assert code == 250, text
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, text
        code, text = s.data(msg)
        return code, text.decode("utf-8", "replace")


@dataclass
class Event:
    verdict: str
    reason: str
    details: dict
    spam_score: float | None
    challenge_id: int | None


def event(gw: GatewayProcess, msgid: str) -> Event:
    rows = [e for e in gw.events() if e.message_id == msgid]
    assert len(rows) == 1, f"{len(rows)} events for {msgid}"
    r = rows[0]
    return Event(r.verdict, r.reason, json.loads(r.details), r.spam_score, r.challenge_id)


def mailbox(gw: GatewayProcess) -> Path:
    return gw.maildir / RCPT / "Maildir"


def where(gw: GatewayProcess, msgid: str) -> str | None:
    """"inbox", "Screened" or None: where the message was delivered (read back from the Maildir)."""
    found = []
    for name, folder in (("inbox", mailbox(gw) / "new"), ("Screened", mailbox(gw) / ".Screened" / "new")):
        if folder.is_dir():
            found += [name for f in folder.iterdir() if msgid.encode() in f.read_bytes()]
    assert len(found) <= 1, found
    return found[0] if found else None


def delivered_bytes(gw: GatewayProcess, msgid: str) -> bytes:
    for folder in (mailbox(gw) / "new", mailbox(gw) / ".Screened" / "new"):
        for f in folder.iterdir() if folder.is_dir() else ():
            data = f.read_bytes()
            if msgid.encode() in data:
                return data
    raise AssertionError(f"{msgid} not delivered")


def gtube_body() -> str:
    return "Cheap watches!\r\n" + GTUBE.decode() + "\r\n"


def big_body(size: int = 1_000_000) -> str:
    """GTUBE in the first part of a message of about `size` bytes (SpamAssassin reads the first 50 kB
    of a text part; the gateway used to skip spamd entirely above 500 kB)."""
    filler = "The quick brown fox jumps over the lazy dog again and again.\r\n"
    return gtube_body() + filler * (size // len(filler))


def refused_without_link(code: int, text: str) -> bool:
    return code == 550 and text.startswith("5.7.1") and "/c/" not in text


# -- rule 1 (SPEC §4.5 item 1): only an authenticated allowlisted sender skips spamd -----------

def test_gtube_from_an_allowlisted_address_without_authentication_is_spam(relaxed: GatewayProcess) -> None:
    """Relaxed mode keeps an unauthenticated match known (nothing.test publishes nothing), but scans it."""
    msg, msgid = message("Carol <carol@nothing.test>", body=gtube_body())
    code, text = send(relaxed, msg, sender="carol@nothing.test", ip=ATTACKER_IP)
    assert code == 554 and text.startswith("5.7.1"), text
    ev = event(relaxed, msgid)
    assert ev.verdict == "spam" and ev.spam_score >= 1000
    assert where(relaxed, msgid) is None


@pytest.mark.parametrize("how, ip, signer", [("SPF", GOOD_IP, None), ("DKIM", ATTACKER_IP, "friend.test")])
def test_gtube_from_an_authenticated_allowlisted_sender_is_delivered(how: str, ip: str, signer: str | None,
                                                                     relaxed: GatewayProcess, zones: Zones) -> None:
    """The one exempt path: an allowlisted sender authenticated for its own domain is not spam-scanned."""
    msg, msgid = message("Bob <bob@friend.test>", body=gtube_body())
    if signer:
        msg = sign(msg, zones.keys[signer])
    code, text = send(relaxed, msg, sender="bob@friend.test", ip=ip)
    assert code == 250, text
    ev = event(relaxed, msgid)
    assert (ev.verdict, ev.reason, ev.spam_score) == ("delivered", "allowlisted sender", None)
    assert ev.details["auth"]["sender_authenticated"].startswith(how)
    assert where(relaxed, msgid) == "inbox"


def test_gtube_in_the_first_part_of_a_1mb_message_from_a_stranger_is_refused(relaxed: GatewayProcess) -> None:
    msg, msgid = message("Stranger <someone@nothing.test>", body=big_body())
    assert len(msg) > 1_000_000
    code, text = send(relaxed, msg, sender="someone@nothing.test", ip=ATTACKER_IP)
    assert code == 554 and text.startswith("5.7.1"), text
    ev = event(relaxed, msgid)
    assert ev.verdict == "spam" and "spamd scanned the first" in ev.details["scan"]


def test_gtube_in_the_first_part_of_a_1mb_message_from_a_known_list_is_refused(relaxed: GatewayProcess,
                                                                              zones: Zones) -> None:
    msg, msgid = message("Poster <poster@elsewhere.test>", body=big_body(), subject="[dev] huge", headers=LIST)
    code, text = send(relaxed, sign(msg, zones.keys["lists.proj.test"]), sender="dev-bounces@lists.proj.test",
                      ip=LIST_IP)
    assert code == 554, text
    assert event(relaxed, msgid).verdict == "spam"


def test_off_mode_address_match_is_spam_scanned(zones: Zones, spamd: ScannerDaemon) -> None:
    gw = gateway(zones, "off", spamd)
    try:
        msg, msgid = message("Bob <bob@friend.test>", body=gtube_body())
        code, text = send(gw, msg, sender="bob@friend.test", ip=GOOD_IP)  # authentic, but "off" checks nothing
        assert code == 554, text
        assert event(gw, msgid).verdict == "spam"
    finally:
        gw.close()


# -- door 1: the null sender (SPEC §4.2 item 5) -------------------------------------------------

def test_null_sender_gets_one_recipient_per_transaction(relaxed: GatewayProcess) -> None:
    with smtplib.SMTP("127.0.0.1", relaxed.smtp_port, timeout=20, source_address=(ATTACKER_IP, 0)) as s:
        s.ehlo("client.test")
        s.mail("<>")
        assert s.rcpt(RCPT)[0] == 250
        code, text = s.rcpt("carol@example.org")
        assert (code, text[:5]) == (452, b"4.5.3"), text
        assert s.rcpt(RCPT)[0] == 452


def test_null_sender_spam_is_refused(relaxed: GatewayProcess) -> None:
    msg, msgid = report("dsn-headers", SENT_ID, body_note=gtube_body())  # even about mail Alice sent
    code, text = send(relaxed, msg, sender="", ip=ATTACKER_IP)
    assert code == 554, text
    assert event(relaxed, msgid).verdict == "spam"
    assert where(relaxed, msgid) is None


@pytest.mark.parametrize("kind", ["dsn-headers", "dsn-message", "mdn", "auto-reply"])
def test_report_about_a_message_the_recipient_sent_reaches_the_inbox(kind: str, relaxed: GatewayProcess) -> None:
    msg, msgid = report(kind, SENT_ID)
    code, text = send(relaxed, msg, sender="", ip=ATTACKER_IP)
    assert code == 250, text
    ev = event(relaxed, msgid)
    assert ev.verdict == "delivered" and "about a message the recipient sent" in ev.reason
    assert ev.spam_score is not None  # always spam-scanned
    assert where(relaxed, msgid) == "inbox"
    assert b"X-SenderGate-Screened" not in delivered_bytes(relaxed, msgid)


@pytest.mark.parametrize("kind", ["dsn-headers", "dsn-message", "mdn", "auto-reply"])
def test_backscatter_about_mail_never_sent_is_screened(kind: str, relaxed: GatewayProcess) -> None:
    msg, msgid = report(kind, "<forged-by-a-spammer-7@example.org>")
    code, text = send(relaxed, msg, sender="", ip=ATTACKER_IP)
    assert code == 250, text
    ev = event(relaxed, msgid)
    assert ev.verdict == "screened" and "about no message the recipient is known to have sent" in ev.reason
    assert where(relaxed, msgid) == "Screened"  # delivery.screened_folder's default (SPEC §4.5 item 7)
    assert b"X-SenderGate-Screened: yes" in delivered_bytes(relaxed, msgid)


@pytest.mark.parametrize("shape", [
    (),  # plain mail from <>
    (("Auto-Submitted", "auto-generated"),),  # not an auto-reply (RFC 3834 §5)
    (("Content-Type", "multipart/report; report-type=spam-offer; boundary=x"),),
    (("In-Reply-To", SENT_ID),),  # a real sent ID, but no report form
])
def test_null_sender_without_a_report_form_is_refused_without_a_link(
        shape: tuple[tuple[str, str], ...], relaxed: GatewayProcess) -> None:
    msg, msgid = message("Deals <deals@attacker.test>", subject="Buy now", headers=shape)
    code, text = send(relaxed, msg, sender="", ip=ATTACKER_IP)
    assert refused_without_link(code, text), (code, text)
    ev = event(relaxed, msgid)
    assert ev.verdict == "bulk" and "not a delivery or disposition report or an auto-reply" in ev.reason
    assert where(relaxed, msgid) is None


def test_screened_folder_defaults_to_screened() -> None:
    assert Config().delivery.screened_folder == "Screened"


def test_newsletter_signed_by_the_spammers_own_domain_is_not_in_the_inbox(relaxed: GatewayProcess,
                                                                          zones: Zones) -> None:
    """Door 6: automated mail with a valid signature of its own From domain is screened into the
    Screened folder by default, never into the inbox."""
    msg, msgid = message("Deals <no-reply@attacker.test>", subject="Offers",
                         headers=(("Precedence", "bulk"), ("List-Unsubscribe", "<mailto:u@attacker.test>")))
    code, text = send(relaxed, sign(msg, zones.keys["attacker.test"]), sender="no-reply@attacker.test",
                      ip=ATTACKER_IP)
    assert code == 250, text
    assert event(relaxed, msgid).verdict == "screened"
    assert where(relaxed, msgid) == "Screened"


# -- door 2: lists (SPEC §4.5 item 2) ---------------------------------------------------------

LIST = (("List-Id", "Developers <dev.lists.proj.test>"), ("List-Post", "<mailto:dev@lists.proj.test>"),
        ("List-Unsubscribe", "<mailto:dev-leave@lists.proj.test>"))


@pytest.mark.parametrize("attack, headers, sender, ip, signer", [
    ("copied List-Id, own List-Post, own DKIM",
     (("List-Id", "Developers <dev.lists.proj.test>"), ("List-Post", "<mailto:post@attacker.test>")),
     "bounces@attacker.test", ATTACKER_IP, "attacker.test"),
    ("own List-Id, List-Post of an allowlisted address",
     (("List-Id", "Deals <deals.attacker.test>"), ("List-Post", "<mailto:dev@lists.proj.test>")),
     "bounces@attacker.test", ATTACKER_IP, "attacker.test"),
    ("allowlisted list on a ~all domain, forged from anywhere",
     (("List-Id", "Talk <talk.softlist.test>"), ("List-Post", "<mailto:talk@softlist.test>")),
     "talk-bounces@softlist.test", ATTACKER_IP, None),
])
def test_forged_list_identity_does_not_make_mail_known(attack: str, headers: tuple, sender: str, ip: str,
                                                       signer: str | None, relaxed: GatewayProcess,
                                                       zones: Zones) -> None:
    msg, msgid = message("Deals <deals@attacker.test>", subject="[dev] deals", body=gtube_body(), headers=headers)
    if signer:
        msg = sign(msg, zones.keys[signer])
    code, text = send(relaxed, msg, sender=sender, ip=ip)
    ev = event(relaxed, msgid)
    assert "list mail" not in ev.reason, (attack, ev)
    assert (code, ev.verdict) == (554, "spam"), (attack, code, text, ev)
    # and without the spam: never delivered as the list
    msg, msgid = message("Deals <deals@attacker.test>", subject="[dev] deals", headers=headers)
    if signer:
        msg = sign(msg, zones.keys[signer])
    code, text = send(relaxed, msg, sender=sender, ip=ip)
    ev = event(relaxed, msgid)
    assert "list mail" not in ev.reason and ev.verdict != "delivered", (attack, code, text, ev)
    assert where(relaxed, msgid) in (None, "Screened"), attack  # screened as the attacker's own mail at most


@pytest.mark.parametrize("how, ip, signer", [("DKIM by the list's domain", ATTACKER_IP, "lists.proj.test"),
                                             ("SPF pass for its bounce domain", LIST_IP, None)])
def test_genuine_list_mail_is_known(how: str, ip: str, signer: str | None, relaxed: GatewayProcess,
                                    zones: Zones) -> None:
    msg, msgid = message("Poster <poster@elsewhere.test>", subject="[dev] release", headers=LIST)
    if signer:
        msg = sign(msg, zones.keys[signer])
    code, text = send(relaxed, msg, sender="dev-bounces@lists.proj.test", ip=ip)
    assert code == 250, (how, text)
    ev = event(relaxed, msgid)
    assert ev.verdict == "delivered" and ev.reason.startswith("list mail (list:dev.lists.proj.test)"), ev
    assert ev.spam_score is not None and where(relaxed, msgid) == "inbox"


# -- door 3: SRS/BATV (SPEC §4.5 item 2) ---------------------------------------------------------

SRS = "SRS0=HHH=TT=friend.test=bob@attacker.test"  # unwraps to the allowlisted bob@friend.test


def test_srs_wrapper_does_not_lend_its_spf_pass_in_strict_mode(strict: GatewayProcess) -> None:
    msg, msgid = message("Bob <bob@attacker.test>")
    code, text = send(strict, msg, sender=SRS, ip=ATTACKER_IP)  # SPF pass, for attacker.test
    assert code == 550 and "/c/" in text, text  # not authenticated for friend.test: challenged
    ev = event(strict, msgid)
    assert ev.verdict == "challenged" and ev.details["spf"] == "pass"
    assert ev.details["auth"]["spf_domain"] == "attacker.test" and ev.details["auth"]["sender_authenticated"] == ""


@pytest.mark.parametrize("mode", ["strict", "relaxed"])
def test_srs_with_from_failing_dmarc_reject_is_refused_without_a_link(
        mode: str, request: pytest.FixtureRequest) -> None:
    gw = request.getfixturevalue(mode)
    msg, msgid = message("Bob <bob@friend.test>")
    code, text = send(gw, msg, sender=SRS, ip=ATTACKER_IP)
    assert refused_without_link(code, text) and "DMARC fail for friend.test" in text, text
    ev = event(gw, msgid)
    assert ev.verdict == "blocked" and ev.details["dmarc"] == "fail" and "demoted" in ev.details
    assert where(gw, msgid) is None


def test_srs_in_relaxed_mode_is_known_but_spam_scanned(relaxed: GatewayProcess) -> None:
    msg, msgid = message("Bob <bob@attacker.test>", body=gtube_body())
    code, text = send(relaxed, msg, sender=SRS, ip=ATTACKER_IP)
    assert code == 554, text
    assert event(relaxed, msgid).verdict == "spam"
    msg, msgid = message("Bob <bob@attacker.test>")
    code, text = send(relaxed, msg, sender=SRS, ip=ATTACKER_IP)
    assert code == 250, text
    ev = event(relaxed, msgid)
    assert ev.reason == "allowlisted sender, not authenticated (spam-scanned)" and ev.spam_score is not None


def test_batv_and_tag_wrappers_keep_the_authentication_of_the_real_domain(strict: GatewayProcess) -> None:
    """BATV and +tags do not change the domain: a pass for friend.test stays a pass for it."""
    msg, msgid = message("Bob <bob@friend.test>")
    code, text = send(strict, msg, sender="prvs=0123abcdef=bob+lunch@friend.test", ip=GOOD_IP)
    assert code == 250, text
    assert event(strict, msgid).reason == "allowlisted sender"


# -- door 4: replies (SPEC §4.5 item 2) -----------------------------------------------------------

def test_copied_sent_message_id_from_an_unauthenticated_domain_is_challenged(relaxed: GatewayProcess) -> None:
    msg, msgid = message("Stranger <someone@nothing.test>", subject="Re: Lunch",
                         headers=(("In-Reply-To", SENT_ID), ("References", SENT_ID)))
    code, text = send(relaxed, msg, sender="someone@nothing.test", ip=ATTACKER_IP)
    assert code == 550 and "/c/" in text, text
    ev = event(relaxed, msgid)
    assert ev.verdict == "challenged" and "reply" not in ev.reason
    assert where(relaxed, msgid) is None


def test_copied_sent_message_id_from_an_authenticated_domain_is_spam_scanned(relaxed: GatewayProcess) -> None:
    msg, msgid = message("Spammer <x@attacker.test>", subject="Re: Lunch", body=gtube_body(),
                         headers=(("References", f"<other@x.test> {SENT_ID}"),))
    code, text = send(relaxed, msg, sender="x@attacker.test", ip=ATTACKER_IP)
    assert code == 554, text
    assert event(relaxed, msgid).verdict == "spam"


def test_authenticated_reply_is_delivered(relaxed: GatewayProcess) -> None:
    msg, msgid = message("Dave <dave@attacker.test>", subject="Re: Lunch", headers=(("In-Reply-To", SENT_ID),))
    code, text = send(relaxed, msg, sender="dave@attacker.test", ip=ATTACKER_IP)
    assert code == 250, text
    ev = event(relaxed, msgid)
    assert ev.reason == "reply to a message the recipient sent (SPF pass for attacker.test)"
    assert where(relaxed, msgid) == "inbox"


# -- door 5, SMTP side: no link for a session that fails authentication (SPEC §4.5 item 3) ----------

@pytest.mark.parametrize("what, sender, from_header, ip, why", [
    ("SPF fail for the envelope domain", "mallory@friend.test", "Mallory <mallory@attacker.test>", ATTACKER_IP,
     "SPF fail for friend.test"),
    ("DMARC fail under p=reject", "mallory@attacker.test", "Mallory <mallory@friend.test>", ATTACKER_IP,
     "DMARC fail for friend.test"),
])
def test_forged_stranger_gets_no_confirmation_link(what: str, sender: str, from_header: str, ip: str, why: str,
                                                  mode_gw: GatewayProcess) -> None:
    msg, msgid = message(from_header)
    code, text = send(mode_gw, msg, sender=sender, ip=ip)
    assert refused_without_link(code, text), (what, code, text)
    assert why in text and "no confirmation link" in text
    ev = event(mode_gw, msgid)
    assert ev.verdict == "blocked" and ev.reason.endswith("; no confirmation link") and ev.challenge_id is None


def test_a_stranger_failing_dmarc_under_p_none_still_gets_a_link(mode_gw: GatewayProcess) -> None:
    """p=none says "do not act on failures": mail through an unaligned service or a list from such a
    domain is real first contact; a forger of it gets only what any stranger gets (a CAPTCHA, spamd)."""
    msg, msgid = message("Carla <carla@monitor.test>")
    code, text = send(mode_gw, msg, sender="newsletter@attacker.test", ip=ATTACKER_IP)
    assert code == 550 and "/c/" in text, text
    ev = event(mode_gw, msgid)
    assert ev.verdict == "challenged" and ev.challenge_id is not None
    details = ev.details if isinstance(ev.details, dict) else json.loads(ev.details)
    assert details["dmarc"] == "fail"


@pytest.fixture(params=["relaxed", "strict"])
def mode_gw(request: pytest.FixtureRequest) -> GatewayProcess:
    return request.getfixturevalue(request.param)


def test_challenge_records_the_authentication_seen(relaxed: GatewayProcess) -> None:
    """The confirmation page reads the challenged event's details["auth"] (spf, dkim, dmarc, and
    sender_authenticated: how the envelope sender was authenticated for its own domain, "" if not)."""
    msg, msgid = message("Dave <dave@attacker.test>")
    code, text = send(relaxed, msg, sender="dave@attacker.test", ip=ATTACKER_IP)
    assert code == 550 and "/c/" in text, text
    ev = event(relaxed, msgid)
    assert ev.verdict == "challenged" and ev.challenge_id is not None
    assert ev.details["spf"] == "pass" and ev.details["auth"]["spf_domain"] == "attacker.test"
    assert ev.details["auth"]["sender_authenticated"] == "SPF pass for attacker.test"
    msg, msgid = message("Erin <erin@nothing.test>")
    code, text = send(relaxed, msg, sender="erin@nothing.test", ip=ATTACKER_IP)
    assert code == 550 and "/c/" in text, text  # nothing published: not failed, so the link is given
    ev = event(relaxed, msgid)
    assert (ev.details["spf"], ev.details["auth"]["sender_authenticated"]) == ("none", "")


# -- door 11, DNS: a check that could not run here is a 451, never "not forged" (SPEC §4.5 item 5) ----

def test_saturated_sender_check_queue_tempfails_an_allowlisted_sender(zones: Zones) -> None:
    gw = gateway(zones, "relaxed", None, dns={"max_checks": 1, "max_waiting": 0, "timeout": "3s"})
    try:
        slow_msg, slow_id = message("Sam <sam@dead.test>")
        slow: dict[str, tuple[int, str]] = {}
        asked_before = len(zones.server.asked("dead.test"))
        holder = threading.Thread(target=lambda: slow.update(r=send(gw, slow_msg, sender="sam@dead.test",
                                                                    ip=GOOD_IP)))
        holder.start()
        deadline = time.monotonic() + 10
        while len(zones.server.asked("dead.test")) == asked_before and time.monotonic() < deadline:
            time.sleep(0.01)  # the one check slot is now waiting on a DNS server that never answers
        msg, msgid = message("Carol <carol@nothing.test>")
        code, text = send(gw, msg, sender="carol@nothing.test", ip=GOOD_IP)
        holder.join(30)
        assert (code, text[:5]) == (451, "4.7.0"), text
        ev = event(gw, msgid)
        assert ev.verdict == "tempfail" and ev.reason.startswith("sender check unavailable")
        assert where(gw, msgid) is None
        # The sender's own DNS not answering is a remote temperror, which relaxed mode does not read
        # as forged (documented): the slow message itself is delivered, spam-scanned.
        assert slow["r"][0] == 250, slow
        ev = event(gw, slow_id)
        assert (ev.verdict, ev.details["spf"]) == ("delivered", "temperror")
        # with the slot free again, Carol's retry goes through
        msg, msgid = message("Carol <carol@nothing.test>")
        assert send(gw, msg, sender="carol@nothing.test", ip=GOOD_IP)[0] == 250
    finally:
        gw.close()

