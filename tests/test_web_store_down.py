"""The HTTP side when the store goes away under a running gateway: the API and the confirmation page answer
503 with one line of their own (web/errors.py maps the store's exceptions for both), never a 500, and the
driver's error text (database names, hosts) stays in the gateway's log.

A real gateway process on a real PostgreSQL database that is dropped while the gateway runs.
"""

from __future__ import annotations

import uuid

import httpx
import psycopg
from psycopg import sql

from tests.support.gateway import GatewayProcess


def test_store_gone_is_503_on_the_api_and_the_confirmation_page(postgres: object) -> None:
    name = "down_" + uuid.uuid4().hex[:10]
    gw = GatewayProcess(store_url=postgres.create_database(name))  # type: ignore[attr-defined]
    gw.start()
    try:
        user, token = gw.store.add_user("alice@example.org")
        _, link = gw.store.open_challenge(user.id, "alice@example.org", "carol@y.org", ttl=3600, subject="hi")
        gw.store.close()
        api = httpx.Client(base_url=gw.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=20)
        page = httpx.Client(base_url=gw.http_url, timeout=20)
        assert api.get("/api/v1/me").status_code == 200  # the token is cached now: the next call reaches the route
        assert page.get(f"/c/{link}").status_code == 200

        with psycopg.connect(postgres.url(), autocommit=True) as conn:  # type: ignore[attr-defined]
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

        in_route = api.get("/api/v1/events")  # past the (cached) token check, in the route's store call
        in_gate = api.get("/api/v1/me", headers={"Authorization": "Bearer not-cached-" + "x" * 20})  # token lookup
        for r in (in_route, in_gate):
            assert r.status_code == 503, r.text
            assert r.json() == {"detail": "store unavailable; try again later"}

        for r in (page.get(f"/c/{link}"), page.post(f"/c/{link}", data={"answer": "123456"})):
            assert r.status_code == 503, r.text
            assert r.text == "temporarily unavailable; please try again in a few minutes\n"
            assert r.headers["retry-after"] == "60"
            assert r.headers["x-frame-options"] == "DENY"  # still the page's own security headers

        health = httpx.get(gw.http_url + "/healthz", timeout=20)
        assert health.status_code == 503 and health.json()["store"] == "unreachable"

        answers = in_route.text + in_gate.text + health.text
        assert name not in answers and "does not exist" not in answers
        log = gw.read_log()
        assert "store unavailable for" in log and name in log  # the reason, for the admin
        assert "confirmation page: store unavailable" in log
    finally:
        gw.close()
