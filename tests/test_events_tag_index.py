"""Migration 0015: events on (user_id, tag, id) where tag is set, so a user's GET /events?tag= page reads the
index instead of the user's whole log (measured: resources/docs/benchmarks.md). Both backends."""

from __future__ import annotations

import json

from sqlalchemy import text

from sendergate.store import Store
from tests.bench.gen_events import generate
from tests.test_events_user_ts_index import plan_indexes

INDEX = "ix_events_user_tag"
PAGE = "SELECT * FROM events WHERE user_id = 1 AND tag = :tag ORDER BY id DESC LIMIT 51"


def test_a_users_tag_page_reads_the_partial_index(store_url: str) -> None:
    store = Store(store_url)
    try:
        store.migrate()
        generate(store, 20_000, days=9)
        with store.engine.begin() as c:  # user 1 has 2,000: a rare tag on a few, another user's tag too
            c.execute(text("UPDATE events SET tag = 'rare' WHERE (user_id = 1 AND id % 37 = 0) "
                           "OR (user_id = 5 AND id % 7 = 0)"))
            c.execute(text("ANALYZE" if store.is_sqlite else "ANALYZE events"))
            rows = c.execute(text("SELECT id FROM events WHERE user_id = 1 AND tag = 'rare' ORDER BY id DESC"))
            rare = [r.id for r in rows]
        assert rare
        with store.engine.connect() as conn:
            if store.is_sqlite:
                plan = " ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + PAGE), {"tag": "rare"}))
                assert INDEX in plan, plan
                partial = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": INDEX}).scalar()
            else:
                conn.execute(text("SET enable_seqscan = off"))  # a small table: the plan a big one gets
                plan = conn.execute(text("EXPLAIN (FORMAT JSON) " + PAGE), {"tag": "rare"}).scalar()
                plan = json.loads(plan) if isinstance(plan, str) else plan  # psycopg decodes json itself
                assert INDEX in plan_indexes(plan[0]["Plan"]), plan
                partial = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                                       {"n": INDEX}).scalar()
        assert "tag IS NOT NULL" in str(partial)  # untagged events (the refusal path's) do not pay it
        page, _ = store.events_page(1, tag="rare", limit=50)
        assert [e["id"] for e in page] == rare[:50] and {e["user_id"] for e in page} == {1}
    finally:
        store.close()
