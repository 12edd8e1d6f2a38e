"""The confirmation page and the store as an attacker who has read the source tries them (SPEC §4.5
items 3, 5, 6; issue 12 doors 5 and 11), against real gateway processes over real HTTP and SMTP.

Client addresses: every test uses its own loopback source address (127.0.0.x is all ours), so one
test's rate limits never reach another's; where a proxy is the subject, 127.0.0.1 is configured
as the trusted proxy and X-Forwarded-For names the clients behind it.
"""

from __future__ import annotations

import itertools
import re
import smtplib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select, update

from sendergate.store import schema
from sendergate.web.confirm import ANSWERS_PER_CHALLENGE, ANSWERS_PER_IP
from tests.support.gateway import GatewayProcess

RECIPIENT = "alice@example.org"
_sources = itertools.count(20)
_senders = itertools.count(1)


def source_address() -> str:
    return f"127.0.0.{next(_sources)}"


def browser(gw: GatewayProcess, source: str | None = None, **headers: str) -> httpx.Client:
    """One browser at its own client address (a real loopback source address, not a header)."""
    return httpx.Client(base_url=gw.http_url, timeout=20, headers=headers,
                        transport=httpx.HTTPTransport(local_address=source or source_address()))


def form_of(r: httpx.Response) -> dict[str, str]:
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.text)
    nonce = re.search(r'name="nonce" value="([^"]+)"', r.text)
    assert csrf and nonce, r.text
    return {"csrf": csrf.group(1), "nonce": nonce.group(1)}


def stored_answer(gw: GatewayProcess, challenge_id: int) -> tuple[str, str]:
    """(nonce, answer) of the challenge's CAPTCHA as the store holds it."""
    row = gw.store.current_captcha(challenge_id)
    assert row is not None
    return row.nonce, row.answer


def link(gw: GatewayProcess, user_id: int, sender: str | None = None) -> tuple[int, str, str]:
    sender = sender or f"person{next(_senders)}@sender.test"
    cid, token = gw.store.open_challenge(user_id, RECIPIENT, sender, ttl=3600, subject="hello")
    return cid, token, sender


def status(gw: GatewayProcess, cid: int) -> str:
    with gw.store.engine.connect() as conn:
        return conn.execute(select(schema.challenges.c.status).where(schema.challenges.c.id == cid)).scalar_one()


@pytest.fixture(scope="module")
def gw() -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(extra={"http": {"trusted_proxies": ["127.0.0.1"]}, "challenge": {"max_pending": 20}})
    gateway.start()
    gateway.user, gateway.token = gateway.store.add_user(RECIPIENT)  # type: ignore[attr-defined]
    try:
        yield gateway
    finally:
        gateway.close()


# -- door 5: the CAPTCHA is a cost, one rendering per answer ---------------------------------------
def test_a_different_picture_is_a_different_answer_and_one_answer_is_rendered_once(gw: GatewayProcess) -> None:
    cid, token, _ = link(gw, gw.user.id)  # type: ignore[attr-defined]
    b = browser(gw)
    form = form_of(b.get(f"/c/{token}"))
    nonce, answer = stored_answer(gw, cid)
    assert nonce == form["nonce"]
    # fetching the picture (or the sound) again returns the same bytes: nothing to vote across
    pictures = {b.get(f"/c/{token}/captcha.png", params={"n": nonce}).content for _ in range(4)}
    sounds = {b.get(f"/c/{token}/captcha.wav", params={"n": nonce}, headers={"Accept-Language": lang}).content
              for lang in ("en", "de", "en")}
    assert len(pictures) == 1 and len(sounds) == 1
    assert next(iter(pictures)).startswith(b"\x89PNG") and next(iter(sounds))[:4] == b"RIFF"
    seen = {answer}
    for _ in range(5):  # "Show a different picture" is the page again: each time a new answer
        again = form_of(b.get(f"/c/{token}"))
        nonce2, answer2 = stored_answer(gw, cid)
        assert again["nonce"] == nonce2 != nonce
        assert answer2 not in seen
        seen.add(answer2)
        # and the earlier picture is gone: it cannot be fetched to compare with the new one
        assert b.get(f"/c/{token}/captcha.png", params={"n": nonce}).status_code == 410
        nonce = nonce2
    # the previous answer does not count for the new picture
    r = b.post(f"/c/{token}", data={**again, "answer": answer})
    assert r.status_code == 400 and status(gw, cid) == "pending"


def test_any_wrong_answer_draws_a_new_answer(gw: GatewayProcess) -> None:
    cid, token, _ = link(gw, gw.user.id)  # type: ignore[attr-defined]
    b = browser(gw)
    form = form_of(b.get(f"/c/{token}"))
    png = b.get(f"/c/{token}/captcha.png", params={"n": form["nonce"]})
    assert png.status_code == 200
    _, answer = stored_answer(gw, cid)
    r = b.post(f"/c/{token}", data={**form, "answer": f"{(int(answer) + 1) % 10**6:06d}"})
    assert r.status_code == 400
    new_form = form_of(r)
    new_nonce, new_answer = stored_answer(gw, cid)
    assert new_form["nonce"] == new_nonce != form["nonce"] and new_answer != answer
    assert b.get(f"/c/{token}/captcha.png", params={"n": form["nonce"]}).status_code == 410
    # the right answer to the retired picture is no good either
    assert b.post(f"/c/{token}", data={**new_form, "nonce": form["nonce"], "answer": answer}).status_code == 400
    assert status(gw, cid) == "pending"


# -- door 5: a confirmation never lifts a block; a block ends pending challenges --------------------
def solve(gw: GatewayProcess, cid: int, token: str, b: httpx.Client) -> httpx.Response:
    r = b.get(f"/c/{token}")
    if r.status_code != 200:
        return r
    form = form_of(r)
    _, answer = stored_answer(gw, cid)
    return b.post(f"/c/{token}", data={**form, "answer": answer})


def test_a_block_ends_pending_challenges_and_their_links(gw: GatewayProcess) -> None:
    user = gw.user  # type: ignore[attr-defined]
    api = httpx.Client(base_url=gw.http_url, headers={"Authorization": f"Bearer {gw.token}"}, timeout=10)  # type: ignore[attr-defined]
    # the spammer opened challenges and holds their links; the user blocks the domain in the app
    spam = [link(gw, user.id, f"s{i}-{uuid.uuid4().hex[:4]}@spam{i % 2}.example") for i in range(4)]
    b = browser(gw)
    form = form_of(b.get(f"/c/{spam[0][1]}"))  # a page open before the block
    assert api.post("/api/v1/blocklist", json={"entry": "@spam0.example"}).status_code == 201
    for cid, token, sender in spam:
        if "@spam0." in sender:
            assert status(gw, cid) == "denied"
            assert b.get(f"/c/{token}").status_code == 410
    # the page opened before the block takes no answer any more
    r = b.post(f"/c/{spam[0][1]}", data={**form, "answer": "000000"})
    assert r.status_code == 410
    # the admin's CLI block (global) ends the rest
    run = subprocess.run([sys.executable, "-m", "sendergate", "block", "@spam1.example", "--global",
                          "--config", str(gw.config_path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    for cid, token, _ in spam:
        assert status(gw, cid) == "denied"
        assert solve(gw, cid, token, b).status_code == 410
    allowed = api.get("/api/v1/allowlist").json()["items"]
    assert not [e for e in allowed if "spam" in e["entry"]]


def test_a_solved_captcha_does_not_lift_a_block_made_past_the_store(gw: GatewayProcess) -> None:
    """A block that exists when the answer arrives (another node's, a race) wins over the answer."""
    cid, token, sender = link(gw, gw.user.id, f"late-{uuid.uuid4().hex[:6]}@blocked-later.example")  # type: ignore[attr-defined]
    with gw.store.engine.begin() as conn:  # written past Store.add_entry, as a race would leave it
        conn.execute(schema.list_entries.insert().values(user_id=gw.user.id, action="block", kind="address",  # type: ignore[attr-defined]
                                                         value=sender, source="manual", note="", created_at=0))
    r = solve(gw, cid, token, browser(gw))
    assert r.status_code == 410 and status(gw, cid) == "denied"
    assert [e.action for e in gw.store.entries(gw.user.id, "allow") if e.pattern.value == sender] == []  # type: ignore[attr-defined]
    assert [e.action for e in gw.store.entries(gw.user.id, "block") if e.pattern.value == sender] == ["block"]  # type: ignore[attr-defined]


def test_a_confirmed_entry_records_the_authentication_seen_at_challenge_time(gw: GatewayProcess) -> None:
    cid, token, sender = link(gw, gw.user.id)  # type: ignore[attr-defined]
    seen = "spf=none dkim=none dmarc=none"  # what the SMTP side records for a domain that publishes nothing
    with gw.store.engine.begin() as conn:
        conn.execute(update(schema.challenges).where(schema.challenges.c.id == cid).values(auth=seen))
    assert solve(gw, cid, token, browser(gw)).status_code == 200
    api = httpx.Client(base_url=gw.http_url, headers={"Authorization": f"Bearer {gw.token}"}, timeout=10)  # type: ignore[attr-defined]
    [entry] = [e for e in api.get("/api/v1/allowlist").json()["items"] if e["entry"] == sender]
    assert entry["source"] == "confirmed" and entry["auth"] == seen and seen in entry["note"]
    assert api.get(f"/api/v1/challenges/{cid}").json()["auth"] == seen


# -- door 11: rate limits keyed on the real client, shared by all nodes ------------------------------
def answers_allowed(responses: list[httpx.Response]) -> int:
    return sum(1 for r in responses if r.status_code != 429)


def test_forwarded_for_from_an_untrusted_peer_is_ignored(gw: GatewayProcess) -> None:
    """127.0.0.1 is the trusted proxy; a client connecting from elsewhere invents a new address per post."""
    source = source_address()
    posts = []
    for i in range(ANSWERS_PER_IP[0] + 5):
        cid, token, _ = link(gw, gw.user.id)  # type: ignore[attr-defined]
        b = browser(gw, source, **{"X-Forwarded-For": f"198.51.100.{i}"})
        r = b.get(f"/c/{token}")
        posts.append(b.post(f"/c/{token}", data={**form_of(r), "answer": "999999"}))
    assert answers_allowed(posts) == ANSWERS_PER_IP[0]


def test_without_trusted_proxies_forwarded_for_is_ignored_even_from_loopback() -> None:
    """The default: no proxy is trusted, not even on loopback (uvicorn's own default trusts 127.0.0.1)."""
    with GatewayProcess() as gw:
        user, _ = gw.store.add_user(RECIPIENT)
        posts = []
        for i in range(ANSWERS_PER_IP[0] + 5):
            cid, token, _ = link(gw, user.id)
            b = browser(gw, "127.0.0.1", **{"X-Forwarded-For": f"198.51.100.{i}"})
            posts.append(b.post(f"/c/{token}", data={**form_of(b.get(f"/c/{token}")), "answer": "999999"}))
        assert answers_allowed(posts) == ANSWERS_PER_IP[0]


def test_behind_the_proxy_each_client_has_its_own_budget_and_ipv6_counts_per_64(gw: GatewayProcess) -> None:
    # through the trusted proxy (127.0.0.1): the client is the rightmost address it did not add itself;
    # whatever the client wrote to the left is ignored; addresses in one IPv6 /64 share a budget
    prefix = f"2001:db8:{next(_sources):x}:1"
    posts = []
    for i in range(ANSWERS_PER_IP[0] + 5):
        cid, token, _ = link(gw, gw.user.id)  # type: ignore[attr-defined]
        b = browser(gw, "127.0.0.1", **{"X-Forwarded-For": f"203.0.113.{i}, {prefix}::{i + 1:x}"})
        posts.append(b.post(f"/c/{token}", data={**form_of(b.get(f"/c/{token}")), "answer": "999999"}))
    assert answers_allowed(posts) == ANSWERS_PER_IP[0]
    # the next /64 is someone else; and the page the proxy serves to a fresh client works
    cid, token, _ = link(gw, gw.user.id)  # type: ignore[attr-defined]
    other = browser(gw, "127.0.0.1", **{"X-Forwarded-For": f"2001:db8:{next(_sources):x}:2::1"})
    assert solve(gw, cid, token, other).status_code == 200


def test_an_attacker_alternating_nodes_gets_no_more_answers(two_nodes: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = two_nodes
    user, _ = a.store.add_user(RECIPIENT)
    cid, token, _ = link(a, user.id)
    source = source_address()
    clients = [browser(a, source), browser(b, source)]
    r = clients[0].get(f"/c/{token}")
    cookie = r.cookies["sg_form"]
    posts = []
    for i in range(2 * ANSWERS_PER_CHALLENGE[0]):  # one link: answers per challenge, whichever node
        c = clients[i % 2]
        c.cookies.set("sg_form", cookie)
        form = form_of(r) if r.status_code == 400 else form_of(c.get(f"/c/{token}"))
        r = c.post(f"/c/{token}", data={**form, "answer": "999999"})
        posts.append(r)
    assert answers_allowed(posts) == ANSWERS_PER_CHALLENGE[0]
    # many links from one client address: answers per client, whichever node
    source = source_address()
    clients = [browser(a, source), browser(b, source)]
    posts = []
    for i in range(ANSWERS_PER_IP[0] + 6):
        _, token, _ = link(a, user.id)
        c = clients[i % 2]
        posts.append(c.post(f"/c/{token}", data={**form_of(c.get(f"/c/{token}")), "answer": "999999"}))
    assert answers_allowed(posts) == ANSWERS_PER_IP[0]


# -- door 11: the Pending list cannot be flooded ------------------------------------------------------
def test_a_flood_of_random_senders_leaves_real_pending_challenges_visible(gw: GatewayProcess) -> None:
    user_address = f"flooded-{uuid.uuid4().hex[:6]}@example.org"
    user, token = gw.store.add_user(user_address)
    cap = 20  # challenge.max_pending of this module's gateway

    def send(sender: str) -> tuple[int, bytes]:
        with gw.smtp() as s:
            try:
                s.sendmail(sender, [user_address], f"From: {sender}\r\nSubject: hi\r\n\r\nhello\r\n".encode())
            except smtplib.SMTPDataError as exc:
                return exc.smtp_code, exc.smtp_error
        return 250, b""

    real = [f"real{i}@friend{i}.example" for i in range(2)]
    assert [send(r)[0] for r in real] == [550, 550]
    replies = [send(f"{uuid.uuid4().hex[:10]}@{uuid.uuid4().hex[:8]}.example") for _ in range(2 * cap)]
    assert [c for c, _ in replies].count(550) == cap - len(real)
    refused = [(c, t) for c, t in replies if c != 550]
    assert refused and all(c == 451 and t.startswith(b"4.7.1") and b"/c/" not in t for c, t in refused)
    api = httpx.Client(base_url=gw.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    pending = api.get("/api/v1/challenges", params={"status": "pending", "limit": cap}).json()
    assert {c["sender"] for c in pending["items"]} >= set(real) and pending["next_cursor"] is None
    # the refusals are in the log with their reason, for the app's Activity view
    events = api.get("/api/v1/events", params={"verdict": "tempfail", "limit": 100}).json()["items"]
    assert len(events) == len(refused) and all("pending challenges at the cap" in e["reason"] for e in events)
    # a real sender already pending still gets its link (its challenge is reused, not new)
    assert send(real[0])[0] == 550


def test_housekeeping_prunes_challenges_long_expired() -> None:
    gw = GatewayProcess()
    try:
        user, _ = gw.store.add_user(RECIPIENT)
        old, old_token = gw.store.open_challenge(user.id, RECIPIENT, "old@x.example", ttl=60)
        fresh, fresh_token = gw.store.open_challenge(user.id, RECIPIENT, "fresh@x.example", ttl=60)
        with gw.store.engine.begin() as conn:  # expired 30 days ago; the other only just
            conn.execute(update(schema.challenges).where(schema.challenges.c.id == old)
                         .values(expires_at=time.time() - 30 * 86400))
        gw.start()  # housekeeping runs at start, then hourly
        deadline = time.monotonic() + 20
        while gw.store.challenge_by_token(old_token) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gw.store.challenge_by_token(old_token) is None
        assert gw.store.challenge_by_token(fresh_token) is not None
        while "pruned 1 challenges" not in gw.read_log() and time.monotonic() < deadline:
            time.sleep(0.1)  # the line follows the commit the loop above saw
        assert "pruned 1 challenges" in gw.read_log()
    finally:
        gw.close()


# -- door 11: exposure ------------------------------------------------------------------------------
def test_metrics_docs_and_openapi_need_a_token_and_health_tells_no_secrets() -> None:
    with GatewayProcess(extra={"scan": {"clamd": "unix:/nonexistent/secret-path/clamd.sock"}}) as gw:
        _, admin = gw.store.add_user("admin@example.org", admin=True)
        _, user = gw.store.add_user(RECIPIENT)
        anon = httpx.Client(base_url=gw.http_url, timeout=10)
        for path in ("/metrics", "/openapi.json", "/docs", "/redoc"):
            assert anon.get(path).status_code in (401, 404), path
        as_user = httpx.Client(base_url=gw.http_url, timeout=10, headers={"Authorization": f"Bearer {user}"})
        as_admin = httpx.Client(base_url=gw.http_url, timeout=10, headers={"Authorization": f"Bearer {admin}"})
        assert as_user.get("/metrics").status_code == 403
        assert "sendergate_smtp_sessions_total" in as_admin.get("/metrics").text
        assert as_user.get("/openapi.json").json()["info"]["title"] == "SenderGate"
        health = anon.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "degraded", "version": health.json()["version"], "store": "ok",
                                 "scanners": {"clamd": "unavailable"}}
        assert "secret-path" not in health.text and "sqlite" not in health.text
        assert "secret-path" in gw.read_log()  # the reason is for the admin, in the log
    with GatewayProcess(extra={"http": {"metrics_public": True}}) as gw:
        anon = httpx.Client(base_url=gw.http_url, timeout=10)
        assert anon.get("/metrics").status_code == 200 and anon.get("/openapi.json").status_code == 200
        assert "swagger-ui" in anon.get("/docs").text


# -- in a real browser: the one rendering still serves a person ---------------------------------------
def test_in_chromium_the_picture_and_a_replayed_sound_are_the_one_rendering(gw: GatewayProcess) -> None:
    from playwright.sync_api import sync_playwright

    cid, token, _ = link(gw, gw.user.id)  # type: ignore[attr-defined]
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--disable-background-networking", "--disable-component-update",
                                           "--no-first-run", "--disable-sync",
                                           "--autoplay-policy=no-user-gesture-required"])
        try:
            page = chromium.new_page()
            fetched: dict[str, list[int]] = {"png": [], "wav": []}
            page.on("response", lambda r: fetched[r.url.split("captcha.")[1][:3]].append(r.status)
                    if "/captcha." in r.url else None)
            page.goto(f"{gw.http_url}/c/{token}")
            assert page.locator("img.captcha").evaluate("img => img.complete && img.naturalWidth") == 280
            nonce, answer = stored_answer(gw, cid)
            stored = gw.store.current_captcha(cid)
            assert stored.png is not None and stored.wav is None  # the picture, rendered once, is kept
            # the sound, played twice (a listener replays it; the element may fetch it again)
            page.locator("details summary").click()
            for _ in range(2):
                duration = page.locator("audio").evaluate(
                    "a => new Promise((ok, bad) => { a.onloadedmetadata = () => ok(a.duration); a.onerror = () =>"
                    " bad(a.error && a.error.code); a.load(); })")
                assert 4 < duration < 40
            assert fetched["png"] and all(s == 200 for s in fetched["png"] + fetched["wav"]), fetched
            assert stored_answer(gw, cid) == (nonce, answer)  # listening changes nothing
            # "Show a different picture": a new answer, and the person can still answer it
            page.get_by_role("link", name=re.compile("different picture", re.I)).click()
            new_nonce, new_answer = stored_answer(gw, cid)
            assert new_nonce != nonce and new_answer != answer
            page.fill("#answer", new_answer)
            page.click("button[type=submit]")
            assert "you are confirmed" in page.locator("h1").inner_text()
        finally:
            chromium.close()
    assert status(gw, cid) == "confirmed"


def test_guessed_links_cost_the_store_no_writes(gw: GatewayProcess) -> None:
    """Rate counting is a store write: only a real link's page pays it, a guessed token is a read."""
    source = source_address()
    b = browser(gw, source)
    for _ in range(30):
        assert b.get(f"/c/{uuid.uuid4().hex[:22]}").status_code == 404
        assert b.post(f"/c/{uuid.uuid4().hex[:22]}", data={"answer": "1"}).status_code == 404
    with gw.store.engine.connect() as conn:
        assert conn.execute(select(schema.rate_limits)
                            .where(schema.rate_limits.c.key.like(f"%:{source}"))).all() == []


def test_a_refusal_to_several_recipients_one_at_the_cap_is_a_451_without_a_link(gw: GatewayProcess) -> None:
    full = f"full-{uuid.uuid4().hex[:6]}@example.org"
    other = f"other-{uuid.uuid4().hex[:6]}@example.org"
    full_user, _ = gw.store.add_user(full)
    gw.store.add_user(other)
    for i in range(20):  # challenge.max_pending of this module's gateway
        gw.store.open_challenge(full_user.id, full, f"flood{i}@flood.example", ttl=3600)
    with gw.smtp() as s:
        with pytest.raises(smtplib.SMTPDataError) as err:
            s.sendmail("real@friend.example", [other, full], b"From: real@friend.example\r\nSubject: hi\r\n\r\nhi\r\n")
    assert err.value.smtp_code == 451 and b"/c/" not in err.value.smtp_error
    verdicts = {e.recipient: e.verdict for e in gw.events()[-2:]}
    assert verdicts == {other: "challenged", full: "tempfail"}
