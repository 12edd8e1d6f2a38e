"""Sign-up addresses through the real gateway (issue 19 items 1 and 4): real `sendergate gateway` processes on
SQLite and on PostgreSQL, real clamd (EICAR) and spamd (GTUBE), Maildir delivery read back from disk.

A live tag lets a stranger's clean mail in (the event names the tag) and refuses viruses and spam; a revoked
or expired tag refuses at RCPT with 550 5.1.1 and no link; a forged dated tag is no tag (the normal rules: a
challenge). And what a tag must never do: reach another user's mailbox, route anywhere, skip a scan, split a
stranger's challenge, or lift a block.
"""

from __future__ import annotations

import base64
import itertools
import smtplib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from sendergate.store import schema
from tests.support.gateway import GatewayProcess
from tests.support.scanners import GTUBE, ScannerDaemon, start_clamd, start_spamd

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
ALICE, BOB = "alice@example.org", "bob@example.org"
STRANGER = "deals@shop.example"
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def clamd() -> Iterator[ScannerDaemon]:
    d = start_clamd()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def spamd() -> Iterator[ScannerDaemon]:
    d = start_spamd()
    yield d
    d.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gw(request: pytest.FixtureRequest, clamd: ScannerDaemon, spamd: ScannerDaemon) -> Iterator[GatewayProcess]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database("tagsgw_" + uuid.uuid4().hex[:10])
    g = GatewayProcess(store_url=url, extra={"scan": {"clamd": clamd.unix_spec, "spamd": spamd.tcp_spec,
                                                      "timeout": "20s"}})
    alice, _ = g.store.add_user(ALICE)
    bob, _ = g.store.add_user(BOB)
    g.store.add_entry(alice.id, "block", "spammer@blocked.example")
    g.start()
    g.alice, g.bob = alice, bob  # type: ignore[attr-defined]
    yield g
    g.close()


def tag(gw: GatewayProcess, name: str, *, owner: str = ALICE, **kw: Any) -> dict[str, Any]:
    """A new tag with a name unique to this test run (the module's gateway is shared)."""
    unique = f"{name}{next(_ids)}"
    return gw.store.add_tag(None, owner, unique, **kw)


def message(to: str, *, body: bytes = b"Your order has shipped.\r\n", subject: str = "Order") -> tuple[bytes, str]:
    msgid = f"<tag-{next(_ids)}-{time.monotonic_ns()}@shop.example>"
    head = (f"From: Shop <{STRANGER}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {msgid}\r\n"
            "Date: Mon, 06 Jan 2025 10:00:00 +0000\r\n\r\n")
    return head.encode() + body, msgid


def send(gw: GatewayProcess, rcpt: str, msg: bytes, *, sender: str = STRANGER) -> tuple[int, str]:
    with gw.smtp(timeout=60) as s:
        assert s.mail(sender)[0] == 250
        code, text = s.rcpt(rcpt)
        if code != 250:
            return code, text.decode()
        code, text = s.data(msg)
        return code, text.decode("utf-8", "replace")


def event(gw: GatewayProcess, *, msgid: str | None = None, recipient: str | None = None) -> Any:
    rows = [e for e in gw.events() if (msgid is None or e.message_id == msgid)
            and (recipient is None or e.recipient == recipient)]
    assert rows, f"no event for {msgid or recipient}"
    return rows[-1]


def found(gw: GatewayProcess, msgid: str, owner: str = ALICE) -> list[str]:
    """The folders of `owner`'s Maildir ("" for the inbox) holding the message."""
    root = gw.maildir / owner / "Maildir"
    out = []
    for new in [root / "new", *root.glob(".*/new")]:
        if new.is_dir() and any(msgid.encode() in f.read_bytes() for f in new.iterdir()):
            out.append("" if new.parent == root else new.parent.name[1:])
    return out


def everywhere(gw: GatewayProcess, msgid: str) -> list[Path]:
    return [f for f in gw.maildir.rglob("*") if f.is_file() and msgid.encode() in f.read_bytes()]


# -- a live tag ------------------------------------------------------------------------------------------------

def pending(gw: GatewayProcess) -> int:
    with gw.store.engine.connect() as conn:
        return len(conn.execute(schema.challenges.select().where(schema.challenges.c.status == "pending")).all())


def test_a_live_tag_accepts_a_strangers_clean_mail(gw: GatewayProcess) -> None:
    t = tag(gw, "acme")
    msg, msgid = message(t["address"])
    before = pending(gw)
    code, text = send(gw, t["address"], msg)
    assert code == 250, text
    assert pending(gw) == before  # nothing waits in Alice's Pending list for it
    ev = event(gw, msgid=msgid)
    assert (ev.verdict, ev.tag, ev.user_id) == ("delivered", t["name"], gw.alice.id)  # type: ignore[attr-defined]
    assert ev.reason.startswith(f"sign-up address {t['name']}") and ev.spam_score is not None  # spamd ran
    assert found(gw, msgid) == [""]
    assert f"tag={t['name']}" in gw.read_log()  # the decision log line names it too
    assert "housekeeping failed" not in gw.read_log()  # it prunes tag senders too
    after = gw.store.get_tag(None, t["id"])
    assert after["received"] == 1 and after["senders"] == [{"sender": STRANGER, "count": 1}]


def test_a_plain_address_still_challenges_the_same_stranger(gw: GatewayProcess) -> None:
    msg, msgid = message(ALICE)
    code, text = send(gw, ALICE, msg)
    assert code == 550 and "/c/" in text
    assert event(gw, msgid=msgid).tag is None


def test_a_live_tag_refuses_gtube(gw: GatewayProcess) -> None:
    t = tag(gw, "spamtrap")
    msg, msgid = message(t["address"], body=b"Cheap watches!\r\n" + GTUBE + b"\r\n")
    code, text = send(gw, t["address"], msg)
    assert code == 554 and text.startswith("5.7.1"), text
    ev = event(gw, msgid=msgid)
    assert (ev.verdict, ev.tag) == ("spam", t["name"]) and ev.spam_score >= 1000
    assert everywhere(gw, msgid) == []
    assert gw.store.get_tag(None, t["id"])["refused"] == 1


def test_a_live_tag_refuses_eicar(gw: GatewayProcess) -> None:
    t = tag(gw, "virus")
    b64 = base64.encodebytes(EICAR).replace(b"\n", b"\r\n")
    body = (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
            b"Content-Type: text/plain\r\n\r\nInvoice attached.\r\n--XX\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 + b"--XX--\r\n")
    msg, msgid = message(t["address"], body=body)
    code, text = send(gw, t["address"], msg)
    assert code == 554 and text.startswith("5.7.0") and ("Eicar" in text or "EICAR" in text), text
    assert event(gw, msgid=msgid).verdict == "virus"
    assert everywhere(gw, msgid) == []


def test_an_allowlisted_sender_writing_to_a_tag_is_still_spam_scanned(gw: GatewayProcess) -> None:
    """allowlist_auth "off" here: the known sender is scanned anyway; the tag keeps it that way."""
    t = tag(gw, "friends")
    gw.store.add_entry(gw.alice.id, "allow", "pal@friend.example")  # type: ignore[attr-defined]
    msg, msgid = message(t["address"], body=GTUBE + b"\r\n")
    code, _ = send(gw, t["address"], msg, sender="pal@friend.example")
    assert code == 554 and event(gw, msgid=msgid).verdict == "spam"


# -- revoked, expired, forged ---------------------------------------------------------------------------------

def refused_at_rcpt_without_link(gw: GatewayProcess, rcpt: str) -> None:
    msg, _ = message(rcpt)
    code, text = send(gw, rcpt, msg)
    assert code == 550 and text.startswith("5.1.1") and "http" not in text and "/c/" not in text, text


def test_a_revoked_tag_refuses_550_511_without_a_link(gw: GatewayProcess) -> None:
    t = tag(gw, "leaky")
    gw.store.revoke_tag(None, t["id"])
    refused_at_rcpt_without_link(gw, t["address"])
    ev = event(gw, recipient=t["address"])
    assert (ev.verdict, ev.tag, ev.challenge_id) == ("unknown_recipient", t["name"], None)
    assert "revoked" in ev.reason
    assert gw.store.get_tag(None, t["id"])["refused"] == 1


def test_an_expired_tag_refuses_550_511_without_a_link(gw: GatewayProcess) -> None:
    t = tag(gw, "old", expires_in=3600)
    with gw.store.engine.begin() as conn:  # an hour later
        conn.execute(update(schema.tags).where(schema.tags.c.id == t["id"]).values(expires_at=time.time() - 1))
    refused_at_rcpt_without_link(gw, t["address"])
    assert "expired" in event(gw, recipient=t["address"]).reason


def test_a_dated_tag_accepts_until_its_day(gw: GatewayProcess) -> None:
    t = tag(gw, "fair", dated=True, expires_in=5 * 86400)
    msg, msgid = message(t["address"])
    assert send(gw, t["address"], msg)[0] == 250
    assert event(gw, msgid=msgid).tag == t["name"]


def dated_parts(address: str) -> tuple[str, str, str, str, str]:
    local, _, domain = address.partition("@")
    base, _, part = local.partition("+")
    name, day, mac = part.split(".")
    return base, name, day, mac, domain


def test_a_dated_tag_with_a_wrong_mac_is_no_tag(gw: GatewayProcess) -> None:
    t = tag(gw, "forge", dated=True, expires_in=5 * 86400)
    base, name, day, mac, domain = dated_parts(t["address"])
    forged = f"{base}+{name}.{day}.{('a' if mac[0] != 'a' else 'b') + mac[1:]}@{domain}"
    msg, msgid = message(forged)
    code, text = send(gw, forged, msg)
    assert code == 550 and "/c/" in text, text  # the normal rules: a challenge
    ev = event(gw, msgid=msgid)
    assert (ev.verdict, ev.tag) == ("challenged", None)


def test_a_dated_tag_with_an_edited_day_is_no_tag(gw: GatewayProcess) -> None:
    """The attacker who saw an expired dated address moves its day forward: still no tag."""
    t = tag(gw, "extend", dated=True, expires_in=86400)
    base, name, day, mac, domain = dated_parts(t["address"])
    later = str(int(day[:4]) + 1) + day[4:]
    edited = f"{base}+{name}.{later}.{mac}@{domain}"
    msg, msgid = message(edited)
    code, text = send(gw, edited, msg)
    assert code == 550 and "/c/" in text, text
    assert event(gw, msgid=msgid).tag is None


def test_a_dated_tag_without_its_day_is_no_tag(gw: GatewayProcess) -> None:
    t = tag(gw, "bare", dated=True, expires_in=86400)
    plain = f"{ALICE.split('@')[0]}+{t['name']}@example.org"
    msg, msgid = message(plain)
    code, _ = send(gw, plain, msg)
    assert code == 550 and event(gw, msgid=msgid).verdict == "challenged"


def test_an_unknown_tag_follows_the_normal_rules(gw: GatewayProcess) -> None:
    rcpt = "alice+never-made@example.org"
    msg, msgid = message(rcpt)
    code, text = send(gw, rcpt, msg)
    assert code == 550 and "/c/" in text
    assert event(gw, msgid=msgid).tag is None


# -- folders ----------------------------------------------------------------------------------------------------

def test_a_tag_with_its_own_folder(gw: GatewayProcess) -> None:
    t = tag(gw, "shop", folder="tag")
    msg, msgid = message(t["address"])
    assert send(gw, t["address"], msg)[0] == 250
    assert found(gw, msgid) == [f"Sign-ups.{t['name']}"]


def test_a_tag_filed_as_screened(gw: GatewayProcess) -> None:
    t = tag(gw, "news", folder="screened")
    msg, msgid = message(t["address"])
    assert send(gw, t["address"], msg)[0] == 250
    assert found(gw, msgid) == ["Screened"]
    assert event(gw, msgid=msgid).verdict == "screened"
    [path] = everywhere(gw, msgid)
    assert b"X-SenderGate-Screened: yes" in path.read_bytes()


# -- what a tag must never do --------------------------------------------------------------------------------

def test_a_tag_name_on_another_users_address_is_no_tag(gw: GatewayProcess) -> None:
    t = tag(gw, "mine")
    rcpt = f"bob+{t['name']}@example.org"
    msg, msgid = message(rcpt)
    code, text = send(gw, rcpt, msg)
    assert code == 550 and "/c/" in text  # Bob's normal rules; Alice's tag does nothing for him
    ev = event(gw, msgid=msgid)
    assert (ev.tag, ev.user_id) == (None, gw.bob.id)  # type: ignore[attr-defined]
    assert everywhere(gw, msgid) == []


def test_case_reaches_the_same_tag_and_mailbox(gw: GatewayProcess) -> None:
    t = tag(gw, "case")
    shouted = t["address"].upper()
    msg, msgid = message(shouted)
    assert send(gw, shouted, msg)[0] == 250
    assert event(gw, msgid=msgid).tag == t["name"] and found(gw, msgid) == [""]


def test_a_quoted_tag_is_the_same_tag_in_the_same_mailbox(gw: GatewayProcess) -> None:
    """`"alice+x"@` is `alice+x@` (RFC 5321 §4.1.2); whatever the quoting, only Alice's mailbox."""
    t = tag(gw, "quoted")
    msg, msgid = message(t["address"])
    with gw.smtp(timeout=60) as s:
        assert s.mail(STRANGER)[0] == 250
        assert s.docmd(f'RCPT TO:<"alice+{t["name"]}"@example.org>')[0] == 250
        assert s.data(msg)[0] == 250
    assert event(gw, msgid=msgid).tag == t["name"]
    assert [p.parts[len(gw.maildir.parts)] for p in everywhere(gw, msgid)] == [ALICE]


@pytest.mark.parametrize("form", [
    "alice+{n}%evil.example@example.org",  # percent hack
    "alice+{n}!evil.example@example.org",  # bang path
    "@example.org:alice+{n}@evil.example",  # source route to elsewhere (a local one is ignored, RFC 5321 C)
    "alice+{n}@evil.example",  # another domain
    "alice+{n}@[127.0.0.1]",  # address literal
])
def test_a_tag_cannot_route_anywhere(gw: GatewayProcess, form: str) -> None:
    t = tag(gw, "route")
    rcpt = form.format(n=t["name"])
    with gw.smtp() as s:
        assert s.mail(STRANGER)[0] == 250
        code, text = s.docmd(f"RCPT TO:<{rcpt}>")  # as written: smtplib's rcpt() would unquote it
    assert code in (550, 501, 553) and code != 250, (rcpt, code, text)
    assert gw.store.get_tag(None, t["id"])["received"] == 0


@pytest.mark.parametrize("part", ["../../x", "x/y", ".hidden", "a..b", "shop.", "con%x"])
def test_a_tag_part_with_path_characters_is_no_tag(gw: GatewayProcess, part: str) -> None:
    """What follows the delimiter never names a folder: it is no tag, so the normal rules (or a refusal)."""
    rcpt = f"alice+{part}@example.org"
    before = {p for p in gw.maildir.rglob("*")}
    with gw.smtp(timeout=60) as s:
        assert s.mail(STRANGER)[0] == 250
        code, _ = s.docmd(f"RCPT TO:<{rcpt}>")
        if code == 250:
            msg, msgid = message(rcpt)
            assert s.data(msg)[0] == 550
            assert event(gw, msgid=msgid).verdict == "challenged"
    assert {p for p in gw.maildir.rglob("*")} == before


def test_a_stranger_cannot_use_a_tag_to_carry_mail_past_a_challenge(gw: GatewayProcess) -> None:
    """One transaction to Alice's live tag and to Bob: Bob's copy must not ride on the tag (settle_recipients
    would screen a challenged recipient's copy when another accepts): his is a transaction of its own."""
    t = tag(gw, "carry")
    with gw.smtp() as s:
        assert s.mail(STRANGER)[0] == 250
        assert s.rcpt(t["address"])[0] == 250
        code, _ = s.rcpt(BOB)
        assert code == 452
        msg, msgid = message(t["address"])
        assert s.data(msg)[0] == 250
    assert found(gw, msgid) == [""] and found(gw, msgid, BOB) == []


def test_a_tag_does_not_lift_a_block(gw: GatewayProcess) -> None:
    t = tag(gw, "blocked")
    msg, msgid = message(t["address"])
    code, text = send(gw, t["address"], msg, sender="spammer@blocked.example")
    assert code == 550 and text.startswith("5.7.1") and "/c/" not in text
    assert everywhere(gw, msgid) == []


def test_the_null_sender_gets_no_more_from_a_tag(gw: GatewayProcess) -> None:
    """<> with no report form is refused without a link at a plain address; a tag changes nothing."""
    t = tag(gw, "bounce")
    msg, msgid = message(t["address"])
    code, text = send(gw, t["address"], msg, sender="<>")
    assert code == 550 and "/c/" not in text
    assert everywhere(gw, msgid) == []


def test_unknown_user_with_a_tag_is_unknown(gw: GatewayProcess) -> None:
    with gw.smtp() as s:
        assert s.mail(STRANGER)[0] == 250
        code, _ = s.rcpt("nobody+acme@example.org")
    assert code == 550


def test_a_session_probing_tags_meets_the_error_limit(gw: GatewayProcess) -> None:
    """Revoked tags answer 5xx at RCPT like unknown users: they count toward smtp.error_limit (21 here)."""
    t = tag(gw, "probe")
    gw.store.revoke_tag(None, t["id"])
    with gw.smtp() as s:
        assert s.mail(STRANGER)[0] == 250
        with pytest.raises(smtplib.SMTPServerDisconnected):
            for _ in range(40):
                code, _ = s.rcpt(t["address"])
                if code == 421:
                    raise smtplib.SMTPServerDisconnected("421")
