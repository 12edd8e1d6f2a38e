"""The group-commit writer thread and the SQLite WAL checkpointer (store/async_store.py), in process.

The crash test (a gateway SIGKILLed under load keeps every answered refusal) is
tests/test_gateway_crash.py; these check what must not happen in between: a caller told before its
batch is committed, a failed write failing its neighbours, and the WAL left to grow while the writer's
connections no longer checkpoint.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import AsyncStore, Store, StoreError

pytestmark = pytest.mark.fast

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def event(i: int) -> EventRecord:
    return EventRecord(ts=NOW, verdict=Verdict.CHALLENGED, reason="test", sender=f"s{i}@stranger.test",
                       recipient="r@example.org", subject="x" * 200, details={"n": i, "pad": "y" * 3000})


@pytest.fixture()
def store(tmp_path: Path) -> Any:
    s = Store(f"sqlite:///{tmp_path}/state.db")
    s.migrate()
    yield s
    s.close()


def test_each_caller_is_answered_after_its_commit_and_alone_in_its_failure(store: Store, tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")

    def seen_by_another_connection(conn: Any, i: int) -> int:  # runs inside the batch's transaction
        store.add_event_tx(conn, event(i))
        return i

    def fails(conn: Any) -> None:
        raise ValueError("bad write")

    async def sessions() -> tuple[list[Any], list[Any]]:
        astore = AsyncStore(store)
        astore.start()
        try:
            async def one(i: int) -> Any:
                if i == 47:
                    with pytest.raises(StoreError):
                        await astore.write(fails)
                    return None
                got = await astore.write(seen_by_another_connection, i)
                # told only now: another connection sees the row already (committed, not pending)
                other = sqlite3.connect(db)
                try:
                    found = other.execute("SELECT count(*) FROM events WHERE sender = ?",
                                          (f"s{i}@stranger.test",)).fetchone()[0]
                finally:
                    other.close()
                return got, found
            good = await asyncio.gather(*(one(i) for i in range(40)))
            mixed = await asyncio.gather(*(one(i) for i in range(40, 60)))  # a bad write amid good ones
            return good, mixed
        finally:
            await astore.close()

    good, mixed = asyncio.run(sessions())
    assert good == [(i, 1) for i in range(40)]
    assert [a for a in mixed if a is not None] == [(i, 1) for i in range(40, 60) if i != 47]
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 59


def test_the_checkpointer_moves_the_wal_into_the_database_while_the_writer_runs(store: Store,
                                                                              tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with store.engine.connect() as conn:  # start from an empty WAL
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    size_before = db.stat().st_size

    async def sessions() -> tuple[int, int]:
        astore = AsyncStore(store)
        astore.start()
        try:
            for burst in range(20):  # ~7 MB: past SQLite's own automatic checkpoint (1,000 pages)
                await asyncio.gather(*(astore.record(event(burst * 100 + i)) for i in range(100)))
            # the writer's connection leaves the WAL to the checkpointer
            autocheckpoint = await astore.write(
                lambda conn: conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())
            for _ in range(200):  # up to 10 s for the checkpointer's next turn
                if db.stat().st_size > size_before:
                    break
                await asyncio.sleep(0.05)
            return autocheckpoint, db.stat().st_size
        finally:
            await astore.close()

    autocheckpoint, size_after = asyncio.run(sessions())
    assert autocheckpoint == 0
    # the events reached the database file while the writer ran: nobody else would have copied them
    assert size_after > size_before + 1024 * 1024, (size_before, size_after, os.path.getsize(f"{db}-wal"))
