"""Two gateway processes sharing one PostgreSQL behave as one (resources/docs/several-nodes.md)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.gateway import GatewayProcess
from tests.test_api import SSEReader, challenge_from, send

pytestmark = pytest.mark.slow  # two gateway processes on PostgreSQL


def test_two_nodes_behave_as_one(two_nodes: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = two_nodes
    user, token = a.store.add_user("alice@example.org")
    api_a = httpx.Client(base_url=a.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    api_b = httpx.Client(base_url=b.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    stream_a = SSEReader(a, token)
    try:
        # a challenge made on node A is decided through node B's API ...
        challenge_from(a, "carol@friends.test", "alice@example.org", subject="via A")
        [ch] = api_b.get("/api/v1/challenges").json()["items"]
        assert ch["subject"] == "via A"
        assert api_b.post(f"/api/v1/challenges/{ch['id']}/approve").json()["challenge"]["status"] == "approved"
        # ... and applies to the very next SMTP transaction on node A
        assert send(a, "carol@friends.test", "alice@example.org")[0] == 250
        # a challenge opened on node A is confirmed through the store from node B (what B's confirmation page does)
        token_a = challenge_from(a, "dave@friends.test", "alice@example.org")
        state = b.store.link_state(token_a)
        assert state is not None and state.status == "pending"
        assert b.store.confirm(state.challenge_id)
        assert send(a, "dave@friends.test", "alice@example.org")[0] == 250
        # node A's live stream shows what node B recorded
        challenge_from(b, "erin@far.test", "alice@example.org", subject="recorded by B")
        m = stream_a.wait_for(lambda m: m["event"] == "event" and json.loads(m["data"])["subject"] == "recorded by B")
        assert json.loads(m["data"])["verdict"] == "challenged"
        stream_a.wait_for(lambda m: m["event"] == "challenge" and json.loads(m["data"])["id"] == ch["id"]
                          and json.loads(m["data"])["status"] == "approved")
        # both nodes page through the same log
        assert api_a.get("/api/v1/events").json() == api_b.get("/api/v1/events").json()
    finally:
        stream_a.close()
