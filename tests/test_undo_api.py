"""Undo through the API (issue 17 item 2) against a real gateway process, SQLite and PostgreSQL: each reverse
puts back exactly what the action changed, and what must not happen does not (SPEC §4.5 item 3): another
user's challenge or entry, a challenge the sender confirmed or that expired, a sender still blocked, a
link revived after the window, a source forged on restore.

Time: the window is five minutes; the tests move a record's time back in the store instead of waiting.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from sendergate.store.schema import challenges, list_entries, undo_records
from tests.support.gateway import GatewayProcess
from tests.test_api import Account, challenge_from, send


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gw(request: pytest.FixtureRequest) -> Iterator[GatewayProcess]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database("undo_" + uuid.uuid4().hex[:10])
    gateway = GatewayProcess(store_url=url)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.close()


def sender_at(domain: str = "friends.test") -> str:
    return f"s{uuid.uuid4().hex[:8]}@{domain}"


def pending(gw: GatewayProcess, who: Account, sender: str) -> tuple[int, str]:
    token = challenge_from(gw, sender, who.address)
    [ch] = [c for c in who.http.get("/api/v1/challenges").json()["items"] if c["sender"] == sender]
    return ch["id"], token


def entries(who: Account, name: str) -> list[tuple[str, str]]:
    return [(e["entry"], e["source"]) for e in who.http.get(f"/api/v1/{name}").json()["items"]]


def age_records(gw: GatewayProcess, seconds: float) -> None:
    """Every undo record made `seconds` earlier (the window is checked against the server's clock)."""
    with gw.store.engine.begin() as conn:
        conn.execute(update(undo_records).values(created_at=undo_records.c.created_at - seconds))


def link_page(gw: GatewayProcess, token: str) -> int:
    import httpx
    return httpx.get(f"{gw.http_url}/c/{token}", timeout=10).status_code


# -- reopen: the reverse of approve, deny, allow-domain ---------------------------------------------------
def test_undo_approve_puts_the_challenge_back_and_removes_only_the_entry_it_made(gw: GatewayProcess) -> None:
    alice = Account(gw)
    sender = sender_at()
    cid, token = pending(gw, alice, sender)
    assert alice.http.post(f"/api/v1/challenges/{cid}/approve").json()["changed"]
    assert entries(alice, "allowlist") == [(sender, "approved")]
    r = alice.http.post(f"/api/v1/challenges/{cid}/reopen")
    assert r.status_code == 200, r.text
    assert r.json()["changed"] and r.json()["challenge"]["status"] == "pending"
    assert entries(alice, "allowlist") == []
    assert [c["id"] for c in alice.http.get("/api/v1/challenges").json()["items"]] == [cid]
    assert link_page(gw, token) == 200  # pending again: the link the sender holds works as before
    again = alice.http.post(f"/api/v1/challenges/{cid}/reopen")
    assert again.status_code == 200 and again.json()["changed"] is False  # a repeated undo changes nothing
    code, _ = send(gw, sender, alice.address)
    assert code == 550  # not allowlisted any more


def test_undo_approve_keeps_an_entry_the_user_had_made_by_hand(gw: GatewayProcess) -> None:
    alice = Account(gw)
    sender = sender_at()
    cid, _ = pending(gw, alice, sender)
    mine = alice.http.post("/api/v1/allowlist", json={"entry": sender, "note": "mine"})
    assert mine.status_code == 201
    assert alice.http.post(f"/api/v1/challenges/{cid}/approve").json()["entry"]["id"] == mine.json()["id"]
    assert alice.http.post(f"/api/v1/challenges/{cid}/reopen").json()["challenge"]["status"] == "pending"
    assert entries(alice, "allowlist") == [(sender, "manual")]


def test_undo_allow_domain(gw: GatewayProcess) -> None:
    alice = Account(gw)
    domain = f"d{uuid.uuid4().hex[:6]}.test"
    cid, _ = pending(gw, alice, sender_at(domain))
    alice.http.post(f"/api/v1/challenges/{cid}/allow-domain")
    assert entries(alice, "allowlist") == [("@" + domain, "approved")]
    assert alice.http.post(f"/api/v1/challenges/{cid}/reopen").json()["challenge"]["status"] == "pending"
    assert entries(alice, "allowlist") == []


def test_undo_deny_revives_the_link_only_because_the_user_undid_it(gw: GatewayProcess) -> None:
    alice = Account(gw)
    sender = sender_at("spammy.test")
    cid, token = pending(gw, alice, sender)
    alice.http.post(f"/api/v1/challenges/{cid}/deny")
    assert link_page(gw, token) == 410 and entries(alice, "blocklist") == [(sender, "manual")]
    r = alice.http.post(f"/api/v1/challenges/{cid}/reopen")
    assert r.status_code == 200 and r.json()["challenge"]["status"] == "pending"
    assert entries(alice, "blocklist") == [] and link_page(gw, token) == 200


def test_undo_deny_puts_back_the_allow_entry_the_deny_replaced(gw: GatewayProcess) -> None:
    """A forged 'known' sender is challenged while on the allowlist (SPEC §4.4); denying it replaces the allow
    entry with a block, so undoing the deny brings the allow entry back as it was."""
    alice = Account(gw)
    sender = sender_at()
    cid, _ = pending(gw, alice, sender)
    gw.store.add_entry(alice.user.id, "allow", sender, source="confirmed", note="by captcha")
    with gw.store.engine.begin() as conn:
        conn.execute(update(list_entries).where(list_entries.c.value == sender).values(auth="spf=pass dkim=none"))
    alice.http.post(f"/api/v1/challenges/{cid}/deny")
    assert entries(alice, "allowlist") == []
    alice.http.post(f"/api/v1/challenges/{cid}/reopen")
    [e] = alice.http.get("/api/v1/allowlist").json()["items"]
    assert (e["entry"], e["source"], e["note"], e["auth"]) == (sender, "confirmed", "by captcha", "spf=pass dkim=none")
    assert entries(alice, "blocklist") == []


def test_reopen_refuses_a_sender_still_blocked(gw: GatewayProcess) -> None:
    alice = Account(gw)
    domain = f"d{uuid.uuid4().hex[:6]}.test"
    sender = sender_at(domain)
    cid, token = pending(gw, alice, sender)
    alice.http.post(f"/api/v1/challenges/{cid}/deny")
    alice.http.post("/api/v1/blocklist", json={"entry": "@" + domain})
    r = alice.http.post(f"/api/v1/challenges/{cid}/reopen")
    assert r.status_code == 409 and "@" + domain in r.json()["detail"] and "still blocked" in r.json()["detail"]
    assert link_page(gw, token) == 410
    assert sorted(entries(alice, "blocklist")) == sorted([(sender, "manual"), ("@" + domain, "manual")])  # rolled back


def test_reopen_refuses_after_approve_when_a_block_came_since(gw: GatewayProcess) -> None:
    alice = Account(gw)
    domain = f"d{uuid.uuid4().hex[:6]}.test"
    cid, token = pending(gw, alice, sender_at(domain))
    alice.http.post(f"/api/v1/challenges/{cid}/approve")
    gw.store.add_entry(None, "block", "@" + domain)  # a global block by an admin
    r = alice.http.post(f"/api/v1/challenges/{cid}/reopen")
    assert r.status_code == 409 and "still blocked" in r.json()["detail"]
    assert gw.store.challenge_by_token(token).status == "approved"


def test_reopen_refuses_another_users_challenge(gw: GatewayProcess) -> None:
    alice, mallory = Account(gw), Account(gw)
    cid, token = pending(gw, alice, sender_at())
    alice.http.post(f"/api/v1/challenges/{cid}/deny")
    r = mallory.http.post(f"/api/v1/challenges/{cid}/reopen")
    assert r.status_code == 404 and r.json() == {"detail": f"no challenge {cid}"}
    assert link_page(gw, token) == 410


def test_reopen_refuses_a_decision_someone_else_made(gw: GatewayProcess) -> None:
    alice, admin = Account(gw), Account(gw, admin=True)
    cid, token = pending(gw, alice, sender_at())
    admin.http.post(f"/api/v1/challenges/{cid}/deny")
    r = alice.http.post(f"/api/v1/challenges/{cid}/reopen")
    assert r.status_code == 409 and "no decision" in r.json()["detail"]
    assert link_page(gw, token) == 410


def test_reopen_refuses_after_the_window(gw: GatewayProcess) -> None:
    alice = Account(gw)
    cid, token = pending(gw, alice, sender_at())
    alice.http.post(f"/api/v1/challenges/{cid}/deny")
    age_records(gw, 301)
    r = alice.http.post(f"/api/v1/challenges/{cid}/reopen")
    assert r.status_code == 409 and "too late" in r.json()["detail"]
    assert link_page(gw, token) == 410


def test_reopen_refuses_an_expired_challenge(gw: GatewayProcess) -> None:
    alice = Account(gw)
    cid, token = pending(gw, alice, sender_at())
    alice.http.post(f"/api/v1/challenges/{cid}/deny")
    with gw.store.engine.begin() as conn:
        conn.execute(update(challenges).where(challenges.c.id == cid).values(expires_at=1.0))
    r = alice.http.post(f"/api/v1/challenges/{cid}/reopen")
    assert r.status_code == 409 and "expired" in r.json()["detail"]
    assert gw.store.challenge_by_token(token).status == "denied"


def test_reopen_refuses_a_challenge_the_sender_confirmed(gw: GatewayProcess) -> None:
    alice = Account(gw)
    cid, _ = pending(gw, alice, sender_at())
    alice.http.post(f"/api/v1/challenges/{cid}/approve")
    alice.http.post(f"/api/v1/challenges/{cid}/reopen")
    assert gw.store.confirm(cid)  # the sender solved the CAPTCHA meanwhile
    r = alice.http.post(f"/api/v1/challenges/{cid}/reopen")
    assert r.status_code == 409 and "confirmed" in r.json()["detail"]
    assert gw.store.get_challenge(None, cid)["status"] == "confirmed"


# -- list adds and removals ------------------------------------------------------------------------------
def test_withdraw_an_added_block_puts_back_the_allow_entry_it_replaced(gw: GatewayProcess) -> None:
    alice = Account(gw)
    sender = sender_at()
    gw.store.add_entry(alice.user.id, "allow", sender, source="import", note="from contacts")
    added = alice.http.post("/api/v1/blocklist", json={"entry": sender})
    assert added.status_code == 201 and entries(alice, "allowlist") == []
    r = alice.http.post(f"/api/v1/blocklist/{added.json()['id']}/withdraw")
    assert r.status_code == 204, r.text
    assert entries(alice, "blocklist") == [] and entries(alice, "allowlist") == [(sender, "import")]


def test_withdraw_refuses_an_entry_the_add_found_already(gw: GatewayProcess) -> None:
    alice = Account(gw)
    sender = sender_at()
    first = alice.http.post("/api/v1/allowlist", json={"entry": sender}).json()
    age_records(gw, 400)  # the user's own earlier add, long ago
    again = alice.http.post("/api/v1/allowlist", json={"entry": sender})
    assert again.status_code == 200
    r = alice.http.post(f"/api/v1/allowlist/{first['id']}/withdraw")
    assert r.status_code == 409 and "too late" in r.json()["detail"]
    assert entries(alice, "allowlist") == [(sender, "manual")]


def test_withdraw_refuses_another_users_entry_and_someone_elses_add(gw: GatewayProcess) -> None:
    alice, bob, admin = Account(gw), Account(gw), Account(gw, admin=True)
    mine = alice.http.post("/api/v1/allowlist", json={"entry": sender_at()}).json()
    assert bob.http.post(f"/api/v1/allowlist/{mine['id']}/withdraw").status_code == 404
    assert bob.http.post(f"/api/v1/blocklist/{mine['id']}/withdraw").status_code == 404
    r = admin.http.post(f"/api/v1/allowlist/{mine['id']}/withdraw")
    assert r.status_code == 409  # the admin sees it, but did not add it
    assert len(entries(alice, "allowlist")) == 1


def test_restore_a_removed_entry_as_it_was(gw: GatewayProcess) -> None:
    alice = Account(gw)
    sender = sender_at()
    gw.store.add_entry(alice.user.id, "allow", sender, source="confirmed", note="by captcha",
                       expires_at=4_000_000_000.0)
    with gw.store.engine.begin() as conn:
        conn.execute(update(list_entries).where(list_entries.c.value == sender).values(auth="spf=pass:x dkim=none"))
    [before] = alice.http.get("/api/v1/allowlist").json()["items"]
    assert alice.http.delete(f"/api/v1/allowlist/{before['id']}").status_code == 204
    r = alice.http.post(f"/api/v1/allowlist/{before['id']}/restore")
    assert r.status_code == 201, r.text
    after = r.json()
    for key in ("entry", "kind", "action", "source", "note", "expires_at", "auth", "created_at", "user_id"):
        assert after[key] == before[key], key
    assert alice.http.post(f"/api/v1/allowlist/{before['id']}/restore").status_code == 404  # used up
    assert send(gw, sender, alice.address)[0] == 250


def test_restore_refuses_other_users_the_wrong_list_and_after_the_window(gw: GatewayProcess) -> None:
    alice, bob = Account(gw), Account(gw)
    e = alice.http.post("/api/v1/blocklist", json={"entry": sender_at()}).json()
    alice.http.delete(f"/api/v1/blocklist/{e['id']}")
    assert bob.http.post(f"/api/v1/blocklist/{e['id']}/restore").status_code == 404
    assert alice.http.post(f"/api/v1/allowlist/{e['id']}/restore").status_code == 404
    age_records(gw, 301)
    r = alice.http.post(f"/api/v1/blocklist/{e['id']}/restore")
    assert r.status_code == 409 and "too late" in r.json()["detail"]
    assert entries(alice, "blocklist") == []


def test_restore_refuses_when_the_pattern_is_on_the_other_list_now(gw: GatewayProcess) -> None:
    alice = Account(gw)
    sender = sender_at()
    e = alice.http.post("/api/v1/blocklist", json={"entry": sender}).json()
    alice.http.delete(f"/api/v1/blocklist/{e['id']}")
    alice.http.post("/api/v1/allowlist", json={"entry": sender})
    r = alice.http.post(f"/api/v1/blocklist/{e['id']}/restore")
    assert r.status_code == 409 and "allowlist" in r.json()["detail"]
    assert entries(alice, "allowlist") == [(sender, "manual")] and entries(alice, "blocklist") == []


def test_a_client_cannot_set_the_source_by_post(gw: GatewayProcess) -> None:
    """Only restore brings back a 'confirmed' source, from the server's own snapshot; POST ignores a source."""
    alice = Account(gw)
    r = alice.http.post("/api/v1/allowlist", json={"entry": sender_at(), "source": "confirmed", "auth": "spf=pass"})
    assert r.status_code == 422 or r.json()["source"] == "manual"


def test_openapi_lists_the_undo_routes(gw: GatewayProcess) -> None:
    admin = Account(gw, admin=True)
    paths = admin.http.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/challenges/{challenge_id}/reopen", "/api/v1/allowlist/{entry_id}/withdraw",
                 "/api/v1/blocklist/{entry_id}/withdraw", "/api/v1/allowlist/{entry_id}/restore",
                 "/api/v1/blocklist/{entry_id}/restore"):
        op = paths[path]["post"]
        assert op["security"] == [{"token": []}] and {"404", "409"} <= set(op["responses"]), path


def test_withdraw_never_removes_a_later_entry_that_got_the_same_id(gw: GatewayProcess) -> None:
    """SQLite gives a new row the id of a removed last row: the undo record names the entry, not only the id."""
    alice = Account(gw)
    mine = alice.http.post("/api/v1/allowlist", json={"entry": sender_at()}).json()
    assert alice.http.delete(f"/api/v1/allowlist/{mine['id']}").status_code == 204
    other = sender_at()
    gw.store.add_entry(alice.user.id, "allow", other, source="confirmed")  # a confirmation, meanwhile
    r = alice.http.post(f"/api/v1/allowlist/{mine['id']}/withdraw")
    assert r.status_code in (404, 409)
    assert entries(alice, "allowlist") == [(other, "confirmed")]


def test_withdrawing_a_block_does_not_revive_the_challenges_it_ended(gw: GatewayProcess) -> None:
    """A block ends the sender's pending challenges (SPEC §4.5 item 3); taking the block back leaves them ended:
    only reopen, per challenge and within its window, brings a link back."""
    alice = Account(gw)
    domain = f"d{uuid.uuid4().hex[:6]}.test"
    cid, token = pending(gw, alice, sender_at(domain))
    block = alice.http.post("/api/v1/blocklist", json={"entry": "@" + domain}).json()
    assert link_page(gw, token) == 410
    assert alice.http.post(f"/api/v1/blocklist/{block['id']}/withdraw").status_code == 204
    assert entries(alice, "blocklist") == []
    assert link_page(gw, token) == 410 and gw.store.get_challenge(None, cid)["status"] == "denied"
    r = alice.http.post(f"/api/v1/challenges/{cid}/reopen")
    assert r.status_code == 409 and "no decision" in r.json()["detail"]


def test_reopen_refuses_when_the_sender_has_a_newer_pending_challenge(gw: GatewayProcess) -> None:
    alice = Account(gw)
    sender = sender_at()
    cid, _ = pending(gw, alice, sender)
    alice.http.post(f"/api/v1/challenges/{cid}/deny")
    alice.http.delete(f"/api/v1/blocklist/{alice.http.get('/api/v1/blocklist').json()['items'][0]['id']}")
    newer, _ = pending(gw, alice, sender)
    r = alice.http.post(f"/api/v1/challenges/{cid}/reopen")
    assert r.status_code == 409 and f"({newer})" in r.json()["detail"]
    assert gw.store.get_challenge(None, cid)["status"] == "denied"


def test_reopen_several_at_once_reports_each(gw: GatewayProcess) -> None:
    alice, bob = Account(gw), Account(gw)
    ann, _ = pending(gw, alice, sender_at())
    ben, _ = pending(gw, alice, sender_at())
    bobs, _ = pending(gw, bob, sender_at())
    still_pending, _ = pending(gw, alice, sender_at())
    alice.http.post("/api/v1/challenges/approve", json={"ids": [ann, ben]})
    bob.http.post(f"/api/v1/challenges/{bobs}/deny")
    age = alice.http.post("/api/v1/challenges/deny", json={"ids": [still_pending]})
    assert age.json()["changed"] == 1
    alice.http.post(f"/api/v1/challenges/{still_pending}/reopen")
    alice.http.post(f"/api/v1/challenges/{ann}/approve")  # again (already approved: no new record)
    r = alice.http.post("/api/v1/challenges/reopen", json={"ids": [ann, ben, bobs, still_pending, ann]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(i["id"], i["status"]) for i in body["results"]] == [
        (ann, "changed"), (ben, "changed"), (bobs, "missing"), (still_pending, "unchanged")]
    assert (body["changed"], body["unchanged"], body["missing"], body["refused"]) == (2, 1, 1, 0)
    assert gw.store.get_challenge(None, bobs)["status"] == "denied"
    assert entries(alice, "allowlist") == []
    again = alice.http.post("/api/v1/challenges/reopen", json={"ids": [ann]}).json()
    assert again["results"][0]["status"] == "unchanged"
    alice.http.post(f"/api/v1/challenges/{ben}/deny")
    age_records(gw, 301)
    late = alice.http.post("/api/v1/challenges/reopen", json={"ids": [ben]}).json()
    assert late["refused"] == 1 and "too late" in late["results"][0]["error"]
    assert alice.http.post("/api/v1/challenges/reopen", json={"ids": [0]}).status_code == 422


def test_two_undos_of_one_removal_at_once_restore_it_once(gw: GatewayProcess) -> None:
    """A double click, or two devices: the record is used up first, so the second undo finds nothing."""
    import threading
    alice = Account(gw)
    sender = sender_at()
    for _ in range(5):
        e = alice.http.post("/api/v1/allowlist", json={"entry": sender}).json()
        alice.http.delete(f"/api/v1/allowlist/{e['id']}")
        codes: list[int] = []
        go = threading.Barrier(4)

        def restore(eid: int = e["id"]) -> None:
            go.wait()
            codes.append(alice.http.post(f"/api/v1/allowlist/{eid}/restore").status_code)

        threads = [threading.Thread(target=restore) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes.count(201) == 1, codes
        assert entries(alice, "allowlist") == [(sender, "manual")]
        gw.store.remove_entry(None, "allow", alice.http.get("/api/v1/allowlist").json()["items"][0]["id"])
