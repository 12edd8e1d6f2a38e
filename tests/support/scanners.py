"""Private clamd, spamd and rspamd instances for tests and benchmarks.

Each runs in the foreground as our child, on a free loopback TCP port and a
unix socket in its own 0755 directory under /tmp, and is stopped by PID.
clamd gets its own database directory holding one body signature for the
EICAR test string (no signature database can be downloaded here, and clamd
refuses to start with none); spamd uses SpamAssassin's stock rules, which
score the GTUBE string 1000. rspamd (Debian's, with its stock rules) gets a
minimal top-level config in its directory: only the normal worker, on the
free port and a unix socket; no module that reaches the network (DNS lists,
SPF/DKIM/DMARC, fuzzy storage, remote maps) and a nameserver on a loopback
port nobody answers, so nothing waits on DNS; GTUBE is rspamd's own
(action "reject").

Usable from a session fixture:

    clamd = start_clamd()      # ...; clamd.stop()
    spamd = start_spamd()      # ...; spamd.stop()
    rspamd = start_rspamd()    # rspamd.url; rspamd.stop()
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
RSPAMD = "/usr/bin/rspamd"
RSPAMD_USER = "_rspamd"  # Debian's; rspamd will not run its workers as root

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

    @property
    def url(self) -> str:
        """The `scan.rspamd` config value for its TCP socket."""
        return f"http://127.0.0.1:{self.port}"

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


# rspamd modules that would reach the network: DNS lists and URL blocklists, SPF/DKIM/DMARC/ARC
# (DNS), fuzzy storage (UDP to rspamd's servers), remote maps (HTTPS), rDNS and HELO lookups.
RSPAMD_NETWORK_MODULES = (
    "rbl", "surbl", "emails", "whitelist", "phishing", "multimap", "mime_types", "mid", "fuzzy_check",
    "spf", "dkim", "dmarc", "arc", "asn", "mx_check", "rspamd_update", "hfilter", "reputation",
    "neural", "url_redirector", "once_received", "dkim_signing", "bimi", "external_services",
)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _http_get(port: int, path: str) -> bytes:
    return _ask(_tcp(port), f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(),
                b"\0never")


def start_rspamd(timeout: float = 60.0, actions: dict[str, float] | None = None,
                 options: str = "", extra_conf: str = "") -> ScannerDaemon:
    """Debian's rspamd in the foreground (-f) with a minimal config in its own directory: the
    normal worker only, on a loopback TCP port and a unix socket. `actions` overrides its action
    scores (e.g. {"add_header": 0.5}); `options` is added to its options (e.g. "max_message = 100k;");
    `extra_conf` is appended to the top-level config."""
    require_executable(RSPAMD, "rspamd (Debian package rspamd)")
    directory = make_service_dir("sendergate-rspamd-")
    port = free_loopback_port()
    socket_path = directory / "rspamd.sock"
    log_path = directory / "rspamd.log"
    local = directory / "local.d"
    local.mkdir()
    # Its stock list has ~9600 public suffixes, compiled at every start (11 s here); tests need few.
    (directory / "tld.dat").write_text("com\norg\nnet\nexample\ninvalid\ntest\n")
    (local / "options.inc").write_text(
        f'dns {{ nameserver = ["127.0.0.1:{_free_udp_port()}"]; timeout = 0.3s; retransmits = 1; }}\n'
        "disable_hyperscan = true;\n"  # hyperscan compiles its databases at start: 20 s here
        f'url_tld = "{directory / "tld.dat"}";\n' + options + "\n"
    )
    for module in RSPAMD_NETWORK_MODULES:
        (local / f"{module}.conf").write_text("enabled = false;\n")
    if actions:
        (local / "actions.conf").write_text("".join(f"{k} = {v};\n" for k, v in actions.items()))
    conf = directory / "rspamd.conf"
    conf.write_text(
        '.include "$CONFDIR/common.conf"\n'
        "options {\n"
        '    .include "$CONFDIR/options.inc"\n'
        '    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"\n'
        "}\n"
        f'logging {{ type = "file"; filename = "{log_path}"; level = "info"; }}\n'
        'worker "normal" {\n'
        f'    bind_socket = "127.0.0.1:{port}";\n'
        f'    bind_socket = "{socket_path} mode=0666";\n'
        "    count = 1;\n"
        '    .include "$CONFDIR/worker-normal.inc"\n'
        "}\n" + extra_conf
    )
    argv = [RSPAMD, "-f", "-c", str(conf)]
    for name in ("LOCAL_CONFDIR", "DBDIR", "RUNDIR", "LOGDIR"):
        argv.append(f"--var={name}={directory}")
    if os.geteuid() == 0:
        argv += ["-u", RSPAMD_USER, "-g", RSPAMD_USER]
        subprocess.run(["chown", "-R", f"{RSPAMD_USER}:{RSPAMD_USER}", str(directory)], check=True)
    with open(directory / "rspamd.out", "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    daemon = ScannerDaemon("rspamd", directory, port, socket_path, log_path, process)

    def ready() -> bool:
        return _http_get(port, "/ping").endswith(b"pong\r\n") and socket_path.exists()

    _wait_ready(ready, daemon, timeout)
    return daemon
