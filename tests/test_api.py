"""The HTTP API (SPEC §6) over real HTTP against a real gateway process, with SQLite and PostgreSQL.

Users come from the store, events from real SMTP transactions or bulk
inserts; every request goes through uvicorn in the gateway process. The cases that need none of that
(tokens, authorization, cursors, validation, list CRUD) run in process: tests/test_api_inprocess.py.
"""

from __future__ import annotations

import itertools
import json
import smtplib
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import SEARCH_STEP, SEARCH_WINDOW, hash_message_id
from sendergate.store import schema as store_schema
from tests.support.gateway import GatewayProcess, loopback_dns

_counter = itertools.count(1)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gw(request: pytest.FixtureRequest) -> Iterator[GatewayProcess]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database("api_" + uuid.uuid4().hex[:10])
    gateway = GatewayProcess(store_url=url)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.close()


class Account:
    def __init__(self, gw: GatewayProcess, *, admin: bool = False) -> None:
        n = next(_counter)
        self.address = f"{'admin' if admin else 'user'}{n}-{uuid.uuid4().hex[:6]}@example.org"
        self.user, self.token = gw.store.add_user(self.address, admin=admin, name=f"User {n}")
        self.http = httpx.Client(base_url=gw.http_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10)


def client(gw: GatewayProcess, token: str | None = None, source: str = "127.0.0.1") -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.Client(base_url=gw.http_url, headers=headers, timeout=10,
                        transport=httpx.HTTPTransport(local_address=source))


def challenge_from(gw: GatewayProcess, sender: str, rcpt: str, subject: str = "hello") -> str:
    """An SMTP transaction from an unknown sender; returns the confirmation token from the 550 reply."""
    with gw.smtp() as s:
        with pytest.raises(smtplib.SMTPDataError) as err:
            s.sendmail(sender, [rcpt], f"From: {sender}\r\nSubject: {subject}\r\n\r\nhi\r\n".encode())
    assert err.value.smtp_code == 550, err.value
    return err.value.smtp_error.decode().split("/c/", 1)[1].split()[0]


def send(gw: GatewayProcess, sender: str, rcpt: str, headers: str = "") -> tuple[int, str]:
    with gw.smtp() as s:
        try:
            s.sendmail(sender, [rcpt], f"From: {sender}\r\nSubject: again\r\n{headers}\r\nhi\r\n".encode())
            return 250, ""
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients[rcpt]
            return code, text.decode()
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error.decode()


def events_for(gw: GatewayProcess, user_id: int | None, n: int, *, verdict: Verdict = Verdict.DELIVERED,
               ts: datetime | None = None, subject: str = "bulk") -> list[int]:
    now = ts or datetime.now(timezone.utc)
    return gw.store.add_events([EventRecord(ts=now, verdict=verdict, reason="test", sender=f"s{i}@bulk.test",
                                            recipient="r@example.org", user_id=user_id, subject=f"{subject} {i}")
                                for i in range(n)])


# -- tokens ---------------------------------------------------------------------------------------
# Every other route's token check, the per-user authorization matrix and the failed-token limit are in
# tests/test_api_inprocess.py (the same app, in process); the live stream is an endless response, so here.
def test_stream_needs_a_token(gw: GatewayProcess) -> None:
    for c, detail in ((client(gw), "missing token: send 'Authorization: Bearer TOKEN'"),
                      (client(gw, "x" * 32, source="127.0.1.1"), "unknown token")):
        with c.stream("GET", "/api/v1/stream?heartbeat=1") as r:
            r.read()
            assert r.status_code == 401 and json.loads(r.text) == {"detail": detail}


# -- challenges ---------------------------------------------------------------------------------------
def test_approve_allowlists_and_next_mail_is_delivered(gw: GatewayProcess) -> None:
    alice = Account(gw)
    sender = f"carol{uuid.uuid4().hex[:6]}@friends.test"
    challenge_from(gw, sender, alice.address, subject="Lunch?")
    [ch] = alice.http.get("/api/v1/challenges").json()["items"]
    assert (ch["sender"], ch["subject"], ch["attempts"], ch["status"]) == (sender, "Lunch?", 1, "pending")
    challenge_from(gw, sender, alice.address, subject="Lunch, really?")
    [ch] = alice.http.get("/api/v1/challenges").json()["items"]
    assert (ch["attempts"], ch["subject"]) == (2, "Lunch, really?")
    first = alice.http.post(f"/api/v1/challenges/{ch['id']}/approve")
    assert first.status_code == 200
    body = first.json()
    assert body["changed"] is True and body["challenge"]["status"] == "approved"
    assert (body["entry"]["entry"], body["entry"]["source"], body["entry"]["action"]) == (sender, "approved", "allow")
    again = alice.http.post(f"/api/v1/challenges/{ch['id']}/approve").json()
    assert again["changed"] is False and again["entry"]["id"] == body["entry"]["id"]
    assert alice.http.get("/api/v1/challenges").json()["items"] == []
    assert send(gw, sender, alice.address)[0] == 250
    assert alice.http.get("/api/v1/events", params={"verdict": "delivered"}).json()["items"][0]["sender"] == sender


def test_deny_blocklists_and_kills_the_link(gw: GatewayProcess) -> None:
    alice = Account(gw)
    sender = f"pest{uuid.uuid4().hex[:6]}@spammy.test"
    token = challenge_from(gw, sender, alice.address)
    cid = alice.http.get("/api/v1/challenges").json()["items"][0]["id"]
    r = alice.http.post(f"/api/v1/challenges/{cid}/deny").json()
    assert r["challenge"]["status"] == "denied" and r["entry"]["action"] == "block" and r["changed"]
    assert alice.http.post(f"/api/v1/challenges/{cid}/deny").json()["changed"] is False
    assert gw.store.challenge_by_token(token).status == "denied"  # the confirmation page refuses non-pending
    code, text = send(gw, sender, alice.address)
    assert code == 550 and "5.7.1" in text
    assert [e["entry"] for e in alice.http.get("/api/v1/blocklist").json()["items"]] == [sender]


def test_allow_domain(gw: GatewayProcess) -> None:
    alice = Account(gw)
    challenge_from(gw, "ann@corp.test", alice.address)
    cid = alice.http.get("/api/v1/challenges").json()["items"][0]["id"]
    r = alice.http.post(f"/api/v1/challenges/{cid}/allow-domain").json()
    assert r["entry"]["entry"] == "@corp.test" and r["entry"]["kind"] == "domain"
    assert send(gw, "someone.else@corp.test", alice.address)[0] == 250


def test_batch_decisions_per_id_results_and_scope(gw: GatewayProcess) -> None:
    alice, bob, admin = Account(gw), Account(gw), Account(gw, admin=True)
    tag = uuid.uuid4().hex[:6]
    senders = [f"{name}{tag}@batch.test" for name in ("ann", "ben", "cat")]
    for sender in senders:
        challenge_from(gw, sender, alice.address)
    challenge_from(gw, f"dan{tag}@batch.test", bob.address)
    mine = {c["sender"]: c["id"] for c in alice.http.get("/api/v1/challenges").json()["items"]}
    [bobs] = [c["id"] for c in bob.http.get("/api/v1/challenges").json()["items"]]
    ann, ben, cat = (mine[s] for s in senders)

    r = alice.http.post("/api/v1/challenges/approve", json={"ids": [ann, ben, bobs, 2_000_000, ann]})
    assert r.status_code == 200
    body = r.json()
    assert [(i["id"], i["status"]) for i in body["results"]] == \
        [(ann, "changed"), (ben, "changed"), (bobs, "missing"), (2_000_000, "missing")]
    assert (body["changed"], body["unchanged"], body["missing"]) == (2, 0, 2)
    assert body["results"][0]["challenge"]["status"] == "approved"
    assert body["results"][0]["entry"] == {**body["results"][0]["entry"], "entry": senders[0], "action": "allow",
                                           "source": "approved"}
    again = alice.http.post("/api/v1/challenges/approve", json={"ids": [ann, ben]}).json()
    assert [i["status"] for i in again["results"]] == ["unchanged", "unchanged"]
    denied = alice.http.post("/api/v1/challenges/deny", json={"ids": [cat]}).json()
    assert denied["results"][0]["challenge"]["status"] == "denied"
    assert denied["results"][0]["entry"]["action"] == "block"
    assert alice.http.get("/api/v1/challenges").json()["items"] == []
    assert bob.http.get(f"/api/v1/challenges/{bobs}").json()["status"] == "pending"  # alice could not touch it
    assert send(gw, senders[1], alice.address)[0] == 250
    assert alice.http.post("/api/v1/challenges/approve", json={"ids": []}).status_code == 422
    assert alice.http.post("/api/v1/challenges/deny", json={"ids": [0]}).status_code == 422
    # an admin decides anyone's
    r = admin.http.post("/api/v1/challenges/allow-domain", json={"ids": [bobs]}).json()
    assert r["results"][0]["status"] == "changed" and r["results"][0]["entry"]["entry"] == "@batch.test"
    assert r["results"][0]["entry"]["user_id"] == bob.user.id


# -- events --------------------------------------------------------------------------------------------
def test_event_pages_stay_stable_while_events_arrive(gw: GatewayProcess) -> None:
    alice = Account(gw)
    original = set(events_for(gw, alice.user.id, 130))
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            events_for(gw, alice.user.id, 3, subject="late")
            time.sleep(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        first = alice.http.get("/api/v1/events", params={"limit": 25}).json()
        newest_seen = first["items"][0]["id"]
        seen = [e["id"] for e in first["items"]]
        cursor = first["next_cursor"]
        while cursor:
            page = alice.http.get("/api/v1/events", params={"limit": 25, "cursor": cursor}).json()
            seen += [e["id"] for e in page["items"]]
            cursor = page["next_cursor"]
    finally:
        stop.set()
        thread.join()
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen))
    assert {i for i in seen if i <= newest_seen} >= original
    assert not {i for i in seen if i > newest_seen}  # later events never show up in older pages
    assert alice.http.get("/api/v1/events", params={"limit": 1}).json()["items"][0]["id"] > newest_seen


def test_event_filters(gw: GatewayProcess) -> None:
    alice = Account(gw)
    old = datetime.now(timezone.utc) - timedelta(days=3)
    events_for(gw, alice.user.id, 3, verdict=Verdict.SPAM, ts=old, subject="Cheap pills")
    events_for(gw, alice.user.id, 2, verdict=Verdict.VIRUS, subject="Invoice")
    events_for(gw, alice.user.id, 4, verdict=Verdict.DELIVERED, subject="Minutes")
    get = lambda **p: alice.http.get("/api/v1/events", params=p).json()["items"]  # noqa: E731
    assert {e["verdict"] for e in get(verdict="spam")} == {"spam"} and len(get(verdict="spam")) == 3
    assert len(get(verdict=["spam", "virus"])) == 5
    assert [e["subject"] for e in get(q="INVOICE")] == ["Invoice 1", "Invoice 0"]
    assert len(get(q="s2@bulk")) == 2  # sender text: the spam and the delivered s2
    assert len(get(until=(old + timedelta(seconds=1)).isoformat())) == 3
    assert len(get(since=(old + timedelta(days=1)).isoformat())) == 6
    assert get(q="100%_") == []  # LIKE wildcards are literal
    r = alice.http.get("/api/v1/events", params={"cursor": "not-a-cursor"})
    assert r.status_code == 400 and "cursor" in r.json()["detail"]
    r = alice.http.get("/api/v1/events", params={"verdict": "nonsense"})
    assert r.status_code == 422 and r.json()["detail"].startswith("query.verdict")


def filler_events(gw: GatewayProcess, user_id: int, n: int) -> None:
    """n plain events in one multi-row insert (add_events with its rollup takes seconds for this many)."""
    now = time.time()
    with gw.store.engine.begin() as conn:
        conn.execute(store_schema.events.insert(), [
            {"ts": now, "user_id": user_id, "verdict": "delivered", "reason": "test", "sender": f"f{i}@filler.test",
             "recipient": "r@example.org", "subject": f"filler {i}"} for i in range(n)])


def test_text_search_reads_a_bounded_window_and_continues_by_cursor(gw: GatewayProcess) -> None:
    window = SEARCH_WINDOW
    alice, bob = Account(gw), Account(gw)
    old = events_for(gw, alice.user.id, 5, subject="Quarterly zebra report")  # only in alice's oldest events
    filler_events(gw, alice.user.id, 2 * window + 100)
    filler_events(gw, bob.user.id, 10)
    search = lambda **p: alice.http.get("/api/v1/events", params={"q": "ZEBRA", "limit": 2, **p})  # noqa: E731

    first = search().json()  # the newest window holds no match: an empty page that still goes on
    assert first["items"] == [] and first["next_cursor"] and first["partial"] is True
    assert search(cursor=first["next_cursor"]).json()["items"] == []  # the second window: none either

    stop = threading.Event()
    late: list[int] = []

    def writer() -> None:  # new matches and new filler arrive while the client pages
        while not stop.is_set():
            late.extend(events_for(gw, alice.user.id, 2, subject="late zebra"))
            time.sleep(0.01)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen, pages, cursor = [], 0, first["next_cursor"]
        while cursor:
            page = search(cursor=cursor).json()
            assert len(page["items"]) <= 2
            seen += [e["id"] for e in page["items"]]
            cursor, pages = page["next_cursor"], pages + 1
            # each request reads at least one step of the history (unless it has found a page)
            assert pages <= (2 * window + 105) // SEARCH_STEP + 1, "the cursor must reach the end"
    finally:
        stop.set()
        thread.join()
    assert late  # the writer did write during the scan
    assert seen == sorted(old, reverse=True)  # each old match once, in order; nothing later, nothing skipped
    assert page["partial"] is False

    # the newest page sees the late matches; the admin's search reads everyone's events
    newest = search(limit=500).json()
    assert [e["id"] for e in newest["items"]] == sorted(late, reverse=True) and newest["next_cursor"]
    assert alice.http.get("/api/v1/events", params={"q": "filler 7", "limit": 1}).json()["next_cursor"]
    r = alice.http.get("/api/v1/events", params={"q": "ZEBRA", "cursor": "djE6MA"})  # v1:0 is out of range
    assert r.status_code == 400
    assert bob.http.get("/api/v1/events", params={"q": "zebra"}).json() == {"items": [], "next_cursor": None,
                                                                          "partial": False}


def automated(gw: GatewayProcess, user_id: int, sender: str, verdict: Verdict, subject: str,
              ts: datetime | None = None) -> None:
    gw.store.add_events([EventRecord(ts=ts or datetime.now(timezone.utc), verdict=verdict, reason="automated",
                                     sender=sender, recipient="r@example.org", user_id=user_id, subject=subject)])


def test_screened_senders_grouped_in_the_store(gw: GatewayProcess) -> None:
    alice, bob, admin = Account(gw), Account(gw), Account(gw, admin=True)
    tag = uuid.uuid4().hex[:6]
    shop, bank, club = f"news{tag}@shop.test", f"receipts{tag}@bank.test", f"letters{tag}@club.test"
    now = datetime.now(timezone.utc)
    automated(gw, alice.user.id, shop, Verdict.SCREENED, "Old news", ts=now - timedelta(days=100))
    automated(gw, alice.user.id, shop, Verdict.SCREENED, "Spring sale", ts=now - timedelta(days=3))
    automated(gw, alice.user.id, shop.upper(), Verdict.BULK, "Summer sale", ts=now - timedelta(days=2))
    automated(gw, alice.user.id, shop, Verdict.DELIVERED, "not automated", ts=now - timedelta(days=1))
    automated(gw, alice.user.id, bank, Verdict.BULK, "Your receipt", ts=now - timedelta(days=1))
    automated(gw, alice.user.id, club, Verdict.SCREENED, "Newsletter", ts=now - timedelta(hours=1))
    automated(gw, bob.user.id, f"bob-only{tag}@else.test", Verdict.SCREENED, "for bob")
    alice.http.post("/api/v1/allowlist", json={"entry": "@shop.test"})
    alice.http.post("/api/v1/blocklist", json={"entry": bank})
    bob.http.post("/api/v1/blocklist", json={"entry": "@club.test"})  # bob's lists do not speak for alice

    r = alice.http.get("/api/v1/screened", params={"days": 90})
    assert r.status_code == 200
    items = r.json()["items"]
    assert [i["sender"] for i in items] == [club, bank, shop]  # most recently seen first
    by = {i["sender"]: i for i in items}
    assert (by[shop]["count"], by[shop]["screened"], by[shop]["bulk"], by[shop]["latest_subject"]) == \
        (2, 1, 1, "Summer sale")
    assert by[shop]["listed"] == {"action": "allow", "entry": "@shop.test"}
    assert by[bank]["listed"] == {"action": "block", "entry": bank}
    assert by[club]["listed"] is None
    assert datetime.fromisoformat(by[shop]["first_seen"]) < datetime.fromisoformat(by[shop]["last_seen"])
    longer = {i["sender"]: i for i in alice.http.get("/api/v1/screened", params={"days": 120}).json()["items"]}
    assert longer[shop]["count"] == 3
    screened = admin.http.get("/api/v1/screened").json()["items"]
    assert {i["sender"] for i in screened} >= {shop, f"bob-only{tag}@else.test"}

    # a page at a time: a sender who writes again meanwhile does not move into a page already read
    first = alice.http.get("/api/v1/screened", params={"limit": 2}).json()
    assert [i["sender"] for i in first["items"]] == [club, bank] and first["next_cursor"]
    automated(gw, alice.user.id, shop, Verdict.SCREENED, "Winter sale")
    rest = alice.http.get("/api/v1/screened", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [(i["sender"], i["count"]) for i in rest["items"]] == [(shop, 2)] and rest["next_cursor"] is None
    assert alice.http.get("/api/v1/screened").json()["items"][0]["latest_subject"] == "Winter sale"
    r = alice.http.get("/api/v1/screened", params={"cursor": "bm9wZQ"})
    assert r.status_code == 400 and "cursor" in r.json()["detail"]
    assert alice.http.get("/api/v1/screened", params={"days": 0}).status_code == 422


def test_stats_per_verdict_per_day(gw: GatewayProcess) -> None:
    alice = Account(gw)
    now = datetime.now(timezone.utc)
    events_for(gw, alice.user.id, 4, verdict=Verdict.SPAM, ts=now - timedelta(days=2))
    events_for(gw, alice.user.id, 1, verdict=Verdict.DELIVERED, ts=now - timedelta(days=40))
    events_for(gw, alice.user.id, 2, verdict=Verdict.CHALLENGED)
    s = alice.http.get("/api/v1/stats", params={"days": 30}).json()
    assert len(s["days"]) == 30 and s["days"][-1]["date"] == now.date().isoformat()
    by_date = {d["date"]: d["counts"] for d in s["days"]}
    assert by_date[(now - timedelta(days=2)).date().isoformat()]["spam"] == 4
    assert by_date[now.date().isoformat()]["challenged"] == 2
    assert s["totals"]["spam"] == 4 and s["totals"]["delivered"] == 0 and set(s["totals"]) >= {v.value for v in Verdict}
    events_for(gw, alice.user.id, 1, verdict=Verdict.CHALLENGED)  # today is never cached
    assert alice.http.get("/api/v1/stats").json()["totals"]["challenged"] == 3


# -- lists ----------------------------------------------------------------------------------------------
# allow/block list CRUD and the import's dry run: tests/test_api_inprocess.py


def test_sent_ids_make_replies_known(gw: GatewayProcess) -> None:
    alice = Account(gw)
    mid = f"<{uuid.uuid4().hex}@mail.example.org>"
    r = alice.http.post("/api/v1/sent-ids", json={"hashes": [hash_message_id(mid), hash_message_id("<other@x>")]})
    assert r.json() == {"received": 2, "added": 2}
    assert alice.http.post("/api/v1/sent-ids", json={"hashes": [hash_message_id(mid)]}).json()["added"] == 0
    assert alice.http.post("/api/v1/sent-ids", json={"hashes": ["abc"]}).status_code == 422
    # a reply counts when it passes authentication for its own domain (SPEC §4.5 item 2): SPF pass here
    loopback_dns().add_txt("replies-api.test", "v=spf1 ip4:127.0.0.1 -all")
    assert send(gw, "new.person@replies-api.test", alice.address, headers=f"In-Reply-To: {mid}\r\n")[0] == 250


# -- live stream -------------------------------------------------------------------------------------------
class SSEReader:
    """Reads a text/event-stream in a thread; messages and comments land in lists."""

    def __init__(self, gw: GatewayProcess, token: str, last_event_id: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.messages: list[dict[str, str]] = []
        self.comments: list[str] = []
        self.client = httpx.Client(base_url=gw.http_url, headers=headers, timeout=httpx.Timeout(10, read=30))
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "stream did not open"

    def _run(self) -> None:
        try:
            self._read()
        except httpx.HTTPError:
            if not self.stop.is_set():  # closing the client ends the read; anything else is a failure
                raise

    def _read(self) -> None:
        with self.client.stream("GET", "/api/v1/stream", params={"heartbeat": 1}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            current: dict[str, str] = {}
            for line in r.iter_lines():
                self.ready.set()
                if self.stop.is_set():
                    return
                if line.startswith(":"):
                    self.comments.append(line)
                elif not line:
                    if "data" in current:
                        self.messages.append(current)
                    current = {}
                else:
                    key, _, value = line.partition(":")
                    current[key] = value.removeprefix(" ")

    def wait_for(self, predicate: Any, timeout: float = 10) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in list(self.messages):
                if predicate(m):
                    return m
            time.sleep(0.05)
        raise AssertionError(f"no matching message in {self.messages}")

    def close(self) -> None:
        self.stop.set()
        self.client.close()


def test_stream_delivers_own_events_and_challenge_changes_and_resumes(gw: GatewayProcess) -> None:
    alice, bob = Account(gw), Account(gw)
    reader = SSEReader(gw, alice.token)
    try:
        challenge_from(gw, "newcomer@far.test", alice.address, subject="Stream me")
        challenge_from(gw, "newcomer@far.test", bob.address, subject="Not for alice")
        ev = reader.wait_for(lambda m: m["event"] == "event")
        data = json.loads(ev["data"])
        assert data["subject"] == "Stream me" and data["verdict"] == "challenged"
        cid = data["challenge_id"]
        reader.wait_for(lambda m: m["event"] == "challenge" and json.loads(m["data"])["status"] == "pending")
        alice.http.post(f"/api/v1/challenges/{cid}/approve")
        reader.wait_for(lambda m: m["event"] == "challenge" and json.loads(m["data"])["status"] == "approved")
        time.sleep(1.2)
        assert reader.comments, "no heartbeat"
        assert all(json.loads(m["data"])["user_id"] == alice.user.id for m in reader.messages)
        last_id = reader.messages[-1]["id"]
    finally:
        reader.close()
    # while disconnected: two more events; resuming from the last id delivers exactly those
    missed = events_for(gw, alice.user.id, 2, subject="missed")
    events_for(gw, bob.user.id, 1, subject="bob's")
    resumed = SSEReader(gw, alice.token, last_event_id=last_id)
    try:
        resumed.wait_for(lambda m: m["event"] == "event" and json.loads(m["data"])["id"] == missed[-1])
        got = [json.loads(m["data"])["id"] for m in resumed.messages if m["event"] == "event"]
        assert got == missed
    finally:
        resumed.close()


def test_a_revoked_devices_open_stream_ends(gw: GatewayProcess) -> None:
    """Issue 16: revoking a lost laptop also stops its open app's live stream (before the next message); its
    reconnect is refused."""
    alice = Account(gw)
    code, _ = gw.store.create_pairing_code(alice.user.id)
    r = httpx.post(gw.http_url + "/api/v1/pair", json={"code": code, "device": "lost laptop"}, timeout=10)
    device, token = r.json()["device"]["id"], r.json()["token"]
    reader = SSEReader(gw, token)
    try:
        events_for(gw, alice.user.id, 1, subject="before")
        reader.wait_for(lambda m: m["event"] == "event" and json.loads(m["data"])["subject"] == "before 0")
        assert alice.http.delete(f"/api/v1/devices/{device}").status_code == 204
        events_for(gw, alice.user.id, 1, subject="after")
        reader.thread.join(15)
        assert not reader.thread.is_alive(), "the revoked device's stream is still open"
        assert not any(json.loads(m["data"]).get("subject") == "after 0" for m in reader.messages)
    finally:
        reader.close()
    r = httpx.get(gw.http_url + "/api/v1/stream", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 401


# -- metrics, docs -------------------------------------------------------------------------------------------
def test_metrics(gw: GatewayProcess) -> None:
    alice = Account(gw)
    challenge_from(gw, "metric@far.test", alice.address)
    alice.http.get("/api/v1/me")
    # not public by default (SPEC §4.5 item 6): an admin's token, as Prometheus sends it
    assert httpx.get(gw.http_url + "/metrics").status_code == 401
    assert alice.http.get("/metrics").status_code == 403
    text = Account(gw, admin=True).http.get("/metrics").text
    assert 'sendergate_smtp_verdicts_total{verdict="challenged"}' in text
    assert "sendergate_smtp_sessions_total" in text
    assert 'sendergate_api_request_seconds_count{method="GET",route="/api/v1/me",status="200"}' in text
    assert 'sendergate_challenges{status="pending"}' in text


def test_openapi_document(gw: GatewayProcess) -> None:
    assert httpx.get(gw.http_url + "/openapi.json").status_code == 401  # a token holder's document
    assert httpx.get(gw.http_url + "/docs").status_code == 401
    reader = Account(gw).http
    doc = reader.get("/openapi.json").json()
    paths = doc["paths"]
    for path in ["/api/v1/me", "/api/v1/events", "/api/v1/challenges", "/api/v1/challenges/{challenge_id}/approve",
                 "/api/v1/challenges/{challenge_id}/deny", "/api/v1/allowlist", "/api/v1/allowlist/{entry_id}",
                 "/api/v1/allowlist/import", "/api/v1/sent-ids", "/api/v1/blocklist", "/api/v1/blocklist/{entry_id}",
                 "/api/v1/stats", "/api/v1/stream", "/healthz", "/metrics", "/api/v1/screened",
                 "/api/v1/challenges/approve", "/api/v1/challenges/deny", "/api/v1/challenges/allow-domain"]:
        assert path in paths, path
    assert doc["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    approve = paths["/api/v1/challenges/{challenge_id}/approve"]["post"]
    assert approve["security"] == [{"token": []}]
    assert {"200", "401", "404", "422", "429"} <= set(approve["responses"])
    assert "security" not in paths["/healthz"]["get"]
    screened = paths["/api/v1/screened"]["get"]
    assert {p["name"] for p in screened["parameters"]} == {"days", "cursor", "limit"}
    assert screened["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ScreenedPage")
    assert "covered_by" in doc["components"]["schemas"]["ImportItem"]["properties"]
    docs = reader.get("/docs").text
    assert "swagger-ui" in docs and '"/api/v1/me"' in docs  # the document inlined: no second request


def test_metrics_add_up_across_worker_processes() -> None:
    with GatewayProcess(workers=2, extra={"http": {"metrics_public": True}}) as gw:
        for _ in range(12):  # new connections, spread over both workers by the kernel
            with gw.smtp() as s:
                s.noop()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            text = httpx.get(gw.http_url + "/metrics").text
            line = next((ln for ln in text.splitlines() if ln.startswith("sendergate_smtp_sessions_total")), "")
            if line and float(line.split()[-1]) >= 12:
                break
            time.sleep(0.1)
        # gw.start() itself opened connections to see SMTP answer; 12 of ours at least, all counted
        assert line and float(line.split()[-1]) >= 12, text
        # both workers counted into the directory named after this gateway's supervisor process
        assert gw.proc is not None
        [shared] = Path(tempfile.gettempdir()).glob(f"sendergate-metrics-{gw.proc.pid}-*")
        assert len(list(shared.glob("counter_*.db"))) == 2
