"""SMTP throughput and idle-connection memory of the gateway, against Postfix in the same run.

    .venv/bin/python tests/bench/bench_smtp.py [--rounds 5] [--messages 2000] [--workers 0]

Load: Postfix's smtp-source (-A, 20 clients, a new connection per message,
4 KB messages). Each target's figure is the median of interleaved rounds
(these machines drift by up to 2.3x from minute to minute; compare ratios):

- smtp-sink alone (the near-limit),
- Postfix smtpd refusing at RCPT, and accepting into its queue,
- the gateway's unknown-sender path (550 with a link; challenge and event committed durably),
- the gateway's known-sender path (delivered to a second smtp-sink; 250 after the downstream's 250).

Then 1,000 idle SMTP connections: the gateway's added RSS (all its processes)
and the time a 1,001st client waits for its banner.
Targets (issue 2): reject >= 0.15 x sink, deliver >= 0.08 x sink, idle < 30 MB, banner < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.gateway import GatewayProcess
from tests.support.postfix import PostfixInstance, SmtpSink

SMTP_SOURCE = "/usr/sbin/smtp-source"


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def load(port: int, messages: int, sender: str, rcpt: str) -> float:
    """Messages per second for one smtp-source run."""
    started = time.monotonic()
    r = subprocess.run([SMTP_SOURCE, "-A", "-s", "20", "-m", str(messages), "-l", "4096", "-f", sender, "-t", rcpt,
                        f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - started
    if r.returncode != 0:
        raise RuntimeError(f"smtp-source failed: {r.stderr[-500:]}")
    return messages / elapsed


def process_tree_rss(pid: int) -> int:
    """RSS in bytes of pid and its descendants."""
    pids = [pid]
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    pids += [int(p) for p in out]
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


async def idle_connections(port: int, count: int) -> tuple[list[asyncio.StreamWriter], float]:
    writers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        banner = await asyncio.wait_for(reader.readline(), 10)
        assert banner.startswith(b"220"), banner
        writers.append(writer)
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    banner = await asyncio.wait_for(reader.readline(), 10)
    waited = time.monotonic() - started
    assert banner.startswith(b"220"), banner
    writers.append(writer)
    return writers, waited


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=0, help="gateway workers (0: one per core)")
    ap.add_argument("--idle", type=int, default=1000)
    args = ap.parse_args()
    raise_fd_limit()

    sink = SmtpSink()
    downstream = SmtpSink()
    postfix = PostfixInstance(mailboxes=("sender",))
    # every load comes from 127.0.0.1: the per-address cap stays on (its cost is measured) but above
    # the 20 clients and the 1,001 idle connections
    gw = GatewayProcess(delivery=("smtp", f"127.0.0.1:{downstream.port}"), workers=args.workers,
                        extra={"smtp": {"max_connections_per_ip": 5000}})
    alice, _ = gw.store.add_user("alice@example.org")
    gw.store.add_entry(alice.id, "allow", "bob@friend.example")
    gw.start()
    targets = {
        "smtp-sink": (sink.port, "a@b.example", "c@d.example"),
        "postfix reject at RCPT": (postfix.port, "a@b.example", "nobody@sender.test"),
        "postfix accept into queue": (postfix.port, "a@b.example", "sender@sender.test"),
        "gateway unknown sender (550 + link)": (gw.smtp_port, "stranger@unknown.example", "alice@example.org"),
        "gateway known sender (delivered)": (gw.smtp_port, "bob@friend.example", "alice@example.org"),
    }
    rates: dict[str, list[float]] = {k: [] for k in targets}
    try:
        for port, frm, to in targets.values():  # warm-up
            load(port, 200, frm, to)
        postfix.wait_for_empty_queue(timeout=300)
        for rnd in range(args.rounds):
            order = list(targets)
            random.shuffle(order)
            for name in order:
                port, frm, to = targets[name]
                rates[name].append(load(port, args.messages, frm, to))
                if name == "postfix accept into queue":
                    # Postfix delivers what it queued after answering: let it finish, or the next
                    # target is measured against its background work
                    postfix.wait_for_empty_queue(timeout=300)
            print(f"round {rnd + 1}/{args.rounds}: " + ", ".join(f"{k.split(' (')[0]} {v[-1]:.0f}/s"
                                                                  for k, v in rates.items()), file=sys.stderr)
        base_rss = process_tree_rss(gw.proc.pid)
        idle_rss, waited = asyncio.run(_hold(gw.smtp_port, args.idle, gw.proc.pid))
    finally:
        gw.close()
        postfix.stop()
        sink.stop()
        downstream.stop()

    sink_median = statistics.median(rates["smtp-sink"])
    print(f"\nSMTP benchmark on {platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()}), "
          f"{args.rounds} interleaved rounds of {args.messages} messages, 20 clients, 4 KB, new connection each")
    print(f"{'target':42} {'median msg/s':>13} {'min':>8} {'max':>8} {'x sink':>8}")
    for name, values in rates.items():
        med = statistics.median(values)
        print(f"{name:42} {med:13.0f} {min(values):8.0f} {max(values):8.0f} {med / sink_median:8.3f}")
    print(f"\n{args.idle} idle connections: gateway RSS {base_rss / 2**20:.1f} MB -> {idle_rss / 2**20:.1f} MB "
          f"(+{(idle_rss - base_rss) / 2**20:.1f} MB); "
          f"connection {args.idle + 1} got its banner in {waited * 1000:.0f} ms")
    reject = statistics.median(rates["gateway unknown sender (550 + link)"]) / sink_median
    deliver = statistics.median(rates["gateway known sender (delivered)"]) / sink_median
    ok = reject >= 0.15 and deliver >= 0.08 and (idle_rss - base_rss) < 30 * 2**20 and waited < 1
    print(f"targets: reject >= 0.15 ({reject:.3f}), deliver >= 0.08 ({deliver:.3f}), idle < 30 MB, banner < 1 s: "
          + ("met" if ok else "NOT met"))
    return 0 if ok else 1


async def _hold(port: int, count: int, pid: int) -> tuple[int, float]:
    """Hold the idle connections open while measuring; returns (RSS while held, banner wait)."""
    writers, waited = await idle_connections(port, count)
    await asyncio.sleep(1)
    rss = process_tree_rss(pid)
    for w in writers:
        w.close()
    return rss, waited


if __name__ == "__main__":
    sys.exit(main())
