"""A/B of the gateway under a pipelining client (RFC 2920), as real MTAs send: this tree against another revision.

    .venv/bin/python tests/bench/bench_smtp_pipelined.py --against main [--rounds 6] [--messages 2000]

smtp-source (bench_smtp.py, bench_smtp_ab.py) does not pipeline (its manual: "No SMTP command pipelining
support"; it sends HELO and waits for every reply), so what a pipelining client costs is measured here with
a client of our own (asyncio on uvloop, 20 sessions, a new connection per message, 4 KB): EHLO, then
MAIL, RCPT and DATA in one write, the message, then "." and QUIT in one write (Exim's way). Both paths:
the unknown sender's refusal and the known sender's delivery to an smtp-sink. Rounds interleave the two
gateways in random order; printed: msg/s and CPU per message (user + system of each gateway's processes)
with their per-round new/old ratios. The client's own CPU is in the rates, not in the CPU figures.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.bench_smtp import raise_fd_limit  # noqa: E402
from tests.bench.bench_smtp_ab import TICK_MS, cpu_ticks, start_gateway  # noqa: E402
from tests.support.gateway import GatewayProcess  # noqa: E402
from tests.support.postfix import SmtpSink  # noqa: E402

BODY = (b"From: <{sender}>\r\nTo: <alice@example.org>\r\nSubject: pipelined\r\n\r\n"
        + (b"X" * 70 + b"\r\n") * 56)


async def _session(port: int, sender: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> bytes:
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed")
            if line[3:4] != b"-":
                return line

    await reply()
    writer.write(b"EHLO bench.test\r\n")
    await reply()
    writer.write(f"MAIL FROM:<{sender}>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n".encode())
    for _ in range(3):
        await reply()
    writer.write(BODY.replace(b"{sender}", sender.encode()) + b".\r\nQUIT\r\n")
    await reply()
    await reply()
    writer.close()


async def _load(port: int, messages: int, sender: str, clients: int = 20) -> float:
    left = messages

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await _session(port, sender)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return messages / (time.monotonic() - started)


def main() -> int:
    import uvloop

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", required=True, help="the git revision to compare with (e.g. main)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--messages", type=int, default=2000)
    args = ap.parse_args()
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="sendergate-pipe-") as tmp:
        old_tree = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old_tree), args.against],
                       check=True)
        downstream = SmtpSink()
        gateways: dict[str, GatewayProcess] = {}
        try:
            gateways["new"] = start_gateway(downstream, None)
            gateways["old"] = start_gateway(downstream, str(old_tree / "app"))
            cases = {f"{n} {path}": (g, sender) for n, g in gateways.items()
                     for path, sender in (("reject", "stranger@unknown.example"), ("deliver", "bob@friend.example"))}
            rates: dict[str, list[float]] = {k: [] for k in cases}
            cpu: dict[str, list[float]] = {k: [] for k in cases}
            for g, sender in cases.values():  # warm-up
                uvloop.run(_load(g.smtp_port, 300, sender))
            for rnd in range(args.rounds):
                order = list(cases)
                random.shuffle(order)
                for k in order:
                    g, sender = cases[k]
                    before = cpu_ticks(g.proc.pid)
                    rates[k].append(uvloop.run(_load(g.smtp_port, args.messages, sender)))
                    cpu[k].append((cpu_ticks(g.proc.pid) - before) * TICK_MS / args.messages)
                print(f"round {rnd + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items()),
                      file=sys.stderr, flush=True)
        finally:
            for g in gateways.values():
                g.close()
            downstream.stop()
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_tree)], check=False)
    print(f"\nthis tree against {args.against}, pipelining client: {args.rounds} interleaved rounds of "
          f"{args.messages} messages")
    for path in ("reject", "deliver"):
        new, old = f"new {path}", f"old {path}"
        ratio = statistics.median(n / o for n, o in zip(rates[new], rates[old], strict=True))
        cpu_ratio = statistics.median(n / o for n, o in zip(cpu[new], cpu[old], strict=True))
        print(f"{path:8} msg/s new {statistics.median(rates[new]):6.0f}  old {statistics.median(rates[old]):6.0f}"
              f"  new/old per round {ratio:.3f}")
        print(f"{'':8} CPU ms/message new {statistics.median(cpu[new]):.3f}  old {statistics.median(cpu[old]):.3f}"
              f"  new/old per round {cpu_ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
