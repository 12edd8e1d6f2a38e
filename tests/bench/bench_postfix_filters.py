"""SenderGate behind a real Postfix, as a milter and as a before-queue proxy: messages per second a client
gets answered on this machine (what deployment.md's "Which one" rests on).

Postfix's own load generator (`smtp-source`, SESSIONS parallel sessions, a new
connection per message) sends MESSAGES messages to port 25 of a private Postfix
that either asks `sendergate milter` (`smtpd_milters`) or hands each session to
`sendergate gateway` (`smtpd_proxy_filter`, which delivers to Postfix's
after-filter listener). Postfix delivers to smtp-sink. Two paths: a known sender
(accepted, queued) and an unknown one (refused with a link at end of DATA).
Store: SQLite; no scanners; one gateway worker (the milter is one process).
Rounds interleave the setups (this machine's speed drifts: compare inside one run).

`milter` keeps Postfix's default `in_flow_delay = 1s`, `milter-noflow` sets it to 0:
a message a milter refuses at end of DATA has entered Postfix's cleanup (the
proxy refuses it before), so it spends one of Postfix's flow-control tokens that
no delivery gives back, and once they are spent smtpd pauses in_flow_delay
before each new message. A flood of refused mail is slowed that way (by design:
Postfix's guard against arrivals outrunning deliveries).

    .venv/bin/python tests/bench/bench_postfix_filters.py [--messages 400] [--sessions 8] [--rounds 3]

`--milter-workers 1,2` measures instead `sendergate milter` with each of those
`milter.workers` values (each its own milter and its own Postfix, in_flow_delay = 0),
and the CPU (user + system) per message of the milter's processes and of Postfix's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.bench_milter import cpu_seconds  # noqa: E402
from tests.support.common import free_loopback_port  # noqa: E402
from tests.support.gateway import GatewayProcess  # noqa: E402
from tests.support.milter import MilterProcess  # noqa: E402
from tests.support.postfix import PostfixInstance, SmtpSink  # noqa: E402

SENDERS = {"known": "bob@friend.example", "unknown": "stranger@elsewhere.test"}
FAST = {"mynetworks": "", "smtpd_client_connection_count_limit": "0", "default_process_limit": "200"}


def seed(store: object) -> None:
    alice, _ = store.add_user("alice@example.org")  # type: ignore[attr-defined]
    store.add_entry(alice.id, "allow", "bob@friend.example")  # type: ignore[attr-defined]


def drive(port: int, sender: str, messages: int, sessions: int) -> float:
    started = time.perf_counter()
    subprocess.run(["/usr/sbin/smtp-source", "-A", "-s", str(sessions), "-m", str(messages), "-l", "2000",
                    "-f", sender, "-t", "alice@example.org", "-M", "client.test", f"127.0.0.1:{port}"],
                   check=True, capture_output=True, timeout=600)
    return messages / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--milter-workers", default="", help="comma-separated milter.workers values: only the milter, "
                    "in_flow_delay = 0, one milter and one Postfix per value")
    args = ap.parse_args()
    if args.milter_workers:
        return milter_workers(args)

    sink = SmtpSink()
    milter = MilterProcess(listen="unix")
    seed(milter.store)
    gw_port = free_loopback_port()
    started: list = [sink]
    try:
        milter.start()
        started.append(milter)
        via_milter = PostfixInstance(routes={"example.org": sink.port}, hostname="mx.example.org",
                                     main_cf={**FAST, "smtpd_milters": milter.postfix_spec,
                                              "milter_default_action": "tempfail"})
        started.append(via_milter)
        noflow = PostfixInstance(routes={"example.org": sink.port}, hostname="mx.example.org",
                                 main_cf={**FAST, "smtpd_milters": milter.postfix_spec, "in_flow_delay": "0",
                                          "milter_default_action": "tempfail"})
        started.append(noflow)
        via_proxy = PostfixInstance(routes={"example.org": sink.port}, hostname="mx.example.org",
                                    proxy_filter=gw_port, main_cf={**FAST, "smtpd_proxy_timeout": "120s"})
        started.append(via_proxy)
        gw = GatewayProcess(delivery=("smtp", f"127.0.0.1:{via_proxy.after_filter_port}"),
                            extra={"smtp": {"listen": [f"127.0.0.1:{gw_port}"], "xforward_from": ["127.0.0.1"]}})
        gw.smtp_port = gw_port
        seed(gw.store)
        gw.start()
        started.append(gw)
        setups = {"milter": via_milter.port, "milter-noflow": noflow.port, "proxy": via_proxy.port}
        for port in setups.values():  # warm up
            drive(port, SENDERS["known"], 50, args.sessions)
        rates: dict[str, list[float]] = {f"{s} {p}": [] for s in setups for p in SENDERS}
        for _ in range(args.rounds):
            for path, sender in SENDERS.items():
                for setup, port in setups.items():
                    rates[f"{setup} {path}"].append(drive(port, sender, args.messages, args.sessions))
        print(f"# smtp-source: {args.messages} messages of 2 kB, {args.sessions} parallel sessions, "
              f"{args.rounds} interleaved rounds")
        for name, values in rates.items():
            print(f"{name:22} median {statistics.median(values):6.0f} msg/s   rounds: "
                  + " ".join(f"{v:.0f}" for v in values))
        print(f"# events recorded: milter {len(milter.events())}, proxy {len(gw.events())}")
    finally:
        for service in reversed(started):
            (service.close if hasattr(service, "close") else service.stop)()


def postfix_cpu(mx: PostfixInstance) -> float:
    """User + system CPU seconds of Postfix's processes: the live ones, and the ones its master reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    master = mx._master_pid()
    total = 0
    for pid in mx.pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if pid == master else 0)
    return total / tick


def milter_workers(args: argparse.Namespace) -> None:
    sink = SmtpSink()
    started: list = [sink]
    setups: dict[str, tuple[PostfixInstance, MilterProcess]] = {}
    try:
        for workers in (int(w) for w in args.milter_workers.split(",")):
            milter = MilterProcess(listen="unix", workers=workers)
            seed(milter.store)
            milter.start()
            started.append(milter)
            mx = PostfixInstance(routes={"example.org": sink.port}, hostname="mx.example.org",
                                 main_cf={**FAST, "smtpd_milters": milter.postfix_spec, "in_flow_delay": "0",
                                          "milter_default_action": "tempfail"})
            started.append(mx)
            setups[f"milter {workers}w"] = (mx, milter)
        for mx, _ in setups.values():  # warm up
            drive(mx.port, SENDERS["known"], 50, args.sessions)
        rates: dict[str, list[float]] = {f"{s} {p}": [] for s in setups for p in SENDERS}
        cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in rates}
        for _ in range(args.rounds):
            for path, sender in SENDERS.items():
                for setup, (mx, milter) in setups.items():
                    assert milter.proc is not None
                    before = cpu_seconds(milter.proc.pid), postfix_cpu(mx)
                    rates[f"{setup} {path}"].append(drive(mx.port, sender, args.messages, args.sessions))
                    after = cpu_seconds(milter.proc.pid), postfix_cpu(mx)
                    cpu[f"{setup} {path}"].append(((after[0] - before[0]) * 1000 / args.messages,
                                                   (after[1] - before[1]) * 1000 / args.messages))
        print(f"# smtp-source: {args.messages} messages of 2 kB, {args.sessions} parallel sessions, "
              f"{args.rounds} interleaved rounds; CPU ms per message: the milter's processes / Postfix's")
        for name, values in rates.items():
            print(f"{name:20} median {statistics.median(values):6.0f} msg/s   rounds: "
                  + " ".join(f"{v:.0f}" for v in values)
                  + f"   CPU milter {statistics.median(c[0] for c in cpu[name]):.2f}"
                  + f" Postfix {statistics.median(c[1] for c in cpu[name]):.2f} ms/msg")
        print("# events recorded: " + ", ".join(f"{s} {len(m.events())}" for s, (_, m) in setups.items()))
    finally:
        for service in reversed(started):
            (service.close if hasattr(service, "close") else service.stop)()


if __name__ == "__main__":
    main()
