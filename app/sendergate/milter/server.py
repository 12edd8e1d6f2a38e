"""`sendergate milter`: the milter socket and the HTTP server (confirmation page, API), in one process
or in `milter.workers` pre-forked ones.

Sockets are bound once, in the parent, before anything starts, so "in use" or
"permission denied" is one clear error. With more than one worker the parent
forks workers that accept on the shared milter socket and supervises them as
the gateway does (gateway.supervise: a worker that dies is restarted, on the
CPU its index had under smtp.cpu_affinity); worker 0 also serves HTTP and does
the housekeeping. Each worker builds its own runtime (store, writer thread,
metrics in the directory the workers share). SIGTERM: stop accepting, let the
MTA's open connections finish (Postfix closes its milter connection with each
SMTP session), exit; the process that bound the unix socket removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import stat
import struct
import sys
import time
from pathlib import Path

from ..config import Config
from ..config import parse_milter_listen as parse_listen
from . import protocol
from .filter import MilterHandler, SenderGateFilter

log = logging.getLogger("sendergate.milter")

SHUTDOWN_GRACE = 60.0  # seconds the MTA's open connections get after SIGTERM


class StartupError(Exception):
    """A problem the admin must fix before the milter can start; one line."""


def _speaks_milter(sock: socket.socket) -> bool:
    """Whether what answers on a connected socket negotiates the milter protocol (as Postfix opens)."""
    try:
        sock.sendall(protocol.Action(protocol.SMFIC_OPTNEG, struct.pack(
            "!III", protocol.VERSION, 0x1FF, 0x1FFFFF)).packet())
        head = sock.recv(5)
        return len(head) == 5 and head[4:5] == protocol.SMFIC_OPTNEG
    except OSError:
        return False


def probe(spec: str) -> tuple[str, str]:
    """What check-config says of the socket: ("listening" | "bindable" | "problem", detail)."""
    kind, where = parse_listen(spec)
    if kind == "unix":
        assert isinstance(where, str)
        path = Path(where)
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                return "problem", f"{path} exists and is not a socket"
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                try:
                    s.connect(str(path))
                except OSError:
                    pass
                else:
                    if _speaks_milter(s):
                        return "listening", f"{path}: a milter answers there"
                    return "problem", f"{path}: something that is not a milter listens there"
            if os.access(path.parent, os.W_OK | os.X_OK):
                return "bindable", f"{path}: stale socket file, replaced at start"
            return "problem", f"{path}: stale socket file and {path.parent} is not writable"
        if not path.parent.is_dir():
            return "problem", f"directory {path.parent} does not exist (systemd: RuntimeDirectory=sendergate)"
        if not os.access(path.parent, os.W_OK | os.X_OK):
            return "problem", f"directory {path.parent} is not writable by this user"
        return "bindable", f"{path} can be created"
    assert isinstance(where, tuple)
    host, port = where
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        if s.connect_ex((host, port)) == 0:
            if _speaks_milter(s):
                return "listening", f"{host}:{port}: a milter answers there"
            return "problem", f"{host}:{port}: something that is not a milter listens there"
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        return "problem", f"{host}:{port}: cannot listen: {exc.strerror or exc}"
    return "bindable", f"{host}:{port} is free"


def bind(spec: str, mode: int) -> socket.socket:
    """The listening socket. A unix socket left by a milter that died is replaced; one a running
    milter answers on is not (that is "in use")."""
    try:
        kind, where = parse_listen(spec)
    except ValueError as exc:
        raise StartupError(f"milter.listen: {exc}") from None
    if kind == "unix":
        assert isinstance(where, str)
        state, detail = probe(spec)
        if state != "bindable":
            raise StartupError(f"milter.listen {spec}: cannot listen: "
                               + ("in use by a running milter" if state == "listening" else detail))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(where)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o777 & ~mode)  # never a moment with looser permissions than asked for
        try:
            sock.bind(where)
        except OSError as exc:
            sock.close()
            raise StartupError(f"milter.listen {spec}: cannot listen: {exc.strerror or exc}") from None
        finally:
            os.umask(old)
        os.chmod(where, mode)
    else:
        assert isinstance(where, tuple)
        host, port = where
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise StartupError(f"milter.listen {spec}: cannot listen: {reason}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class MilterService:
    """The event loop's work: milter connections, HTTP, housekeeping; until SIGTERM."""

    def __init__(self, cfg: Config, milter_sock: socket.socket, http_sock: socket.socket | None,
                 *, log_format: str = "kv", index: int = 0, workers: int = 1) -> None:
        self.cfg = cfg
        self.milter_sock = milter_sock
        self.http_sock = http_sock
        self.log_format = log_format
        self.index = index
        self.workers = workers
        self.connections: dict[asyncio.Task, SenderGateFilter] = {}
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        from ..gateway import Worker
        from ..runtime import build_runtime

        rt = build_runtime(self.cfg, log_format=self.log_format, workers=self.workers)
        rt.astore.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        handler = MilterHandler(rt)

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            flt = self.connections[task] = SenderGateFilter(handler, rt, worker=self.index)
            try:
                await protocol.serve_connection(flt, reader, writer)
            except Exception as exc:  # one connection's failure is logged (it logs the exception), the milter goes on
                log.error("milter connection failed: %r", exc, exc_info=exc)
                writer.close()
            finally:
                self.connections.pop(task, None)

        if self.milter_sock.family == socket.AF_UNIX:
            server = await asyncio.start_unix_server(on_connection, sock=self.milter_sock)
        else:
            server = await asyncio.start_server(on_connection, sock=self.milter_sock)
        http_task = housekeeping = None
        if self.http_sock is not None:
            from ..web import serve_http
            http_task = asyncio.create_task(serve_http(rt, self.http_sock, self.stopping))
            # the gateway's hourly pruning, unchanged (it needs only the configuration)
            housekeeping = asyncio.create_task(Worker(self.cfg, [], None, index=0,
                                                      log_format=self.log_format)._housekeeping(rt))
        log.info("milter worker %d ready (pid %d)", self.index, os.getpid())
        print(f"sendergate: milter ready (worker {self.index})", file=sys.stderr, flush=True)
        await self.stopping.wait()
        log.info("milter worker %d stopping: finishing open connections", self.index)
        server.close()
        # Connections between messages close now (Postfix applies milter_default_action to the rest of
        # that SMTP session: its client is told to retry); a message being decided gets to finish.
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while self.connections and time.monotonic() < deadline:
            for task, flt in list(self.connections.items()):
                if not flt.busy:
                    task.cancel()
            await asyncio.sleep(0.05)
        for task in list(self.connections):
            task.cancel()
        if housekeeping is not None:
            housekeeping.cancel()
        if http_task is not None:
            await http_task
        await rt.close()


def run(cfg: Config, *, listen: str = "", log_format: str = "kv") -> int:
    """Run until SIGTERM/SIGINT. Returns the process exit code."""
    from ..cpus import usable_cpus, worker_count
    from ..gateway import StartupError as GatewayStartupError
    from ..gateway import _bind, cpu_plan, supervise
    from ..store import Store

    store = Store(cfg.store.url)
    try:
        store.migrate()
    finally:
        store.close()
    spec = listen or cfg.milter.listen
    milter_sock = bind(spec, cfg.milter.socket_mode)
    ours = _socket_file(milter_sock)
    try:
        try:
            http_sock = _bind(*cfg.http.listen, f"http.listen {cfg.http.listen[0]}:{cfg.http.listen[1]}")
        except GatewayStartupError as exc:
            milter_sock.close()
            raise StartupError(str(exc)) from None
        workers = worker_count(cfg.milter.workers)
        if workers == 1:
            _run_worker(cfg, milter_sock, http_sock, 0, 1, log_format)
            return 0
        plan = cpu_plan(cfg.smtp.cpu_affinity, workers, usable_cpus())  # a restarted worker gets its index's CPU
        if plan is not None:
            log.info("milter workers kept one per CPU (smtp.cpu_affinity = auto): CPUs %s", ", ".join(map(str, plan)))

        def run_worker(index: int, cpu: int | None) -> None:
            _run_worker(cfg, milter_sock, http_sock if index == 0 else None, index, workers, log_format, cpu)

        # once stopping, new MTA connections are refused at once rather than left waiting in the backlog
        return supervise(workers, run_worker, plan=plan, on_stop=milter_sock.close, name="milter worker",
                         logger=log)
    finally:
        _remove_socket_file(ours)


def _run_worker(cfg: Config, milter_sock: socket.socket, http_sock: socket.socket | None, index: int,
                workers: int, log_format: str, cpu: int | None = None) -> None:
    from ..gateway import _pin

    if cpu is not None:  # before any thread is started: they inherit it
        _pin(index, cpu)
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - Windows
        pass
    asyncio.run(MilterService(cfg, milter_sock, http_sock, log_format=log_format, index=index,
                              workers=workers).run())


def _socket_file(sock: socket.socket) -> tuple[str, int, int] | None:
    """The unix socket's path and its file's identity (device, inode), or None for an inet socket."""
    if sock.family != socket.AF_UNIX:
        return None
    path = sock.getsockname()
    st = os.stat(path)
    return path, st.st_dev, st.st_ino


def _remove_socket_file(ours: tuple[str, int, int] | None) -> None:
    """Remove the unix socket this process bound; not a file someone put at its path since."""
    if ours is None:
        return
    path, dev, ino = ours
    with contextlib.suppress(OSError):
        st = os.stat(path)
        if (st.st_dev, st.st_ino) == (dev, ino):
            os.unlink(path)
