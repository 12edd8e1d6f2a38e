"""Milter protocol libraries, measured: messages per second through a trivial filter on this machine.

What Postfix does per SMTP session (one milter connection: negotiate, connect,
HELO, MAIL, RCPT, 6 headers, body, end of message), from CLIENTS concurrent
MTA-side clients (tests/support/milter_client.py) in their own processes,
against each implementation of the same trivial filter (every event goes on; at
end of message one header is added):

- `own`      app/sendergate/milter/protocol.py (asyncio, uvloop), the one SenderGate uses;
- `pymilter` pymilter 1.0.5 over Debian's libmilter (a thread per connection);
- `kilter`   kilter.service 0.3.1 (anyio, pure Python).

And `sendergate`: the real `sendergate milter` on its two common paths, an
unknown sender refused at end of message with a link, and a known sender
accepted (store: SQLite; no scanners); `--workers 1,2` runs one such milter per
`milter.workers` value side by side (rounds interleaved) and prints its CPU
(user + system, supervisor and workers, all threads) per message.

pymilter and kilter are not dependencies of SenderGate: give an interpreter that
has them (`--other-python`, e.g. a scratch venv with `pip install pymilter
kilter.service`; pymilter builds against libmilter-dev). Rounds interleave the
implementations (this machine's speed drifts: compare inside one run).

    .venv/bin/python tests/bench/bench_milter.py --other-python /tmp/milterbench-venv/bin/python
    .venv/bin/python tests/bench/bench_milter.py --only-sendergate --workers 1,2 --unix
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.common import free_loopback_port  # noqa: E402
from tests.support.milter_client import MilterClient  # noqa: E402

MESSAGE = (b"From: Bob <bob@friend.example>\r\nTo: Alice <alice@example.org>\r\nSubject: Bench\r\n"
           b"Message-ID: <bench@friend.example>\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
           b"MIME-Version: 1.0\r\n\r\n" + b"A line of a short message body.\r\n" * 40)

OWN = """
import asyncio, sys, uvloop
sys.path.insert(0, {repo!r})
from sendergate.milter import protocol as p
class F:
    actions = p.SMFIF_ADDHDRS
    protocol = (p.SMFIP_NOUNKNOWN | p.SMFIP_NODATA | p.SMFIP_NOEOH | p.SMFIP_NR_HDR | p.SMFIP_NR_BODY
                | p.SMFIP_NR_CONN | p.SMFIP_NR_HELO)
    async def connect(self, c): return [p.CONTINUE]
    async def helo(self, c): return [p.CONTINUE]
    async def mail(self, c, a): return [p.CONTINUE]
    async def rcpt(self, c, a): return [p.CONTINUE]
    async def header(self, c, n, v): return []
    async def body(self, c, b): return []
    async def end_of_message(self, c): return [p.add_header("X-Bench", "yes"), p.CONTINUE]
    def abort(self, c): pass
    def close(self, c): pass
async def main():
    if {unix!r}:
        server = await asyncio.start_unix_server(lambda r, w: p.serve_connection(F(), r, w), {unix!r})
    else:
        server = await asyncio.start_server(lambda r, w: p.serve_connection(F(), r, w), "127.0.0.1", {port})
    print("ready", flush=True)
    await server.serve_forever()
uvloop.install(); asyncio.run(main())
"""

PYMILTER = """
import Milter
class F(Milter.Base):
    def envfrom(self, f, *s): return Milter.CONTINUE
    def envrcpt(self, r, *s): return Milter.CONTINUE
    def header(self, n, v): return Milter.CONTINUE
    def body(self, c): return Milter.CONTINUE
    def eom(self):
        self.addheader("X-Bench", "yes")
        return Milter.CONTINUE
Milter.factory = F
Milter.set_flags(Milter.ADDHDRS)
print("ready", flush=True)
Milter.runmilter("bench", "unix:" + {unix!r} if {unix!r} else "inet:{port}@127.0.0.1", 600)
"""

KILTER = """
import anyio
from kilter.service import END, Runner, Session
from kilter.protocol import Accept, Header
async def flt(session: Session):
    await session.envelope_from()
    async for _ in session.envelope_recipients(): pass
    async with session.headers as headers:
        async for _ in headers: pass
    async with session.body as body:
        async for _ in body: pass
    await session.headers.insert(Header("X-Bench", b"yes"), END)
    return Accept()
async def main():
    if {unix!r}:
        listener = await anyio.create_unix_listener({unix!r})
    else:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port={port})
    print("ready", flush=True)
    await listener.serve(Runner(flt))
anyio.run(main)
"""


def one_session(address: str | tuple[str, int], sender: str) -> str:
    with MilterClient(address) as m:
        m.negotiate()
        m.connect("client.test", "192.0.2.1")
        m.helo("client.test")
        m.mail(sender)
        m.rcpt("<alice@example.org>")
        return m.message(MESSAGE)[-1][0]


def client(args: tuple[str | tuple[str, int], int, str]) -> tuple[int, dict[str, int]]:
    address, count, sender = args
    finals: dict[str, int] = {}
    for _ in range(count):
        final = one_session(address, sender)
        finals[final] = finals.get(final, 0) + 1
    return count, finals


def drive(address: str | tuple[str, int], sessions: int, clients: int, sender: str) -> tuple[float, dict[str, int]]:
    with multiprocessing.Pool(clients) as pool:
        started = time.perf_counter()
        results = pool.map(client, [(address, sessions // clients, sender)] * clients)
        elapsed = time.perf_counter() - started
    finals: dict[str, int] = {}
    for _, f in results:
        for k, v in f.items():
            finals[k] = finals.get(k, 0) + v
    return sum(n for n, _ in results) / elapsed, finals


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children (every thread), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        kids = []
    for p in [pid, *map(int, kids)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def start_script(python: str, source: str, port: int, workdir: Path, unix: str = "") -> subprocess.Popen:
    script = workdir / f"milter-{port}.py"
    script.write_text(textwrap.dedent(source.format(repo=str(REPO / "app"), port=port, unix=unix)))
    proc = subprocess.Popen([python, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if "ready" not in line:
        proc.kill()
        raise SystemExit(f"{script} did not start: {line}{proc.stdout.read() if proc.stdout else ''}")
    time.sleep(0.3)  # runmilter/listen happen after the print
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other-python", help="an interpreter with pymilter and kilter.service installed")
    ap.add_argument("--sessions", type=int, default=2000, help="milter sessions per measurement")
    ap.add_argument("--clients", type=int, default=4, help="concurrent MTA-side client processes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-sendergate", action="store_true", help="skip the real sendergate milter")
    ap.add_argument("--only-sendergate", action="store_true", help="skip the trivial filters (own, pymilter, kilter)")
    ap.add_argument("--workers", default="1", help="milter.workers of the real sendergate milter: one milter per "
                    "value, comma-separated (default 1); a value ending in 'off' (2off) with smtp.cpu_affinity = off")
    ap.add_argument("--unix", action="store_true", help="unix sockets instead of TCP on loopback")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-milter-"))
    procs: dict[str, tuple[subprocess.Popen, str | tuple[str, int], str]] = {}

    def where(name: str, port: int) -> tuple[str, str | tuple[str, int]]:
        path = str(workdir / f"{name}.sock") if args.unix else ""
        return path, (path or ("127.0.0.1", port))

    gateways = []
    pids: dict[str, int] = {}  # measured name -> the real milter's pid (its CPU is read)
    try:
        port = free_loopback_port()
        path, address = where("own", port)
        if not args.only_sendergate:
            procs["own"] = (start_script(sys.executable, OWN, port, workdir, path), address, "<bob@friend.example>")
        if args.other_python and not args.only_sendergate:
            for name, source in (("pymilter", PYMILTER), ("kilter", KILTER)):
                port = free_loopback_port()
                path, address = where(name, port)
                procs[name] = (start_script(args.other_python, source, port, workdir, path), address,
                               "<bob@friend.example>")
        for value in ([] if args.no_sendergate else args.workers.split(",")):
            from tests.support.milter import MilterProcess
            workers = int(value.removesuffix("off"))
            gateway = MilterProcess(listen="unix" if args.unix else "inet", workers=workers,
                                    extra={"smtp": {"cpu_affinity": "off" if value.endswith("off") else "auto"}})
            gateways.append(gateway)
            alice, _ = gateway.store.add_user("alice@example.org")
            gateway.store.add_entry(alice.id, "allow", "bob@friend.example")
            gateway.start()
            addr = gateway.address
            label = "sendergate" if args.workers == "1" else f"sendergate {value}{'' if value.endswith('off') else 'w'}"
            assert gateway.proc is not None
            for case, sender in (("known", "<bob@friend.example>"), ("unknown", "<stranger@elsewhere.test>")):
                procs[f"{label} {case}"] = (None, addr, sender)  # type: ignore[assignment]
                pids[f"{label} {case}"] = gateway.proc.pid
        for _, address, sender in procs.values():  # warm up (imports, first connections)
            drive(address, 200, args.clients, sender)
        rates: dict[str, list[float]] = {name: [] for name in procs}
        cpu: dict[str, list[float]] = {name: [] for name in pids}  # ms per message
        finals: dict[str, dict[str, int]] = {}
        for _ in range(args.rounds):
            for name, (_, address, sender) in procs.items():
                sessions = args.sessions if not name.startswith("sendergate") else args.sessions // 4
                used = cpu_seconds(pids[name]) if name in pids else 0.0
                rate, finals[name] = drive(address, sessions, args.clients, sender)
                rates[name].append(rate)
                if name in pids:
                    sent = sessions // args.clients * args.clients
                    cpu[name].append((cpu_seconds(pids[name]) - used) * 1000 / sent)
        print(f"# {'unix sockets' if args.unix else 'TCP on loopback'}, "
              f"{args.sessions} sessions per measurement (sendergate: {args.sessions // 4}), "
              f"{args.clients} client processes, {args.rounds} interleaved rounds, {os.cpu_count()} cores")
        for name, values in rates.items():
            print(f"{name:20} median {statistics.median(values):7.0f} msg/s   rounds: "
                  + " ".join(f"{v:.0f}" for v in values) + f"   final replies: {finals[name]}")
            if name in cpu:
                print(f"{'':20} CPU {statistics.median(cpu[name]):.2f} ms/msg (median)   rounds: "
                      + " ".join(f"{v:.2f}" for v in cpu[name]))
    finally:
        for proc, _, _ in procs.values():
            if proc is not None:
                proc.kill()
                proc.wait()
        for gateway in gateways:
            gateway.close()


if __name__ == "__main__":
    main()
