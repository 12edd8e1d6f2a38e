"""What the sender-history indexes (migration 0012) cost each event write, on SQLite and PostgreSQL.

    .venv/bin/python -m tests.bench.bench_history_index [--rounds 8] [--events 2000] [--seed 300000]

The refusal path writes one event per refused message (plus its challenge); every index of `events` is paid
on that write. Two stores per backend, seeded alike (tests/bench/gen_events.py), one with the two expression
indexes and one without; rounds insert `--events` refusal-like events one transaction each, alternating
between the stores in random order (this machine drifts). Printed: CPU ms per event write (this process
for SQLite; this process plus the whole PostgreSQL cluster for PostgreSQL), medians and the with/without
ratio per round. tests/bench/bench_pg_refusal.py --index history measures the whole SMTP refusal instead.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import datetime, timezone

from sqlalchemy import text

from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import Store
from tests.bench.bench_smtp_ab import TICK_MS, cpu_ticks
from tests.bench.gen_events import generate
from tests.support.common import make_service_dir, remove_service_dir
from tests.support.postgres import PostgresServer

HISTORY = ("ix_events_sender_key", "ix_events_sender_domain")


def prepared(url: str, seed: int, keep: bool) -> Store:
    store = Store(url)
    store.migrate()
    generate(store, seed, days=9)
    if not keep:
        with store.engine.begin() as c:
            for name in HISTORY:
                c.execute(text(f"DROP INDEX {name}"))
    return store


def write(store: Store, n: int, offset: int) -> None:
    now = datetime.now(timezone.utc)
    for i in range(n):
        record = EventRecord(ts=now, verdict=Verdict.CHALLENGED, reason="unknown sender: challenge sent",
                             client_ip="192.0.2.7", helo="mail.example.net",
                             sender=f"Stranger{offset + i}@Unknown{(offset + i) % 997}.example",
                             recipient="alice@example.org", user_id=1, subject="hello")
        with store.engine.begin() as conn:
            store.add_event_tx(conn, record)


def run(backend: str, url_for: dict[str, str], rounds: int, n: int, seed: int, postmaster: int | None) -> None:
    stores = {k: prepared(url, seed, k == "with") for k, url in url_for.items()}
    cpu: dict[str, list[float]] = {k: [] for k in stores}
    offset = 0
    for s in stores.values():
        write(s, 200, 10_000_000)  # warm-up
    for _ in range(rounds):
        order = list(stores)
        random.shuffle(order)
        for k in order:
            before = time.process_time(), cpu_ticks(postmaster) if postmaster else 0
            write(stores[k], n, offset)
            offset += n
            spent = (time.process_time() - before[0]) * 1000
            if postmaster:
                spent += (cpu_ticks(postmaster) - before[1]) * TICK_MS
            cpu[k].append(spent / n)
    for s in stores.values():
        s.close()
    med = statistics.median
    ratio = med(a / b for a, b in zip(cpu["with"], cpu["without"], strict=True))
    print(f"{backend}: CPU ms per event write, median of {rounds} rounds of {n}: "
          f"without {med(cpu['without']):.3f}  with {med(cpu['with']):.3f}  with/without per round {ratio:.3f}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=300_000)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    for backend in args.backends.split(","):
        if backend == "sqlite":
            d = make_service_dir("sendergate-bench-")
            try:
                run(backend, {k: f"sqlite:///{d}/{k}.db" for k in ("without", "with")}, args.rounds, args.events,
                    args.seed, None)
            finally:
                remove_service_dir(d)
        else:
            with PostgresServer() as pg:
                urls = {k: pg.create_database(f"hist_{k}") for k in ("without", "with")}
                run(backend, urls, args.rounds, args.events, args.seed, pg._postmaster_pid())


if __name__ == "__main__":
    main()
