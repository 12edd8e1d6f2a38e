"""A sender's history (issue 17 item 3) and the events of what people do about a challenge (SPEC §4.3:
`confirmed`, `approved`, `denied`), over real HTTP and SMTP against a real gateway process, on SQLite and
PostgreSQL (the history's expression indexes are spelled per dialect).

Challenges come from real SMTP refusals; the CAPTCHA is solved through the real confirmation page (its
answer read from the store, as an admin could: tests/test_confirm.py); decisions go through the API.
"""

from __future__ import annotations

import itertools
import re
import smtplib
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from sendergate.policy.decide import EventRecord, Verdict
from sendergate.web.confirm import expected_answer
from tests.support.gateway import GatewayProcess

_n = itertools.count(1)
_ips = itertools.count(20)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gw(request: pytest.FixtureRequest) -> Iterator[GatewayProcess]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database("hist_" + uuid.uuid4().hex[:10])
    gateway = GatewayProcess(store_url=url, extra={"http": {"trusted_proxies": ["127.0.0.1"]}})
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.close()


class Account:
    def __init__(self, gw: GatewayProcess, *, admin: bool = False) -> None:
        n = next(_n)
        self.address = f"{'admin' if admin else 'user'}{n}-{uuid.uuid4().hex[:6]}@example.org"
        self.name = f"Person {n}"
        self.user, self.token = gw.store.add_user(self.address, admin=admin, name=self.name)
        self.http = httpx.Client(base_url=gw.http_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10)

    def events(self, verdict: str, **params: Any) -> list[dict[str, Any]]:
        r = self.http.get("/api/v1/events", params={"verdict": verdict, "limit": 500, **params})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    def history(self, sender: str, **params: Any) -> httpx.Response:
        return self.http.get("/api/v1/senders/history", params={"sender": sender, **params})


def unknown_sender() -> str:
    return f"stranger{next(_n)}-{uuid.uuid4().hex[:6]}@sender.test"


def refuse(gw: GatewayProcess, sender: str, rcpt: str, subject: str = "hello") -> str:
    """An SMTP transaction from an unknown sender; the confirmation token from the 550 reply."""
    with gw.smtp() as s:
        with pytest.raises(smtplib.SMTPDataError) as err:
            s.sendmail(sender, [rcpt], f"From: {sender}\r\nSubject: {subject}\r\n\r\nhi\r\n".encode())
    assert err.value.smtp_code == 550, err.value
    return err.value.smtp_error.decode().split("/c/", 1)[1].split()[0]


def solve(gw: GatewayProcess, token: str, ip: str, times: int = 1) -> list[httpx.Response]:
    """A person at `ip` opens the link and sends the right answer (the real page, cookie and CSRF field),
    `times` times (a double click, a browser resending the form)."""
    page = httpx.Client(base_url=gw.http_url, timeout=10, headers={"X-Forwarded-For": ip})
    r = page.get(f"/c/{token}")
    assert r.status_code == 200, r.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.text)
    nonce = re.search(r'name="nonce" value="([^"]+)"', r.text)
    assert csrf and nonce
    form = {"csrf": csrf.group(1), "nonce": nonce.group(1),
            "answer": expected_answer(gw.store, token, nonce.group(1))}
    return [page.post(f"/c/{token}", data=form) for _ in range(times)]


def pending_id(acct: Account, sender: str) -> int:
    r = acct.http.get("/api/v1/challenges", params={"q": sender})
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    return int(item["id"])


# -- the events of confirmations and decisions ---------------------------------------------------


def test_a_solved_captcha_is_one_confirmed_event_for_the_recipient_only(gw: GatewayProcess) -> None:
    alice, bob, admin = Account(gw), Account(gw), Account(gw, admin=True)
    sender = unknown_sender()
    token = refuse(gw, sender, alice.address, subject="about the flat")
    ip = f"198.51.100.{next(_ips)}"
    responses = solve(gw, token, ip, times=3)
    assert all(r.status_code == 200 and "send your message again" in r.text for r in responses)

    [event] = [e for e in alice.events("confirmed") if e["sender"] == sender]
    assert event["recipient"] == alice.address and event["user_id"] == alice.user.id
    assert event["client_ip"] == ip, "the confirmer's address, not the mail client's"
    assert event["reason"] == "solved the CAPTCHA" and event["subject"] == "about the flat"
    [challenged] = [e for e in alice.events("challenged") if e["sender"] == sender]
    assert event["challenge_id"] == challenged["challenge_id"] is not None
    assert event["details"]["pattern"] == sender

    assert gw.store.link_state(token).status == "confirmed"  # the form was sent three times: one event
    # nobody else sees it; an admin does
    assert not [e for e in bob.events("confirmed") if e["sender"] == sender]
    assert [e["id"] for e in admin.events("confirmed") if e["sender"] == sender] == [event["id"]]


def test_approve_and_deny_are_one_event_each_even_when_repeated(gw: GatewayProcess) -> None:
    alice, bob = Account(gw), Account(gw)
    friend, pest = unknown_sender(), unknown_sender()
    refuse(gw, friend, alice.address)
    refuse(gw, pest, alice.address)
    fid, pid = pending_id(alice, friend), pending_id(alice, pest)

    # another user cannot decide alice's challenge, and that writes no event
    assert bob.http.post(f"/api/v1/challenges/{fid}/approve").status_code == 404
    for _ in range(3):  # a retry after a lost answer: the decision is idempotent, and so is its event
        assert alice.http.post(f"/api/v1/challenges/{fid}/approve").status_code == 200
        assert alice.http.post("/api/v1/challenges/deny", json={"ids": [pid]}).status_code == 200

    approved = [e for e in alice.events("approved") if e["sender"] == friend]
    denied = [e for e in alice.events("denied") if e["sender"] == pest]
    assert len(approved) == 1 and len(denied) == 1
    assert approved[0]["reason"] == f"approved in the app by {alice.name}"
    assert denied[0]["reason"] == f"denied in the app by {alice.name}"
    assert approved[0]["challenge_id"] == fid and denied[0]["challenge_id"] == pid
    assert approved[0]["recipient"] == denied[0]["recipient"] == alice.address
    assert not bob.events("approved") and not bob.events("denied")

    # they count in the stats, as what they are, and are never mail: not on Screened, not SMTP verdicts
    totals = alice.http.get("/api/v1/stats", params={"days": 1}).json()["totals"]
    assert totals["approved"] == 1 and totals["denied"] == 1 and totals["confirmed"] == 0
    assert totals["challenged"] == 2 and totals["delivered"] == 0
    assert not [s for s in alice.http.get("/api/v1/screened").json()["items"] if s["sender"] in (friend, pest)]
    metrics = httpx.get(f"{gw.http_url}/metrics", timeout=10).text
    assert not re.search(r'sendergate_smtp_verdicts_total\{verdict="(approved|denied|confirmed)"\}', metrics)


# -- the history route -----------------------------------------------------------------------------


def _record(ts: datetime, user_id: int | None, sender: str, verdict: Verdict = Verdict.CHALLENGED,
            reason: str = "unknown sender") -> EventRecord:
    return EventRecord(ts=ts, verdict=verdict, reason=reason, sender=sender, recipient="x@example.org",
                       user_id=user_id)


def test_history_of_a_sender_and_their_domain_pages_counts_and_entries(gw: GatewayProcess) -> None:
    alice, bob, admin = Account(gw), Account(gw), Account(gw, admin=True)
    dom = f"h{uuid.uuid4().hex[:8]}.test"
    t0 = datetime.now(timezone.utc) - timedelta(days=3)
    records = [_record(t0 + timedelta(minutes=i), alice.user.id, f"Ann@{dom.upper()}") for i in range(7)]
    records += [_record(t0 + timedelta(minutes=10 + i), alice.user.id, f"news@mail.{dom}", Verdict.BULK)
                for i in range(2)]  # a subdomain is not the domain
    records += [_record(t0 + timedelta(minutes=20 + i), alice.user.id, f"carl@{dom}", Verdict.SPAM) for i in range(3)]
    records += [_record(t0 + timedelta(minutes=30), bob.user.id, f"ann@{dom}", Verdict.DELIVERED),
                _record(t0 + timedelta(minutes=31), alice.user.id, f"ann@{dom}.evil", Verdict.SPAM),
                _record(t0 + timedelta(minutes=32), alice.user.id, f"x-ann@{dom}", Verdict.SPAM)]
    ids = gw.store.add_events(records)
    gw.store.add_entry(alice.user.id, "allow", f"@{dom}")
    gw.store.add_entry(None, "block", f"ann@{dom}")
    gw.store.add_entry(bob.user.id, "allow", f"ann@{dom}")  # bob's: alice never sees it

    # a user: their own events from the address (any case), newest first, keyset-paged
    seen: list[int] = []
    cursor = None
    while True:
        r = alice.history(f"ann@{dom}", limit=3, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [e["id"] for e in body["items"]]
        if cursor is None:
            first = body
        else:
            assert body["sender_summary"] is None and body["domain_summary"] is None  # first page only
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids[:7], reverse=True)
    assert first["sender"] == f"ann@{dom}" and first["domain"] == dom and first["whole_domain"] is False
    assert first["sender_summary"]["counts"] == {"challenged": 7} and first["sender_summary"]["total"] == 7
    assert first["sender_summary"]["first_seen"].startswith(t0.strftime("%Y-%m-%dT%H:%M"))
    assert first["domain_summary"]["counts"] == {"challenged": 7, "spam": 4}
    entries = {(e["entry"], e["action"], e["user_id"]): e["deciding"] for e in first["entries"]}
    assert entries == {(f"@{dom}", "allow", alice.user.id): False, (f"ann@{dom}", "block", None): True}

    # the whole domain: the address's and the domain's others, not a subdomain's or a look-alike's
    r = alice.history(f"ann@{dom}", domain="true", limit=500)
    assert [e["id"] for e in r.json()["items"]] == sorted(ids[:7] + ids[9:12] + ids[14:15], reverse=True)
    # asked for the domain itself
    r = alice.history(f"@{dom}")
    assert r.json()["sender"] is None and r.json()["whole_domain"] is True and r.json()["sender_summary"] is None
    assert len(r.json()["items"]) == 11

    # bob sees only his one event and his own entry (and the global one); an admin sees everyone's
    b = bob.history(f"ANN@{dom}").json()
    assert [e["id"] for e in b["items"]] == [ids[12]]
    assert {(e["entry"], e["user_id"]) for e in b["entries"]} == {(f"ann@{dom}", bob.user.id), (f"ann@{dom}", None)}
    a = admin.history(f"ann@{dom}", limit=500).json()
    assert [e["id"] for e in a["items"]] == sorted(ids[:7] + [ids[12]], reverse=True)
    assert len(a["entries"]) == 3
    assert [e["id"] for e in admin.history(f"ann@{dom}", user=bob.user.id).json()["items"]] == [ids[12]]
    assert alice.history(f"ann@{dom}", user=bob.user.id).status_code == 403


def test_history_names_the_list_entries_its_events_matched(gw: GatewayProcess) -> None:
    alice = Account(gw)
    sender = unknown_sender()
    list_id = f"dev{uuid.uuid4().hex[:6]}.lists.test"
    entry, _ = gw.store.add_entry(alice.user.id, "block", f"list:{list_id}")
    gw.store.add_events([_record(datetime.now(timezone.utc), alice.user.id, sender, Verdict.BLOCKED,
                                 reason=f"blocked by recipient (list:{list_id})")])
    body = alice.history(sender).json()
    assert [(e["id"], e["entry"]) for e in body["entries"]] == [(entry.id, f"list:{list_id}")]


@pytest.mark.parametrize("bad", ["nobody", "a@", "@", "@bad..domain", "a@b\x01c", ""])
def test_history_refuses_what_is_not_an_address_or_domain(gw: GatewayProcess, bad: str) -> None:
    r = Account(gw).history(bad)
    assert r.status_code in (400, 422), r.text
    assert r.json()["detail"]


def test_history_needs_a_token_and_is_in_the_openapi_document(gw: GatewayProcess) -> None:
    assert httpx.get(f"{gw.http_url}/api/v1/senders/history", params={"sender": "a@b.test"}).status_code == 401
    doc = Account(gw).http.get("/openapi.json").json()
    assert "/api/v1/senders/history" in doc["paths"]
    assert {"confirmed", "approved", "denied"} <= set(doc["components"]["schemas"]["Verdict"]["enum"])


def test_a_big_domains_counts_are_of_its_newest_events_and_say_so(gw: GatewayProcess,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary reads a bounded number of events (store.history.SUMMARY_WINDOW; here 5, in the store
    the test holds): the counts say they are incomplete, first seen is still the oldest event's."""
    from sendergate.store import history
    alice = Account(gw)
    dom = f"big{uuid.uuid4().hex[:8]}.test"
    t0 = datetime.now(timezone.utc) - timedelta(days=2)
    gw.store.add_events([_record(t0 + timedelta(minutes=i), alice.user.id, f"p{i}@{dom}",
                                 Verdict.SPAM if i < 4 else Verdict.CHALLENGED) for i in range(9)])
    monkeypatch.setattr(history, "SUMMARY_WINDOW", 5)
    out = gw.store.sender_history(alice.user.id, f"p8@{dom}")
    assert out["domain_summary"]["counts"] == {"challenged": 5} and out["domain_summary"]["complete"] is False
    assert out["domain_summary"]["first_seen"] == pytest.approx((t0).timestamp())
    assert out["sender_summary"]["complete"] is True and out["sender_summary"]["total"] == 1
    monkeypatch.setattr(history, "SUMMARY_WINDOW", 9)
    whole = gw.store.sender_history(alice.user.id, f"@{dom}")["domain_summary"]
    assert whole["counts"] == {"spam": 4, "challenged": 5} and whole["complete"] is True


def test_history_matches_exactly_no_wildcards(gw: GatewayProcess) -> None:
    """The sender is compared for equality: SQL wildcards in an address match nothing but themselves."""
    alice = Account(gw)
    dom = f"w{uuid.uuid4().hex[:8]}.test"
    now = datetime.now(timezone.utc)
    [ann, pct] = gw.store.add_events([_record(now, alice.user.id, f"ann@{dom}"),
                                      _record(now, alice.user.id, f"a%n@{dom}")])
    assert [e["id"] for e in alice.history(f"_nn@{dom}").json()["items"]] == []
    assert [e["id"] for e in alice.history(f"a%n@{dom}").json()["items"]] == [pct]
    assert [e["id"] for e in alice.history(f"%@{dom}").json()["items"]] == []
    assert alice.history("@%").status_code == 422
    assert sorted(e["id"] for e in alice.history(f"@{dom}").json()["items"]) == [ann, pct]
