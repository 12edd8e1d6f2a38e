"""The unknown-sender refusal through a real gateway on a PostgreSQL store, with and without an events
index: on (user_id, ts) (issue 18 item 4), or with `--index history` the two expression indexes of a
sender's history (migration 0012, issue 17 item 3). Each index is measured against the refusal rate
before it is adopted.

    .venv/bin/python -m tests.bench.bench_pg_refusal [--rounds 10] [--messages 2000] [--events 300000]
                                                     [--index user_ts|history]

One PostgreSQL cluster holds two databases, each migrated, seeded with the same generated events
(tests/bench/gen_events.py) and user alice@example.org; in "with" ix_events_user_ts exists (created if the
migrations did not), in "without" it is dropped. One gateway per database (this checkout's code) refuses
unknown senders under Postfix's smtp-source (-A, 20 clients, 4 KB); rounds interleave both in random order.
Printed: msg/s, the CPU time per message of the gateway's processes and of the whole PostgreSQL cluster
(postmaster and all its children: one gateway loads it at a time), medians and per-round with/without
ratios, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
from pathlib import Path

from sqlalchemy import bindparam, text

from sendergate.store import Store
from tests.bench.bench_smtp import load, raise_fd_limit
from tests.bench.bench_smtp_ab import TICK_MS, cpu_ticks
from tests.bench.gen_events import generate
from tests.support.gateway import GatewayProcess
from tests.support.postfix import SmtpSink
from tests.support.postgres import PostgresServer

# name -> the indexes it stands for, with their definitions
INDEXES = {
    "user_ts": {"ix_events_user_ts": "events (user_id, ts)"},
    "history": {"ix_events_sender_key": "events (lower(sender), id)",
                "ix_events_sender_domain": "events (lower(substr(sender, strpos(sender, '@') + 1)), id)"},
}
INDEX = "user_ts"


def seed(url: str, events: int) -> None:
    store = Store(url)
    store.migrate()
    generate(store, events, days=9)
    store.add_user("alice@example.org")
    store.close()


def set_index(url: str, on: bool) -> bool:
    """After the gateway started (it migrates: a revision that creates the index would put it back)."""
    store = Store(url)
    with store.engine.begin() as c:
        for name, definition in INDEXES[INDEX].items():
            c.execute(text(f"DROP INDEX IF EXISTS {name}"))
            if on:
                c.execute(text(f"CREATE INDEX {name} ON {definition}"))
        c.execute(text("ANALYZE events"))
    store.close()
    return on


def has_index(url: str) -> bool:
    store = Store(url)
    with store.engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM pg_indexes WHERE indexname IN :i").bindparams(
            bindparam("i", expanding=True)), {"i": list(INDEXES[INDEX])}).scalar()
    store.close()
    return n == len(INDEXES[INDEX])


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--index", choices=sorted(INDEXES), default="user_ts")
    args = ap.parse_args()
    global INDEX
    INDEX = args.index
    raise_fd_limit()
    print(f"load average at start: {loadavg()}", file=sys.stderr, flush=True)
    downstream = SmtpSink()
    gateways: dict[str, GatewayProcess] = {}
    with PostgresServer() as pg:
        postmaster = pg._postmaster_pid()
        assert postmaster is not None
        try:
            for name in ("without", "with"):
                url = pg.create_database(f"refusal_{name}")
                seed(url, args.events)
                gateways[name] = GatewayProcess(delivery=("smtp", f"127.0.0.1:{downstream.port}"), store_url=url,
                                                workers=0,
                                                extra={"smtp": {"max_connections_per_ip": 5000}}).start()
            for name, g in gateways.items():
                set_index(g.store_url, name == "with")
            rates: dict[str, list[float]] = {k: [] for k in gateways}
            gw_cpu: dict[str, list[float]] = {k: [] for k in gateways}
            pg_cpu: dict[str, list[float]] = {k: [] for k in gateways}
            for g in gateways.values():  # warm-up
                load(g.smtp_port, 300, "stranger@unknown.example", "alice@example.org")
            for rnd in range(args.rounds):
                order = list(gateways)
                random.shuffle(order)
                for k in order:
                    g = gateways[k]
                    before_g, before_pg = cpu_ticks(g.proc.pid), cpu_ticks(postmaster)
                    rates[k].append(load(g.smtp_port, args.messages, "stranger@unknown.example", "alice@example.org"))
                    gw_cpu[k].append((cpu_ticks(g.proc.pid) - before_g) * TICK_MS / args.messages)
                    pg_cpu[k].append((cpu_ticks(postmaster) - before_pg) * TICK_MS / args.messages)
                print(f"round {rnd + 1}/{args.rounds} (load {loadavg()}): "
                      + ", ".join(f"{k} {rates[k][-1]:.0f}/s gw {gw_cpu[k][-1]:.3f} pg {pg_cpu[k][-1]:.3f} ms/msg"
                                  for k in gateways), file=sys.stderr, flush=True)
            present = {k: has_index(g.store_url) for k, g in gateways.items()}
            print(f"({INDEX} present at the end: {present})")
            if present != {"without": False, "with": True}:
                raise SystemExit("the index was not as intended")
        finally:
            for g in gateways.values():
                g.close()
            downstream.stop()
    med = statistics.median
    print(f"\nrefusal on PostgreSQL, {args.rounds} interleaved rounds of {args.messages} messages, "
          f"{args.events} events seeded; load average at the end {loadavg()} ({os.cpu_count()} cores)")
    for k in gateways:
        print(f"{k:8} the index: {med(rates[k]):6.0f} msg/s ({min(rates[k]):.0f}-{max(rates[k]):.0f})  CPU ms/message "
              f"gateway {med(gw_cpu[k]):.3f}  PostgreSQL {med(pg_cpu[k]):.3f}  "
              f"sum {med([a + b for a, b in zip(gw_cpu[k], pg_cpu[k], strict=True)]):.3f}")
    both = {k: [a + b for a, b in zip(gw_cpu[k], pg_cpu[k], strict=True)] for k in gateways}

    def ratio(v: dict[str, list[float]]) -> float:
        return med(a / b for a, b in zip(v["with"], v["without"], strict=True))

    print(f"with/without per round, medians: rate {ratio(rates):.3f}  PostgreSQL CPU {ratio(pg_cpu):.3f}  "
          f"gateway+PostgreSQL CPU {ratio(both):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
