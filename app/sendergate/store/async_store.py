"""The store for the event loop: reads on a small thread pool, writes group-committed."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from ..policy.address import Address
from ..policy.decide import EventRecord
from ..policy.lists import ListEntry
from .engine import dbapi
from .errors import StoreError, short
from .events import BATCH_COUNTS
from .fast_sqlite import can_read_inline, open_reader
from .fast_sqlite import rcpt_facts as sqlite_rcpt_facts
from .fast_sqlite import rcpt_lookup as sqlite_rcpt_lookup
from .modes import RcptFacts
from .store import Store

log = logging.getLogger(__name__)

WriteOp = Callable[..., Any]  # op(conn, *args), run inside a group commit
WRITE_QUEUE = "-writers"  # SQLite: beside the database file, the file on whose flock the group commits queue
CHECKPOINT_EVERY = 1.0  # seconds between the checkpointer's passive WAL checkpoints (SQLite; benchmarks.md)
# A write queued this long without its batch being taken (the writer stuck behind another process's lock:
# a worker frozen while it holds the write queue's flock) is taken back and its caller told to try again
# (the session's 451), as SQLite's busy timeout did for a lock held too long. Checked once a second.
QUEUE_WAIT = 5.0
NO_AUTOCHECKPOINT = "sendergate.no_autocheckpoint"  # conn.info key: this connection leaves the WAL to the checkpointer


def open_write_queue(path: str) -> int | None:
    """The WRITE_QUEUE file of the SQLite database at `path`, open for flock; None if it cannot be opened
    (then the writers wait in SQLite's busy handler, as before)."""
    try:
        return os.open(path + WRITE_QUEUE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        log.info("no write queue file beside the store (%s); writers wait in SQLite's busy handler", exc)
        return None


class AsyncStore:
    """The store for the event loop.

    Reads run on a small thread pool. Writes from many SMTP sessions are
    group-committed: whatever is queued while one commit is on its way to
    disk goes into the next transaction, so a busy gateway pays one fsync
    for many events and challenges. Each caller gets its own result or
    error once its write is durable.

    The writer is a thread of its own that takes the next batch as soon as
    a commit returns (it does not wait for the event loop to hand it one),
    and wakes the loop once per batch to settle that batch's callers: a
    session's wait is the commit's latency, not the loop's turnaround too.

    On SQLite a checkpointer thread copies the WAL into the database file
    every CHECKPOINT_EVERY, on its own connection, and the writer's
    connections do not checkpoint: SQLite's automatic checkpoint runs inside
    the COMMIT that crosses 1,000 pages, and that batch's callers would wait
    for it (copying and fsyncing the database file) after their rows were
    already durable in the WAL.
    """

    def __init__(self, store: Store, *, threads: int = 4) -> None:
        self.store = store
        # SQLite: this process's own read connection; False: none to be had, None: not tried yet
        self._reader: sqlite3.Connection | None | bool = None
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="store")
        # the writer thread's queue: (op, args, the caller's future); the condition wakes an idle writer
        self._pending: list[tuple[WriteOp, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._queued_at: list[float] = []  # when each pending write was queued (time.monotonic)
        self._queue_check: asyncio.TimerHandle | None = None
        self._ready = threading.Condition(threading.Lock())
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: threading.Thread | None = None
        self._conn: Connection | None = None  # the writer thread's own connection, kept between batches
        self._queue_fd: int | None = None  # SQLite: the file whose flock orders this host's writers (WRITE_QUEUE)
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_stop = threading.Event()

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise StoreError(short(exc)) from exc

    async def rcpt_facts(self, recipient: Address, sender: Address | None) -> tuple[int | None, list[ListEntry]]:
        """Store.rcpt_facts for the event loop. On SQLite it reads inline, on a connection of this
        process's own: a WAL reader does not wait for writers, and the two indexed lookups cost less
        than the hop to a thread and back. Every statement is its own read transaction, so a change
        committed by another process (the API, another worker or node) applies to the next RCPT."""
        reader = self._sqlite_reader()
        if reader is not None:
            try:
                return sqlite_rcpt_facts(reader, recipient, sender)
            except sqlite3.OperationalError as exc:  # busy (WAL recovery, checkpoint): wait on a thread instead
                log.info("inline RCPT lookup failed (%s); using the store's pool", exc)
            except sqlite3.Error as exc:
                raise StoreError(str(exc)) from exc
        facts: tuple[int | None, list[ListEntry]] = await self.run(self.store.rcpt_facts, recipient, sender)
        return facts

    async def rcpt_lookup(self, recipient: Address, sender: Address | None) -> RcptFacts:
        """rcpt_facts with the mailbox's mode (Store.rcpt_lookup); read inline on SQLite, as rcpt_facts."""
        reader = self._sqlite_reader()
        if reader is not None:
            try:
                return sqlite_rcpt_lookup(reader, recipient, sender)
            except sqlite3.OperationalError as exc:  # busy: wait on a thread instead
                log.info("inline RCPT lookup failed (%s); using the store's pool", exc)
            except sqlite3.Error as exc:
                raise StoreError(str(exc)) from exc
        facts: RcptFacts = await self.run(self.store.rcpt_lookup, recipient, sender)
        return facts

    def _sqlite_reader(self) -> sqlite3.Connection | None:
        if self._reader is None:
            path = self.store.engine.url.database if self.store.fast else None
            if not can_read_inline(path):
                self._reader = False
            else:
                assert path is not None
                self._reader = open_reader(path)  # None: try again next time
        return self._reader if isinstance(self._reader, sqlite3.Connection) else None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        path = self.store.engine.url.database if self.store.is_sqlite else None
        if can_read_inline(path):
            assert path is not None
            self._queue_fd = open_write_queue(path)
            try:
                ckpt = sqlite3.connect(path, timeout=0.05, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:  # SQLite's automatic checkpoints stay on
                log.info("no WAL checkpointer (%s); SQLite checkpoints in the commits", exc)
            else:
                self._checkpoint_stop.clear()
                self._checkpointer = threading.Thread(target=self._checkpoint_thread, args=(ckpt,),
                                                      name="store-checkpoint", daemon=True)
                self._checkpointer.start()
        self._writer = threading.Thread(target=self._write_thread, name="store-writer", daemon=True)
        self._writer.start()
        self._queue_check = self._loop.call_later(1.0, self._check_queue)

    def _checkpoint_thread(self, conn: sqlite3.Connection) -> None:
        try:
            while not self._checkpoint_stop.wait(CHECKPOINT_EVERY):
                try:  # PASSIVE: never waits for, nor blocks, a reader or a writer
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # busy (another worker's checkpoint): the next one catches up
                    log.debug("WAL checkpoint skipped: %s", exc)
        finally:
            conn.close()

    def _no_autocheckpoint(self, conn: Connection) -> None:
        """Leave the WAL to the checkpointer on this pooled connection (once per connection)."""
        if self._checkpointer is not None and not conn.info.get(NO_AUTOCHECKPOINT):
            dbapi(conn).execute("PRAGMA wal_autocheckpoint=0")
            conn.info[NO_AUTOCHECKPOINT] = True

    async def write(self, op: WriteOp, *args: Any) -> Any:
        """Run `op(conn, *args)` in the next group commit; returns its result once committed."""
        assert self._loop is not None, "AsyncStore.start() not called"
        fut: asyncio.Future[Any] = self._loop.create_future()
        with self._ready:
            self._pending.append((op, args, fut))
            self._queued_at.append(time.monotonic())
            self._ready.notify()
        return await fut

    def _check_queue(self) -> None:
        """Take back the writes queued longer than QUEUE_WAIT whose batch has not been taken: their callers
        get a StoreError (the session answers 451) and the writes are never committed."""
        assert self._loop is not None
        expired: list[asyncio.Future[Any]] = []
        with self._ready:
            bound = time.monotonic() - QUEUE_WAIT
            n = 0
            while n < len(self._queued_at) and self._queued_at[n] <= bound:
                n += 1
            if n:
                expired = [fut for _, _, fut in self._pending[:n]]
                del self._pending[:n], self._queued_at[:n]
        if expired:
            log.error("%d store writes waited over %.0f s for the write lock (another process holds it); "
                      "their senders are told to try again", len(expired), QUEUE_WAIT)
            for fut in expired:
                if not fut.done():
                    fut.set_exception(StoreError(f"the store's write lock was not free for {QUEUE_WAIT:.0f} s"))
        if not self._stopping:
            self._queue_check = self._loop.call_later(1.0, self._check_queue)

    async def record(self, record: EventRecord) -> int:
        """Store one event durably; returns its id."""
        event_id: int = await self.write(self.store.add_event_tx, record)
        return event_id

    def _write_thread(self) -> None:
        loop = self._loop
        assert loop is not None
        try:
            while True:
                with self._ready:
                    while not self._pending:
                        if self._stopping:
                            return
                        self._ready.wait()
                try:
                    batch, results = self._commit_pending()
                except Exception as exc:  # noqa: BLE001 - _commit_pending answers per write; this is its own failure
                    log.error("group commit failed: %s", short(exc))
                    batch = self._take()
                    results = [(False, exc)] * len(batch)
                try:  # one wake-up of the loop per batch; the callers are told only now, after the commit
                    loop.call_soon_threadsafe(self._settle, batch, results)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    return
        finally:
            self._release_conn()

    def _take(self) -> list[tuple[WriteOp, tuple[Any, ...], asyncio.Future[Any]]]:
        with self._ready:
            batch, self._pending = self._pending, []
            self._queued_at.clear()
        return batch

    @staticmethod
    def _settle(batch: list[tuple[WriteOp, tuple[Any, ...], asyncio.Future[Any]]],
                results: list[tuple[bool, Any]]) -> None:
        for (_, _, fut), (ok, value) in zip(batch, results, strict=True):
            if fut.done():  # the caller went away (session dropped); the write stands
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value if isinstance(value, StoreError) else StoreError(short(value)))

    def _held_conn(self) -> Connection:
        """The writer's own connection, checked out once and kept (no pool checkout and reset per batch)."""
        if self._conn is None:
            self._conn = self.store.engine.connect()
        self._no_autocheckpoint(self._conn)
        return self._conn

    def _release_conn(self) -> None:
        """Give the writer's connection back (after a failed batch: the next batch starts on a fresh one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()  # back to the pool, which rolls back anything left open
            except Exception as exc:  # noqa: BLE001 - a broken connection is discarded
                log.info("store writer's connection closed with an error: %s", short(exc))

    def _commit_pending(self) -> tuple[list[tuple[WriteOp, tuple[Any, ...], asyncio.Future[Any]]],
                                       list[tuple[bool, Any]]]:
        """Commit what is queued: (the batch, each write's (ok, result or error))."""
        batch: list[tuple[WriteOp, tuple[Any, ...], asyncio.Future[Any]]] = []

        def take() -> list[tuple[WriteOp, tuple[Any, ...]]]:
            batch.extend(self._take())
            return [(op, args) for op, args, _ in batch]
        return batch, self._commit(take)

    def _commit(self, take: Callable[[], list[tuple[WriteOp, tuple[Any, ...]]]]) -> list[tuple[bool, Any]]:
        """Run the writes `take()` returns in one transaction; each write's (ok, result or error).

        On SQLite the write lock is taken (BEGIN IMMEDIATE) before the writes are: while this worker waits
        for another process's commit, its sessions' writes keep queueing and go into this commit instead
        of the next one (fewer, larger commits; less time the workers hold the one write lock between them).
        Before it, the writer queues on WRITE_QUEUE's flock: the kernel wakes it the moment the other
        worker's commit returns, where SQLite's busy handler would sleep 1, 2, 5, 10 ms between tries
        (and a writer between two sleeps loses the lock to one that commits back to back). The flock
        only orders this host's writers; SQLite's lock, taken after it, is what excludes (the API and
        housekeeping write without it)."""
        ops = None
        try:
            conn = self._held_conn()
            queue = self._queue_fd
            if queue is not None:
                fcntl.flock(queue, fcntl.LOCK_EX)  # released by the kernel if this process dies holding it
            try:
                with conn.begin():  # commits on leaving; rolls back on an exception
                    if self.store.is_sqlite:
                        dbapi(conn).execute("BEGIN IMMEDIATE")
                    ops = take()
                    counts: Counter[tuple[int, int, str]] = Counter()
                    conn.info[BATCH_COUNTS] = counts  # add_event_tx counts here instead of upserting
                    try:
                        results = [(True, op(conn, *args)) for op, args in ops]
                    finally:
                        del conn.info[BATCH_COUNTS]
                    self.store.add_event_counts_tx(conn, counts)
            finally:
                if queue is not None:
                    fcntl.flock(queue, fcntl.LOCK_UN)
            return results
        except Exception as exc:  # noqa: BLE001 - one bad write must not fail its neighbours
            self._release_conn()
            if ops is None:
                ops = take()
            if len(ops) > 1:
                log.info("group commit of %d writes failed (%s); writing them one by one", len(ops), short(exc))
        return [self._commit_one(op, args) for op, args in ops]

    def _commit_one(self, op: WriteOp, args: tuple[Any, ...]) -> tuple[bool, Any]:
        error: Exception | None = None
        for attempt in range(3):
            try:
                conn: Connection
                with self.store.engine.begin() as conn:
                    self._no_autocheckpoint(conn)
                    if self.store.is_sqlite:  # its reads inside the write lock, as in a batch
                        dbapi(conn).execute("BEGIN IMMEDIATE")
                    return True, op(conn, *args)
            except (IntegrityError, sqlite3.IntegrityError) as exc:  # another writer got there first; a retry sees it
                error = exc
            except (OperationalError, sqlite3.OperationalError) as exc:  # SQLite: locked, or written since our snapshot
                error = exc
                if not self.store.is_sqlite:
                    break
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                log.error("store write failed: %s", short(exc))
                return False, exc
            time.sleep(0.01 * (attempt + 1))
        assert error is not None
        log.error("store write failed: %s", short(error))
        return False, error

    async def close(self) -> None:
        if self._queue_check is not None:
            self._queue_check.cancel()
            self._queue_check = None
        if self._writer is not None:
            with self._ready:  # the writer commits what is queued, then stops
                self._stopping = True
                self._ready.notify()
            await asyncio.to_thread(self._writer.join)  # the loop stays free to settle its last batch
            await asyncio.sleep(0)  # let the last batch's callers wake
            self._writer = None
        if self._checkpointer is not None:
            self._checkpoint_stop.set()
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        if self._queue_fd is not None:
            os.close(self._queue_fd)
            self._queue_fd = None
        self._pool.shutdown(wait=True)
        if isinstance(self._reader, sqlite3.Connection):
            self._reader.close()
        self._reader = None
