"""Per-message scan latency: clamd and spamd (or rspamd) concurrently vs each alone.

    .venv/bin/python tests/bench/bench_scan.py [--rounds 150] [--transport unix|tcp] [--size 6000] [--uvloop]
                                               [--spam spamd|rspamd]

Starts a private clamd and spamd, then scans the same message, round after
round, three ways in shuffled order: both concurrently (what an unknown
sender's message costs), clamd alone (a known sender's), spamd alone. This
machine's CPU speed drifts from minute to minute, so the three are
interleaved inside each round and compared only within this run.

Target (issue): both <= 1.1 x max(clamd alone, spamd alone) + 5 ms, at the
median and at p95. Exits 1 when it is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sendergate.config import ScanConfig
from sendergate.scan import ScanEnvelope, Scanners
from tests.support.scanners import start_clamd, start_rspamd, start_spamd

ENVELOPE = ScanEnvelope("93.184.216.34", "mail.sender.test", "carol@sender.test", ("alice@example.org",))


def sample_message(size: int) -> bytes:
    """A plain, clean, realistic message of about `size` bytes (CRLF)."""
    head = (
        "Received: from mail.sender.test (mail.sender.test [93.184.216.34])\r\n"
        "\tby mx.example.org; Thu, 26 Nov 2026 10:00:01 +0000\r\n"
        "From: Carol Sender <carol@sender.test>\r\n"
        "To: Alice <alice@example.org>\r\n"
        "Subject: Minutes of Thursday's planning meeting\r\n"
        "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
        "Message-ID: <minutes-2026-11-26@sender.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Hi Alice,\r\n\r\nhere are the minutes from Thursday.\r\n\r\n"
    )
    line = "- We agreed to move the release review to the first week of December.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return (head + body + "\r\nCarol\r\n").encode()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(variants: dict[str, tuple[Scanners, bool]], message: bytes, rounds: int,
                  warmup: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for i in range(warmup + rounds):
        random.shuffle(order)
        for name in order:
            scanners, spam = variants[name]
            started = time.perf_counter()
            outcome = await scanners.scan(message, spam=spam, envelope=ENVELOPE)
            elapsed = time.perf_counter() - started
            failures = (outcome.virus_failed, outcome.spam_failed, outcome.virus, outcome.virus_skipped,
                        outcome.spam_skipped)
            if any(failures):
                raise SystemExit(f"bench_scan: {name}: unexpected outcome {outcome}")
            if i >= warmup:
                times[name].append(elapsed)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--transport", choices=["unix", "tcp"], default="unix")
    parser.add_argument("--size", type=int, default=6_000, help="message size in bytes")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as the gateway may")
    parser.add_argument("--spam", choices=["spamd", "rspamd"], default="spamd",
                        help="the spam scanner (rspamd: Debian's, the tests' minimal config, no network checks)")
    args = parser.parse_args()

    message = sample_message(args.size)
    clamd = start_clamd()
    try:
        spamd = start_spamd() if args.spam == "spamd" else start_rspamd()
    except BaseException:
        clamd.stop()
        raise
    try:
        spec = "unix_spec" if args.transport == "unix" else "tcp_spec"
        clamd_at = getattr(clamd, spec)
        spamd_at = getattr(spamd, spec) if args.spam == "spamd" or args.transport == "unix" else spamd.url
        spam = {args.spam: spamd_at}
        variants = {
            "both": (Scanners(ScanConfig(clamd=clamd_at, **spam)), True),
            "clamd": (Scanners(ScanConfig(clamd=clamd_at)), False),
            args.spam: (Scanners(ScanConfig(**spam)), True),
        }
        runner = asyncio.run
        if args.uvloop:
            import uvloop
            runner = uvloop.run
        times = runner(measure(variants, message, args.rounds, args.warmup))
    finally:
        spamd.stop()
        clamd.stop()

    ms = {name: [t * 1000 for t in values] for name, values in times.items()}
    print(f"scan latency, {len(message)}-byte clean message, {args.transport} sockets, "
          f"{args.rounds} interleaved rounds{' (uvloop)' if args.uvloop else ''}")
    print(f"{'':8}{'median ms':>11}{'p95 ms':>10}")
    for name in ("clamd", args.spam, "both"):
        print(f"{name:8}{statistics.median(ms[name]):11.2f}{percentile(ms[name], 95):10.2f}")
    # Paired within each round (the three scans ran back to back): what running
    # both costs over the slower one alone, with the machine's drift mostly cancelled.
    extra = [b - max(c, s) for b, c, s in zip(ms["both"], ms["clamd"], ms[args.spam], strict=True)]
    print(f"paired extra over the slower alone: median {statistics.median(extra):+.2f} ms, "
          f"p95 {percentile(extra, 95):+.2f} ms")
    ok = True
    for label, stat in (("median", statistics.median), ("p95", lambda v: percentile(v, 95))):
        alone = max(stat(ms["clamd"]), stat(ms[args.spam]))
        target = 1.1 * alone + 5.0
        both = stat(ms["both"])
        verdict = "ok" if both <= target else "MISSED"
        ok = ok and both <= target
        print(f"{label}: both {both:.2f} ms vs target 1.1 x {alone:.2f} + 5 = {target:.2f} ms "
              f"(ratio to slower alone {both / alone:.3f}) {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
