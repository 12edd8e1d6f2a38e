"""A stranger writing to several people at once (issue 13): one transaction, one refusal, one link that
names them all; each recipient has a challenge of their own (their Pending list, their deny), and
confirming the link lets the sender's next attempt reach every recipient who did not deny.

Through a real gateway process, real SMTP, the real confirmation page over HTTP and the API.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator

import httpx
import pytest

from sendergate.web.confirm import expected_answer
from tests.support.gateway import GatewayProcess

MESSAGE = (b"From: Stranger <stranger@sender.test>\r\nTo: alice@example.org, bob@example.org\r\n"
           b"Subject: Quote for the new office\r\nMessage-ID: <q1@sender.test>\r\n\r\nHello both.\r\n")
SENDER = "stranger@sender.test"


@pytest.fixture
def gw() -> Iterator[GatewayProcess]:
    g = GatewayProcess()
    tokens = {}
    for name in ("alice", "bob", "carol"):
        _, tokens[name] = g.store.add_user(f"{name}@example.org")
    g.store.add_alias("carol@example.org", "sales@example.org")
    g.tokens = tokens  # type: ignore[attr-defined]
    g.start()
    yield g
    g.close()


def send(gw: GatewayProcess, recipients: list[str], message: bytes = MESSAGE) -> tuple[list[int], int, str]:
    """One transaction; the RCPT codes and the end-of-DATA reply (unfolded)."""
    with gw.smtp() as s:
        s.mail(SENDER)
        codes = [s.rcpt(r)[0] for r in recipients]
        try:
            code, text = s.data(message)
        except smtplib.SMTPDataError as err:
            code, text = err.smtp_code, err.smtp_error
        return codes, code, text.decode()


def first_line(gw: GatewayProcess, recipients: list[str]) -> str:
    """The refusal as the client read it, first line only (smtplib joins lines with \\n)."""
    return send(gw, recipients)[2].split("\n")[0]


def api(gw: GatewayProcess, user: str) -> httpx.Client:
    return httpx.Client(base_url=gw.http_url, timeout=10,
                        headers={"Authorization": f"Bearer {gw.tokens[user]}"})  # type: ignore[attr-defined]


def pending(gw: GatewayProcess, user: str) -> list[dict]:
    with api(gw, user) as c:
        r = c.get("/api/v1/challenges", params={"status": "pending"})
        assert r.status_code == 200, r.text
        body = r.json()
        return body["items"] if isinstance(body, dict) else body


def confirm(gw: GatewayProcess, token: str) -> httpx.Response:
    with httpx.Client(base_url=gw.http_url, timeout=10) as http:
        page = http.get(f"/c/{token}")
        assert page.status_code == 200, page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        answer = expected_answer(gw.store, token, nonce)
        return http.post(f"/c/{token}", data={"csrf": csrf, "nonce": nonce, "answer": answer})


def link_token(text: str) -> str:
    tokens = re.findall(r"/c/([A-Za-z0-9_-]{22})", text)
    assert len(tokens) == 1, text
    return tokens[0]


def test_a_stranger_writing_to_two_people_gets_one_link_naming_both(gw: GatewayProcess) -> None:
    codes, code, text = send(gw, ["alice@example.org", "bob@example.org"])
    assert codes == [250, 250]  # no 452: no sending server needs a retry round
    assert code == 550 and text.startswith("5.7.1 ")
    first = text.split("\n")[0]
    assert "alice@example.org and bob@example.org accept mail only from known senders" in first
    token = link_token(first)  # the link is on the first line, and there is one
    # each recipient sees the sender in their own Pending list; each event names its own challenge
    for user in ("alice", "bob"):
        items = pending(gw, user)
        assert [(i["sender"], i["recipient"]) for i in items] == [(SENDER, f"{user}@example.org")]
    assert pending(gw, "carol") == []
    events = [e for e in gw.events() if e.verdict == "challenged"]
    assert sorted(e.recipient for e in events) == ["alice@example.org", "bob@example.org"]
    assert len({e.challenge_id for e in events}) == 2
    # the page names both; one right answer allowlists the sender for both
    r = confirm(gw, token)
    assert r.status_code == 200 and "alice@example.org and bob@example.org" in r.text
    assert pending(gw, "alice") == pending(gw, "bob") == []
    codes, code, _ = send(gw, ["alice@example.org", "bob@example.org"])
    assert (codes, code) == ([250, 250], 250)
    for user in ("alice", "bob"):
        assert len(list((gw.maildir / f"{user}@example.org" / "Maildir" / "new").iterdir())) == 1


def test_a_recipient_who_denied_keeps_the_sender_out_while_the_link_confirms_the_others(gw: GatewayProcess) -> None:
    _, _, text = send(gw, ["alice@example.org", "bob@example.org", "carol@example.org"])
    token = link_token(text.split("\n")[0])
    (bobs,) = pending(gw, "bob")
    with api(gw, "bob") as c:
        assert c.post(f"/api/v1/challenges/{bobs['id']}/deny").status_code == 200
    page = httpx.get(f"{gw.http_url}/c/{token}", timeout=10)
    assert "bob@example.org" not in page.text and "alice@example.org and carol@example.org" in page.text
    assert confirm(gw, token).status_code == 200
    codes, code, _ = send(gw, ["alice@example.org", "carol@example.org"])
    assert (codes, code) == ([250, 250], 250)
    with gw.smtp() as s:  # bob's deny blocks the sender for bob
        s.mail(SENDER)
        assert s.rcpt("bob@example.org")[0] == 550


def test_the_first_recipient_denying_does_not_strand_the_others(gw: GatewayProcess) -> None:
    _, _, text = send(gw, ["alice@example.org", "bob@example.org"])
    token = link_token(text)
    (alices,) = pending(gw, "alice")
    with api(gw, "alice") as c:
        assert c.post(f"/api/v1/challenges/{alices['id']}/deny").status_code == 200
    assert confirm(gw, token).status_code == 200
    assert pending(gw, "bob") == []
    assert send(gw, ["bob@example.org"])[1] == 250


def test_aliases_of_one_user_share_that_users_challenge(gw: GatewayProcess) -> None:
    _, code, text = send(gw, ["carol@example.org", "sales@example.org", "alice@example.org"])
    assert code == 550 and "carol@example.org, sales@example.org and alice@example.org accept" in text
    assert len(pending(gw, "carol")) == 1 and len(pending(gw, "alice")) == 1
    assert confirm(gw, link_token(text)).status_code == 200
    assert send(gw, ["sales@example.org", "alice@example.org"])[1] == 250


def test_many_recipients_keep_the_link_whole_on_the_first_line() -> None:
    with GatewayProcess(extra={"smtp": {"max_recipients": 60}}) as g:
        names = [f"user{i:02d}.with.a.long.name@example.org" for i in range(50)]
        for n in names:
            g.store.add_user(n)
        codes, code, text = send(g, names)
        assert codes == [250] * 50 and code == 550
        first = text.split("\n")[0]
        assert len(first) + len("550-") + 2 <= 512
        assert "and 47 others accept" in first or "and 49 others accept" in first
        link_token(first)
        assert len([e for e in g.events() if e.verdict == "challenged"]) == 50


def test_known_to_one_unknown_to_the_other_one_transaction_inbox_and_screened_folder(gw: GatewayProcess) -> None:
    bob = gw.store.user_by_address("bob@example.org")
    gw.store.add_entry(bob.id, "allow", SENDER)
    codes, code, _ = send(gw, ["alice@example.org", "bob@example.org"])
    assert (codes, code) == ([250, 250], 250)  # answered at once, for both
    bobs = list((gw.maildir / "bob@example.org" / "Maildir" / "new").iterdir())
    alices = list((gw.maildir / "alice@example.org" / "Maildir" / ".Screened" / "new").iterdir())
    assert len(bobs) == 1 and len(alices) == 1
    assert not (gw.maildir / "alice@example.org" / "Maildir" / "new").exists() or \
        not list((gw.maildir / "alice@example.org" / "Maildir" / "new").iterdir())  # never alice's inbox
    assert b"X-SenderGate-Screened: yes" in alices[0].read_bytes()
    assert b"X-SenderGate-Screened" not in bobs[0].read_bytes()
    assert pending(gw, "alice") == []  # nobody is asked to confirm a message that was answered 250


def test_a_recipient_who_blocked_the_sender_is_refused_at_rcpt_and_the_others_decide_together(
        gw: GatewayProcess) -> None:
    alice = gw.store.user_by_address("alice@example.org")
    gw.store.add_entry(alice.id, "allow", SENDER)
    carol = gw.store.user_by_address("carol@example.org")
    gw.store.add_entry(carol.id, "block", SENDER)
    codes, code, _ = send(gw, ["alice@example.org", "carol@example.org", "bob@example.org"])
    assert codes == [250, 550, 250] and code == 250
    assert [e.verdict for e in gw.events() if e.recipient == "carol@example.org"] == ["blocked"]


def test_spam_from_a_sender_one_recipient_knows_reaches_nobody() -> None:
    """An attacker who forges (or is) a sender bob allowlisted, unauthenticated, writes to bob and alice:
    the co-recipient rule must not carry spam past spamd into anyone's mailbox (real spamd, GTUBE)."""
    from tests.support.scanners import GTUBE, start_spamd

    spamd = start_spamd()
    try:
        with GatewayProcess(extra={"scan": {"spamd": spamd.tcp_spec, "timeout": "20s"}}) as g:
            for name in ("alice", "bob"):
                g.store.add_user(f"{name}@example.org")
            g.store.add_entry(g.store.user_by_address("bob@example.org").id, "allow", SENDER)
            spam = MESSAGE.replace(b"Hello both.", GTUBE)
            codes, code, text = send(g, ["alice@example.org", "bob@example.org"], spam)
            assert codes == [250, 250] and code == 554, text
            assert sorted((e.recipient, e.verdict) for e in g.events()) == [
                ("alice@example.org", "spam"), ("bob@example.org", "spam")]
            assert not any(g.maildir.rglob("new/*"))  # neither inbox nor Screened folder
    finally:
        spamd.stop()
