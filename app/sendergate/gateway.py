"""`sendergate gateway`: the SMTP listener and the HTTP server in one process (or a few).

Listening sockets are bound once, in the parent, so a port in use is one clear
error. With more than one worker the parent forks SMTP workers that share the
sockets (both cores take connections) and supervises them; worker 0 also
serves HTTP. SIGTERM: stop accepting, finish open transactions, exit.
What a worker's handler and web app use is built by runtime.build_runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from .config import Config
from .cpus import usable_cpus, worker_count
from .runtime import Runtime, build_runtime
from .smtp.handler import GatewayHandler
from .smtp.server import GatewaySMTP, PeerTable, SessionTemplate, library_copies_ok
from .store import Store, StoreError

log = logging.getLogger("sendergate")

SHUTDOWN_GRACE = 60.0  # seconds open transactions get to finish after SIGTERM
HOUSEKEEPING_INTERVAL = 3600.0
# An expired link still says "expired" (not "unknown") for this long, then its challenge is pruned.
CHALLENGE_GRACE = 7 * 86400.0


class StartupError(Exception):
    """A problem the admin must fix before the gateway can start; one line."""


def bind_sockets(cfg: Config) -> tuple[list[socket.socket], socket.socket]:
    """Bind every listening socket now, so 'port in use' is reported before anything starts."""
    smtp_socks = []
    for host, port in cfg.smtp.listen:
        smtp_socks.append(_bind(host, port, f"smtp.listen {host}:{port}"))
    http_sock = _bind(*cfg.http.listen, f"http.listen {cfg.http.listen[0]}:{cfg.http.listen[1]}")
    return smtp_socks, http_sock


def _bind(host: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == 98 else (exc.strerror or str(exc))
        if exc.errno == 13:
            reason = "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        raise StartupError(f"{what}: cannot listen: {reason}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class Worker:
    """One process's event loop: SMTP on the shared sockets, HTTP when asked."""

    def __init__(self, cfg: Config, smtp_socks: list[socket.socket], http_sock: socket.socket | None,
                 *, index: int, log_format: str, peers: PeerTable | None = None) -> None:
        self.cfg = cfg
        self.peers = peers
        self.smtp_socks = smtp_socks
        self.http_sock = http_sock
        self.index = index
        self.log_format = log_format
        self.sessions: set[GatewaySMTP] = set()
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        rt = build_runtime(self.cfg, log_format=self.log_format)
        self.rt = rt
        rt.astore.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        handler = GatewayHandler(rt)
        template = SessionTemplate.from_config(handler, self.cfg.smtp, peers=self.peers, metrics=rt.metrics)
        self.inflight = template.inflight

        def factory() -> GatewaySMTP:
            return GatewaySMTP(handler, sessions=self.sessions, template=template, loop=loop)

        servers = [await loop.create_server(factory, sock=s) for s in self.smtp_socks]
        http_task = None
        housekeeping = None
        if self.http_sock is not None:
            from .web import serve_http
            http_task = asyncio.create_task(serve_http(rt, self.http_sock, self.stopping))
            housekeeping = asyncio.create_task(self._housekeeping(rt))
        log.info("worker %d ready (pid %d)", self.index, os.getpid())
        print(f"sendergate: worker {self.index} ready", file=sys.stderr, flush=True)
        await self.stopping.wait()
        log.info("worker %d stopping: finishing open transactions", self.index)
        for srv in servers:
            srv.close()
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while time.monotonic() < deadline:
            for s in [s for s in self.sessions if not s.in_transaction]:
                await s.shutdown_idle()
            if not self.sessions and not self.inflight:
                break
            await asyncio.sleep(0.05)
        for s in list(self.sessions):
            await s.shutdown_idle()
        if self.inflight:  # end-of-DATA work of clients that left: let it record what it did
            await asyncio.wait(list(self.inflight), timeout=max(1.0, deadline - time.monotonic()))
        if housekeeping is not None:
            housekeeping.cancel()
        if http_task is not None:
            await http_task
        await rt.close()

    async def _housekeeping(self, rt: Runtime) -> None:
        """Retention pruning and challenge expiry, hourly, in worker 0 only. Challenges go with their
        tokens and CAPTCHAs CHALLENGE_GRACE after their expiry (events naming them stay)."""
        while True:
            try:
                now = time.time()
                pruned = await rt.astore.run(rt.store.prune_events, now - self.cfg.events.retention)
                expired = await rt.astore.run(rt.store.expire_challenges)
                gone = await rt.astore.run(rt.store.prune_challenges, now - CHALLENGE_GRACE)
                await rt.astore.run(rt.store.prune_rate_limits, now - 3600)
                await rt.astore.run(rt.store.prune_tag_senders, now - self.cfg.events.retention)
                if pruned or expired or gone:
                    log.info("housekeeping: pruned %d events, expired %d challenges, pruned %d challenges",
                             pruned, expired, gone)
                await rt.astore.run(rt.store.prune_digest_links, now)
                from .delivery import DeliveryError
                from .digest import send_digests
                try:  # one node sends each digest: the store's claim decides (digest.py)
                    await send_digests(self.cfg, rt.store, rt.deliverer, call=rt.astore.run, now=now)
                except DeliveryError as exc:
                    log.error("digest: %s", exc)
            except StoreError as exc:
                log.error("housekeeping failed: %s", exc)
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)


def cpu_plan(setting: str, workers: int, cpus: list[int]) -> list[int] | None:
    """The CPU each worker is kept on (worker i on the i-th), or None when they are left to the scheduler.

    `smtp.cpu_affinity = auto` keeps each of two or more workers on a CPU of its own, when there are
    CPUs enough for one each. A worker's threads then share one core: its event loop and its store
    writer hand the GIL and each batch's results to each other on that core, where the scheduler
    would otherwise often put them on two cores (a wake-up across cores per hand-over, and caches
    that travel). Measured on two cores (benchmarks.md): refusals +11 to +25 %, CPU per message -5
    to -14 %; pinning only the loop's thread gained nothing. `off`, or more workers than CPUs, or a
    system without sched_setaffinity (macOS, Windows): no pinning."""
    if setting != "auto" or workers < 2 or workers > len(cpus) or not hasattr(os, "sched_setaffinity"):
        return None
    return cpus[:workers]


def _pin(index: int, cpu: int) -> None:
    """Keep this process, and the threads it starts from now on, on `cpu` (called first in a worker)."""
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:  # the CPU went away (hot-unplug, a changed cpuset): run unpinned
        log.warning("worker %d not kept on CPU %d: %s", index, cpu, exc)


def _run_worker(cfg: Config, smtp_socks: list[socket.socket], http_sock: socket.socket | None, index: int,
                log_format: str, peers: PeerTable | None = None, cpu: int | None = None) -> None:
    if cpu is not None:  # before any thread is started: they inherit it
        _pin(index, cpu)
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - Windows
        pass
    if peers is not None:
        peers.use_region(index)
    asyncio.run(Worker(cfg, smtp_socks, http_sock, index=index, log_format=log_format, peers=peers).run())


def run(cfg: Config, *, log_format: str = "kv") -> int:
    """Run until SIGTERM/SIGINT. Returns the process exit code."""
    if problem := library_copies_problem(cfg):
        raise StartupError(problem)
    store = Store(cfg.store.url)
    try:
        store.migrate()
    finally:
        store.close()
    smtp_socks, http_sock = bind_sockets(cfg)
    _raise_fd_limit(cfg.smtp.max_connections)
    workers = worker_count(cfg.smtp.workers)
    # open sessions per client address, shared by the workers forked below
    peers = PeerTable(workers, cfg.smtp.max_connections) if cfg.smtp.max_connections_per_ip else None
    if workers == 1:
        _run_worker(cfg, smtp_socks, http_sock, 0, log_format, peers)
        return 0
    return _supervise(cfg, smtp_socks, http_sock, workers, log_format, peers)


def library_copies_problem(cfg: Config) -> str:
    """Why the copies of library internals this configuration would use do not fit the installed
    libraries ("" when they do): aiosmtpd's always, aiospamc's when spamd is asked."""
    problems = [library_copies_ok()]
    if cfg.scan.spamd:
        from .scan.spamd import library_copy_ok

        problems.append(library_copy_ok())
    return "; ".join(p for p in problems if p)


def _raise_fd_limit(connections: int) -> None:
    """Each SMTP session costs a descriptor (two while delivering): ask for room for max_connections."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 2 * connections + 256))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < connections + 64:
        log.warning("open-file limit %d is low for smtp.max_connections = %d", want, connections)


def _supervise(cfg: Config, smtp_socks: list[socket.socket], http_sock: socket.socket, workers: int,
               log_format: str, peers: PeerTable | None = None) -> int:
    plan = cpu_plan(cfg.smtp.cpu_affinity, workers, usable_cpus())  # a restarted worker gets its index's CPU
    if plan is not None:
        log.info("SMTP workers kept one per CPU (smtp.cpu_affinity = auto): CPUs %s", ", ".join(map(str, plan)))

    def before_spawn(index: int) -> None:
        if peers is not None:
            peers.clear_region(index)  # the sessions of a worker that died are gone with it

    def run_worker(index: int, cpu: int | None) -> None:
        _run_worker(cfg, smtp_socks, http_sock if index == 0 else None, index, log_format, peers, cpu)

    return supervise(workers, run_worker, plan=plan, before_spawn=before_spawn)


def supervise(workers: int, run_worker: Callable[[int, int | None], None], *, plan: list[int] | None,
              before_spawn: Callable[[int], None] | None = None, on_stop: Callable[[], None] | None = None,
              name: str = "worker", logger: logging.Logger = log) -> int:
    """Fork `workers` processes, each `run_worker(index, cpu)` (cpu: plan[index], or None), and restart
    one that exits until SIGTERM/SIGINT, which is passed on to them (then `on_stop()`, once). Gives up
    (exit code 1) when workers exit more than five times in a minute. Used by the gateway and the milter."""
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False

    def spawn(index: int) -> None:
        if before_spawn is not None:
            before_spawn(index)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                run_worker(index, plan[index] if plan is not None else None)
            except BaseException:
                logger.exception("%s %d crashed", name, index)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = index

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        first = not stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if first and on_stop is not None:
            on_stop()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for i in range(workers):
        spawn(i)
    exit_code = 0
    recent_crashes: list[float] = []
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, None)
        if index is None or stopping:
            continue
        code = os.waitstatus_to_exitcode(status)
        logger.error("%s %d (pid %d) exited with %d; restarting", name, index, pid, code)
        recent_crashes = [t for t in recent_crashes if time.time() - t < 60] + [time.time()]
        if len(recent_crashes) > 5:
            logger.error("%ss keep crashing; giving up", name)
            forward(signal.SIGTERM, None)
            exit_code = 1
            continue
        spawn(index)
    return exit_code
