"""API latency with a big event log, on SQLite and PostgreSQL.

    python -m tests.bench.bench_api [--events 10000000] [--backends sqlite,postgresql] [--runs 100]

Fills a fresh store with synthetic events (tests/bench/gen_events.py), starts a
real gateway process on it and times HTTP requests from one client, as a busy
user, a sparse user and an admin: first page of /api/v1/events with and without
filters (text searches among them, and searches followed to the end of the
history), a page deep in history through the cursor, /api/v1/stats for 30
days (cold: first call; warm: later calls), and /api/v1/screened (first page of
200 senders over 90 days, cold and warm, and the next page through its cursor).
Targets: pages p95 < 50 ms, stats < 200 ms; Screened the same at 10 M events as
at 10 k (issue 18). `--only screened` runs only the cases whose name holds it.

`--only history` times GET /api/v1/senders/history (issue 17 item 3) after making one domain big: one
event in seven (every user's) becomes one of 50 senders at bigmail.test, a freemail domain's share; it
times an address there, the whole domain, a small domain (host42.test, ~1 in 5,000 events), and a next page.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import time
import uuid
from collections.abc import Callable

import httpx

from sendergate.store import Store
from tests.bench.gen_events import generate
from tests.support.common import make_service_dir, remove_service_dir
from tests.support.gateway import GatewayProcess
from tests.support.postgres import PostgresServer


def timed(fn: Callable[[], httpx.Response], runs: int) -> tuple[float, float]:
    """(median, p95) in ms over `runs` calls after 3 warm-up calls."""
    for _ in range(3):
        fn().raise_for_status()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn().raise_for_status()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def cursor_for(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).rstrip(b"=").decode()


def bench(url: str, events: int, runs: int, only: str = "") -> list[tuple[str, float, float]]:
    store = Store(url)
    store.migrate()
    print(f"generating {events:,} events ...", flush=True)
    print(f"  done in {generate(store, events):.0f} s", flush=True)
    # tokens for two users of the generated data: user 1 has a tenth of all events (busy), user 2 about
    # one in a hundred (sparse: their rows lie far apart in the table, which is what a search pays for)
    from sqlalchemy import text
    tokens = []
    for who, user_id in (("busy user", 1), ("sparse user", 2)):
        address = f"bench-{user_id}@example.org"
        _, token = store.add_user(address)
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE api_tokens SET user_id = :u WHERE user_id = "
                              "(SELECT user_id FROM user_addresses WHERE address = :a)"), {"u": user_id, "a": address})
            share = conn.execute(text("SELECT count(*) FROM events WHERE user_id = :u"), {"u": user_id}).scalar()
        print(f"  {who}: user {user_id}, {share:,} events", flush=True)
        tokens.append((who, token))
    _, admin_token = store.add_user("root@example.org", admin=True)
    tokens.append(("admin", admin_token))
    if only and only in "history":
        with store.engine.begin() as conn:  # a big domain: one event in seven, 50 senders
            conn.execute(text("UPDATE events SET sender = 'friend' || (id % 50) || '@BigMail.test' WHERE id % 7 = 3"))
        if not store.is_sqlite:
            with store.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE events"))
        else:
            with store.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
    results = []
    store.close()
    with GatewayProcess(store_url=url) as gw:
        for who, token in tokens:
            c = httpx.Client(base_url=gw.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            first = c.get("/api/v1/events", params={"limit": 50}).json()
            deep_id = first["items"][0]["id"] // 10  # 90 % of the way back in history
            cases = {
                "events first page": lambda: c.get("/api/v1/events", params={"limit": 50}),
                "events first page verdict=spam": lambda: c.get(
                    "/api/v1/events", params={"limit": 50, "verdict": "spam"}),
                "events first page verdict=virus,tempfail": lambda: c.get(
                    "/api/v1/events", params={"limit": 50, "verdict": ["virus", "tempfail"]}),
                "events first page q=host42 (common)": lambda: c.get(
                    "/api/v1/events", params={"limit": 50, "q": "host42"}),
                "events first page q=rare-needle (rare)": lambda: c.get(
                    "/api/v1/events", params={"limit": 50, "q": "rare-needle"}),
                "events first page q=no-such-word (no match)": lambda: c.get(
                    "/api/v1/events", params={"limit": 50, "q": "no-such-word"}),
                "events first page since 1 day": lambda: c.get("/api/v1/events", params={
                    "limit": 50, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))}),
                "events deep page via cursor": lambda: c.get(
                    "/api/v1/events", params={"limit": 50, "cursor": cursor_for(deep_id)}),
                "events deep page via cursor verdict=spam": lambda: c.get(
                    "/api/v1/events", params={"limit": 50, "cursor": cursor_for(deep_id), "verdict": "spam"}),
            }
            t = time.perf_counter()
            screened = c.get("/api/v1/screened", params={"days": 90, "limit": 200})
            screened.raise_for_status()
            cold = (time.perf_counter() - t) * 1000
            results.append((f"{who}: screened first page, cold (first call)", cold, cold))
            print(f"  {who}: screened first page cold {cold:.1f} ms, {len(screened.json()['items'])} senders",
                  flush=True)
            next_cursor = screened.json()["next_cursor"]
            cases["screened first page (200 senders, 90 days)"] = lambda: c.get(
                "/api/v1/screened", params={"days": 90, "limit": 200})
            if next_cursor:
                cases["screened next page via cursor"] = lambda: c.get(
                    "/api/v1/screened", params={"limit": 200, "cursor": next_cursor})
            hist = "/api/v1/senders/history"
            cases["history sender first page (with counts)"] = lambda: c.get(
                hist, params={"sender": "friend7@bigmail.test", "limit": 50})
            cases["history big domain first page (with counts)"] = lambda: c.get(
                hist, params={"sender": "friend7@bigmail.test", "domain": "true", "limit": 50})
            cases["history small domain first page (with counts)"] = lambda: c.get(
                hist, params={"sender": "@host42.test", "limit": 50})
            later = c.get(hist, params={"sender": "@bigmail.test", "limit": 50}).json()["next_cursor"]
            if later:
                cases["history big domain next page via cursor"] = lambda: c.get(
                    hist, params={"sender": "@bigmail.test", "limit": 50, "cursor": later})
            if only:
                cases = {k: v for k, v in cases.items() if only in k}
            for word in ("rare-needle", "no-such-word") if not only or only in "q=" else ():
                # a search followed to the end of the history
                t, pages, found, cursor = time.perf_counter(), 0, 0, None
                while True:
                    body = c.get("/api/v1/events", params={"limit": 50, "q": word, "cursor": cursor}).json()
                    pages, found, cursor = pages + 1, found + len(body["items"]), body["next_cursor"]
                    if cursor is None:
                        break
                whole = (time.perf_counter() - t) * 1000
                results.append((f"{who}: q={word} followed to the end ({pages} pages, {found} found)", whole, whole))
                print(f"  {who}: q={word} to the end: {pages} pages, {found} found, {whole:.0f} ms", flush=True)
            t = time.perf_counter()
            c.get("/api/v1/stats", params={"days": 30}).raise_for_status()
            cold = (time.perf_counter() - t) * 1000
            results.append((f"{who}: stats 30 days, cold (first call)", cold, cold))
            cases["stats 30 days, warm"] = lambda: c.get("/api/v1/stats", params={"days": 30})
            for name, fn in cases.items():
                med, p95 = timed(fn, runs)
                results.append((f"{who}: {name}", med, p95))
                print(f"  {who}: {name:45s} median {med:7.1f} ms   p95 {p95:7.1f} ms", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--only", default="", help="run only the cases whose name holds this (e.g. screened)")
    args = ap.parse_args()
    for backend in args.backends.split(","):
        print(f"== {backend}", flush=True)
        if backend == "sqlite":
            d = make_service_dir("sendergate-bench-")
            try:
                res = bench(f"sqlite:///{d}/state.db", args.events, args.runs, args.only)
            finally:
                remove_service_dir(d)
        else:
            with PostgresServer() as pg:
                res = bench(pg.create_database("bench_" + uuid.uuid4().hex[:8]), args.events, args.runs, args.only)
        print(f"\n{backend}, {args.events:,} events:")
        for name, med, p95 in res:
            print(f"| {name} | {med:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
