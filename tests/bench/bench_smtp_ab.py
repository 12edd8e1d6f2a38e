"""A/B of the gateway's SMTP paths: this tree against another revision, in one run.

    .venv/bin/python tests/bench/bench_smtp_ab.py --against HEAD~1 [--rounds 14] [--messages 2000]

Two gateways (this checkout's code, and `--against` checked out into a temporary git worktree and
put first on PYTHONPATH) each refuse unknown senders and deliver known senders to an smtp-sink,
under Postfix's smtp-source (-A, 20 clients, 4 KB); the rounds interleave both gateways and an
smtp-sink in random order, because these machines drift by up to 2x from minute to minute. Printed:
msg/s per path and the per-round new/old ratios, and the CPU time per message of each gateway's
processes (user + system, from /proc), which drifts less than the rate.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.bench_smtp import load, raise_fd_limit  # noqa: E402
from tests.support.gateway import GatewayProcess  # noqa: E402
from tests.support.postfix import SmtpSink  # noqa: E402

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    """utime + stime of pid and its children (the gateway's workers)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    total = 0
    for p in [pid, *map(int, children)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def start_gateway(downstream: SmtpSink, pythonpath: str | None) -> GatewayProcess:
    # Sessions per client address are capped (20 by default, as many as smtp-source's clients, all from
    # 127.0.0.1, and a closing session still counts): keep the cap on, above the load, in each revision
    # that knows the key (an older one would refuse it).
    app = Path(pythonpath) if pythonpath else ROOT / "app"
    knows_cap = "max_connections_per_ip" in (app / "sendergate" / "config.py").read_text()
    extra = {"smtp": {"max_connections_per_ip": 5000}} if knows_cap else {}
    g = GatewayProcess(delivery=("smtp", f"127.0.0.1:{downstream.port}"), workers=0, extra=extra)
    seed = ("from sendergate.store import Store; import sys; s = Store(sys.argv[1]); s.migrate(); "
            "alice, _ = s.add_user('alice@example.org'); s.add_entry(alice.id, 'allow', 'bob@friend.example')")
    # Each revision makes its own store (its own migrations: an older one does not know a newer head).
    subprocess.run([sys.executable, "-c", seed, g.store_url], check=True,
                   env={**os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {})})
    saved = os.environ.get("PYTHONPATH")
    if pythonpath:
        os.environ["PYTHONPATH"] = pythonpath  # GatewayProcess passes its environment on
    try:
        return g.start()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", required=True, help="the git revision to compare with (e.g. HEAD~1, main)")
    ap.add_argument("--rounds", type=int, default=14)
    ap.add_argument("--messages", type=int, default=2000)
    args = ap.parse_args()
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="sendergate-ab-") as tmp:
        old_tree = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old_tree), args.against],
                       check=True)
        downstream, sink = SmtpSink(), SmtpSink()
        gateways: dict[str, GatewayProcess] = {}
        try:
            gateways["new"] = start_gateway(downstream, None)
            gateways["old"] = start_gateway(downstream, str(old_tree / "app"))
            cases = {f"{n} {path}": (g, sender) for n, g in gateways.items()
                     for path, sender in (("reject", "stranger@unknown.example"), ("deliver", "bob@friend.example"))}
            rates: dict[str, list[float]] = {k: [] for k in [*cases, "sink"]}
            cpu: dict[str, list[float]] = {k: [] for k in cases}
            for g, sender in cases.values():  # warm-up
                load(g.smtp_port, 300, sender, "alice@example.org")
            for rnd in range(args.rounds):
                order = [*cases, "sink"]
                random.shuffle(order)
                for k in order:
                    if k == "sink":
                        rates[k].append(load(sink.port, args.messages, "a@b.example", "c@d.example"))
                        continue
                    g, sender = cases[k]
                    before = cpu_ticks(g.proc.pid)
                    rates[k].append(load(g.smtp_port, args.messages, sender, "alice@example.org"))
                    cpu[k].append((cpu_ticks(g.proc.pid) - before) * TICK_MS / args.messages)
                print(f"round {rnd + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items()),
                      file=sys.stderr, flush=True)
        finally:
            for g in gateways.values():
                g.close()
            downstream.stop()
            sink.stop()
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_tree)], check=False)
    sink_median = statistics.median(rates["sink"])
    print(f"\nthis tree against {args.against}: {args.rounds} interleaved rounds of {args.messages} messages")
    for path in ("reject", "deliver"):
        new, old = f"new {path}", f"old {path}"
        ratio = statistics.median(n / o for n, o in zip(rates[new], rates[old], strict=True))
        cpu_ratio = statistics.median(n / o for n, o in zip(cpu[new], cpu[old], strict=True))
        print(f"{path:8} msg/s new {statistics.median(rates[new]):6.0f} "
              f"({statistics.median(rates[new]) / sink_median:.3f} x sink)"
              f"  old {statistics.median(rates[old]):6.0f} ({statistics.median(rates[old]) / sink_median:.3f})"
              f"  new/old per round {ratio:.3f}")
        print(f"{'':8} CPU ms/message new {statistics.median(cpu[new]):.3f}  old {statistics.median(cpu[old]):.3f}"
              f"  new/old per round {cpu_ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
