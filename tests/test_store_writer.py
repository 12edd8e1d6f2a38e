"""The group-commit writer thread and the SQLite WAL checkpointer (store/async_store.py), in process.

The crash test (a gateway SIGKILLed under load keeps every answered refusal) is
tests/test_gateway_crash.py; these check what must not happen in between: a caller told before its
batch is committed, a failed write failing its neighbours, and the WAL left to grow while the writer's
connections no longer checkpoint.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import AsyncStore, Store, StoreError, async_store
from sendergate.store.async_store import WRITE_QUEUE
from sendergate.store.engine import dbapi

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
            for _ in range(200):  # up to 10 s for the checkpointer's next turns (one may be half-way through)
                if db.stat().st_size > size_before + 1024 * 1024:
                    break
                await asyncio.sleep(0.05)
            return autocheckpoint, db.stat().st_size
        finally:
            await astore.close()

    autocheckpoint, size_after = asyncio.run(sessions())
    assert autocheckpoint == 0
    # the events reached the database file while the writer ran: nobody else would have copied them
    assert size_after > size_before + 1024 * 1024, (size_before, size_after, os.path.getsize(f"{db}-wal"))


def add_one(conn: Any, pause: float) -> int:
    """Read, wait, write back one more: a lost update if another writer ran its own in between."""
    db = dbapi(conn)
    (n,) = db.execute("SELECT n FROM tally").fetchall()[0]
    time.sleep(pause)
    db.execute("UPDATE tally SET n = ?", (n + 1,))
    return int(n)


def test_two_workers_writers_never_write_at_once(tmp_path: Path) -> None:
    """Two workers' writers (each its own Store, AsyncStore and event loop, as two processes have) on one
    database: a batch's reads and writes all happen inside the one write lock, so each read-then-write
    sees the other's last commit and none is lost."""
    url = f"sqlite:///{tmp_path}/state.db"
    first = Store(url)
    first.migrate()
    with first.engine.begin() as conn:
        conn.execute(text("CREATE TABLE tally (n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO tally VALUES (0)"))
    stores = [first, Store(url)]
    per_worker = 60

    def worker(store: Store, seen: list[int]) -> None:
        async def sessions() -> None:
            astore = AsyncStore(store)
            astore.start()
            try:
                for _ in range(per_worker // 3):  # bursts of three sessions: batches of one to three
                    seen.extend(await asyncio.gather(*(astore.write(add_one, 0.001) for _ in range(3))))
            finally:
                await astore.close()
        asyncio.run(sessions())

    seen: list[list[int]] = [[], []]
    threads = [threading.Thread(target=worker, args=(s, out)) for s, out in zip(stores, seen, strict=True)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        with first.engine.connect() as conn:
            total = conn.execute(text("SELECT n FROM tally")).scalar()
    finally:
        for s in stores:
            s.close()
    # every write read a different count: no two ever held what they read at once
    assert sorted(seen[0] + seen[1]) == list(range(2 * per_worker))
    assert total == 2 * per_worker


def committed(db: str, sender: str) -> int:
    """Events of `sender` another connection sees in the database file `db`."""
    other = sqlite3.connect(db)
    try:
        return int(other.execute("SELECT count(*) FROM events WHERE sender = ?", (sender,)).fetchone()[0])
    finally:
        other.close()


def test_a_writer_waits_for_the_queue_and_for_another_writer_and_answers_only_after_its_commit(
        store: Store, tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")

    async def sessions() -> None:
        astore = AsyncStore(store)
        astore.start()
        try:
            # another worker's writer holds the queue: this one waits, commits nothing, tells nobody
            held = os.open(db + WRITE_QUEUE, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(held, fcntl.LOCK_EX)
                queued = asyncio.ensure_future(astore.record(event(1)))
                await asyncio.sleep(0.3)
                assert not queued.done() and committed(db, "s1@stranger.test") == 0
                fcntl.flock(held, fcntl.LOCK_UN)
                await asyncio.wait_for(queued, 10)
                assert committed(db, "s1@stranger.test") == 1
            finally:
                os.close(held)
            # a writer that does not queue (the API, housekeeping) holds SQLite's write lock: the same
            api = sqlite3.connect(db, isolation_level=None)
            try:
                api.execute("BEGIN IMMEDIATE")
                queued = asyncio.ensure_future(astore.record(event(2)))
                await asyncio.sleep(0.3)
                assert not queued.done() and committed(db, "s2@stranger.test") == 0
                api.execute("COMMIT")
                await asyncio.wait_for(queued, 10)
                assert committed(db, "s2@stranger.test") == 1
            finally:
                api.close()
        finally:
            await astore.close()

    asyncio.run(sessions())


def hold_the_queue(db: str, *, frozen: bool = False) -> subprocess.Popen[str]:
    """Another worker's writer holding the write queue's flock: a process that took it (and, `frozen`,
    stopped itself with SIGSTOP while holding it)."""
    stop = "os.kill(os.getpid(), 19); " if frozen else ""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
        f"fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); {stop}time.sleep(600)"), db + WRITE_QUEUE],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_writer_that_died_holding_the_queue_does_not_stop_the_others(store: Store, tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    holder = hold_the_queue(db)
    try:

        async def sessions() -> int:
            astore = AsyncStore(store)
            astore.start()
            try:
                queued = asyncio.ensure_future(astore.record(event(3)))
                await asyncio.sleep(0.2)
                assert not queued.done()
                holder.kill()  # SIGKILL mid-"commit": the kernel drops its flock
                return await asyncio.wait_for(queued, 10)
            finally:
                await astore.close()

        assert asyncio.run(sessions()) > 0
    finally:
        holder.kill()
        holder.wait()


def test_a_write_stuck_behind_a_frozen_queue_holder_is_answered_with_an_error_and_never_committed(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another worker frozen (SIGSTOP) while it holds the write queue: the kernel keeps its flock. The
    session's write must not wait for ever (SQLite's busy timeout used to end such a wait with an error
    and the sender's 451): after QUEUE_WAIT it is taken back, its caller gets a StoreError, and it is not
    committed when the holder wakes up; a write queued after it is committed normally."""
    monkeypatch.setattr(async_store, "QUEUE_WAIT", 1.0)
    db = str(tmp_path / "state.db")
    holder = hold_the_queue(db, frozen=True)
    try:
        async def sessions() -> None:
            astore = AsyncStore(store)
            astore.start()
            try:
                stuck = asyncio.ensure_future(astore.record(event(4)))
                with pytest.raises(StoreError):
                    await asyncio.wait_for(stuck, 10)  # QUEUE_WAIT (1 s) plus the once-a-second check
                later = asyncio.ensure_future(astore.record(event(5)))
                holder.kill()  # the frozen holder goes away: the kernel drops its flock
                await asyncio.wait_for(later, 10)
            finally:
                holder.kill()  # also when the check failed: close() waits for the writer's flock
                await astore.close()

        asyncio.run(sessions())
        assert committed(db, "s4@stranger.test") == 0  # taken back: never written behind the caller's back
        assert committed(db, "s5@stranger.test") == 1
    finally:
        holder.kill()
        holder.wait()


def test_a_batch_whose_commit_fails_tells_no_caller_success_for_a_row_it_lost(store: Store,
                                                                              tmp_path: Path) -> None:
    """The COMMIT itself fails (a deferred constraint, checked only there): the batch's rows are gone, so
    each write is tried again alone; a caller is told success only for a row another connection then
    sees, the write that cannot commit gets the error, and the writer goes on."""
    db = str(tmp_path / "state.db")
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        conn.execute(text("CREATE TABLE child (pid INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"))

    def orphan(conn: Any) -> None:  # the statement succeeds; the COMMIT fails
        conn.execute(text("INSERT INTO child VALUES (99)"))

    def recorded(conn: Any, i: int) -> tuple[int, int]:
        store.add_event_tx(conn, event(i))
        return i, 0

    async def sessions() -> list[Any]:
        astore = AsyncStore(store)
        astore.start()
        try:
            async def one(i: int) -> Any:
                if i == 5:
                    with pytest.raises(StoreError, match="FOREIGN KEY"):
                        await astore.write(orphan)
                    return "failed"
                got = await astore.write(recorded, i)
                other = sqlite3.connect(db)
                try:  # told only once committed
                    seen = other.execute("SELECT count(*) FROM events WHERE sender = ?",
                                         (f"s{i}@stranger.test",)).fetchone()[0]
                finally:
                    other.close()
                return got[0], seen
            answers = await asyncio.gather(*(one(i) for i in range(10)))
            answers.append(await one(10))  # the writer goes on after a failed commit
            return answers
        finally:
            await astore.close()

    answers = asyncio.run(sessions())
    assert answers == [(i, 1) if i != 5 else "failed" for i in range(11)]
    other = sqlite3.connect(db)
    try:
        assert other.execute("SELECT count(*) FROM child").fetchone()[0] == 0
    finally:
        other.close()


def test_the_writer_takes_a_new_connection_when_postgresql_drops_its_own(postgres: Any) -> None:
    """The writer keeps one connection between batches; the server ending it (restart, failover,
    pg_terminate_backend) costs the batch on it a retry, write by write, not every later batch."""
    store = Store(postgres.create_database("wr_" + uuid.uuid4().hex[:10]))
    store.migrate()

    async def sessions() -> list[int]:
        astore = AsyncStore(store)
        astore.start()
        try:
            ids = [await astore.record(event(1))]
            kept = astore._conn
            assert kept is not None
            with store.engine.connect() as admin:  # every other session of this database, the writer's included
                admin.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            ids.append(await astore.record(event(2)))  # the dead connection's batch, retried alone
            ids.append(await astore.record(event(3)))
            assert astore._conn is not None and astore._conn is not kept and not astore._conn.invalidated
            return ids
        finally:
            await astore.close()

    try:
        ids = asyncio.run(sessions())
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 3
        assert len(set(ids)) == 3
    finally:
        store.close()
