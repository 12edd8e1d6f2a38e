"""What STARTTLS costs a delivery ([delivery] tls), against one real Postfix, in one run.

    .venv/bin/python tests/bench/bench_delivery_tls.py [--rounds 7] [--messages 400] [--concurrency 20]
                                                       [--against main]

The gateway's Deliverer (the code the known-sender path runs after the decision) hands 4 KB
messages to a private Postfix that offers STARTTLS with a certificate from a test CA and discards
what it queues. Three Deliverers take turns in random order each round: tls = "off", "opportunistic"
(encrypted, not checked) and "required" (verified against the test CA). Printed: msg/s per mode
(median of the rounds), the per-round ratio to "off", and what building the SSL context once
costs (why it is built at start and never per message).

Then plaintext, the default case (tls = "opportunistic" towards an smtp-sink that offers no
STARTTLS): this tree's Deliverer against `--against`'s (its delivery/__init__.py loaded from git),
interleaved rounds, msg/s and this process's CPU time per delivery. That is the known-sender path's
delivery step without the gateway around it, so a few microseconds show (the whole-gateway A/B,
bench_smtp_ab.py, cannot resolve them on a busy machine).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sendergate.config import DeliveryConfig
from sendergate.delivery import Deliverer, Outbound
from sendergate.delivery.tls import client_context
from tests.support.postfix import PostfixInstance, ServerTLS, SmtpSink
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


def old_deliverer_class(revision: str, directory: Path) -> type:
    """`revision`'s Deliverer, as a package beside this tree's (its relative imports find ours)."""
    package = directory / "delivery_old"
    package.mkdir()
    source = subprocess.run(["git", "show", f"{revision}:app/sendergate/delivery/__init__.py"],
                            capture_output=True, check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    (package / "__init__.py").write_bytes(source)
    spec = importlib.util.spec_from_file_location("sendergate.delivery_old", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.Deliverer


async def timed(deliverer: Deliverer, messages: int, concurrency: int) -> tuple[float, float]:
    """(msg/s, CPU ms of this process per message)."""
    cpu = time.process_time()
    rate = await burst(deliverer, messages, concurrency)
    return rate, (time.process_time() - cpu) * 1000 / messages


def plaintext_ab(args: argparse.Namespace, directory: Path) -> None:
    old_class = old_deliverer_class(args.against, directory)
    with SmtpSink() as sink:
        cfg = DeliveryConfig(target=f"127.0.0.1:{sink.port}")  # the default: tls = "opportunistic"
        deliverers = {"new": Deliverer(cfg, "bench.test"), "old": old_class(cfg, "bench.test")}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in deliverers}

        async def run() -> None:
            for d in deliverers.values():
                await burst(d, 200, args.concurrency)
            for r in range(args.rounds * 2):
                order = list(deliverers)
                random.shuffle(order)
                for name in order:
                    results[name].append(await timed(deliverers[name], args.messages * 2, args.concurrency))
                print(f"plaintext round {r + 1}: " + ", ".join(
                    f"{n} {results[n][-1][0]:.0f}/s {results[n][-1][1]:.3f} ms CPU" for n in deliverers), flush=True)

        asyncio.run(run())
    new, old = results["new"], results["old"]
    print(f"\nplaintext to smtp-sink, this tree against {args.against}, {len(new)} rounds of {args.messages * 2}:")
    for name, rows in results.items():
        print(f"  {name}: {statistics.median(r[0] for r in rows):7.0f} msg/s, "
              f"CPU {statistics.median(r[1] for r in rows):.4f} ms/message (median)")
    print(f"  new/old per round: rate {statistics.median(n[0] / o[0] for n, o in zip(new, old, strict=True)):.3f}, "
          f"CPU {statistics.median(n[1] / o[1] for n, o in zip(new, old, strict=True)):.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--against", default="main", help="revision for the plaintext A/B ('' = skip it)")
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
    if args.against:
        plaintext_ab(args, directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
