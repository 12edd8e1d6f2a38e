"""Helpers shared by the test-service launchers: loopback ports, service
directories, child processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


class ServiceError(RuntimeError):
    """A test service could not be started, used or stopped; the message says why."""


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now.

    The kernel picks it; there is a small window before the service binds it,
    which is acceptable for tests (a clash fails loudly at start).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SERVICE_DIR_PREFIX = "sendergate-"
OWNER_FILE = ".owner"  # "pid start-time" of the process that made the directory


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def make_service_dir(prefix: str) -> Path:
    """A fresh directory under /tmp, mode 0755, marked with the process that owns it.

    Daemons that drop privileges (postgres, postfix, dovecot) must traverse
    every parent; pytest's tmp_path and a bare mkdtemp are 0700. The owner
    mark lets a later run clean up after one that was killed (see
    sweep_stale_service_dirs).
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    (path / OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
    return path


def other_processes() -> Iterator[Path]:
    """/proc/<pid> of every process but this one."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            yield entry


def _processes_using(path: Path) -> list[int]:
    """Processes whose command line, working directory or MAIL_CONFIG lies under path."""
    marker = str(path).encode()
    found = []
    for entry in other_processes():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd").encode()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if (marker in cmdline or cwd == marker or cwd.startswith(marker + b"/")
                or b"MAIL_CONFIG=" + marker in environ):
            found.append(int(entry.name))
    return found


def sweep_stale_service_dirs(parent: Path = Path("/tmp")) -> list[Path]:
    """Remove service directories whose owning test process is gone (a run killed with SIGKILL
    cannot clean up), killing the daemons still running from them. Directories without an owner
    mark, or whose owner still runs, are left alone. Returns what was removed."""
    removed = []
    for path in parent.glob(SERVICE_DIR_PREFIX + "*"):
        try:
            pid_text, start = (path / OWNER_FILE).read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            continue
        if _start_time(pid) == start:  # the owner still runs (a concurrent test run)
            continue
        for orphan in _processes_using(path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(orphan, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def remove_service_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def require_executable(path: str | Path, what: str) -> Path:
    """Fail loudly when a daemon's binary is missing, naming the package to install."""
    executable = Path(path)
    if not (executable.is_file() and os.access(executable, os.X_OK)):
        raise ServiceError(
            f"{what} not found at {executable}: install it "
            "(installer/dev/system-deps.sh test installs every test dependency)"
        )
    return executable


def run_checked(argv: Sequence[str | Path], what: str, timeout: float = 60.0) -> str:
    """Run a setup command; on failure raise with its output, never swallow it."""
    completed = subprocess.run(
        [str(arg) for arg in argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise ServiceError(
            f"{what} failed (exit {completed.returncode}): "
            f"{' '.join(map(str, argv))}\n{completed.stdout.strip()}"
        )
    return completed.stdout


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        return reaped == 0
    except ChildProcessError:
        return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3 after the parenthesised command name is the state letter.
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def kill_and_wait(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if the process outlives the timeout."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.02)
    raise ServiceError(f"process {pid} survived SIGKILL")


def wait_for_port(port: int, timeout: float, what: str, alive: Callable[[], bool] | None = None) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if alive is not None and not alive():
            raise ServiceError(f"{what} exited before listening on 127.0.0.1:{port}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")
        time.sleep(0.01)


def log_tail(path: Path | None, lines: int = 40) -> str:
    """The end of a daemon's log, for an error raised before its directory goes."""
    if path is None:
        return "(no log)"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) or "(log empty)"
    except OSError as error:
        return f"(log unreadable: {error})"


def failed_start(error: ServiceError, log: Path | None) -> ServiceError:
    """The start error with the daemon's own words attached."""
    return ServiceError(f"{error}\n--- end of {log.name if log else 'log'} ---\n{log_tail(log)}")


def listens_on(pid: int, port: int) -> bool:
    """Whether process pid itself holds a listening TCP socket on 127.0.0.1:port.

    A bare connect() could reach whoever else grabbed the port first.
    """
    try:
        inodes = {
            os.readlink(fd)[len("socket:["):-1]
            for fd in Path(f"/proc/{pid}/fd").iterdir()
            if os.readlink(fd).startswith("socket:[")
        }
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    wanted = f"0100007F:{port:04X}"
    for row in table:
        fields = row.split()
        # local_address, state 0A = LISTEN, inode
        if fields[1] == wanted and fields[3] == "0A" and fields[9] in inodes:
            return True
    return False
