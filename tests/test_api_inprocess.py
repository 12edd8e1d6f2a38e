"""The HTTP API's fast cases in process: FastAPI's TestClient against the gateway's own web app
(tests/support/inprocess.py), on SQLite and on a real PostgreSQL store. Token checks and the failed-token
limit, who may see and decide what, paging cursors, the shape of validation errors, list CRUD.

What needs SMTP, uvicorn or several processes (a challenge made by a real transaction, the live
stream, metrics across workers) stays in tests/test_api.py against a real gateway process.
"""

from __future__ import annotations

import base64
import itertools
import logging
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import hash_message_id
from tests.support.inprocess import WebApp, web_app

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.fast

_counter = itertools.count(1)
_sources = (f"127.0.{i // 250 + 3}.{i % 250 + 1}" for i in itertools.count())  # one client address per use


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def web(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebApp]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database("web_" + uuid.uuid4().hex[:10])
    with web_app(tmp_path_factory.mktemp("web"), url) as app:
        yield app


class Account:
    def __init__(self, web: WebApp, *, admin: bool = False) -> None:
        n = next(_counter)
        self.address = f"{'admin' if admin else 'user'}{n}-{uuid.uuid4().hex[:6]}@example.org"
        self.user, self.token = web.store.add_user(self.address, admin=admin, name=f"User {n}")
        self.http = web.client(self.token, source=next(_sources))


def challenge_for(web: WebApp, account: Account, sender: str) -> int:
    """A pending challenge, as an unknown sender's refused transaction leaves it."""
    cid, _token = web.store.open_challenge(account.user.id, account.address, sender, ttl=3600, subject="hello")
    assert cid is not None
    return cid


def events_for(web: WebApp, user_id: int | None, n: int, *, verdict: Verdict = Verdict.DELIVERED,
               ts: datetime | None = None, subject: str = "bulk") -> list[int]:
    now = ts or datetime.now(timezone.utc)
    return web.store.add_events([EventRecord(ts=now, verdict=verdict, reason="test", sender=f"s{i}@bulk.test",
                                             recipient="r@example.org", user_id=user_id, subject=f"{subject} {i}")
                                 for i in range(n)])


def routes(challenge_id: int, allow_id: int, block_id: int, device_id: int) -> list[tuple[str, str, Any]]:
    """Every API route but the live stream (an endless response: tests/test_api.py checks its gate), the
    admins' routes (admin_routes) and POST /api/v1/pair (no token: its own tests below)."""
    return [
        ("GET", "/api/v1/devices", None),
        ("DELETE", f"/api/v1/devices/{device_id}", None),
        ("GET", "/api/v1/me", None),
        ("GET", "/api/v1/events", None),
        ("GET", "/api/v1/challenges", None),
        ("GET", f"/api/v1/challenges/{challenge_id}", None),
        ("POST", f"/api/v1/challenges/{challenge_id}/approve", None),
        ("POST", f"/api/v1/challenges/{challenge_id}/allow-domain", None),
        ("POST", f"/api/v1/challenges/{challenge_id}/deny", None),
        ("POST", "/api/v1/challenges/approve", {"ids": [challenge_id]}),
        ("POST", "/api/v1/challenges/allow-domain", {"ids": [challenge_id]}),
        ("POST", "/api/v1/challenges/deny", {"ids": [challenge_id]}),
        ("GET", "/api/v1/screened?days=30", None),
        ("GET", "/api/v1/allowlist", None),
        ("POST", "/api/v1/allowlist", {"entry": "friend@else.test"}),
        ("GET", f"/api/v1/allowlist/{allow_id}", None),
        ("PATCH", f"/api/v1/allowlist/{allow_id}", {"note": "edited"}),
        ("DELETE", f"/api/v1/allowlist/{allow_id}", None),
        ("POST", "/api/v1/allowlist/import", {"entries": ["a@b.test"]}),
        ("POST", "/api/v1/sent-ids", {"hashes": [hash_message_id("<x@y>")]}),
        ("GET", "/api/v1/blocklist", None),
        ("POST", "/api/v1/blocklist", {"entry": "@spam.test"}),
        ("GET", f"/api/v1/blocklist/{block_id}", None),
        ("PATCH", f"/api/v1/blocklist/{block_id}", {"note": "edited"}),
        ("DELETE", f"/api/v1/blocklist/{block_id}", None),
        ("GET", "/api/v1/stats?days=7", None),
    ]


def admin_routes(user_id: int) -> list[tuple[str, str, Any]]:
    """Routes for admins only: anyone else gets 403 (issue 16 item 2)."""
    return [
        ("GET", "/api/v1/users", None),
        ("GET", f"/api/v1/users/{user_id}", None),
        ("POST", "/api/v1/users", {"address": f"new-{uuid.uuid4().hex[:8]}@example.org", "name": "New"}),
        ("POST", f"/api/v1/users/{user_id}/pairing-code", None),
        ("GET", f"/api/v1/challenges?user={user_id}", None),
        ("GET", f"/api/v1/events?user={user_id}", None),
    ]


def paired(web: WebApp, account: Account, name: str = "second") -> tuple[int, str]:
    """A second device of the account's user, paired with a code: (device id, token)."""
    code, _ = web.store.create_pairing_code(account.user.id)
    r = web.client(source=next(_sources)).post("/api/v1/pair", json={"code": code, "device": name})
    assert r.status_code == 201, r.text
    return r.json()["device"]["id"], r.json()["token"]


def names_owned_thing(path: str) -> bool:
    """Routes naming one of the owner's things by id."""
    parts = path.split("?")[0].split("/")
    return len(parts) > 4 and parts[4].isdigit()


def call(c: TestClient, method: str, path: str, body: Any) -> Any:
    return c.request(method, path, json=body)


# -- tokens ------------------------------------------------------------------------------------------
def test_authorization_matrix(web: WebApp) -> None:
    """Moved from tests/test_api.py (the challenge now made in the store; the stream route stays there)."""
    alice, mallory, admin = Account(web), Account(web), Account(web, admin=True)
    cid = challenge_for(web, alice, f"stranger{uuid.uuid4().hex[:6]}@far.test")
    allow_id = alice.http.post("/api/v1/allowlist", json={"entry": "pal@far.test"}).json()["id"]
    block_id = alice.http.post("/api/v1/blocklist", json={"entry": "foe@far.test"}).json()["id"]
    device_id, _ = paired(web, alice)
    table = routes(cid, allow_id, block_id, device_id)
    admin_only = {path for _m, path, _b in admin_routes(alice.user.id)}
    for method, path, body in table + admin_routes(alice.user.id):
        r = call(web.client(source=next(_sources)), method, path, body)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (method, path)
        assert r.json() == {"detail": "missing token: send 'Authorization: Bearer TOKEN'"}
        # wrong tokens from their own addresses, so the failure limit stays out of the way
        r = call(web.client("x" * 32, source=next(_sources)), method, path, body)
        assert r.status_code == 401 and r.json() == {"detail": "unknown token"}, (method, path)
        r = call(mallory.http, method, path, body)
        if path in admin_only:
            assert r.status_code == 403, (method, path, r.status_code)
        elif names_owned_thing(path):
            assert r.status_code == 404, (method, path, r.status_code)  # same answer as for nothing at all
        else:
            assert r.status_code in (200, 201, 204), (method, path, r.status_code, r.text)
    # mallory's batch decisions on alice's challenge: reported missing, nothing changed
    r = mallory.http.post("/api/v1/challenges/approve", json={"ids": [cid]}).json()
    assert (r["missing"], r["results"][0]["status"], r["results"][0]["challenge"]) == (1, "missing", None)
    # mallory's views hold none of alice's things
    events_for(web, alice.user.id, 3)
    assert all(e["user_id"] == mallory.user.id for e in mallory.http.get("/api/v1/events").json()["items"])
    assert mallory.http.get("/api/v1/challenges").json()["items"] == []
    assert "pal@far.test" not in {e["entry"] for e in mallory.http.get("/api/v1/allowlist").json()["items"]}
    assert alice.http.get(f"/api/v1/challenges/{cid}").json()["status"] == "pending"
    assert alice.http.get(f"/api/v1/allowlist/{allow_id}").json()["note"] == ""
    assert [e["entry"] for e in alice.http.get("/api/v1/blocklist").json()["items"]] == ["foe@far.test"]
    assert device_id in {d["id"] for d in alice.http.get("/api/v1/devices").json()}  # mallory revoked nothing
    # the admin reaches everything
    for method, path, body in table + admin_routes(alice.user.id):
        r = call(admin.http, method, path, body)
        assert r.status_code in (200, 201, 204), (method, path, r.status_code, r.text)
    assert alice.http.get(f"/api/v1/allowlist/{allow_id}").status_code == 404  # the admin deleted it
    assert cid in {c["id"] for c in admin.http.get("/api/v1/challenges?status=all").json()["items"]}


def test_a_token_is_one_whole_value(web: WebApp) -> None:
    alice = Account(web)
    for header in (f"Bearer {alice.token[:-1]}", f"Bearer {alice.token}x", f"Basic {alice.token}",
                   f"Bearer {alice.token.upper()}", f"Bearer {'x' * 5000}"):
        c = web.client(source=next(_sources))
        r = c.get("/api/v1/me", headers={"Authorization": header})
        assert r.status_code == 401, header
    assert alice.http.get("/api/v1/me").json()["addresses"] == [alice.address]


def test_failed_tokens_are_rate_limited_per_client(web: WebApp, caplog: pytest.LogCaptureFixture) -> None:
    """Moved from tests/test_api.py: the log line is read from the logger here, not the gateway's log file."""
    alice = Account(web)
    source, other = next(_sources), next(_sources)
    bad = web.client("guess" * 8, source=source)
    with caplog.at_level(logging.WARNING, logger="sendergate"):
        codes = [bad.get("/api/v1/me").status_code for _ in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
    assert int(bad.get("/api/v1/me").headers["retry-after"]) >= 1
    # the same client is refused even with a good token for the moment; other clients are not affected
    assert web.client(alice.token, source=source).get("/api/v1/me").status_code == 429
    assert web.client(alice.token, source=other).get("/api/v1/me").status_code == 200
    assert f"unknown token from {source}" in caplog.text


# -- who may do what ------------------------------------------------------------------------------------
def test_users_act_only_for_their_own_addresses(web: WebApp) -> None:
    """Moved from tests/test_api.py."""
    alice, bob, admin = Account(web), Account(web), Account(web, admin=True)
    r = alice.http.post("/api/v1/allowlist", json={"entry": "x@y.test", "owner": bob.address})
    assert r.status_code == 403
    assert alice.http.post("/api/v1/blocklist", json={"entry": "@y.test", "global_entry": True}).status_code == 403
    assert alice.http.post("/api/v1/allowlist/import",
                           json={"entries": ["a@b.test"], "owner": bob.address}).status_code == 403
    assert alice.http.get("/api/v1/allowlist", params={"owner": bob.address}).status_code == 403
    r = admin.http.post("/api/v1/allowlist", json={"entry": "x@y.test", "owner": bob.address})
    assert r.status_code == 201 and r.json()["user_id"] == bob.user.id and r.json()["owner"] == bob.address
    assert admin.http.post("/api/v1/allowlist",
                           json={"entry": "x@y.test", "owner": "nobody@example.org"}).status_code == 404
    r = admin.http.post("/api/v1/blocklist", json={"entry": "@global-spam.test", "global_entry": True})
    assert r.status_code == 201 and r.json()["user_id"] is None
    bobs = admin.http.get("/api/v1/allowlist", params={"owner": bob.address}).json()["items"]
    assert [e["entry"] for e in bobs] == ["x@y.test"]


def test_a_user_cannot_decide_or_edit_another_users_things_by_id(web: WebApp) -> None:
    alice, mallory = Account(web), Account(web)
    cid = challenge_for(web, alice, f"ann{uuid.uuid4().hex[:6]}@corp.test")
    allow_id = alice.http.post("/api/v1/allowlist", json={"entry": "pal@far.test"}).json()["id"]
    for verb in ("approve", "deny", "allow-domain"):
        assert mallory.http.post(f"/api/v1/challenges/{cid}/{verb}").status_code == 404
        r = mallory.http.post(f"/api/v1/challenges/{verb}", json={"ids": [cid, cid + 1_000_000]}).json()
        assert [i["status"] for i in r["results"]] == ["missing", "missing"]
    assert mallory.http.patch(f"/api/v1/allowlist/{allow_id}", json={"note": "mine now"}).status_code == 404
    assert mallory.http.delete(f"/api/v1/allowlist/{allow_id}").status_code == 404
    # nothing of alice's moved: her challenge still waits, no entry of mallory's or hers was made by him
    assert alice.http.get(f"/api/v1/challenges/{cid}").json()["status"] == "pending"
    assert [e["entry"] for e in alice.http.get("/api/v1/allowlist").json()["items"]] == ["pal@far.test"]
    assert alice.http.get("/api/v1/blocklist").json()["items"] == []
    assert mallory.http.get("/api/v1/allowlist").json()["items"] == []
    assert mallory.http.get("/api/v1/blocklist").json()["items"] == []


# -- paging cursors ---------------------------------------------------------------------------------------
def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/challenges", "/api/v1/allowlist", "/api/v1/blocklist",
                                  "/api/v1/screened"])
def test_a_tampered_cursor_is_a_400_not_an_error_or_a_page(web: WebApp, path: str) -> None:
    alice = Account(web)
    for cursor in ("not-a-cursor", _cursor("v1:abc"), _cursor("v1:0"), _cursor("v1:-5"), _cursor("v2:10"),
                   _cursor("v1:" + "9" * 30), _cursor("s1:1:2"), _cursor("s1:-1:2:3"), "%%%", "\u00e9t\u00e9"):
        r = alice.http.get(path, params={"cursor": cursor})
        assert r.status_code == 400, (cursor, r.status_code, r.text)
        assert r.json() == {"detail": "malformed cursor: pass next_cursor from the previous page unchanged"}


def test_a_forged_cursor_pages_only_through_the_callers_own_events(web: WebApp) -> None:
    alice, mallory = Account(web), Account(web)
    hers = events_for(web, alice.user.id, 30)
    his = events_for(web, mallory.user.id, 5)
    # a well-formed cursor pointing into alice's ids: it only says where to start, never whose rows
    r = mallory.http.get("/api/v1/events", params={"cursor": _cursor(f"v1:{max(hers) + 1}"), "limit": 100})
    assert r.status_code == 200
    assert {e["id"] for e in r.json()["items"]} <= set(his)
    page = alice.http.get("/api/v1/events", params={"limit": 7}).json()
    seen = [e["id"] for e in page["items"]]
    while page["next_cursor"]:
        page = alice.http.get("/api/v1/events", params={"limit": 7, "cursor": page["next_cursor"]}).json()
        seen += [e["id"] for e in page["items"]]
    assert seen == sorted(hers, reverse=True)


# -- validation errors ------------------------------------------------------------------------------------
def test_validation_errors_have_one_shape(web: WebApp) -> None:
    alice = Account(web)
    cases = [
        ("GET", "/api/v1/events", {"params": {"verdict": "nonsense"}}, "query.verdict"),
        ("GET", "/api/v1/events", {"params": {"limit": 0}}, "query.limit"),
        ("GET", "/api/v1/events", {"params": {"since": "yesterday"}}, "query.since"),
        ("GET", "/api/v1/challenges/abc", {}, "path.challenge_id"),
        ("POST", "/api/v1/challenges/approve", {"json": {"ids": []}}, "ids"),
        ("POST", "/api/v1/challenges/deny", {"json": {"ids": [0]}}, "ids"),
        ("POST", "/api/v1/allowlist", {"json": {"entry": "not an address"}}, ""),
        ("POST", "/api/v1/allowlist", {"json": {"entry": "a@b.test", "surprise": 1}}, "surprise"),
        ("POST", "/api/v1/allowlist", {"content": b"{not json", "headers": {"content-type": "application/json"}},
         ""),
        ("PATCH", "/api/v1/allowlist/1", {"json": {"expires_at": "soon"}}, "expires_at"),
    ]
    for method, path, kwargs, where in cases:
        r = alice.http.request(method, path, **kwargs)
        assert r.status_code == 422, (method, path, r.status_code, r.text)
        body = r.json()
        # the Error model: one line to show a person, naming the field; the field-level list when the
        # request's shape was wrong (the route's own checks give the line only)
        assert set(body) <= {"detail", "errors"}, body
        assert isinstance(body["detail"], str) and body["detail"].startswith(where), (path, body["detail"])
        assert "\n" not in body["detail"]
        errors = body.get("errors", [])
        assert isinstance(errors, list) and all("msg" in e and "loc" in e for e in errors), errors
    # a token is checked before the body: an unauthenticated caller learns nothing from validation
    r = web.client(source=next(_sources)).post("/api/v1/allowlist", json={"entry": 5})
    assert r.status_code == 401


# -- lists -------------------------------------------------------------------------------------------------
def test_allowlist_crud_and_import(web: WebApp) -> None:
    """Moved from tests/test_api.py."""
    alice = Account(web)
    r = alice.http.post("/api/v1/allowlist", json={"entry": "Bob+news@X.org", "note": "bob",
                                                   "expires_at": "2099-01-01T00:00:00Z"})
    assert r.status_code == 201
    e = r.json()
    assert (e["entry"], e["kind"], e["source"], e["note"], e["expires_at"]) == \
        ("bob@x.org", "address", "manual", "bob", "2099-01-01T00:00:00Z")
    assert alice.http.post("/api/v1/allowlist", json={"entry": "bob@x.org"}).status_code == 200
    assert alice.http.post("/api/v1/allowlist", json={"entry": "not an address"}).status_code == 422
    r = alice.http.patch(f"/api/v1/allowlist/{e['id']}", json={"note": "Bob from X", "clear_expiry": True}).json()
    assert r["note"] == "Bob from X" and r["expires_at"] is None
    assert alice.http.get(f"/api/v1/blocklist/{e['id']}").status_code == 404  # an allow entry is not in the blocklist
    entries = ["bob@x.org", "@Shop.Example", "list:dev.lists.example.org", "nope", "carol@y.org", "carol@y.org"]
    preview = alice.http.post("/api/v1/allowlist/import", json={"entries": entries, "dry_run": True}).json()
    assert (preview["added"], preview["present"], preview["invalid"]) == (3, 2, 1)
    assert len(alice.http.get("/api/v1/allowlist").json()["items"]) == 1  # a preview changes nothing
    result = alice.http.post("/api/v1/allowlist/import", json={"entries": entries}).json()
    assert (result["added"], result["present"], result["invalid"]) == (3, 2, 1)
    assert [r["status"] for r in result["results"]] == [p["status"] for p in preview["results"]]
    assert result["results"][3]["error"]
    again = alice.http.post("/api/v1/allowlist/import", json={"entries": entries}).json()
    assert (again["added"], again["present"], again["invalid"]) == (0, 5, 1)
    items = alice.http.get("/api/v1/allowlist", params={"q": "shop"}).json()["items"]
    assert [(i["entry"], i["source"]) for i in items] == [("@shop.example", "import")]
    assert alice.http.delete(f"/api/v1/allowlist/{e['id']}").status_code == 204
    assert alice.http.delete(f"/api/v1/allowlist/{e['id']}").status_code == 404
    # paging through a list
    alice.http.post("/api/v1/allowlist/import", json={"entries": [f"p{i}@page.test" for i in range(25)]})
    page = alice.http.get("/api/v1/allowlist", params={"limit": 10}).json()
    ids = [i["id"] for i in page["items"]]
    while page["next_cursor"]:
        page = alice.http.get("/api/v1/allowlist", params={"limit": 10, "cursor": page["next_cursor"]}).json()
        ids += [i["id"] for i in page["items"]]
    assert len(ids) == len(set(ids)) == 28 and ids == sorted(ids, reverse=True)


def test_blocklist_crud(web: WebApp) -> None:
    alice = Account(web)
    r = alice.http.post("/api/v1/blocklist", json={"entry": "@Spam.Example", "note": "junk"})
    assert r.status_code == 201
    e = r.json()
    assert (e["entry"], e["kind"], e["action"], e["note"]) == ("@spam.example", "domain", "block", "junk")
    assert alice.http.post("/api/v1/blocklist", json={"entry": "@spam.example"}).status_code == 200  # idempotent
    assert alice.http.get(f"/api/v1/blocklist/{e['id']}").json()["entry"] == "@spam.example"
    assert alice.http.get(f"/api/v1/allowlist/{e['id']}").status_code == 404
    later = (datetime.now(timezone.utc) + timedelta(days=2)).replace(microsecond=0)
    r = alice.http.patch(f"/api/v1/blocklist/{e['id']}", json={"expires_at": later.isoformat()})
    assert r.status_code == 200 and r.json()["expires_at"] == later.isoformat().replace("+00:00", "Z")
    assert alice.http.delete(f"/api/v1/blocklist/{e['id']}").status_code == 204
    assert alice.http.get("/api/v1/blocklist").json()["items"] == []
    assert alice.http.patch(f"/api/v1/blocklist/{e['id']}", json={"note": "x"}).status_code == 404


def test_import_dry_run_names_the_domain_entry_that_covers_an_address(web: WebApp) -> None:
    """Moved from tests/test_api.py."""
    alice, bob = Account(web), Account(web)
    alice.http.post("/api/v1/allowlist", json={"entry": "@corp.test"})
    alice.http.post("/api/v1/blocklist", json={"entry": "@spam.corp.test"})  # more specific: it decides
    alice.http.post("/api/v1/allowlist", json={"entry": "@gone.test", "expires_at": "2001-01-01T00:00:00Z"})
    alice.http.post("/api/v1/allowlist", json={"entry": "kim@corp.test"})
    bob.http.post("/api/v1/allowlist", json={"entry": "@other.test"})
    entries = ["ann@corp.test", "ben@eu.corp.test", "cat@spam.corp.test", "dan@gone.test", "kim@corp.test",
               "eve@other.test", "@corp.test", "not an address"]
    r = alice.http.post("/api/v1/allowlist/import", json={"entries": entries, "dry_run": True}).json()
    got = [(i["entry"], i["status"], i.get("covered_by")) for i in r["results"]]
    assert got == [("ann@corp.test", "added", "@corp.test"), ("ben@eu.corp.test", "added", "@corp.test"),
                   ("cat@spam.corp.test", "added", None), ("dan@gone.test", "added", None),
                   ("kim@corp.test", "present", None), ("eve@other.test", "added", None),
                   ("@corp.test", "present", None), ("not an address", "invalid", None)]
    assert (r["added"], r["present"], r["invalid"]) == (5, 2, 1)  # the counts keep their meaning


# -- pairing and devices (issue 16 item 1) ----------------------------------------------------------------
def test_a_pairing_code_pairs_one_device_once(web: WebApp) -> None:
    alice, admin = Account(web), Account(web, admin=True)
    r = admin.http.post(f"/api/v1/users/{alice.user.id}/pairing-code")
    assert r.status_code == 201
    code = r.json()["code"]
    assert r.json()["link"] == f"https://mx.example.org/pair#{code}"
    assert r.json()["app_link"].startswith("sendergate://pair?gateway=https%3A%2F%2Fmx.example.org&code=")
    anon = web.client(source=next(_sources))
    # typed as people type it: lower case, a space instead of the dash
    r = anon.post("/api/v1/pair", json={"code": code.lower().replace("-", " "), "device": "alice-laptop"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert r.json()["user"]["addresses"] == [alice.address]
    assert (r.json()["device"]["name"], r.json()["device"]["current"]) == ("alice-laptop", True)
    laptop = web.client(token, source=next(_sources))
    devices = laptop.get("/api/v1/devices").json()
    assert [(d["name"], d["current"]) for d in devices] == [("script", False), ("alice-laptop", True)]
    assert [d["current"] for d in alice.http.get("/api/v1/devices").json()] == [True, False]
    # single use: the same code again is refused, and pairs nothing
    r = web.client(source=next(_sources)).post("/api/v1/pair", json={"code": code, "device": "thief"})
    assert r.status_code == 404 and r.json() == {"detail": "unknown, used or expired pairing code"}
    assert len(alice.http.get("/api/v1/devices").json()) == 2
    # the old token (device "script") keeps working beside the paired one
    assert alice.http.get("/api/v1/me").status_code == 200 and laptop.get("/api/v1/me").status_code == 200


def test_expired_used_and_guessed_codes_pair_nothing(web: WebApp) -> None:
    alice = Account(web)
    expired, _ = web.store.create_pairing_code(alice.user.id, ttl=-1)
    r = web.client(source=next(_sources)).post("/api/v1/pair", json={"code": expired, "device": "late"})
    assert r.status_code == 404 and r.json() == {"detail": "unknown, used or expired pairing code"}
    # guessing: wrong codes count against the same per-client limit as wrong tokens
    good, _ = web.store.create_pairing_code(alice.user.id)
    guesser = web.client(source=next(_sources))
    codes = [guesser.post("/api/v1/pair", json={"code": f"ABCDE{i:05d}".replace("0", "2").replace("1", "3"),
                                                "device": "guess"}).status_code for i in range(11)]
    assert codes[:10] == [404] * 10 and codes[10] == 429
    # the limit holds even for the right code from that client; the code still works from elsewhere
    assert guesser.post("/api/v1/pair", json={"code": good, "device": "guess"}).status_code == 429
    assert web.client(source=next(_sources)).post("/api/v1/pair", json={"code": good, "device": "ok"}).status_code \
        == 201
    assert [d["name"] for d in alice.http.get("/api/v1/devices").json()] == ["script", "ok"]
    # malformed codes and names are a clear 422, and count as guesses too
    c = web.client(source=next(_sources))
    assert c.post("/api/v1/pair", json={"code": "O0O0O-I1I1I", "device": "x"}).status_code == 422
    assert c.post("/api/v1/pair", json={"code": good, "device": "a\nb\x00"}).status_code == 422
    assert c.post("/api/v1/pair", json={"code": good, "device": "x", "user_id": 1}).status_code == 422


def test_a_user_cannot_pair_onto_or_revoke_someone_elses_devices(web: WebApp) -> None:
    alice, mallory = Account(web), Account(web)
    # no route lets a non-admin make a code, not even for themselves (the admin invites)
    assert mallory.http.post(f"/api/v1/users/{alice.user.id}/pairing-code").status_code == 403
    assert mallory.http.post(f"/api/v1/users/{mallory.user.id}/pairing-code").status_code == 403
    # mallory's own code pairs a device onto mallory only, whatever else the request names
    code, _ = web.store.create_pairing_code(mallory.user.id)
    r = mallory.http.post("/api/v1/pair", json={"code": code, "device": "alice"})
    assert r.status_code == 201 and r.json()["user"]["id"] == mallory.user.id
    alice_device, alice_token = paired(web, alice, "alice-desk")
    assert alice_device not in {d["id"] for d in mallory.http.get("/api/v1/devices").json()}
    assert mallory.http.delete(f"/api/v1/devices/{alice_device}").status_code == 404
    assert web.client(alice_token, source=next(_sources)).get("/api/v1/me").status_code == 200


def test_a_revoked_device_gets_401_at_once(web: WebApp) -> None:
    alice = Account(web)
    device, token = paired(web, alice, "lost laptop")
    lost = web.client(token, source=next(_sources))
    assert lost.get("/api/v1/me").status_code == 200  # now in the token cache
    assert alice.http.delete(f"/api/v1/devices/{device}").status_code == 204
    r = lost.get("/api/v1/me")
    assert r.status_code == 401 and r.json() == {"detail": "unknown token"}
    assert alice.http.delete(f"/api/v1/devices/{device}").status_code == 404
    assert alice.http.get("/api/v1/me").status_code == 200


def test_the_pairing_page_shows_the_code_from_the_fragment_only(web: WebApp) -> None:
    c = web.client(source=next(_sources))
    r = c.get("/pair")
    assert r.status_code == 200 and "Pair this computer" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "location.hash" in c.get("/pair.js").text


# -- the owner's view (issue 16 item 2) ---------------------------------------------------------------------
def test_admins_list_and_add_users_with_a_pairing_code(web: WebApp) -> None:
    admin, alice = Account(web, admin=True), Account(web)
    web.store.add_alias(alice.address, "@alias-" + uuid.uuid4().hex[:6] + ".example.org")
    users = {u["id"]: u for u in admin.http.get("/api/v1/users").json()["items"]}
    assert users[alice.user.id]["addresses"][0] == alice.address and len(users[alice.user.id]["addresses"]) == 2
    assert [d["name"] for d in users[alice.user.id]["devices"]] == ["script"]
    assert admin.http.get(f"/api/v1/users/{alice.user.id}").json()["name"] == alice.user.name
    assert admin.http.get("/api/v1/users/999999").status_code == 404
    new = f"bob-{uuid.uuid4().hex[:6]}@example.org"
    r = admin.http.post("/api/v1/users", json={"address": new, "name": "Bob"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["user"]["addresses"] == [new] and body["user"]["devices"] == []  # no token handed out
    r = web.client(source=next(_sources)).post("/api/v1/pair", json={"code": body["pairing"]["code"], "device": "b"})
    assert r.json()["user"]["addresses"] == [new]
    assert admin.http.post("/api/v1/users", json={"address": new}).status_code == 409
    assert admin.http.post("/api/v1/users", json={"address": "not an address"}).status_code == 422
    assert alice.http.post("/api/v1/users", json={"address": "x" + new}).status_code == 403
    assert alice.http.get("/api/v1/users").status_code == 403


def test_whose_selector_is_for_admins_only(web: WebApp) -> None:
    admin, alice, bob = Account(web, admin=True), Account(web), Account(web)
    events_for(web, alice.user.id, 2, subject="alice's")
    events_for(web, bob.user.id, 2, subject="bob's")
    challenge_for(web, alice, f"s{uuid.uuid4().hex[:6]}@far.test")
    challenge_for(web, bob, f"s{uuid.uuid4().hex[:6]}@far.test")
    items = admin.http.get(f"/api/v1/events?user={alice.user.id}").json()["items"]
    assert items and {e["user_id"] for e in items} == {alice.user.id}
    items = admin.http.get(f"/api/v1/challenges?user={bob.user.id}").json()["items"]
    assert [c["recipient"] for c in items] == [bob.address]
    everyone = {e["user_id"] for e in admin.http.get("/api/v1/events?limit=500").json()["items"]}
    assert {alice.user.id, bob.user.id} <= everyone
    # a user may not name anyone, not even themselves
    for who in (bob.user.id, alice.user.id):
        assert alice.http.get(f"/api/v1/events?user={who}").status_code == 403
        assert alice.http.get(f"/api/v1/challenges?user={who}").status_code == 403


@pytest.mark.parametrize("public_url", ["https://mx.example.org", "https://mx.example.org/gate/",
                                        "http://127.0.0.1:8025"])
def test_the_app_reads_back_both_link_forms(public_url: str) -> None:
    """The gateway writes the links (sendergate/pairing.py); the desktop app reads them (its own copy)."""
    from sendergate.desktop.pairing_link import parse_pair_input
    from sendergate.pairing import pair_links

    for link in pair_links(public_url, "ABCDE-23456"):
        got = parse_pair_input(link)
        assert (got.code, got.gateway) == ("ABCDE-23456", public_url.rstrip("/")), link
    assert parse_pair_input("  abcde 23456 ").gateway is None
    with pytest.raises(ValueError):
        parse_pair_input("https://evil.example/phish?code=ABCDE-23456")
