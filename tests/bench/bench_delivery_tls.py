"""What STARTTLS costs a delivery ([delivery] tls), against one real Postfix, in one run.

    .venv/bin/python tests/bench/bench_delivery_tls.py [--rounds 7] [--messages 400] [--concurrency 20]

The gateway's Deliverer (the code the known-sender path runs after the decision) hands 4 KB
messages to a private Postfix that offers STARTTLS with a certificate from a test CA and discards
what it queues. Three Deliverers take turns in random order each round: tls = "off", "opportunistic"
(encrypted, not checked) and "required" (verified against the test CA). Printed: msg/s per mode
(median of the rounds), the per-round ratio to "off", and what building the SSL context once
costs (why it is built at start and never per message).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sendergate.config import DeliveryConfig
from sendergate.delivery import Deliverer, Outbound
from sendergate.delivery.tls import client_context
from tests.support.postfix import PostfixInstance, ServerTLS
from tests.support.tls_certs import TestCA

BODY = b"From: bob@friend.example\r\nTo: alice@example.org\r\nSubject: bench\r\n\r\n" + b"x" * 76 * 53 + b"\r\n"


async def burst(deliverer: Deliverer, messages: int, concurrency: int) -> float:
    out = Outbound("bob@friend.example", ["alice@example.org"], BODY)
    left = messages

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await deliverer.deliver(out)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return messages / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="sendergate-bench-tls-"))
    ca = TestCA(directory)
    server = ca.issue("server", dns=("localhost",))
    with PostfixInstance(mailbox_domain="example.org", mailboxes=("alice",),
                         main_cf={"virtual_transport": "discard:", "smtpd_tls_received_header": "no"},
                         tls=ServerTLS(server.cert_file, server.key_file, level="may")) as postfix:
        target = f"localhost:{postfix.port}"
        modes = {
            "off": DeliveryConfig(target=target, tls="off"),
            "opportunistic": DeliveryConfig(target=target, tls="opportunistic"),
            "required (verified)": DeliveryConfig(target=target, tls="required", tls_ca_file=str(ca.cert_file)),
        }
        deliverers = {name: Deliverer(cfg, "bench.test") for name, cfg in modes.items()}
        rates: dict[str, list[float]] = {name: [] for name in modes}

        async def run() -> None:
            for d in deliverers.values():  # warm up: Postfix's smtpd processes, the TLS session code
                await burst(d, args.concurrency * 2, args.concurrency)
            for r in range(args.rounds):
                order = list(deliverers)
                random.shuffle(order)
                for name in order:
                    rates[name].append(await burst(deliverers[name], args.messages, args.concurrency))
                    postfix.wait_for_empty_queue(timeout=60)
                print(f"round {r + 1}: " + ", ".join(f"{n} {rates[n][-1]:.0f}/s" for n in modes), flush=True)

        asyncio.run(run())

    print(f"\n{args.rounds} rounds of {args.messages} messages, {args.concurrency} at a time, 4 KB:")
    for name in modes:
        ratio = statistics.median(a / b for a, b in zip(rates[name], rates["off"], strict=True))
        print(f"  {name:22} {statistics.median(rates[name]):7.0f} msg/s (min {min(rates[name]):.0f}, "
              f"max {max(rates[name]):.0f}); x off per round: {ratio:.3f}")
    contexts = (("system store (required, no tls_ca_file)", DeliveryConfig(target="localhost:25", tls="required")),
                ("unverified (opportunistic)", DeliveryConfig(target="localhost:25")))
    for name, cfg in contexts:
        started = time.perf_counter()
        for _ in range(20):
            client_context(cfg)
        print(f"  building the SSL context, {name}: {(time.perf_counter() - started) / 20 * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
