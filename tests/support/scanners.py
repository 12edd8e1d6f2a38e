"""Private clamd and spamd instances for tests and benchmarks.

Each runs in the foreground as our child, on a free loopback TCP port and a
unix socket in its own 0755 directory under /tmp, and is stopped by PID.
clamd gets its own database directory holding one body signature for the
EICAR test string (no signature database can be downloaded here, and clamd
refuses to start with none); spamd uses SpamAssassin's stock rules, which
score the GTUBE string 1000.

Usable from a session fixture:

    clamd = start_clamd()      # ...; clamd.stop()
    spamd = start_spamd()      # ...; spamd.stop()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.common import (
    ServiceError,
    free_loopback_port,
    kill_and_wait,
    make_service_dir,
    pid_alive,
    remove_service_dir,
    require_executable,
)

CLAMD = "/usr/sbin/clamd"
SPAMD = "/usr/sbin/spamd"

# The standard anti-virus and anti-spam test strings (eicar.org, SpamAssassin).
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
EICAR_SIGNATURE = "SenderGate.Test.EICAR"
# clamd appends .UNOFFICIAL to names from databases it does not know.
EICAR_REPORTED = EICAR_SIGNATURE + ".UNOFFICIAL"


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def _children(pid: int) -> list[int]:
    """Direct children of pid (spamd's preforked workers)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found.extend(int(c) for c in text.split())
    except OSError:
        pass
    return found


@dataclass
class ScannerDaemon:
    name: str
    directory: Path
    port: int
    socket_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def tcp_spec(self) -> str:
        """The `scan.clamd` / `scan.spamd` config value for its TCP socket."""
        return f"tcp:127.0.0.1:{self.port}"

    @property
    def unix_spec(self) -> str:
        return f"unix:{self.socket_path}"

    def processes(self) -> list[int]:
        return [self.pid, *_children(self.pid)]

    def pause(self) -> None:
        """SIGSTOP the daemon and its workers: connections are still accepted by
        the kernel (listen backlog) but never answered, like a hung scanner."""
        for pid in self.processes():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.processes():
            os.kill(pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crash would; the workers go with it (they are ours)."""
        workers = _children(self.pid)
        for pid in [self.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)
        self._wait_gone(workers)

    def stop(self, keep_directory: bool = False) -> None:
        """SIGTERM (SIGKILL after 5 s) the daemon, make sure its workers are gone,
        remove its directory."""
        workers = _children(self.pid)
        if self.process.poll() is None:
            try:
                os.kill(self.pid, signal.SIGCONT)  # a paused daemon cannot act on SIGTERM
            except ProcessLookupError:
                pass
            for pid in workers:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            kill_and_wait(self.pid)
            self.process.wait(timeout=10)
        self._wait_gone(workers)
        if not keep_directory:
            remove_service_dir(self.directory)

    def _wait_gone(self, pids: list[int], timeout: float = 5.0) -> None:
        for pid in pids:
            if pid_alive(pid):
                kill_and_wait(pid, timeout)

    def log(self) -> str:
        return _log_tail(self.log_path)


def write_eicar_database(db_dir: Path) -> Path:
    """A one-line .ndb body signature: matches after clamd's MIME decoding, so
    EICAR inside a base64 attachment is found too."""
    db_dir.mkdir(parents=True, exist_ok=True)
    path = db_dir / "sendergate-test.ndb"
    path.write_text(f"{EICAR_SIGNATURE}:0:*:{EICAR.hex()}\n")
    return path


def _wait_ready(probe, daemon: ScannerDaemon, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            raise ServiceError(
                f"{daemon.name} exited with {daemon.process.returncode} before it was ready; "
                f"log {daemon.log_path}:\n{daemon.log()}"
            )
        try:
            if probe():
                return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.02)
    daemon.stop(keep_directory=True)
    raise ServiceError(f"{daemon.name} not ready within {timeout:.0f} s ({last}); log:\n{daemon.log()}")


def _ask(connect, request: bytes, until: bytes) -> bytes:
    with connect() as sock:
        sock.settimeout(2.0)
        sock.sendall(request)
        answer = b""
        while until not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer


def _tcp(port: int):
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=2.0)


def _unix(path: Path):
    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
        except OSError:
            sock.close()
            raise
        return sock
    return connect


def start_clamd(stream_max_length: str = "25M", timeout: float = 30.0) -> ScannerDaemon:
    """clamd in the foreground with the EICAR test signature, on TCP and a unix socket."""
    require_executable(CLAMD, "clamd (Debian package clamav-daemon)")
    directory = make_service_dir("sendergate-clamd-")
    write_eicar_database(directory / "db")
    port = free_loopback_port()
    socket_path = directory / "clamd.sock"
    log_path = directory / "clamd.log"
    conf = directory / "clamd.conf"
    conf.write_text(
        "Foreground yes\n"
        f"DatabaseDirectory {directory / 'db'}\n"
        f"LocalSocket {socket_path}\n"
        f"TCPSocket {port}\n"
        "TCPAddr 127.0.0.1\n"
        f"LogFile {log_path}\n"
        f"PidFile {directory / 'clamd.pid'}\n"
        f"StreamMaxLength {stream_max_length}\n"
        # Two scanning threads are plenty for tests, and keep clamd light on 2 cores.
        "MaxThreads 4\n"
    )
    with open(directory / "clamd.out", "wb") as out:
        process = subprocess.Popen([CLAMD, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    daemon = ScannerDaemon("clamd", directory, port, socket_path, log_path, process,
                           {"stream_max_length": stream_max_length})

    def ready() -> bool:
        return (_ask(_tcp(port), b"zPING\0", b"\0") == b"PONG\0"
                and _ask(_unix(socket_path), b"zPING\0", b"\0") == b"PONG\0")

    _wait_ready(ready, daemon, timeout)
    return daemon


def start_spamd(timeout: float = 60.0, children: int = 2) -> ScannerDaemon:
    """spamd with the stock rules, in the foreground (no -d, so it does not fork
    away from us), on a loopback TCP port and a unix socket."""
    require_executable(SPAMD, "spamd (Debian package spamd)")
    directory = make_service_dir("sendergate-spamd-")
    port = free_loopback_port()
    socket_path = directory / "spamd.sock"
    log_path = directory / "spamd.log"
    argv = [
        SPAMD,
        "-u", "debian-spamd",  # spamd refuses to run its workers as root
        "--allowed-ips=127.0.0.1",
        "-L",  # local tests only: no DNS or network lookups
        "-x",  # no per-user configuration
        f"--listen=127.0.0.1:{port}",
        f"--listen={socket_path}",
        f"--max-children={children}",
        f"--min-children={children}",
        "-r", str(directory / "spamd.pid"),
        "-s", str(log_path),
    ]
    with open(directory / "spamd.out", "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    daemon = ScannerDaemon("spamd", directory, port, socket_path, log_path, process)
    ping = b"PING SPAMC/1.5\r\n\r\n"

    def ready() -> bool:
        return (b"PONG" in _ask(_tcp(port), ping, b"PONG")
                and b"PONG" in _ask(_unix(socket_path), ping, b"PONG"))

    _wait_ready(ready, daemon, timeout)
    return daemon
