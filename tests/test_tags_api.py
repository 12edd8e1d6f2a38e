"""Sign-up addresses over the API (issue 19 item 2), in process on SQLite and PostgreSQL: make, list, revoke,
and what must not happen: a tag on another user's address, another user's tag seen or revoked, names with
path or routing characters, a tagged address as the owner. The SMTP side is tests/test_tags_gateway.py."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from sendergate.policy.decide import EventRecord, Verdict
from tests.support.inprocess import WebApp, web_app

pytestmark = pytest.mark.fast

_counter = itertools.count(1)
_sources = (f"127.0.{i // 250 + 40}.{i % 250 + 1}" for i in itertools.count())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def web(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebApp]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database("tags_" + uuid.uuid4().hex[:10])
    with web_app(tmp_path_factory.mktemp("web"), url) as app:
        yield app


class Account:
    def __init__(self, web: WebApp, *, admin: bool = False) -> None:
        n = next(_counter)
        self.address = f"{'admin' if admin else 'user'}{n}-{uuid.uuid4().hex[:6]}@example.org"
        self.user, self.token = web.store.add_user(self.address, admin=admin)
        self.http = web.client(self.token, source=next(_sources))


def test_make_list_and_revoke(web: WebApp) -> None:
    a = Account(web)
    r = a.http.post("/api/v1/tags", json={"address": a.address.upper(), "name": "Acme", "expires": None,
                                          "dated": False})
    assert r.status_code == 201, r.text
    tag = r.json()
    local, _, domain = a.address.partition("@")
    assert tag["address"] == f"{local}+acme@{domain}" and tag["owner_address"] == a.address
    assert (tag["name"], tag["status"], tag["received"], tag["senders"]) == ("acme", "live", 0, [])
    assert tag["expires_at"] is None and tag["revoked_at"] is None and tag["dated"] is False
    r = a.http.post("/api/v1/tags", json={"address": a.address, "name": "shop", "expires": "30d"})
    assert r.status_code == 201 and r.json()["expires_at"] is not None
    items = a.http.get("/api/v1/tags", params={"address": a.address}).json()["items"]
    assert [t["name"] for t in items] == ["shop", "acme"]
    assert [t["name"] for t in a.http.get("/api/v1/tags").json()["items"]] == ["shop", "acme"]
    gone = a.http.delete(f"/api/v1/tags/{tag['id']}")
    assert gone.status_code == 200 and gone.json()["status"] == "revoked" and gone.json()["revoked_at"]
    assert a.http.get(f"/api/v1/tags/{tag['id']}").json()["status"] == "revoked"  # kept
    again = a.http.post("/api/v1/tags", json={"address": a.address, "name": "acme"})
    assert again.status_code == 409  # a revoked name stays revoked


def test_dated_address_carries_its_day_and_a_mac(web: WebApp) -> None:
    a = Account(web)
    r = a.http.post("/api/v1/tags", json={"address": a.address, "name": "fair", "expires": "3d", "dated": True})
    assert r.status_code == 201, r.text
    tag = r.json()
    local = tag["address"].partition("@")[0]
    name, day, mac = local.partition("+")[2].split(".")
    assert name == "fair" and len(day) == 8 and len(mac) == 12
    expires = datetime.fromisoformat(tag["expires_at"].replace("Z", "+00:00"))
    assert (expires.hour, expires.minute) == (0, 0) and expires.strftime("%Y%m%d") > day  # works all its last day


def test_counts_and_top_senders(web: WebApp) -> None:
    a = Account(web)
    tag = a.http.post("/api/v1/tags", json={"address": a.address, "name": "news"}).json()
    now = datetime.now(timezone.utc)
    web.store.add_events([EventRecord(ts=now, verdict=v, reason="r", user_id=a.user.id, sender=s, tag="news")
                          for v, s in [(Verdict.DELIVERED, "A@shop.example"), (Verdict.DELIVERED, "a@shop.example"),
                                       (Verdict.SPAM, "spam@elsewhere.example"), (Verdict.TEMPFAIL, "t@x.example")]])
    got = a.http.get(f"/api/v1/tags/{tag['id']}").json()
    assert (got["received"], got["refused"]) == (2, 1) and got["last_received_at"]
    assert got["senders"] == [{"sender": "a@shop.example", "count": 2},
                              {"sender": "spam@elsewhere.example", "count": 1}]
    ev = a.http.get("/api/v1/events").json()["items"]
    assert {e["tag"] for e in ev} == {"news"}
    # housekeeping forgets senders with the events' retention; the tag's totals stay
    assert web.store.prune_tag_senders(now.timestamp() + 1) >= 2
    got = a.http.get(f"/api/v1/tags/{tag['id']}").json()
    assert (got["received"], got["refused"], got["senders"]) == (2, 1, [])


def test_events_by_tag_are_the_callers_own(web: WebApp) -> None:
    """GET /events?tag=: a user sees the events that came in by their tag of that name and nothing else, never
    another user's events by a tag of the same name; an admin everyone's, or one person's with `user`."""
    admin, a, b = Account(web, admin=True), Account(web), Account(web)
    name = "shop" + uuid.uuid4().hex[:6]  # the module's gateway is shared: a name no other test has
    now = datetime.now(timezone.utc)
    for who in (a, b):
        made = who.http.post("/api/v1/tags", json={"address": who.address, "name": name})
        assert made.status_code == 201 and made.json()["user_id"] == who.user.id  # whose: an admin's `user`
    web.store.add_events(
        [EventRecord(ts=now, verdict=Verdict.DELIVERED, reason="r", user_id=a.user.id, sender=f"s{i}@shop.example",
                     tag=name, subject=f"a's {i}") for i in range(3)]
        + [EventRecord(ts=now, verdict=Verdict.SPAM, reason="r", user_id=a.user.id, sender="x@spam.example",
                       tag=name, subject="a's spam"),
           EventRecord(ts=now, verdict=Verdict.DELIVERED, reason="r", user_id=a.user.id, sender="s0@shop.example",
                       subject="a's untagged"),
           EventRecord(ts=now, verdict=Verdict.DELIVERED, reason="r", user_id=a.user.id, sender="s0@shop.example",
                       tag="other" + name, subject="a's other tag"),
           EventRecord(ts=now, verdict=Verdict.DELIVERED, reason="r", user_id=b.user.id, sender="s0@shop.example",
                       tag=name, subject="b's")])

    def subjects(who: Account, **params: object) -> list[str]:
        r = who.http.get("/api/v1/events", params={"tag": name, **params})
        assert r.status_code == 200, r.text
        return [e["subject"] for e in r.json()["items"]]

    assert subjects(a) == ["a's spam", "a's 2", "a's 1", "a's 0"]  # newest first; only by this tag
    assert subjects(a, tag=name.upper()) == subjects(a)  # a name in any case, as in the address
    assert subjects(a, verdict="spam") == ["a's spam"]  # with the other filters
    assert subjects(a, q="a's 1") == ["a's 1"]
    first = a.http.get("/api/v1/events", params={"tag": name, "limit": 2}).json()
    rest = a.http.get("/api/v1/events", params={"tag": name, "limit": 2, "cursor": first["next_cursor"]}).json()
    assert [e["subject"] for e in first["items"] + rest["items"]] == subjects(a) and rest["next_cursor"] is None
    assert subjects(b) == ["b's"]  # the same name on another user's address: theirs alone
    assert subjects(a, tag="no" + name) == []
    # another user's events cannot be reached through it
    assert a.http.get("/api/v1/events", params={"tag": name, "user": b.user.id}).status_code == 403
    assert a.http.get("/api/v1/events", params={"tag": name, "user": a.user.id}).status_code == 403
    assert sorted(subjects(admin)) == sorted(["b's", "a's spam", "a's 2", "a's 1", "a's 0"])
    assert subjects(admin, user=b.user.id) == ["b's"]
    # bad input: a clear 422
    for bad in ("", "a" * 33, "ac\x00me", "ac\nme", "ac me", "a%", "ac.me"):
        assert a.http.get("/api/v1/events", params={"tag": bad}).status_code == 422, bad


def test_no_tag_on_another_users_address(web: WebApp) -> None:
    a, b = Account(web), Account(web)
    r = a.http.post("/api/v1/tags", json={"address": b.address, "name": "acme"})
    assert r.status_code == 403
    assert a.http.get("/api/v1/tags", params={"address": b.address}).status_code == 403
    assert b.http.get("/api/v1/tags").json()["items"] == []
    assert a.http.post("/api/v1/tags", json={"address": "nobody@example.org", "name": "acme"}).status_code == 404
    assert a.http.post("/api/v1/tags", json={"address": "@example.org", "name": "acme"}).status_code == 422


def test_another_users_tag_is_not_there(web: WebApp) -> None:
    a, b = Account(web), Account(web)
    tag = a.http.post("/api/v1/tags", json={"address": a.address, "name": "acme"}).json()
    assert b.http.get(f"/api/v1/tags/{tag['id']}").status_code == 404
    assert b.http.delete(f"/api/v1/tags/{tag['id']}").status_code == 404
    assert b.http.patch(f"/api/v1/tags/{tag['id']}", json={"folder": "tag"}).status_code == 404
    assert a.http.get(f"/api/v1/tags/{tag['id']}").json()["status"] == "live"


def test_admin_may_make_one_for_a_user(web: WebApp) -> None:
    admin, a = Account(web, admin=True), Account(web)
    r = admin.http.post("/api/v1/tags", json={"address": a.address, "name": "bank"})
    assert r.status_code == 201
    assert [t["name"] for t in a.http.get("/api/v1/tags").json()["items"]] == ["bank"]


@pytest.mark.parametrize("name", [
    "a/b", "../x", ".acme", "acme.", "a.b", "a%b", "a!b", "a@b", "a:b", '"a"', "a b", "a\x00b", "a\nb", "-a", "a-",
    "аcme",  # Cyrillic а: looks like acme
    "a" * 33, "", "a+b",
])
def test_names_with_path_routing_or_lookalike_characters_are_refused(web: WebApp, name: str) -> None:
    a = Account(web)
    r = a.http.post("/api/v1/tags", json={"address": a.address, "name": name})
    assert r.status_code == 422, (name, r.text)
    assert a.http.get("/api/v1/tags").json()["items"] == []


@pytest.mark.parametrize("owner", ["{local}+x@{domain}", "\"{local}\"@{domain}", "{local}%{domain}@{domain}",
                                   "@relay.example:{local}@{domain}"])
def test_the_owner_must_be_a_plain_address(web: WebApp, owner: str) -> None:
    a = Account(web)
    local, _, domain = a.address.partition("@")
    r = a.http.post("/api/v1/tags", json={"address": owner.format(local=local, domain=domain), "name": "acme"})
    assert r.status_code in (403, 404, 422), r.text
    assert a.http.get("/api/v1/tags").json()["items"] == []


def test_bad_expiry_and_folder(web: WebApp) -> None:
    a = Account(web)
    assert a.http.post("/api/v1/tags", json={"address": a.address, "name": "x1", "expires": "soon"}).status_code == 422
    assert a.http.post("/api/v1/tags", json={"address": a.address, "name": "x2", "expires": "0d"}).status_code == 422
    assert a.http.post("/api/v1/tags", json={"address": a.address, "name": "x3", "folder": "../x"}).status_code == 422
    r = a.http.post("/api/v1/tags", json={"address": a.address, "name": "x4", "folder": "tag"})
    assert r.status_code == 201 and r.json()["folder"] == "tag"
    assert a.http.patch(f"/api/v1/tags/{r.json()['id']}", json={"folder": "screened"}).json()["folder"] == "screened"


def test_in_the_openapi_document(web: WebApp) -> None:
    admin = Account(web, admin=True)
    paths = admin.http.get("/openapi.json").json()["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/tags"]) and "delete" in paths["/api/v1/tags/{tag_id}"]
