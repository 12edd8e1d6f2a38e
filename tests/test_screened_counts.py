"""screened_counts, the per-sender rollup behind /api/v1/screened (issue 18 item 3), against SQLite and a
real PostgreSQL: kept by every way the store writes and prunes events, backfilled by migration 0009, rebuilt
by recount_events, and the page read from it equal to grouping the events themselves."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any

import pytest
from sqlalchemy import delete, insert, select

from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import AsyncStore, Store, schema

DAY = 86400
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
SENDERS = ["news@shop.test", "News@Shop.test", "receipts@bank.test", "letters@club.test", ""]
VERDICTS = [Verdict.SCREENED, Verdict.BULK, Verdict.DELIVERED, Verdict.CHALLENGED]


@pytest.fixture
def store(store_url: str):
    s = Store(store_url)
    s.migrate()
    yield s
    s.close()


def rolled(store: Store) -> dict[tuple[int, str, int], tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return {tuple(r[:3]): tuple(r[3:]) for r in conn.execute(select(schema.screened_counts))}


def from_events(store: Store) -> dict[tuple[int, str, int], tuple[Any, ...]]:
    """What the rollup must hold, grouped in Python from the events themselves."""
    e = schema.events.c
    out: dict[tuple[int, str, int], list[Any]] = {}
    with store.engine.connect() as conn:
        for i, ts, u, sender, v in conn.execute(select(e.id, e.ts, e.user_id, e.sender, e.verdict).order_by(e.id)):
            if v not in ("screened", "bulk") or not sender:
                continue
            k = (u or 0, sender.lower(), int(ts // DAY))
            o = out.setdefault(k, [0, 0, ts, ts, i])
            o[0] += v == "screened"
            o[1] += v == "bulk"
            o[2], o[3], o[4] = min(o[2], ts), max(o[3], ts), max(o[4], i)
    return {k: tuple(v) for k, v in out.items()}


def grouped_from_events(store: Store, scope: int | None, since: float, upto: int) -> list[tuple[Any, ...]]:
    """The Screened page as grouping the events gives it (the store's query before the rollup), whole days."""
    first = int(since // DAY) * DAY
    e = schema.events.c
    groups: dict[str, list[Any]] = {}
    with store.engine.connect() as conn:
        for i, ts, u, sender, v in conn.execute(select(e.id, e.ts, e.user_id, e.sender, e.verdict).order_by(e.id)):
            if v not in ("screened", "bulk") or not sender or ts < first or i > upto or (scope and u != scope):
                continue
            g = groups.setdefault(sender.lower(), [sender.lower(), 0, 0, 0, ts, ts])
            g[1] += v == "screened"
            g[2] += v == "bulk"
            g[3], g[4], g[5] = i, min(g[4], ts), max(g[5], ts)
    return sorted((tuple(g) for g in groups.values()), key=lambda g: -g[3])


def page_rows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["sender"], r["screened"], r["bulk"], r["last_id"], r["first_seen"], r["last_seen"]) for r in rows]


def event(ts: datetime, user_id: int | None, verdict: Verdict, sender: str, subject: str = "") -> EventRecord:
    return EventRecord(ts=ts, verdict=verdict, reason="test", sender=sender, recipient="r@example.org",
                       user_id=user_id, subject=subject)


def test_rollup_follows_every_write_prune_and_recount(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    bob, _ = store.add_user("bob@example.org")
    rnd = random.Random(18)
    users = (alice.id, bob.id, None)
    store.add_events([event(NOON - timedelta(days=d, hours=h), rnd.choice(users), rnd.choice(VERDICTS),
                            rnd.choice(SENDERS)) for d in range(4) for h in (0, 3, 6, 11)])
    assert rolled(store) == from_events(store) and rolled(store)
    with store.engine.begin() as conn:  # one event in its own transaction
        store.add_event_tx(conn, event(NOON, alice.id, Verdict.SCREENED, "NEWS@shop.test"))

    async def sessions() -> None:  # the SMTP side's group commit
        astore = AsyncStore(store)
        astore.start()
        try:
            await asyncio.gather(*(astore.record(event(NOON + timedelta(minutes=i), users[i % 3], VERDICTS[i % 4],
                                                       SENDERS[i % 5])) for i in range(40)))
        finally:
            await astore.close()

    asyncio.run(sessions())
    assert rolled(store) == from_events(store)
    cut = NOON - timedelta(days=2, hours=3)  # cuts a day in two: its first/last seen change, not only counts
    store.add_events([event(cut - timedelta(hours=1), bob.id, Verdict.BULK, "cut@day.test"),
                      event(cut + timedelta(hours=1), bob.id, Verdict.SCREENED, "cut@day.test")])
    assert store.prune_events(cut.timestamp()) > 0
    assert rolled(store)[(bob.id, "cut@day.test", int(cut.timestamp()) // DAY)][:3] == \
        (1, 0, (cut + timedelta(hours=1)).timestamp())
    assert rolled(store) == from_events(store)
    assert min(d for _, _, d in rolled(store)) == int(cut.timestamp()) // DAY
    before = rolled(store)
    with store.engine.begin() as conn:
        conn.execute(delete(schema.screened_counts))  # lost (or a bulk load that bypassed the store)
    store.recount_events()
    assert rolled(store) == before


@pytest.mark.parametrize("step", [500, 3])  # 3: a page's senders found over many steps of the rollup's rows
def test_page_from_the_rollup_equals_grouping_the_events(store: Store, step: int, monkeypatch) -> None:
    from sendergate.store import events as store_events
    monkeypatch.setattr(store_events, "SCAN_STEP", step)
    alice, _ = store.add_user("alice@example.org")
    bob, _ = store.add_user("bob@example.org")
    rnd = random.Random(5)
    senders = [f"s{i}@list{i % 4}.test" for i in range(30)] + ["S1@LIST1.test"]
    store.add_events([event(NOON - timedelta(hours=5 * i), rnd.choice((alice.id, bob.id)), rnd.choice(VERDICTS),
                            rnd.choice(senders), f"subject {i}") for i in range(400)])
    since = (NOON - timedelta(days=30)).timestamp()
    upto = store.max_event_id()
    for scope in (alice.id, None):
        want = grouped_from_events(store, scope, since, upto)
        got, before = [], None
        while True:  # pages of 7
            rows, before = store.screened_senders(scope, alice.id, since=since, upto_id=upto, before_id=before,
                                                  limit=7, now=NOON.timestamp())
            got += page_rows(rows)
            assert all(r["count"] == r["screened"] + r["bulk"] for r in rows)
            if before is None:
                break
        assert got == want and len(want) > 7


def test_a_pinned_page_does_not_count_what_came_after_it(store: Store) -> None:
    """A sender who writes again between two pages keeps the place and counts of the first page's moment."""
    alice, _ = store.add_user("alice@example.org")
    senders = [f"s{i}@shop.test" for i in range(6)]
    store.add_events([event(NOON + timedelta(minutes=i), alice.id, Verdict.SCREENED, s) for i, s in enumerate(senders)])
    since = (NOON - timedelta(days=1)).timestamp()
    upto = store.max_event_id()
    first, before = store.screened_senders(alice.id, alice.id, since=since, upto_id=upto, limit=3)
    assert [r["sender"] for r in first] == senders[:2:-1] and before is not None
    store.add_events([event(NOON + timedelta(hours=2), alice.id, Verdict.BULK, "S1@shop.test", "later"),
                      event(NOON + timedelta(hours=3), alice.id, Verdict.SCREENED, "new@shop.test")])
    rest, end = store.screened_senders(alice.id, alice.id, since=since, upto_id=upto, before_id=before, limit=3)
    assert page_rows(rest) == grouped_from_events(store, alice.id, since, upto)[3:] and end is None
    assert [(r["sender"], r["count"], r["latest_subject"]) for r in rest][1] == ("s1@shop.test", 1, "")
    now, _ = store.screened_senders(alice.id, alice.id, since=since, upto_id=store.max_event_id(), limit=3)
    assert [(r["sender"], r["count"]) for r in now[:2]] == [("new@shop.test", 1), ("s1@shop.test", 2)]


def test_migration_0009_groups_the_existing_log(store_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    store = Store(store_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(resources.files("sendergate.store") / "migrations"))
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0005")
            rows = [{"ts": (NOON - timedelta(hours=7 * i)).timestamp(), "user_id": (None, 1, 2)[i % 3],
                     "verdict": ("screened", "bulk", "spam")[i % 3], "sender": SENDERS[i % 5]} for i in range(60)]
            conn.execute(insert(schema.events), rows)  # the events table as 0005 left it
        store.migrate()
        assert rolled(store) == from_events(store) and len(rolled(store)) > 5
    finally:
        store.close()


def test_recount_command_rebuilds_a_lost_rollup(tmp_path) -> None:
    """`sendergate recount`: the rollups rebuilt from the event log (e.g. after a bulk load outside the store)."""
    import subprocess
    import sys
    url = f"sqlite:///{tmp_path}/s.db"
    cfg = tmp_path / "sendergate.toml"
    cfg.write_text(f'[domains]\nlocal = ["example.test"]\n[store]\nurl = "{url}"\n')
    store = Store(url)
    store.migrate()
    store.add_events([event(NOON - timedelta(hours=i), None, VERDICTS[i % 4], SENDERS[i % 5]) for i in range(30)])
    want = rolled(store)
    with store.engine.begin() as conn:
        conn.execute(delete(schema.screened_counts))
    store.close()
    r = subprocess.run([sys.executable, "-m", "sendergate", "recount", "--config", str(cfg)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "rebuilt" in r.stdout, r.stderr
    store = Store(url)
    assert rolled(store) == want and want
    store.close()


def test_recount_leaves_postgresql_the_rollups_real_size(pg_url: str) -> None:
    """PostgreSQL plans a Screened page by the rollup's statistics. Rows replaced wholesale by a recount
    were planned as the empty table's few until autovacuum came by: a busy user's page read and sorted all
    their rollup rows (1.3 s at 10 M events). After the recount the planner knows how many there are."""
    from sqlalchemy import text
    store = Store(pg_url)
    store.migrate()
    try:
        store.add_events([event(NOON - timedelta(hours=i), None, VERDICTS[i % 4], f"s{i}@bulk.test")
                          for i in range(400)])
        store.recount_events()
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM screened_counts")).scalar()
            planned = conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'screened_counts'")).scalar()
        assert rows and planned == rows
    finally:
        store.close()
