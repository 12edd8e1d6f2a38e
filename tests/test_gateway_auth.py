"""Sender authentication and screening through real gateway processes (SPEC §4.2 items 6–7, §4.4).

Real SMTP clients talk to `sendergate gateway` processes whose `[dns]
nameservers` point at an authoritative DNS server on loopback holding the
test zones: SPF records, DKIM keys generated here, DMARC policies. Messages
are signed with those keys by dkimpy, as a sending server would sign them.
SPF needs distinct client addresses: the whole of 127.0.0.0/8 is loopback on
Linux, so each "server" connects from its own 127.0.0.x source address.
Downstream: smtp-sink (delivered bytes inspected), a Maildir, and Dovecot
over LMTP (read back over IMAP); spamd with the stock rules for GTUBE.
"""

from __future__ import annotations

import itertools
import json
import smtplib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sendergate.policy.address import parse
from sendergate.policy.decide import AuthResults, allowlist_counts
from sendergate.store import hash_message_id
from tests.support.dkim_keys import Zones, sign, signing_zones
from tests.support.gateway import GatewayProcess
from tests.support.postfix import SinkDelivery, SmtpSink
from tests.support.scanners import GTUBE, ScannerDaemon, start_spamd

GOOD_IP = "127.0.0.2"  # the senders' own outgoing server, in their SPF records
LIST_IP = "127.0.0.3"  # the list server of lists.proj.test
ESP_IP = "127.0.0.4"  # esp.test: a third party that signs for anyone
STRANGER_IP = "127.0.0.66"  # nobody's authorised server but evil.test's
RCPT = "alice@example.org"
AUTHSERV = "mx.example.org"  # the test gateways' smtp.hostname
DNS_TIMEOUT = "1s"

_ids = itertools.count(1)


# -- DNS zones and keys --------------------------------------------------------

SIGNERS = ("hardfail.test", "softfail.test", "nospf.test", "dmarc.test", "us.sib.test", "esp.test", "shop.test",
           "lists.proj.test", "mail.proj.test", "evil.test")


@pytest.fixture(scope="module")
def zones() -> Iterator[Zones]:
    with signing_zones(SIGNERS) as zones:
        server = zones.server
        for domain, spf in [
            ("hardfail.test", f"v=spf1 ip4:{GOOD_IP} -all"),
            ("softfail.test", f"v=spf1 ip4:{GOOD_IP} ~all"),
            ("dmarc.test", f"v=spf1 ip4:{GOOD_IP} ~all"),
            ("eu.sib.test", f"v=spf1 ip4:{GOOD_IP} -all"),
            ("team.test", f"v=spf1 ip4:{GOOD_IP} -all"),
            ("shop.test", f"v=spf1 ip4:{GOOD_IP} -all"),
            ("lists.proj.test", f"v=spf1 ip4:{LIST_IP} -all"),
            ("esp.test", f"v=spf1 ip4:{ESP_IP} -all"),
            ("evil.test", f"v=spf1 ip4:{STRANGER_IP} -all"),
            ("mta.helo.test", "v=spf1 a -all"),
        ]:
            server.add_txt(domain, spf)
        server.add("mta.helo.test", "A", GOOD_IP)
        server.add("nospf.test", "A", "192.0.2.99")  # exists, publishes no SPF
        server.add_txt("_dmarc.dmarc.test", "v=DMARC1; p=reject")
        for name in ("slow.test", "_dmarc.slow.test"):
            server.drop(name)  # never answers: the gateway's lookups time out
        yield zones


# -- messages ----------------------------------------------------------------------

def message(from_header: str, *, body: str = "Hello Alice,\r\nsee you at noon.\r\n", subject: str = "Lunch",
            headers: tuple[tuple[str, str], ...] = ()) -> tuple[bytes, str]:
    """A message with a unique Message-ID (returned too, to find its event and its delivery)."""
    msgid = f"<auth-{next(_ids)}-{time.monotonic_ns()}@sender.test>"
    lines = [f"From: {from_header}", f"To: {RCPT}", f"Subject: {subject}",
             "Date: Mon, 06 Jan 2025 10:00:00 +0000", f"Message-ID: {msgid}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8"), msgid


def tamper(msg: bytes) -> bytes:
    """Change the body after signing, as a broken relay would: the signature no longer verifies."""
    assert b"noon" in msg
    return msg.replace(b"noon", b"nine")


def send(gw: GatewayProcess, msg: bytes, *, sender: str, ip: str, helo: str = "client.test",
         rcpt: str = RCPT) -> tuple[int, str]:
    """One transaction from client address `ip`; the end-of-DATA reply."""
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=20, source_address=(ip, 0)) as s:
        s.ehlo(helo)
        code, text = s.mail(sender)
        assert code == 250, text
        code, text = s.rcpt(rcpt)
        assert code == 250, text
        code, text = s.data(msg)
        return code, text.decode("utf-8", "replace")


@dataclass
class Event:
    verdict: str
    reason: str
    details: dict
    spam_score: float | None


def event(gw: GatewayProcess, msgid: str) -> Event:
    rows = [e for e in gw.events() if e.message_id == msgid]
    assert len(rows) == 1, f"{len(rows)} events for {msgid}"
    return Event(rows[0].verdict, rows[0].reason, json.loads(rows[0].details), rows[0].spam_score)


def delivered(sink: SmtpSink, msgid: str) -> SinkDelivery:
    deadline = time.monotonic() + 5
    while True:
        found = [d for d in sink.messages() if msgid.encode() in d.message]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, f"{len(found)} deliveries of {msgid}"
            return found[0]
        time.sleep(0.02)


def head(raw: bytes) -> list[str]:
    """The header fields, unfolded, in order."""
    text = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("utf-8", "replace")
    fields: list[str] = []
    for line in text.split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] += " " + line.strip()
        else:
            fields.append(line)
    return fields


def our_results(raw: bytes) -> str:
    """Our Authentication-Results header (exactly one), unfolded."""
    ours = [f for f in head(raw) if f.lower().startswith(f"authentication-results: {AUTHSERV};")]
    assert len(ours) == 1, head(raw)
    return ours[0]


# -- gateways ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    s = SmtpSink(dump=True)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def spamd() -> Iterator[ScannerDaemon]:
    daemon = start_spamd()
    yield daemon
    daemon.stop()


def allow_senders(gw: GatewayProcess) -> None:
    alice, _ = gw.store.add_user(RCPT, name="Alice")
    for pattern in ("alice@hardfail.test", "carol@softfail.test", "dan@nospf.test", "erin@dmarc.test",
                    "eve@eu.sib.test", "@team.test", "sam@slow.test",
                    "dev@lists.proj.test",  # the List-Post address, as the Sent-folder import adds it
                    "list:news.lists.proj.test"):
        gw.store.add_entry(alice.id, "allow", pattern)


def gateway(zones: Zones, downstream: tuple[str, str] | None = None, **sections: dict) -> GatewayProcess:
    """A started gateway on our DNS zones; `sections` are config sections merged over the defaults."""
    extra = {"dns": {"nameservers": ["{}:{}".format(*zones.server.address)], "timeout": DNS_TIMEOUT}}
    for name, values in sections.items():
        extra.setdefault(name, {}).update(values)
    gw = GatewayProcess(delivery=downstream, extra=extra)
    allow_senders(gw)
    return gw.start()


@pytest.fixture(scope="module")
def relaxed(zones: Zones, sink: SmtpSink, spamd: ScannerDaemon) -> Iterator[GatewayProcess]:
    gw = gateway(zones, ("smtp", f"127.0.0.1:{sink.port}"),
                 challenge={"allowlist_auth": "relaxed", "automated": "screen"},
                 delivery={"screened_folder": "Screened"},  # smtp: the header alone
                 scan={"spamd": f"tcp:127.0.0.1:{spamd.port}"})
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def strict(zones: Zones, sink: SmtpSink) -> Iterator[GatewayProcess]:
    # Strict mode, and screening turned off: the two settings do not interact (one process for both).
    gw = gateway(zones, ("smtp", f"127.0.0.1:{sink.port}"),
                 challenge={"allowlist_auth": "strict", "automated": "refuse"})
    yield gw
    gw.close()


@pytest.fixture(params=["relaxed", "strict"])
def mode_gw(request: pytest.FixtureRequest) -> tuple[str, GatewayProcess]:
    return request.param, request.getfixturevalue(request.param)


# -- allowlisted senders: the matrix ---------------------------------------------------

D, C, B = "delivered", "challenged", "blocked"  # B: shown forged, refused without a link (SPEC §4.5 item 3)


@dataclass(frozen=True)
class Case:
    sender: str
    ip: str
    signer: str | None  # d= of the DKIM signature, None: unsigned
    broken: bool  # body changed after signing
    spf: str
    dkim: str
    dmarc: str
    relaxed: str
    strict: str


CASES = {
    "spf pass, unsigned": Case("alice@hardfail.test", GOOD_IP, None, False, "pass", "none", "none", D, D),
    "spf pass, dkim fail": Case("alice@hardfail.test", GOOD_IP, "hardfail.test", True, "pass", "fail", "none", D, D),
    "spf fail, unsigned": Case("alice@hardfail.test", STRANGER_IP, None, False, "fail", "none", "none", B, B),
    "spf fail, dkim aligned": Case("alice@hardfail.test", STRANGER_IP, "hardfail.test", False,
                                   "fail", "pass", "none", D, D),
    "spf fail, dkim fail": Case("alice@hardfail.test", STRANGER_IP, "hardfail.test", True,
                                "fail", "fail", "none", B, B),
    "spf fail, dkim unaligned": Case("alice@hardfail.test", STRANGER_IP, "esp.test", False,
                                     "fail", "pass", "none", B, B),
    # eu.sib.test and us.sib.test share the organisational domain sib.test: aligned (relaxed).
    "spf fail, dkim aligned by organisational domain": Case("eve@eu.sib.test", STRANGER_IP, "us.sib.test", False,
                                                            "fail", "pass", "none", D, D),
    "spf softfail, unsigned": Case("carol@softfail.test", STRANGER_IP, None, False, "softfail", "none", "none", D, C),
    "spf softfail, dkim aligned": Case("carol@softfail.test", STRANGER_IP, "softfail.test", False,
                                       "softfail", "pass", "none", D, D),
    "spf softfail, dkim unaligned": Case("carol@softfail.test", STRANGER_IP, "esp.test", False,
                                         "softfail", "pass", "none", D, C),
    "spf none, unsigned": Case("dan@nospf.test", GOOD_IP, None, False, "none", "none", "none", D, C),
    "spf none, dkim aligned": Case("dan@nospf.test", GOOD_IP, "nospf.test", False, "none", "pass", "none", D, D),
    "spf none, dkim fail": Case("dan@nospf.test", GOOD_IP, "nospf.test", True, "none", "fail", "none", D, C),
    "dmarc fail (spf softfail, unsigned)": Case("erin@dmarc.test", STRANGER_IP, None, False,
                                                "softfail", "none", "fail", B, B),
    "dmarc fail (dkim unaligned)": Case("erin@dmarc.test", STRANGER_IP, "esp.test", False,
                                        "softfail", "pass", "fail", B, B),
    "dmarc pass by dkim": Case("erin@dmarc.test", STRANGER_IP, "dmarc.test", False, "softfail", "pass", "pass", D, D),
    "domain entry, spf pass": Case("bob@team.test", GOOD_IP, None, False, "pass", "none", "none", D, D),
    "domain entry, spf fail": Case("bob@team.test", STRANGER_IP, None, False, "fail", "none", "none", B, B),
    # DNS does not answer: temperror, which relaxed trusts and strict does not (documented).
    "dns timeout": Case("sam@slow.test", GOOD_IP, None, False, "temperror", "none", "temperror", D, C),
}


@pytest.mark.parametrize("name", CASES)
def test_allowlisted_sender(name: str, mode_gw: tuple[str, GatewayProcess], zones: Zones, sink: SmtpSink) -> None:
    mode, gw = mode_gw
    case = CASES[name]
    msg, msgid = message(f"Sender <{case.sender}>")
    if case.signer:
        msg = sign(msg, zones.keys[case.signer])
    if case.broken:
        msg = tamper(msg)
    code, text = send(gw, msg, sender=case.sender, ip=case.ip)
    expected = getattr(case, mode)
    ev = event(gw, msgid)
    assert ev.verdict == expected, (code, text, ev)
    assert (ev.details["spf"], ev.details["dkim"], ev.details["dmarc"]) == (case.spf, case.dkim, case.dmarc)
    assert ev.details["auth"]["spf_domain"] == case.sender.rpartition("@")[2]
    if case.signer:
        assert ev.details["auth"]["dkim_fail" if case.broken else "dkim_pass"] == [case.signer]
    authenticated = case.spf == "pass" or (case.dkim == "pass" and case.signer != "esp.test")
    if expected == D:
        assert code == 250, text
        # only an authenticated allowlisted sender skips spamd (SPEC §4.5 item 1)
        assert ev.reason == ("allowlisted sender" if authenticated else
                             "allowlisted sender, not authenticated (spam-scanned)") and "demoted" not in ev.details
        if mode == "relaxed":  # the gateway with spamd
            assert (ev.spam_score is None) is authenticated, ev
        results = our_results(delivered(sink, msgid).message)
        assert f"spf={case.spf} smtp.mailfrom={case.sender.rpartition('@')[2]}" in results
        assert f"dkim={case.dkim}" in results and f"dmarc={case.dmarc}" in results
    elif expected == C:
        assert code == 550 and "/c/" in text, text
        assert ev.reason == ev.details["demoted"]
        assert ev.reason.startswith("strict authentication failed")
        assert f"spf={case.spf}" in ev.reason and f"dmarc={case.dmarc}" in ev.reason
        assert not [d for d in sink.messages() if msgid.encode() in d.message]
    else:
        assert code == 550 and "5.7.1" in text and "/c/" not in text, text
        assert "failed sender authentication" in text
        assert ev.reason == ev.details["demoted"] + "; no confirmation link"
        assert ev.reason.startswith("forged sender")
        assert f"spf={case.spf}" in ev.reason and f"dmarc={case.dmarc}" in ev.reason
        assert not [d for d in sink.messages() if msgid.encode() in d.message]


@pytest.mark.parametrize("ip, spf", [(GOOD_IP, "pass"), (STRANGER_IP, "fail")])
def test_null_sender_is_checked_by_helo_and_screened(ip: str, spf: str, mode_gw: tuple[str, GatewayProcess],
                                                      sink: SmtpSink) -> None:
    _mode, gw = mode_gw
    body = ("--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            "--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mta.helo.test\r\n\r\n"
            "Final-Recipient: rfc822; gone@else.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <never-sent@example.org>\r\n"
            "--b1--\r\n")
    msg, msgid = message("Mail Delivery System <mailer-daemon@mta.helo.test>", subject="Undelivered Mail", body=body,
                         headers=(("MIME-Version", "1.0"),
                                  ("Content-Type", 'multipart/report; report-type=delivery-status; boundary="b1"')))
    code, text = send(gw, msg, sender="", ip=ip, helo="mta.helo.test")
    assert code == 250, text  # the null sender is never challenged, whatever SPF says (SPEC §4.2 item 5)
    ev = event(gw, msgid)
    # a bounce about no message the recipient is known to have sent: screened, not lost (§4.2 item 5)
    assert (ev.verdict, ev.details["spf"], ev.details["auth"]["spf_scope"]) == ("screened", spf, "helo")
    assert f"spf={spf} smtp.helo=mta.helo.test" in our_results(delivered(sink, msgid).message)


def test_results_claiming_our_name_are_replaced(relaxed: GatewayProcess, sink: SmtpSink) -> None:
    msg, msgid = message("Alice <alice@hardfail.test>", headers=(
        ("Authentication-Results", f"{AUTHSERV}; dkim=pass header.d=hardfail.test; dmarc=pass"),
        ("Authentication-Results", f"{AUTHSERV.upper()};\r\n\tspf=pass smtp.mailfrom=hardfail.test"),
        ("Authentication-Results", "relay.other.test; spf=pass smtp.mailfrom=hardfail.test")))
    code, text = send(relaxed, msg, sender="alice@hardfail.test", ip=GOOD_IP)
    assert code == 250, text
    raw = delivered(sink, msgid).message
    assert "dkim=none" in our_results(raw)  # ours; the forged ones are gone
    assert not [f for f in head(raw) if f.lower().startswith(f"authentication-results: {AUTHSERV}") and
                "dkim=pass" in f]
    assert "Authentication-Results: relay.other.test; spf=pass smtp.mailfrom=hardfail.test" in head(raw)


def test_reply_from_a_stranger_carries_the_results(relaxed: GatewayProcess, sink: SmtpSink) -> None:
    alice = relaxed.store.recipient_user(parse(RCPT))
    relaxed.store.add_sent_ids(alice, [hash_message_id("<question-1@example.org>")])
    msg, msgid = message("Walt <walt@softfail.test>", headers=(("In-Reply-To", "<question-1@example.org>"),))
    code, text = send(relaxed, msg, sender="walt@softfail.test", ip=GOOD_IP)
    assert code == 250, text
    ev = event(relaxed, msgid)
    assert ev.reason == "reply to a message the recipient sent (SPF pass for softfail.test)"
    assert ev.details["spf"] == "pass" and ev.spam_score is not None  # spam-scanned (SPEC §4.5 item 1)
    assert "spf=pass smtp.mailfrom=softfail.test" in our_results(delivered(sink, msgid).message)
    # The same reply from a server its domain does not authorise (softfail): a reply counts only when
    # it passes authentication for its own domain (SPEC §4.5 item 2), so it is challenged.
    msg, msgid = message("Walt <walt@softfail.test>", headers=(("In-Reply-To", "<question-1@example.org>"),))
    code, text = send(relaxed, msg, sender="walt@softfail.test", ip=STRANGER_IP)
    assert code == 550 and "/c/" in text, text
    ev = event(relaxed, msgid)
    assert (ev.verdict, ev.details["spf"]) == ("challenged", "softfail")


def test_off_mode_checks_nothing_for_known_senders(zones: Zones, sink: SmtpSink) -> None:
    gw = gateway(zones, ("smtp", f"127.0.0.1:{sink.port}"), challenge={"allowlist_auth": "off"})
    try:
        msg, msgid = message("Alice <alice@hardfail.test>")
        code, text = send(gw, msg, sender="alice@hardfail.test", ip=STRANGER_IP)  # SPF would fail
        assert code == 250, text
        ev = event(gw, msgid)
        assert ev.verdict == "delivered" and "spf" not in ev.details
        assert not [f for f in head(delivered(sink, msgid).message) if f.startswith("Authentication-Results")]
    finally:
        gw.close()


# -- automated mail: screening (SPEC §4.2 item 7) ---------------------------------------

NEWSLETTER = (("List-Unsubscribe", "<mailto:leave@shop.test>"), ("Precedence", "bulk"))


def newsletter(zones: Zones, signer: str | None = "shop.test",
               body: str = "Our spring offers.\r\n") -> tuple[bytes, str]:
    msg, msgid = message("Shop <news@shop.test>", subject="Spring offers", body=body, headers=NEWSLETTER)
    return (sign(msg, zones.keys[signer]) if signer else msg), msgid


def test_signed_newsletter_is_screened(relaxed: GatewayProcess, zones: Zones, sink: SmtpSink) -> None:
    msg, msgid = newsletter(zones)
    code, text = send(relaxed, msg, sender="news@shop.test", ip=GOOD_IP)
    assert code == 250, text
    ev = event(relaxed, msgid)
    assert ev.verdict == "screened" and "DKIM-signed by shop.test" in ev.reason
    assert ev.details["dkim"] == "pass" and ev.spam_score is not None  # spam-scanned before screening
    got = delivered(sink, msgid)
    assert "X-SenderGate-Screened: yes" in head(got.message)
    assert "dkim=pass header.d=shop.test" in our_results(got.message)
    assert got.rcpt_to_args[0].split()[0].lower() == f"<{RCPT}>"  # smtp: the header alone, no +folder


@pytest.mark.parametrize("signer", [None, "esp.test"], ids=["unsigned", "signed by another domain"])
def test_newsletter_without_aligned_signature_is_bulk(signer: str | None, relaxed: GatewayProcess,
                                                      zones: Zones) -> None:
    msg, msgid = newsletter(zones, signer)
    code, text = send(relaxed, msg, sender="news@shop.test", ip=GOOD_IP)
    assert code == 550 and "5.7.1" in text and "/c/" not in text, text
    ev = event(relaxed, msgid)
    assert ev.verdict == "bulk" and "no aligned DKIM signature" in ev.reason


def test_signed_newsletter_with_gtube_is_spam(relaxed: GatewayProcess, zones: Zones) -> None:
    msg, msgid = newsletter(zones, body=GTUBE.decode() + "\r\n")
    code, text = send(relaxed, msg, sender="news@shop.test", ip=GOOD_IP)
    assert code == 554 and "5.7.1" in text, text
    assert event(relaxed, msgid).verdict == "spam"


def test_transactional_mail_with_aligned_signature_is_screened(relaxed: GatewayProcess, zones: Zones,
                                                                sink: SmtpSink) -> None:
    msg, msgid = message("Shop <orders@shop.test>", subject="Your order 1234")
    code, text = send(relaxed, sign(msg, zones.keys["shop.test"]), sender="orders@shop.test", ip=GOOD_IP)
    assert code == 250, text
    ev = event(relaxed, msgid)
    assert ev.verdict == "screened" and "'orders' is a machine role" in ev.reason
    assert "X-SenderGate-Screened: yes" in head(delivered(sink, msgid).message)


def test_refuse_turns_screening_off(strict: GatewayProcess, zones: Zones) -> None:
    msg, msgid = newsletter(zones)
    code, text = send(strict, msg, sender="news@shop.test", ip=GOOD_IP)
    assert code == 550 and "/c/" not in text, text
    ev = event(strict, msgid)
    assert ev.verdict == "bulk" and "automated mail refused" in ev.reason


def test_screened_into_a_maildir_subfolder(zones: Zones) -> None:
    gw = gateway(zones, challenge={"allowlist_auth": "relaxed"}, delivery={"screened_folder": "Screened"})
    try:
        msg, msgid = newsletter(zones)
        assert send(gw, msg, sender="news@shop.test", ip=GOOD_IP)[0] == 250
        known, known_id = message("Alice <alice@hardfail.test>")
        assert send(gw, known, sender="alice@hardfail.test", ip=GOOD_IP)[0] == 250
        mailbox = gw.maildir / RCPT / "Maildir"
        screened = list((mailbox / ".Screened" / "new").iterdir())
        inbox = list((mailbox / "new").iterdir())
        assert len(screened) == 1 and len(inbox) == 1
        assert (mailbox / ".Screened" / "maildirfolder").exists()  # Maildir++ marks a subfolder so
        screened_raw = screened[0].read_bytes()
        assert msgid.encode() in screened_raw and b"X-SenderGate-Screened: yes" in screened_raw
        assert known_id.encode() in inbox[0].read_bytes()
        assert b"X-SenderGate-Screened" not in inbox[0].read_bytes()
    finally:
        gw.close()


def test_screened_into_a_dovecot_folder_over_lmtp(zones: Zones) -> None:
    from imapclient import IMAPClient

    from tests.support.dovecot import DovecotServer

    with DovecotServer() as dovecot:
        dovecot.add_user(RCPT, "secret")
        gw = gateway(zones, ("lmtp", f"127.0.0.1:{dovecot.lmtp_port}"), challenge={"allowlist_auth": "relaxed"},
                     delivery={"screened_folder": "Screened"})
        try:
            msg, msgid = newsletter(zones)
            assert send(gw, msg, sender="news@shop.test", ip=GOOD_IP)[0] == 250
            known, known_id = message("Alice <alice@hardfail.test>")
            assert send(gw, known, sender="alice@hardfail.test", ip=GOOD_IP)[0] == 250
        finally:
            gw.close()
        with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False) as imap:
            imap.login(RCPT, "secret")
            folders = {f[2] for f in imap.list_folders()}
            assert "Screened" in folders, folders
            contents = {}
            for folder in ("INBOX", "Screened"):
                imap.select_folder(folder, readonly=True)
                uids = imap.search("ALL")
                contents[folder] = [m[b"RFC822"] for m in imap.fetch(uids, ["RFC822"]).values()]
    assert len(contents["Screened"]) == 1 and msgid.encode() in contents["Screened"][0]
    assert b"X-SenderGate-Screened: yes" in contents["Screened"][0]
    assert len(contents["INBOX"]) == 1 and known_id.encode() in contents["INBOX"][0]


# -- mailing lists: known only when authenticated as the list (SPEC §4.2 item 6) ----------

LIST_HEADERS = (("List-Id", "Developers <dev.lists.proj.test>"), ("List-Post", "<mailto:dev@lists.proj.test>"),
                ("List-Unsubscribe", "<mailto:dev-leave@lists.proj.test>"))


def list_message(body: str = "A post to the list.\r\n", headers: tuple[tuple[str, str], ...] = LIST_HEADERS,
                 from_header: str = "Poster <poster@elsewhere.test>") -> tuple[bytes, str]:
    return message(from_header, subject="[dev] release", body=body, headers=headers)


def test_list_mail_signed_by_the_list_is_known(relaxed: GatewayProcess, zones: Zones, sink: SmtpSink) -> None:
    msg, msgid = list_message()
    code, text = send(relaxed, sign(msg, zones.keys["lists.proj.test"]), sender="dev-bounces@lists.proj.test",
                      ip=STRANGER_IP)  # SPF fails: the signature alone authenticates it
    assert code == 250, text
    ev = event(relaxed, msgid)
    assert ev.verdict == "delivered", ev
    assert ev.reason == "list mail (dev@lists.proj.test), authenticated for lists.proj.test: DKIM signature by " \
                        "lists.proj.test"
    assert ev.spam_score is not None  # known, yet spam-scanned: not an allowlisted sender (SPEC §4.5 item 1)
    assert "dkim=pass header.d=lists.proj.test" in our_results(delivered(sink, msgid).message)


def test_known_list_mail_with_spam_is_refused(relaxed: GatewayProcess, zones: Zones) -> None:
    msg, msgid = list_message(body=GTUBE.decode() + "\r\n")
    code, text = send(relaxed, sign(msg, zones.keys["lists.proj.test"]), sender="dev-bounces@lists.proj.test",
                      ip=LIST_IP)
    assert code == 554 and "5.7.1" in text, text
    assert event(relaxed, msgid).verdict == "spam"


def test_list_mail_from_the_list_domain_by_spf_is_known(relaxed: GatewayProcess) -> None:
    msg, msgid = list_message()
    code, text = send(relaxed, msg, sender="dev-bounces@lists.proj.test", ip=LIST_IP)
    assert code == 250, text
    ev = event(relaxed, msgid)
    assert ev.verdict == "delivered" and ev.reason.endswith("authenticated for lists.proj.test: SPF pass for "
                                                            "lists.proj.test")


def test_list_id_entry_counts_with_a_signature_from_the_lists_organisational_domain(
        relaxed: GatewayProcess, zones: Zones) -> None:
    headers = (("List-Id", "News <news.lists.proj.test>"), ("List-Unsubscribe", "<mailto:leave@lists.proj.test>"))
    msg, msgid = list_message(headers=headers)
    code, text = send(relaxed, sign(msg, zones.keys["mail.proj.test"]), sender="bounces@esp.test", ip=ESP_IP)
    assert code == 250, text
    assert event(relaxed, msgid).reason == ("list mail (list:news.lists.proj.test), authenticated for "
                                            "news.lists.proj.test: DKIM signature by mail.proj.test")


@pytest.mark.parametrize("sender, ip, signer, verdict", [
    ("stranger@evil.test", STRANGER_IP, None, "bulk"),  # not signed at all
    ("stranger@evil.test", STRANGER_IP, "evil.test", "screened"),  # screened as his own mail, never as the list's
    ("dev-bounces@lists.proj.test", STRANGER_IP, None, "blocked"),  # claims the list domain, SPF fails: no link
    ("stranger@evil.test", STRANGER_IP, "esp.test", "bulk"),
])
def test_copied_list_post_does_not_make_a_stranger_known(sender: str, ip: str, signer: str | None, verdict: str,
                                                         relaxed: GatewayProcess, zones: Zones) -> None:
    msg, msgid = list_message(from_header="Stranger <stranger@evil.test>")
    if signer:
        msg = sign(msg, zones.keys[signer])
    code, text = send(relaxed, msg, sender=sender, ip=ip)
    ev = event(relaxed, msgid)
    assert ev.verdict == verdict, (code, text, ev)
    assert "list mail" not in ev.reason and ev.spam_score is not None  # spam-scanned


def test_copied_list_post_with_spam_is_refused_as_spam(relaxed: GatewayProcess, zones: Zones) -> None:
    msg, msgid = list_message(body=GTUBE.decode() + "\r\n", from_header="Stranger <stranger@evil.test>")
    code, text = send(relaxed, sign(msg, zones.keys["evil.test"]), sender="stranger@evil.test", ip=STRANGER_IP)
    assert code == 554, text
    assert event(relaxed, msgid).verdict == "spam"


# -- the policy's alignment, given organisational domains as data ------------------------

def test_alignment_by_organisational_domain() -> None:
    orgs = (("eu.sib.test", "sib.test"), ("us.sib.test", "sib.test"), ("co.uk", "co.uk"),
            ("evil.co.uk", "evil.co.uk"))
    sibling = AuthResults(spf="fail", dkim_pass_domains=("us.sib.test",), org_domains=orgs)
    assert sibling.dkim_aligned("eu.sib.test")
    assert not AuthResults(dkim_pass_domains=("us.sib.test",)).dkim_aligned("eu.sib.test")  # no data: approximated
    # A signature by a public suffix aligns with nobody under it (the approximation would say yes).
    assert not AuthResults(dkim_pass_domains=("co.uk",), org_domains=orgs).dkim_aligned("evil.co.uk")
    assert allowlist_counts("relaxed", sibling, "eu.sib.test")[0]
