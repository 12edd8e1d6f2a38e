"""Fill a SenderGate store with N synthetic events, fast, inside the database itself.

    python -m tests.bench.gen_events STORE_URL COUNT [--users 100] [--days 90]

Events are spread evenly over the last `days` days (ids grow with time, as in
production), over `users` users (user 1 gets a tenth of all, like a busy
mailbox; about 2 % have no user: relay and unknown-recipient refusals), with
a realistic verdict mix. The schema must exist (Store.migrate()). The daily
counts (event_counts) are rebuilt from the events afterwards.
"""

from __future__ import annotations

import argparse
import time

from sqlalchemy import text

from sendergate.store import Store

# verdict mix by share of 1000 (a rejecting gateway sees mostly refusals)
MIX = [("delivered", 300), ("challenged", 200), ("spam", 180), ("bulk", 80), ("screened", 60), ("blocked", 50),
       ("relay_denied", 60), ("unknown_recipient", 50), ("virus", 10), ("tempfail", 10)]


def _verdict_case(expr: str) -> str:
    parts, upto = [], 0
    for verdict, share in MIX:
        upto += share
        parts.append(f"WHEN ({expr}) < {upto} THEN '{verdict}'")
    return "CASE " + " ".join(parts) + " ELSE 'delivered' END"


def generate(store: Store, count: int, *, users: int = 100, days: int = 90, batch: int = 1_000_000) -> float:
    """Insert `count` events; returns seconds taken."""
    now = time.time()
    start_ts = now - days * 86400
    step = days * 86400 / count
    started = time.monotonic()
    with store.engine.begin() as conn:
        have = conn.execute(text("SELECT count(*) FROM users")).scalar() or 0
        for u in range(have + 1, users + 1):
            conn.execute(text("INSERT INTO users (id, name, role, created_at) VALUES (:id, :n, 'user', :t)"),
                         {"id": u, "n": f"bench {u}", "t": now})
            conn.execute(text("INSERT INTO user_addresses (user_id, address, is_primary) VALUES (:id, :a, 1)"),
                         {"id": u, "a": f"user{u}@example.org"})
        if not store.is_sqlite:  # ids given explicitly: move the sequence past them
            conn.execute(text("SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))"))
    for first in range(0, count, batch):
        n = min(batch, count - first)
        if store.is_sqlite:
            series = (f"WITH RECURSIVE g(x) AS (SELECT {first} UNION ALL SELECT x + 1 FROM g "
                      f"WHERE x < {first + n - 1}) SELECT x FROM g")
            mod = "%"
        else:
            series = f"SELECT x FROM generate_series({first}::bigint, {first + n - 1}) AS x"
            mod = "%"
        user = (f"CASE WHEN x {mod} 50 = 0 THEN NULL WHEN x {mod} 10 = 0 THEN 1 "
                f"ELSE 2 + (x * 7919) {mod} {max(1, users - 1)} END")
        verdict = _verdict_case(f"(x * 104729) {mod} 1000")
        sql = f"""
            INSERT INTO events (ts, user_id, client_ip, helo, sender, recipient, verdict, reason, subject,
                                from_header, message_id, size, spam_score, virus, challenge_id, details)
            SELECT {start_ts} + x * {step}, {user}, '192.0.2.' || (x {mod} 250), 'mail' || (x {mod} 977) || '.test',
                   'sender' || ((x * 31) {mod} 200003) || '@host' || (x {mod} 5003) || '.test',
                   'user' || (x {mod} 100) || '@example.org', {verdict}, 'bench',
                   'Subject number ' || x || CASE WHEN x {mod} 1000 = 7 THEN ' rare-needle' ELSE '' END,
                   '', '<' || x || '@bench.test>', 1000 + x {mod} 50000, NULL, '', NULL, '{{}}'
            FROM ({series}) AS s"""
        with store.engine.begin() as conn:
            conn.execute(text(sql))
        print(f"  {first + n:>12,} events ({time.monotonic() - started:.0f} s)", flush=True)
    # the rows went in behind the store's back: count them into event_counts (the stats rollup) once
    store.recount_events()
    print(f"  daily counts rebuilt ({time.monotonic() - started:.0f} s)", flush=True)
    if not store.is_sqlite:
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE events"))
    else:
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url")
    ap.add_argument("count", type=int)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--days", type=int, default=90)
    args = ap.parse_args()
    store = Store(args.url)
    store.migrate()
    print(f"generated in {generate(store, args.count, users=args.users, days=args.days):.0f} s")


if __name__ == "__main__":
    main()
