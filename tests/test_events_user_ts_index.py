"""Migration 0010: events on (user_id, ts) on PostgreSQL, so a user's `since` page reads that user's rows of
the period (issue 18 item 4; adopted after tests/bench/bench_pg_refusal.py, see resources/docs/benchmarks.md).
SQLite keeps its indexes as they were (not measured to gain from it; every index costs each event write)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from sendergate.store import Store, schema
from tests.bench.gen_events import generate

INDEX = "ix_events_user_ts"


def test_migration_creates_the_index_on_postgresql_only(store_url: str) -> None:
    store = Store(store_url)
    try:
        store.migrate()
        indexes = {i["name"]: i["column_names"] for i in inspect(store.engine).get_indexes("events")}
        if store.is_sqlite:
            assert INDEX not in indexes
        else:
            assert indexes[INDEX] == ["user_id", "ts"]
        with store.engine.connect() as conn:  # schema.py declares what the migrations built, per backend
            declared = {i.name for i in schema.events.indexes
                        if not i._ddl_if or i._ddl_if.dialect in (None, conn.dialect.name)}
            # by name from the catalogue: SQLAlchemy does not reflect SQLite's expression indexes (0012)
            catalogue = ("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
                         "AND sql IS NOT NULL" if store.is_sqlite else
                         "SELECT indexname FROM pg_indexes WHERE tablename = 'events' AND indexname != 'events_pkey'")
            built = set(conn.execute(text(catalogue)).scalars())
        assert declared == built
    finally:
        store.close()


def plan_indexes(node: dict[str, Any]) -> set[str]:
    found = {node["Index Name"]} if "Index Name" in node else set()
    for child in node.get("Plans", ()):
        found |= plan_indexes(child)
    return found


@pytest.mark.parametrize("sparse_user", [998, 999])
def test_since_page_of_a_sparse_user_reads_the_index_on_postgresql(pg_url: str, sparse_user: int) -> None:
    """User 998: 500 events (0.5 % of the site's, as 5,000 in bench_pg_since's 1 M), none in the last day; 999: 300
    spread over 9 days. Before 0010 PostgreSQL walked
    ix_events_user_id backward through all of them (or ix_events_ts through the whole site's day)."""
    store = Store(pg_url)
    try:
        store.migrate()
        generate(store, 100_000, days=9)
        with store.engine.begin() as c:
            now = float(c.execute(text("SELECT max(ts) FROM events")).scalar_one())
            c.execute(text("INSERT INTO events (ts, user_id, verdict, sender, recipient) SELECT :n - x * 2592, 999, "
                           "'delivered', 's@x.test', 'r@x.test' FROM generate_series(1, 300) x"), {"n": now})
            c.execute(text("INSERT INTO events (ts, user_id, verdict, sender, recipient) SELECT :n - 2 * 86400 - x, "
                           "998, 'delivered', 's@x.test', 'r@x.test' FROM generate_series(1, 500) x"), {"n": now})
            c.execute(text("ANALYZE events"))
        e = schema.events.c
        # the statement events_page runs for a first page (keyset_page asks limit + 1 rows)
        page = (select(schema.events).where(e.user_id == sparse_user, e.ts >= now - 86400)
                .order_by(e.id.desc()).limit(51))
        sql = str(page.compile(store.engine, compile_kwargs={"literal_binds": True}))
        with store.engine.connect() as c:
            plan = c.execute(text("EXPLAIN (FORMAT JSON) " + sql)).scalar_one()
        plan = plan if isinstance(plan, list) else json.loads(plan)
        assert INDEX in plan_indexes(plan[0]["Plan"]), plan
        rows, _ = store.events_page(sparse_user, since=now - 86400)
        assert len(rows) == (0 if sparse_user == 998 else 33) or sparse_user == 999 and 32 <= len(rows) <= 34
    finally:
        store.close()
