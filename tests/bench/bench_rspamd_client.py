"""Why scan.rspamd has its own HTTP client: httpx.AsyncClient vs asyncio streams + h11 against rspamd.

    .venv/bin/python tests/bench/bench_rspamd_client.py [--requests 500]

Starts Debian's rspamd (tests/support/scanners.py) and sends the same small message to /checkv2
with each client, one at a time and 10 at a time. Prints the cost of creating the client, the wall
time and the client's CPU time per request. rspamd closes every connection (`Connection: close`),
so httpx's pool cannot help; the figures on 2026-12-06 are in scan/rspamd.py's docstring.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx

from sendergate.config import parse_rspamd_url
from sendergate.scan.rspamd import RspamdClient, ScanEnvelope
from tests.support.scanners import start_rspamd

MESSAGE = (b"From: a@b.example\r\nTo: c@d.example\r\nSubject: hello\r\nMessage-ID: <2@b.example>\r\n\r\n"
           b"Just a plain note.\r\n")
ENVELOPE = ScanEnvelope("192.0.2.1", "mx.b.example", "a@b.example", ("c@d.example",))
HEADERS = {"IP": "192.0.2.1", "Helo": "mx.b.example", "From": "a@b.example", "Rcpt": "c@d.example", "Queue-Id": "X1"}


async def run(kind: str, url: str, n: int, concurrency: int) -> str:
    started = time.perf_counter()
    client = httpx.AsyncClient(timeout=10) if kind == "httpx" else RspamdClient(parse_rspamd_url(url))
    created = time.perf_counter() - started

    async def one() -> str:
        if isinstance(client, httpx.AsyncClient):
            return (await client.post(f"{url}/checkv2", content=MESSAGE, headers=HEADERS)).json()["action"]
        return (await client.check(MESSAGE, ENVELOPE, "X1")).action

    await one()
    gate = asyncio.Semaphore(concurrency)

    async def limited() -> str:
        async with gate:
            return await one()

    cpu, wall = time.process_time(), time.perf_counter()
    actions = await asyncio.gather(*[limited() for _ in range(n)])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert set(actions) == {"no action"}, set(actions)
    if isinstance(client, httpx.AsyncClient):
        await client.aclose()
    return (f"{kind:6} {concurrency:>2} at a time: create {created * 1000:6.1f} ms, "
            f"wall {wall / n * 1000:5.2f} ms/request, client CPU {cpu / n * 1000:5.3f} ms/request")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    daemon = start_rspamd()
    try:
        for kind in ("httpx", "h11"):
            for concurrency in (1, 10):
                print(asyncio.run(run(kind, daemon.url, args.requests, concurrency)))
    finally:
        daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
