"""The sender's server, three of the MTAs that deliver most of the world's mail: Exim 4.96 and
OpenSMTPD 6.8 unpacked from Debian's packages, and Postfix 3.7 (tests/support/postfix.py).

    with EximSender(routes={"example.org": gateway_port}) as exim:
        exim.submit("sam@sender.test", ["alice@example.org"], message)
        bounce = exim.wait_for_mail("sam", timeout=60)      # bounces land in sam's Maildir
        exim.flush()                                        # exim -qff: every queued message now

Exim's and OpenSMTPD's packages conflict with the installed Postfix (each provides
mail-transport-agent), so they are never installed: installer/dev/system-deps.sh test fetches the
.debs into .cache/debs/ and each instance unpacks them into its own directory. Both look up system
users and fixed paths; each daemon runs in a private mount namespace (unshare -m) where a private
passwd/group holding those users, and private /var/lib, /var/spool, /run directories, are
bind-mounted over the machine's. Nothing outside the instance directory changes; stop() kills the daemon by PID and
removes the directory. If the test process is killed, the next session's stale-directory sweep
finds each daemon by its command line (it names the instance directory); OpenSMTPD also dies at
once with its parent (setpriv --pdeathsig; Exim drops that when it switches to its own user).

All three take mail by SMTP on a free loopback port, relay the routed domains to 127.0.0.1:PORT
without TLS, deliver mail for the mailbox domain (their own bounces) into Maildirs, and keep what
they cannot deliver in their queue until flush().
"""

from __future__ import annotations

import atexit
import os
import re
import shlex
import signal
import smtplib
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from tests.support.common import (
    ServiceError,
    failed_start,
    free_loopback_port,
    kill_and_wait,
    listens_on,
    make_service_dir,
    other_processes,
    remove_service_dir,
    require_executable,
    run_checked,
)
from tests.support.postfix import PostfixInstance, unfold  # noqa: F401 (re-exported for the matrix)

REPO = Path(__file__).resolve().parents[2]
DEB_CACHE = REPO / ".cache" / "debs"
EXIM_PACKAGES = ("exim4-base", "exim4-daemon-light")
OPENSMTPD_PACKAGES = ("opensmtpd",)
UNSHARE = Path("/usr/bin/unshare")
SETPRIV = Path("/usr/bin/setpriv")
NSENTER = Path("/usr/bin/nsenter")
DPKG_DEB = Path("/usr/bin/dpkg-deb")
_PORT_ATTEMPTS = 3
_FIRST_PRIVATE_ID = 60100  # ids for the private users; they only exist inside the namespace


class SenderMTA(Protocol):
    """What the matrix needs from a sender's server."""

    name: str
    port: int

    def submit(self, sender: str, recipients: Sequence[str], message: bytes) -> None: ...
    def wait_for_mail(self, mailbox: str, timeout: float = 5.0) -> bytes: ...
    def mail(self, mailbox: str) -> list[bytes]: ...
    def flush(self) -> None: ...
    def queued(self, sender: str) -> int: ...
    def log(self) -> str: ...
    def stop(self) -> None: ...


def deb_files(packages: Sequence[str], cache: Path = DEB_CACHE) -> list[Path]:
    """The cached .deb of each package (the last by name if several); fails loudly when one is missing."""
    found = []
    for package in packages:
        debs = sorted(cache.glob(f"{package}_*.deb"))
        if not debs:
            raise ServiceError(
                f"{package}_*.deb not found in {cache}: run installer/dev/system-deps.sh test "
                "(it fetches the packages with apt-get download; they are never installed)")
        found.append(debs[-1])
    return found


def unpack(packages: Sequence[str], root: Path) -> Path:
    """dpkg -x each package's .deb into root (about 0.1 s per package)."""
    dpkg_deb = require_executable(DPKG_DEB, "dpkg-deb (package dpkg)")
    root.mkdir(mode=0o755, exist_ok=True)
    for deb in deb_files(packages):
        run_checked([dpkg_deb, "-x", deb, root], f"unpacking {deb.name}")
    return root


def private_accounts(base: Path, names: Sequence[str]) -> dict[str, int]:
    """base/passwd and base/group: the machine's, plus one user and group per name, ids unused here.

    Returns name -> id (uid == gid)."""
    passwd = Path("/etc/passwd").read_text()
    group = Path("/etc/group").read_text()
    taken = {int(line.split(":")[2]) for text in (passwd, group) for line in text.splitlines()
             if line.count(":") >= 3 and line.split(":")[2].isdigit()}
    ids: dict[str, int] = {}
    candidate = _FIRST_PRIVATE_ID
    for name in names:
        while candidate in taken:
            candidate += 1
        ids[name] = candidate
        taken.add(candidate)
    passwd += "".join(f"{n}:x:{i}:{i}:{n}:/nonexistent:/usr/sbin/nologin\n" for n, i in ids.items())
    group += "".join(f"{n}:x:{i}:\n" for n, i in ids.items())
    (base / "passwd").write_text(passwd)
    (base / "group").write_text(group)
    (base / "passwd").chmod(0o644)
    (base / "group").chmod(0o644)
    return ids


def in_private_namespace(binds: Sequence[tuple[Path, str]], argv: Sequence[str | Path]) -> list[str]:
    """argv run in a new mount namespace with binds (source -> machine path) mounted over the
    machine's paths; the process becomes argv itself (exec), and dies with its parent (unless it
    switches user: the kernel then forgets the parent-death signal)."""
    require_executable(UNSHARE, "unshare (package util-linux)")
    require_executable(SETPRIV, "setpriv (package util-linux)")
    mounts = [f"mount --bind {shlex.quote(str(src))} {shlex.quote(dst)}" for src, dst in binds]
    script = " && ".join([*mounts, "exec " + shlex.join(str(a) for a in argv)])
    return [str(UNSHARE), "--mount", "--propagation", "private",
            str(SETPRIV), "--pdeathsig", "KILL", "sh", "-c", script]


def _smtp_submit(port: int, sender: str, recipients: Sequence[str], message: bytes) -> None:
    """Hand a message to the MTA's listener; every recipient must be accepted."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.sender.test", timeout=30) as client:
        refused = client.sendmail(sender, list(recipients), message)
    if refused:
        raise ServiceError(f"the sender's server refused recipients: {refused}")


def _maildir_messages(maildir: Path) -> list[bytes]:
    """Every message in maildir/new, oldest first (left in place: callers read it again)."""
    new = maildir / "new"
    if not new.is_dir():
        return []
    paths = sorted(new.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))
    return [p.read_bytes() for p in paths]


class _NamespacedDaemon:
    """A daemon in its own mount namespace: start, wait for its port, stop by PID."""

    name = "daemon"
    prefix = "sendergate-mta-"
    packages: tuple[str, ...] = ()

    def __init__(self, *, routes: Mapping[str, int], mailbox_domain: str = "sender.test",
                 mailboxes: Sequence[str] = ("sender",), start: bool = True) -> None:
        if os.geteuid() != 0:
            raise ServiceError(f"{self.name} as a sender's server needs root (mount namespace, system users)")
        self.routes = dict(routes)
        self.mailbox_domain = mailbox_domain
        self.mailboxes = tuple(mailboxes)
        self.port = 0
        self.base: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        if start:
            self.start()

    # --- to be filled in per daemon -------------------------------------------
    def _prepare(self, base: Path, root: Path) -> tuple[list[tuple[Path, str]], list[str]]:
        raise NotImplementedError

    @property
    def log_file(self) -> Path:
        raise NotImplementedError

    # --- lifecycle ----------------------------------------------------------------
    def _dir(self) -> Path:
        if self.base is None:
            raise ServiceError(f"{self.name} is not running")
        return self.base

    @property
    def mail_dir(self) -> Path:
        return self._dir() / "mail"

    def start(self) -> Self:
        # The free port we pick can be taken before the daemon binds it (tests run in
        # parallel): then start again on another.
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                return self._start_once()
            except ServiceError as error:
                if attempt == _PORT_ATTEMPTS or "Address already in use" not in str(error):
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> Self:
        if self.base is not None:
            raise ServiceError(f"{self.name} already started")
        self.base = make_service_dir(self.prefix)
        atexit.register(self.stop)
        try:
            root = unpack(self.packages, self.base / "root")
            self.port = free_loopback_port()
            binds, argv = self._prepare(self.base, root)
            with (self.base / "daemon.out").open("wb") as out:
                self.process = subprocess.Popen(in_private_namespace(binds, argv), stdout=out,
                                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True)
            self._wait_until_listening(timeout=15)
        except ServiceError as error:
            failure = failed_start(error, self._start_log())
            self.stop()
            raise failure from None
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_listening(self, timeout: float) -> None:
        """Until one of the daemon's own processes listens on the port (a bare connect() could
        reach whoever else took it)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not any(listens_on(pid, self.port) for pid in self.pids()):
            if self.process.poll() is not None:
                raise ServiceError(f"{self.name} exited (status {self.process.returncode})")
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name} did not listen on 127.0.0.1:{self.port} in {timeout:g} s")
            time.sleep(0.01)

    def pids(self) -> list[int]:
        """The daemon and every process it started (they share its session)."""
        if self.process is None:
            return []
        found = []
        for entry in other_processes():
            try:
                if os.getsid(int(entry.name)) == self.process.pid:
                    found.append(int(entry.name))
            except ProcessLookupError:
                continue
        return found

    def _start_log(self) -> Path:
        out = self._dir() / "daemon.out"
        return self.log_file if self.log_file.exists() and self.log_file.stat().st_size else out

    def stop(self) -> None:
        """Kill the daemon and everything it started (its session), then remove the directory."""
        atexit.unregister(self.stop)
        try:
            if self.process is not None:
                if self.process.poll() is None:
                    kill_and_wait(self.process.pid)
                # Children the daemon forked (deliveries, OpenSMTPD's processes) share its session.
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(5)
        finally:
            self.process = None
            if self.base is not None:
                remove_service_dir(self.base)
                self.base = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def inside(self, argv: Sequence[str | Path], what: str, timeout: float = 60.0) -> str:
        """Run a command in the daemon's mount namespace (its private users and paths)."""
        if self.process is None or self.process.poll() is not None:
            raise ServiceError(f"{self.name} is not running: cannot run {what}\n{self.log()[-2000:]}")
        nsenter = require_executable(NSENTER, "nsenter (package util-linux)")
        return run_checked([nsenter, "--target", str(self.process.pid), "--mount", "--", *argv], what, timeout)

    # --- use --------------------------------------------------------------------------
    def submit(self, sender: str, recipients: Sequence[str], message: bytes) -> None:
        _smtp_submit(self.port, sender, recipients, message)

    def mail(self, mailbox: str) -> list[bytes]:
        return _maildir_messages(self.mail_dir / mailbox)

    def wait_for_mail(self, mailbox: str, timeout: float = 5.0) -> bytes:
        """The first message in mailbox's Maildir, waiting for it (it stays there)."""
        deadline = time.monotonic() + timeout
        while not (found := self.mail(mailbox)):
            if time.monotonic() > deadline:
                raise ServiceError(f"no mail for {mailbox}@{self.mailbox_domain} at {self.name} within "
                                   f"{timeout:g} s; queue:\n{self.queue_listing()}\nlog tail:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        return found[0]

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except (FileNotFoundError, ServiceError):
            return ""


# --------------------------------------------------------------------------
# Exim


EXIM_USER = "Debian-exim"  # compiled into Debian's exim4: looked up at every start


def exim_config(*, port: int, base: Path, routes: Mapping[str, int], mailbox_domain: str) -> str:
    """A sender's Exim: relays each routed domain to 127.0.0.1:PORT by manualroute, delivers mail
    for mailbox_domain (its bounces) into base/mail/<local part>/ Maildirs. Debian's retry rule.
    No TLS anywhere: on such a session Exim pipelines `.` and QUIT, as it does to most MXs."""
    routers = []
    transports = []
    for index, (domain, target) in enumerate(routes.items()):
        routers.append(f"""
route_{index}:
  driver = manualroute
  domains = {domain} : *.{domain}
  route_list = * 127.0.0.1 byname
  self = send
  transport = smtp_{index}
""")
        transports.append(f"""
smtp_{index}:
  driver = smtp
  port = {target}
  allow_localhost
""")
    return f"""\
primary_hostname = exim.{mailbox_domain}
qualify_domain = {mailbox_domain}
local_interfaces = 127.0.0.1
daemon_smtp_ports = {port}
exim_path = {base}/root/usr/sbin/exim4
spool_directory = {base}/spool
log_file_path = {base}/log/%slog
pid_file_path = {base}/exim.pid
keep_environment =
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
acl_smtp_rcpt = acl_check_rcpt

begin acl
acl_check_rcpt:
  accept hosts = 127.0.0.1
  deny

begin routers
mailboxes:
  driver = accept
  domains = {mailbox_domain}
  # a lookup's result is untainted: Exim builds no path from the raw local part
  local_parts = lsearch;{base}/mailboxes
  transport = maildir
{''.join(routers)}
begin transports
maildir:
  driver = appendfile
  directory = {base}/mail/$local_part_data/
  maildir_format
  create_directory
  user = {EXIM_USER}
  group = {EXIM_USER}
  mode = 0644
{''.join(transports)}
begin retry
* * F,2h,15m; G,16h,1h,1.5; F,4d,6h
"""


class EximSender(_NamespacedDaemon):
    """Exim 4.96 (Debian's exim4-daemon-light) as a sender's server: `exim4 -bdf`, no queue runner
    (flush() runs the queue), deliveries at once on receipt as by default."""

    name = "exim"
    prefix = "sendergate-exim-"
    packages = EXIM_PACKAGES

    @property
    def config(self) -> Path:
        # Debian's own path: an Exim started with -C drops root for its deliveries (re-exec as the
        # Exim user, no trusted_configs here), so the namespace puts the config where Exim looks.
        return self._dir() / "lib" / "exim4" / "config.autogenerated"

    @property
    def log_file(self) -> Path:
        return self._dir() / "log" / "mainlog"

    def _exim(self) -> Path:
        return self._dir() / "root" / "usr" / "sbin" / "exim4"

    def _prepare(self, base: Path, root: Path) -> tuple[list[tuple[Path, str]], list[str]]:
        ids = private_accounts(base, [EXIM_USER])
        for sub in ("spool", "log", "mail"):
            (base / sub).mkdir(mode=0o750)
            os.chown(base / sub, ids[EXIM_USER], ids[EXIM_USER])
        (base / "mailboxes").write_text("".join(f"{box}: {box}\n" for box in self.mailboxes))
        self.config.parent.mkdir(mode=0o755, parents=True)
        self.config.write_text(exim_config(port=self.port, base=base, routes=self.routes,
                                           mailbox_domain=self.mailbox_domain))
        self.config.chmod(0o644)
        binds = [(base / "passwd", "/etc/passwd"), (base / "group", "/etc/group"), (base / "lib", "/var/lib")]
        return binds, [str(self._exim()), "-bdf"]

    def flush(self) -> None:
        """exim -qff: a queue run now, of every message, frozen or not, retry times ignored."""
        self.inside([self._exim(), "-qff"], "exim -qff")

    def queue_listing(self) -> str:
        return self.inside([self._exim(), "-bp"], "exim -bp")

    def queued(self, sender: str) -> int:
        """Messages from sender in the queue (exim -bp: one "age size id <sender>" line each)."""
        return sum(line.split()[-1] == f"<{sender}>" for line in self.queue_listing().splitlines()
                   if re.match(r"\s*\d+[smhdw] ", line))


# --------------------------------------------------------------------------
# OpenSMTPD


OPENSMTPD_USERS = ("opensmtpd", "opensmtpq", "vmail")  # vmail: owns the bounce Maildirs


def opensmtpd_config(*, port: int, base: Path, routes: Mapping[str, int], mailbox_domain: str) -> str:
    """A sender's OpenSMTPD: each routed domain relayed to 127.0.0.1:PORT (smtp://, so TLS only if
    offered), mail for mailbox_domain (its bounces) into base/mail/<local part>/ Maildirs."""
    lines = [
        f"listen on 127.0.0.1 port {port}",
        f'table mailboxes {{ "@{mailbox_domain}" = "vmail" }}',
        f'action "mailboxes" maildir "{base}/mail/%{{dest.user:lowercase}}" virtual <mailboxes>',
        f'match from any for domain "{mailbox_domain}" action "mailboxes"',
    ]
    for index, (domain, target) in enumerate(routes.items()):
        lines += [
            f'action "relay_{index}" relay host smtp://127.0.0.1:{target}',
            f'match from any for domain {{ "{domain}", "*.{domain}" }} action "relay_{index}"',
        ]
    return "\n".join(lines) + "\n"


class OpenSMTPDSender(_NamespacedDaemon):
    """OpenSMTPD 6.8 (Debian's opensmtpd) as a sender's server: `smtpd -d -f conf`, in a namespace
    whose /var/spool, /var/lib, /run and /usr/libexec are the instance's own (its fixed paths)."""

    name = "opensmtpd"
    prefix = "sendergate-smtpd-"
    packages = OPENSMTPD_PACKAGES

    @property
    def config(self) -> Path:
        return self._dir() / "smtpd.conf"

    @property
    def log_file(self) -> Path:
        return self._dir() / "daemon.out"  # smtpd -d logs to stderr

    def _smtpctl(self) -> Path:
        return self._dir() / "root" / "usr" / "sbin" / "smtpctl"

    def _prepare(self, base: Path, root: Path) -> tuple[list[tuple[Path, str]], list[str]]:
        ids = private_accounts(base, OPENSMTPD_USERS)
        for sub in ("spool", "run", "lib/opensmtpd/empty"):
            (base / sub).mkdir(mode=0o755, parents=True)
        (base / "mail").mkdir(mode=0o755)
        os.chown(base / "mail", ids["vmail"], ids["vmail"])
        # As Debian's postinst does: smtpctl refuses to talk to smtpd unless setgid opensmtpq.
        smtpctl = root / "usr" / "sbin" / "smtpctl"
        os.chown(smtpctl, 0, ids["opensmtpq"])
        smtpctl.chmod(0o2755)
        self.config.write_text(opensmtpd_config(port=self.port, base=base, routes=self.routes,
                                                mailbox_domain=self.mailbox_domain))
        self.config.chmod(0o644)
        binds = [(base / "passwd", "/etc/passwd"), (base / "group", "/etc/group"),
                 (base / "spool", "/var/spool"), (base / "lib", "/var/lib"), (base / "run", "/run"),
                 (root / "usr" / "libexec", "/usr/libexec")]
        return binds, [str(root / "usr" / "sbin" / "smtpd"), "-d", "-f", str(self.config)]

    def flush(self) -> None:
        """smtpctl schedule all: every queued message is tried now."""
        self.inside([self._smtpctl(), "schedule", "all"], "smtpctl schedule all")

    def queue_listing(self) -> str:
        return self.inside([self._smtpctl(), "show", "queue"], "smtpctl show queue")

    def queued(self, sender: str) -> int:
        """Messages from sender in the queue (smtpctl show queue: one "|"-separated line per
        envelope, the message id is the envelope id's first 8 hex digits)."""
        return len({line.split("|")[0][:8] for line in self.queue_listing().splitlines()
                    if sender in line.split("|")})


# --------------------------------------------------------------------------
# Postfix


class PostfixSender:
    """Postfix 3.7 as a sender's server: tests/support/postfix.py's PostfixInstance, seen through
    the same interface as the other two (mailboxes must be named up front)."""

    name = "postfix"

    def __init__(self, *, routes: Mapping[str, int], mailbox_domain: str = "sender.test",
                 mailboxes: Sequence[str] = ("sender",)) -> None:
        self.mailbox_domain = mailbox_domain
        self.instance = PostfixInstance(routes=dict(routes), mailbox_domain=mailbox_domain,
                                        mailboxes=mailboxes, hostname=f"postfix.{mailbox_domain}")
        self.port = self.instance.port

    def submit(self, sender: str, recipients: Sequence[str], message: bytes) -> None:
        _smtp_submit(self.port, sender, recipients, message)

    def mail(self, mailbox: str) -> list[bytes]:
        return _maildir_messages(self.instance.mail_dir / mailbox)

    def wait_for_mail(self, mailbox: str, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not (found := self.mail(mailbox)):
            if time.monotonic() > deadline:
                raise ServiceError(f"no mail for {mailbox}@{self.mailbox_domain} at postfix within "
                                   f"{timeout:g} s; queue: {self.instance.queue()}; maillog tail:\n"
                                   f"{self.instance.maillog_tail()}")
            time.sleep(0.05)
        return found[0]

    def flush(self) -> None:
        self.instance.flush()

    def queued(self, sender: str) -> int:
        return sum(entry.get("sender") == sender for entry in self.instance.queue())

    def log(self) -> str:
        return self.instance.maillog()

    def stop(self) -> None:
        self.instance.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

