"""API latency with a big event log, on SQLite and PostgreSQL.

    python -m tests.bench.bench_api [--events 10000000] [--backends sqlite,postgresql] [--runs 100]

Fills a fresh store with synthetic events (tests/bench/gen_events.py), starts a
real gateway process on it and times HTTP requests from one client:
first page of /api/v1/events with and without filters, a page deep in history
through the cursor, and /api/v1/stats for 30 days (cold: first call; warm:
past days cached). Targets: pages p95 < 50 ms, stats < 200 ms.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import time
import uuid
from collections.abc import Callable

import httpx

from sendergate.store import Store, queries
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


def bench(url: str, events: int, runs: int) -> list[tuple[str, float, float]]:
    store = Store(url)
    store.migrate()
    print(f"generating {events:,} events ...", flush=True)
    print(f"  done in {generate(store, events):.0f} s", flush=True)
    _, user_token = store.add_user("busy@example.org")
    # the busy user of the generated data is user 1; give this token to it
    from sqlalchemy import text
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE api_tokens SET user_id = 1 WHERE user_id = "
                          "(SELECT user_id FROM user_addresses WHERE address = 'busy@example.org')"))
    _, admin_token = store.add_user("root@example.org", admin=True)
    results = []
    # what a search window costs in the store alone (no HTTP), to choose queries.SEARCH_WINDOW
    for window in (10_000, 20_000, 50_000):
        for who, scope in (("user", 1), ("admin", None)):
            for word in ("rare-needle", "no-such-word"):
                samples = []
                for _ in range(12):
                    t = time.perf_counter()
                    queries.events_page(store, scope, q=word, limit=50, window=window)
                    samples.append((time.perf_counter() - t) * 1000)
                samples = sorted(samples[2:])
                print(f"  store: window {window:,} {who} q={word}: median {statistics.median(samples):.1f} ms, "
                      f"max {samples[-1]:.1f} ms", flush=True)
    store.close()
    with GatewayProcess(store_url=url) as gw:
        for who, token in (("user", user_token), ("admin", admin_token)):
            c = httpx.Client(base_url=gw.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            first = c.get("/api/v1/events", params={"limit": 50}).json()
            deep_id = first["items"][0]["id"] // 10  # 90 % of the way back in history
            cases = {
                "events first page": lambda: c.get("/api/v1/events", params={"limit": 50}),
                "events first page verdict=spam": lambda: c.get("/api/v1/events", params={"limit": 50, "verdict": "spam"}),
                "events first page verdict=virus,tempfail": lambda: c.get(
                    "/api/v1/events", params={"limit": 50, "verdict": ["virus", "tempfail"]}),
                "events first page q=host42 (common)": lambda: c.get("/api/v1/events", params={"limit": 50, "q": "host42"}),
                "events first page q=rare-needle (rare)": lambda: c.get(
                    "/api/v1/events", params={"limit": 50, "q": "rare-needle"}),
                "events first page q=no-such-word (no match)": lambda: c.get(
                    "/api/v1/events", params={"limit": 50, "q": "no-such-word"}),
                "events first page since 1 day": lambda: c.get("/api/v1/events", params={
                    "limit": 50, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))}),
                "events deep page via cursor": lambda: c.get("/api/v1/events", params={"limit": 50, "cursor": cursor_for(deep_id)}),
                "events deep page via cursor verdict=spam": lambda: c.get(
                    "/api/v1/events", params={"limit": 50, "cursor": cursor_for(deep_id), "verdict": "spam"}),
            }
            for word in ("rare-needle", "no-such-word"):  # a search followed to the end of the history
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
    args = ap.parse_args()
    for backend in args.backends.split(","):
        print(f"== {backend}", flush=True)
        if backend == "sqlite":
            d = make_service_dir("sendergate-bench-")
            try:
                res = bench(f"sqlite:///{d}/state.db", args.events, args.runs)
            finally:
                remove_service_dir(d)
        else:
            with PostgresServer() as pg:
                res = bench(pg.create_database("bench_" + uuid.uuid4().hex[:8]), args.events, args.runs)
        print(f"\n{backend}, {args.events:,} events:")
        for name, med, p95 in res:
            print(f"| {name} | {med:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
