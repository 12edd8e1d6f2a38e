"""What the confirmation page and the challenge cap cost, against a real gateway process (SQLite).

    .venv/bin/python tests/bench/bench_confirm.py [--pages 40]

- opening a new challenge with and without `challenge.max_pending` (the count on the pending
  index, read only when a sender has no pending challenge),
- a page view (a new CAPTCHA and a rate-limit count: two store writes),
- the first fetch of a picture (rendered, then kept in the store) and a repeated one (read back).
Medians of single requests over loopback; compare within one run (these machines drift).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx

from tests.support.gateway import GatewayProcess


def median_ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=40, help="page views (each with two picture fetches); <= 40")
    args = ap.parse_args()
    with GatewayProcess() as gw:
        store = gw.store
        user, _ = store.add_user("alice@example.org")
        for cap in (0, 1000, 0, 1000):
            times = []
            for i in range(200):
                started = time.perf_counter()
                store.open_challenge(user.id, "alice@example.org", f"c{cap}-{time.time_ns()}-{i}@x{i}.example",
                                     ttl=3600, max_pending=cap)
                times.append(time.perf_counter() - started)
            print(f"open a challenge for a new sender, max_pending={cap}: {median_ms(times)}")
        _, token = store.open_challenge(user.id, "alice@example.org", "page@x.example", ttl=3600)
        client = httpx.Client(base_url=gw.http_url, timeout=20)
        page, first, again = [], [], []
        for _ in range(min(args.pages, 40)):  # 120 views per client per 10 minutes
            started = time.perf_counter()
            r = client.get(f"/c/{token}")
            page.append(time.perf_counter() - started)
            m = re.search(r'name="nonce" value="([^"]+)"', r.text)
            assert m, r.text
            for times in (first, again):
                started = time.perf_counter()
                assert client.get(f"/c/{token}/captcha.png", params={"n": m.group(1)}).status_code == 200
                times.append(time.perf_counter() - started)
        print(f"page view (new CAPTCHA + rate count): {median_ms(page)}")
        print(f"first picture fetch (render + keep): {median_ms(first)}")
        print(f"repeated picture fetch (stored rendering): {median_ms(again)}")


if __name__ == "__main__":
    main()
