"""Mailbox modes through the API (SPEC §4.6, §6), in process on SQLite and PostgreSQL: the mode in GET /me,
PATCH /me {mode}, PATCH /users/{id} for admins only; and the store's RCPT lookup of the mode (the SQLite
fast path and SQLAlchemy give the same answer)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from sendergate.policy.address import parse
from sendergate.store.fast_sqlite import open_reader, rcpt_lookup
from tests.support.inprocess import WebApp, web_app

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def web(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebApp]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database("modes_" + uuid.uuid4().hex[:10])
    with web_app(tmp_path_factory.mktemp("web"), url, {"challenge": {"default_mode": "observe"}}) as app:
        yield app


def account(web: WebApp, *, admin: bool = False, n: list[int] = [0]) -> tuple[int, str, object]:  # noqa: B006
    n[0] += 1
    address = f"m{n[0]}-{uuid.uuid4().hex[:6]}@example.org"
    user, token = web.store.add_user(address, admin=admin)
    return user.id, address, web.client(token, source=f"127.0.9.{n[0]}")


def test_me_shows_the_default_then_the_users_mode(web: WebApp) -> None:
    uid, _, http = account(web)
    me = http.get("/api/v1/me").json()
    assert (me["mode"], me["mode_is_default"], me["address_modes"]) == ("observe", True, {})
    r = http.patch("/api/v1/me", json={"mode": "enforce"})
    assert r.status_code == 200 and r.json()["mode"] == "enforce" and not r.json()["mode_is_default"]
    assert http.get("/api/v1/me").json()["mode"] == "enforce"  # read fresh, not from the token cache
    assert http.patch("/api/v1/me", json={"mode": "default"}).json()["mode_is_default"] is True
    assert web.store.get_user(uid).mode is None


@pytest.mark.parametrize("body", [{"mode": "relaxed"}, {"mode": "OFF"}, {}, {"mode": "off", "user_id": 1},
                                  {"mode": None}])
def test_bad_mode_is_422_and_changes_nothing(web: WebApp, body: dict) -> None:
    uid, _, http = account(web)
    web.store.set_user_mode(uid, "enforce")
    r = http.patch("/api/v1/me", json=body)
    assert r.status_code == 422, r.text
    assert web.store.get_user(uid).mode == "enforce"


def test_only_an_admin_sets_another_users_mode(web: WebApp) -> None:
    victim, _, _ = account(web)
    web.store.set_user_mode(victim, "enforce")
    _, _, user = account(web)
    r = user.patch(f"/api/v1/users/{victim}", json={"mode": "off"})
    assert r.status_code == 403
    assert web.store.get_user(victim).mode == "enforce"
    _, _, admin = account(web, admin=True)
    r = admin.patch(f"/api/v1/users/{victim}", json={"mode": "off"})
    assert r.status_code == 200 and r.json() == {"id": victim, "mode": "off", "mode_is_default": False}
    assert web.store.get_user(victim).mode == "off"
    assert admin.patch("/api/v1/users/99999999", json={"mode": "off"}).status_code == 404
    assert web.client(None).patch(f"/api/v1/users/{victim}", json={"mode": "off"}).status_code == 401


def test_stats_count_observed(web: WebApp) -> None:
    _, _, http = account(web)
    assert "observed" in http.get("/api/v1/stats?days=1").json()["days"][-1]["counts"]


def test_rcpt_lookup_mode_and_fast_path(web: WebApp) -> None:
    uid, address, _ = account(web)
    web.store.add_alias(address, "info-" + address)
    web.store.set_user_mode(uid, "observe")
    web.store.set_address_mode("info-" + address, "off")
    cases = {address: "observe", "info-" + address: "off", address.replace("@", "+tag@"): "observe",
             address.upper(): "observe"}
    reader = open_reader(web.store.engine.url.database) if web.store.engine.url.get_backend_name() == "sqlite" else None
    for rcpt, mode in cases.items():
        facts = web.store.rcpt_lookup(parse(rcpt), parse("x@stranger.example"))
        assert (facts.user_id, facts.mode) == (uid, mode), rcpt
        if reader is not None:
            assert rcpt_lookup(reader, parse(rcpt), parse("x@stranger.example")) == facts
    assert web.store.rcpt_lookup(parse("nobody@example.org"), None).user_id is None


def test_migration_0007_keeps_users_in_the_default_mode(store_url: str) -> None:
    """A store as 0005 left it: after the upgrade its users and aliases have no mode (the config's default)."""
    from importlib import resources

    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import text

    from sendergate.store import Store

    s = Store(store_url)
    try:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(resources.files("sendergate.store") / "migrations"))
        with s.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0005")
        with s.engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id, name, role, created_at) VALUES (1, 'a', 'user', 0)"))
            conn.execute(text("INSERT INTO user_addresses (user_id, address, is_primary) "
                              "VALUES (1, 'a@example.org', 1), (1, 'info@example.org', 0)"))
        s.migrate()
        user = s.get_user(1)
        assert (user.addresses, user.mode, user.address_modes) == (("a@example.org", "info@example.org"), None, ())
        assert s.rcpt_lookup(parse("info@example.org"), None).mode is None
    finally:
        s.close()
