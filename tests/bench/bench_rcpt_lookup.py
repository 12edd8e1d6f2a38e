"""RCPT lookup cost on the SQLite fast path: rcpt_facts (before modes) vs rcpt_lookup (the same with the
mailbox mode, one JOIN), 1000 users, 20000 calls per round, 5 interleaved rounds.

    .venv/bin/python tests/bench/bench_rcpt_lookup.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from sendergate.policy.address import parse
from sendergate.store import Store
from sendergate.store.fast_sqlite import open_reader, rcpt_facts, rcpt_lookup


def main() -> None:
    d = tempfile.mkdtemp()
    store = Store(f"sqlite:///{d}/b.db")
    store.migrate()
    for i in range(1000):
        user, _ = store.add_user(f"u{i}@example.org")
        if i % 10 == 0:
            store.add_entry(user.id, "allow", f"friend{i}@x.example")
    reader = open_reader(f"{d}/b.db")
    assert reader is not None
    rcpts = [parse(f"u{i}@example.org") for i in range(0, 1000, 7)]
    sender = parse("stranger@spam.example")

    def run(fn: Callable[..., Any], n: int = 20000) -> float:
        t = time.perf_counter()
        for k in range(n):
            fn(reader, rcpts[k % len(rcpts)], sender)
        return (time.perf_counter() - t) / n * 1e6

    before, after = [], []
    for _ in range(5):
        before.append(run(rcpt_facts))
        after.append(run(rcpt_lookup))
    print(f"rcpt_facts  median {statistics.median(before):.1f} us/call  {[round(x, 1) for x in before]}")
    print(f"rcpt_lookup median {statistics.median(after):.1f} us/call  {[round(x, 1) for x in after]}")
    store.close()


if __name__ == "__main__":
    main()
