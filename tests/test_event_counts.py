"""event_counts, the daily rollup behind /api/v1/stats, against SQLite and a real PostgreSQL:
kept by every way the store writes and prunes events, and backfilled by migration 0003."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta, timezone
from importlib import resources

import pytest
from sqlalchemy import insert, select

from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import AsyncStore, Store, schema

DAY = 86400
# noon of a fixed UTC day, so "the cut day" of a prune is known
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(store_url: str):
    s = Store(store_url)
    s.migrate()
    yield s
    s.close()


def counted(store: Store) -> dict[tuple[int, int, str], int]:
    with store.engine.connect() as conn:
        return {(u, d, v): n for u, d, v, n in conn.execute(select(schema.event_counts))}


def from_events(store: Store) -> dict[tuple[int, int, str], int]:
    """What the rollup must hold, counted in Python from the events themselves."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(schema.events.c.ts, schema.events.c.user_id, schema.events.c.verdict)).all()
    return dict(Counter((u or 0, int(ts // DAY), v) for ts, u, v in rows))


def event(ts: datetime, user_id: int | None, verdict: Verdict = Verdict.DELIVERED) -> EventRecord:
    return EventRecord(ts=ts, verdict=verdict, reason="test", sender="s@bulk.test", recipient="r@example.org",
                       user_id=user_id)


def test_counts_follow_every_write_and_prune(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    bob, _ = store.add_user("bob@example.org")
    # a bulk write over several days, users and "no user"
    store.add_events([event(NOON - timedelta(days=d, hours=h), u, v)
                      for d in range(4) for h in (0, 6, 11)
                      for u, v in ((alice.id, Verdict.SPAM), (bob.id, Verdict.DELIVERED),
                                   (None, Verdict.RELAY_DENIED))])
    assert counted(store) == from_events(store)
    assert counted(store)[(alice.id, int(NOON.timestamp()) // DAY, "spam")] == 3
    assert counted(store)[(0, int(NOON.timestamp()) // DAY, "relay_denied")] == 3

    # one event in its own transaction (add_event_tx outside a group commit)
    with store.engine.begin() as conn:
        store.add_event_tx(conn, event(NOON, alice.id, Verdict.SPAM))
    assert counted(store)[(alice.id, int(NOON.timestamp()) // DAY, "spam")] == 4

    # the SMTP side's group commit: many sessions' events in one transaction
    async def sessions() -> None:
        astore = AsyncStore(store)
        astore.start()
        try:
            await asyncio.gather(*(astore.record(event(NOON + timedelta(minutes=i), (alice.id, bob.id, None)[i % 3],
                                                       (Verdict.CHALLENGED, Verdict.SPAM)[i % 2]))
                                   for i in range(60)))
        finally:
            await astore.close()

    asyncio.run(sessions())
    assert counted(store) == from_events(store)
    assert sum(counted(store).values()) == 36 + 1 + 60

    # a prune that cuts a day in two: earlier days go whole, the cut day keeps its later events
    cut = NOON - timedelta(days=2, hours=3)  # 09:00 two days back: drops that day's 01:00 and 06:00
    assert store.prune_events(cut.timestamp()) == 3 * 3 + 2 * 3  # all of the day before, and 01:00 and 06:00
    assert counted(store) == from_events(store)
    cut_day = int(cut.timestamp()) // DAY
    assert counted(store)[(alice.id, cut_day, "spam")] == 1 and min(d for _, d, _ in counted(store)) == cut_day
    assert store.prune_events(cut.timestamp()) == 0  # again: nothing more to take away
    assert counted(store) == from_events(store)
    assert all(n > 0 for n in counted(store).values())

    before = counted(store)
    store.recount_events()
    assert counted(store) == before


def test_day_counts_for_a_user_and_for_an_admin(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    bob, _ = store.add_user("bob@example.org")
    store.add_events([event(NOON, alice.id, Verdict.SPAM), event(NOON, alice.id, Verdict.SPAM),
                      event(NOON, bob.id, Verdict.SPAM), event(NOON, None, Verdict.UNKNOWN_RECIPIENT),
                      event(NOON - timedelta(days=1), bob.id, Verdict.DELIVERED),
                      event(NOON - timedelta(days=5), alice.id, Verdict.DELIVERED)])
    today = int(NOON.timestamp()) // DAY
    mine = store.day_counts(alice.id, today - 2, today)
    assert mine == {today - 2: {}, today - 1: {}, today: {"spam": 2}}
    everyone = store.day_counts(None, today - 2, today)
    assert everyone == {today - 2: {}, today - 1: {"delivered": 1}, today: {"spam": 3, "unknown_recipient": 1}}


def test_migration_0003_counts_the_existing_log(store_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    store = Store(store_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(resources.files("sendergate.store") / "migrations"))
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0002")
            rows = [{"ts": (NOON - timedelta(hours=7 * i)).timestamp(), "user_id": (None, 1, 2)[i % 3],
                     "verdict": ("spam", "delivered")[i % 2]} for i in range(50)]
            conn.execute(insert(schema.events), rows)  # the events table as 0002 left it
        store.migrate()
        assert counted(store) == from_events(store) and sum(counted(store).values()) == 50
    finally:
        store.close()
