"""Start/stop times of the test-service launchers, and Postfix's bounce latency.

    .venv/bin/python -m tests.bench.bench_support_services [--rounds 5]

The first PostgresServer and PostfixInstance of a process pay for the
template (initdb; post-install create-missing); the others copy it, so both
are reported. Rounds interleave the services because this machine's CPU
speed drifts from minute to minute: compare figures within one run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from tests.support.common import free_loopback_port
from tests.support.postfix import PostfixInstance, SmtpSink, unfold
from tests.support.postgres import PostgresServer


def timed(action: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


class Refuser:
    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        return "550 5.7.1 Go to https://x.test/c/abc"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds

    figures: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        figures.setdefault(name, []).append(seconds)

    refuser_port = free_loopback_port()
    refuser = Controller(Refuser(), hostname="127.0.0.1", port=refuser_port, server_hostname="refuser.test")
    refuser.start()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "alice@sender.test", "bob@example.org", "bench"
    message.set_content("hello\n")
    try:
        for round_number in range(rounds):
            first = "first " if round_number == 0 else ""

            seconds, postgres = timed(PostgresServer)
            record(f"{first}PostgresServer start", seconds)
            record("PostgresServer create_database", timed(lambda: postgres.create_database("bench"))[0])
            record("PostgresServer stop", timed(postgres.stop)[0])

            seconds, sink = timed(lambda: SmtpSink(dump=True))
            record("SmtpSink start", seconds)
            record("SmtpSink stop", timed(sink.stop)[0])

            seconds, provider = timed(
                lambda: PostfixInstance(routes={"example.org": refuser_port}, mailboxes=("alice",))
            )
            record(f"{first}PostfixInstance start", seconds)
            started = time.perf_counter()
            provider.submit("alice@sender.test", "bob@example.org", message.as_bytes())
            bounce = unfold(provider.wait_for_bounce("alice", timeout=30))
            record("Postfix submit -> 550 -> bounce in Maildir", time.perf_counter() - started)
            assert b"said: 550 5.7.1 Go to https://x.test/c/abc" in bounce, bounce
            record("PostfixInstance stop", timed(provider.stop)[0])
    finally:
        refuser.stop()

    width = max(map(len, figures))
    print(f"{'':{width}}  median      min      max  (seconds, {rounds} rounds)")
    for name, values in figures.items():
        print(f"{name:{width}}  {statistics.median(values):6.3f}   {min(values):6.3f}   {max(values):6.3f}")


if __name__ == "__main__":
    main()
