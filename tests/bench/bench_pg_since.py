"""PostgreSQL: the plan of a sparse user's `since` page, with and without an index on (user_id, ts), and
what that index costs every event insert (issue 18 item 4).

    .venv/bin/python -m tests.bench.bench_pg_since [--events 1000000] [--days 9] [--inserts 3000]

Seeds a fresh database with generated events (tests/bench/gen_events.py), adds user 999 with 300 events
spread over the period and user 998 with 5,000 events all older than a day, prints EXPLAIN (ANALYZE,
BUFFERS) of the API's first page (`user_id = :u AND ts >= now - 1 day ORDER BY id DESC LIMIT 51`) for users
2, 999 and 998 before and after creating the index, then times single-event transactions with and without
it (interleaved rounds).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone

from sqlalchemy import text

from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import Store
from tests.bench.gen_events import generate
from tests.support.postgres import PostgresServer

PAGE = ("EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM events WHERE user_id = :u AND ts >= :s "
        "ORDER BY id DESC LIMIT 51")


def explain(store: Store, label: str, since: float) -> None:
    with store.engine.connect() as c:
        for u in (2, 999, 998):
            for _ in range(3):  # warm
                rows = [r[0] for r in c.execute(text(PAGE), {"s": since, "u": u})]
            print(f"--- {label}, user {u}\n" + "\n".join(rows), flush=True)


def inserts_per_second(store: Store, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        with store.engine.begin() as conn:
            store.add_event_tx(conn, EventRecord(ts=datetime.now(timezone.utc), verdict=Verdict.CHALLENGED,
                                                 reason="challenged", sender=f"s{i}@x.test", recipient="r@x.test",
                                                 user_id=1 + i % 100, subject="hello"))
    return n / (time.perf_counter() - t)


def set_index(store: Store, on: bool) -> None:
    with store.engine.begin() as c:
        c.execute(text("DROP INDEX IF EXISTS ix_events_user_ts"))
        if on:
            c.execute(text("CREATE INDEX ix_events_user_ts ON events (user_id, ts)"))
        c.execute(text("ANALYZE events"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=9)
    ap.add_argument("--inserts", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    with PostgresServer() as pg:
        store = Store(pg.create_database("since"))
        store.migrate()
        generate(store, args.events, days=args.days)
        with store.engine.begin() as c:
            now = float(c.execute(text("SELECT max(ts) FROM events")).scalar() or time.time())
            c.execute(text("INSERT INTO events (ts, user_id, verdict, sender, recipient) SELECT :n - x * :step, 999, "
                           "'delivered', 's@x.test', 'r@x.test' FROM generate_series(1, 300) x"),
                      {"n": now, "step": args.days * 86400 / 300})
            c.execute(text("INSERT INTO events (ts, user_id, verdict, sender, recipient) SELECT :n - 2 * 86400 - x, "
                           "998, 'delivered', 's@x.test', 'r@x.test' FROM generate_series(1, 5000) x"), {"n": now})
        set_index(store, False)
        explain(store, "without (user_id, ts)", now - 86400)  # migration 0010 creates it: dropped first
        set_index(store, True)
        explain(store, "with (user_id, ts)", now - 86400)
        rates: dict[bool, list[float]] = {False: [], True: []}
        for r in range(args.rounds):
            for on in ((False, True) if r % 2 == 0 else (True, False)):
                set_index(store, on)
                rates[on].append(inserts_per_second(store, args.inserts))
                state = "with" if on else "without"
                print(f"round {r + 1}: {state} the index {rates[on][-1]:.0f} events/s", flush=True)
        for on, v in rates.items():
            print(f"{'with' if on else 'without'} the index: median {statistics.median(v):.0f} events/s "
                  f"(one transaction each; {min(v):.0f}-{max(v):.0f})")
        store.close()


if __name__ == "__main__":
    main()
