"""Postfix for tests and benchmarks: smtp-sink as a downstream that accepts
(or refuses) mail, and private Postfix instances.

    with SmtpSink(dump=True) as downstream:             # accepts everything
        ...; downstream.messages()                      # bytes as received

    with PostfixInstance(routes={"example.org": gateway_port},
                         mailboxes=("alice",)) as provider:   # a sender's provider
        provider.submit("alice@sender.test", "bob@example.org", message)
        bounce = provider.wait_for_bounce("alice", timeout=5)

    with PostfixInstance(routes={"example.org": mailstore_port},
                         proxy_filter=gateway_port,            # SenderGate behind Postfix
                         main_cf={"mynetworks": ""}) as mx:    # the gateway delivers to
        ...                                                    # 127.0.0.1:mx.after_filter_port

    with PostfixInstance(mailbox_domain="example.org", mailboxes=("alice",),
                         tls=ServerTLS(cert.cert_file, cert.key_file)) as mx:   # STARTTLS required
        ...; mx.tls_sessions()                          # what its smtpd logged per TLS session

`smtpd_options`, `main_cf` and `master_cf` change anything else. Everything
lives in a 0755 directory under /tmp that stop() removes; stop() leaves no
process behind.
"""

from __future__ import annotations

import atexit
import json
import os
import pwd
import re
import shutil
import smtplib
import socket
import stat
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tests.support.common import (
    ServiceError,
    failed_start,
    free_loopback_port,
    kill_and_wait,
    listens_on,
    log_tail,
    make_service_dir,
    other_processes,
    pid_alive,
    remove_service_dir,
    require_executable,
    run_checked,
    wait_for_port,
)

SMTP_SINK = Path("/usr/sbin/smtp-sink")
POSTFIX = Path("/usr/sbin/postfix")
POSTQUEUE = Path("/usr/sbin/postqueue")
POSTMAP = Path("/usr/sbin/postmap")
POSTFIX_DAEMONS = Path("/usr/lib/postfix/sbin")

# smtp-sink writes these records before the message it received (smtp-sink(1),
# DUMP FILE FORMAT); its three-line Received: header closes them.
_SINK_RECORD = re.compile(rb"X-(?:Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args): ")
# Folded continuation lines in Postfix's bounce text start with white space.
_FOLD = re.compile(rb"\r?\n[ \t]+")


def unfold(text: bytes) -> bytes:
    """Join RFC 5322 folded lines (Postfix wraps the remote reply in bounces)."""
    return _FOLD.sub(b" ", text)


_PORT_ATTEMPTS = 3


class _PortTaken(ServiceError):
    """Someone bound a port between free_loopback_port() and the daemon."""


class _Service:
    """Context-manager plumbing shared by the launchers."""

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------
# smtp-sink


@dataclass(frozen=True)
class SinkDelivery:
    """One mail transaction as smtp-sink captured it."""

    client_address: str
    helo: str | None
    mail_from_args: str
    rcpt_to_args: tuple[str, ...]
    message: bytes  # header and body as received, dot-unstuffed, lines ending in LF
    path: Path

    @property
    def message_crlf(self) -> bytes:
        """The message with CRLF line ends, as it travelled over SMTP.

        smtp-sink stores lines with LF only, so a bare LF sent by the client
        is indistinguishable from CRLF here.
        """
        return self.message.replace(b"\n", b"\r\n")

    @property
    def envelope_sender(self) -> str:
        return _angle_address(self.mail_from_args)

    @property
    def envelope_recipients(self) -> tuple[str, ...]:
        return tuple(_angle_address(args) for args in self.rcpt_to_args)


def _angle_address(args: str) -> str:
    """'FROM:<a@b> SIZE=12' -> 'a@b'."""
    match = re.search(r"<([^>]*)>", args)
    return match.group(1) if match else args.split(":", 1)[-1].split()[0]


def parse_sink_dump(raw: bytes, path: Path) -> SinkDelivery:
    """Split smtp-sink's single-message dump into its records and the message."""
    records: dict[str, list[str]] = {}
    rest = raw
    while _SINK_RECORD.match(rest):
        line, rest = rest.split(b"\n", 1)
        name, value = line.decode("utf-8", "replace").split(": ", 1)
        records.setdefault(name, []).append(value)
    # The Received: header smtp-sink adds is exactly three lines.
    if not rest.startswith(b"Received: "):
        raise ValueError(f"{path}: not an smtp-sink dump (no Received: after the X- records)")
    rest = rest.split(b"\n", 3)[3]
    # smtp-sink ends every dump with one empty line of its own.
    if rest.endswith(b"\n\n"):
        rest = rest[:-1]
    return SinkDelivery(
        client_address=records["X-Client-Addr"][0],
        helo=records.get("X-Helo-Args", [None])[0],
        mail_from_args=records["X-Mail-Args"][0],
        rcpt_to_args=tuple(records.get("X-Rcpt-Args", [])),
        message=rest,
        path=path,
    )


class SmtpSink(_Service):
    """Postfix's smtp-sink on a free loopback port: a fast downstream MTA.

    dump: keep each transaction as a file (smtp-sink -d) for messages().
        Every transaction that reaches end of DATA is dumped, also one that
        smtp-sink then refuses (hard_reject=(".",)).
    hard_reject / soft_reject: SMTP commands answered 5xx / 4xx, e.g. ("RCPT",)
        or (".",) for end of DATA (smtp-sink -f / -r; default replies
        "500 5.3.0 Error: command failed" / "450 4.3.0 Error: command failed").
    hard_reply / soft_reply: the text of those replies (-B / -b).
    disconnect_421: commands answered 421, then the connection closed (-Q).
    disconnect: commands after which smtp-sink drops the connection without
        a reply (-q).
    extra_args: further smtp-sink(1) options, e.g. ("-w", "5") to stall DATA.
    """

    def __init__(
        self,
        *,
        dump: bool = False,
        hard_reject: Sequence[str] = (),
        soft_reject: Sequence[str] = (),
        disconnect_421: Sequence[str] = (),
        disconnect: Sequence[str] = (),
        hard_reply: str | None = None,
        soft_reply: str | None = None,
        hostname: str = "sink.test",
        extra_args: Sequence[str] = (),
        start: bool = True,
    ) -> None:
        self.executable = require_executable(SMTP_SINK, "Postfix smtp-sink (package postfix)")
        self.dump = dump
        self.hard_reject = tuple(hard_reject)
        self.soft_reject = tuple(soft_reject)
        self.disconnect_421 = tuple(disconnect_421)
        self.disconnect = tuple(disconnect)
        self.hard_reply = hard_reply
        self.soft_reply = soft_reply
        self.hostname = hostname
        self.extra_args = tuple(extra_args)
        self.port = 0
        self.base_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log_file: Path | None = None
        if start:
            self.start()

    @property
    def dump_dir(self) -> Path:
        if self.base_dir is None:
            raise ServiceError("SmtpSink is not running")
        return self.base_dir / "dump"

    def _argv(self) -> list[str]:
        argv = [str(self.executable), "-4", "-h", self.hostname]
        # smtp-sink refuses to keep root privileges.
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        if self.dump:
            argv += ["-d", f"{self.dump_dir}/msg."]
        for flag, commands in (("-f", self.hard_reject), ("-r", self.soft_reject),
                               ("-Q", self.disconnect_421), ("-q", self.disconnect)):
            if commands:
                argv += [flag, ",".join(commands)]
        if self.hard_reply is not None:
            argv += ["-B", self.hard_reply]
        if self.soft_reply is not None:
            argv += ["-b", self.soft_reply]
        argv += [*self.extra_args, f"127.0.0.1:{self.port}", "128"]
        return argv

    def start(self) -> SmtpSink:
        # The free port we pick can be taken before smtp-sink binds it (tests
        # run in parallel): then start again on another.
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                return self._start_once()
            except _PortTaken as taken:
                if attempt == _PORT_ATTEMPTS:
                    raise ServiceError(str(taken)) from None
        raise AssertionError("unreachable")

    def _start_once(self) -> SmtpSink:
        if self.base_dir is not None:
            raise ServiceError("SmtpSink already started")
        self.base_dir = make_service_dir("sendergate-sink-")
        atexit.register(self.stop)
        try:
            self.dump_dir.mkdir(mode=0o755)
            if os.geteuid() == 0:
                nobody = pwd.getpwnam("nobody")
                os.chown(self.dump_dir, nobody.pw_uid, nobody.pw_gid)
            self.port = free_loopback_port()
            self.log_file = self.base_dir / "smtp-sink.log"
            with self.log_file.open("wb") as log:
                self.process = subprocess.Popen(
                    self._argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            self._wait_until_listening(timeout=10)
        except ServiceError as error:
            failure = failed_start(error, self.log_file)
            taken = "Address already in use" in log_tail(self.log_file)
            self.stop()
            raise (_PortTaken if taken else ServiceError)(str(failure)) from None
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_listening(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not listens_on(self.process.pid, self.port):
            if self.process.poll() is not None:
                raise ServiceError(f"smtp-sink exited (status {self.process.returncode})")
            if time.monotonic() > deadline:
                raise ServiceError(f"smtp-sink did not listen on 127.0.0.1:{self.port} in {timeout:g} s")
            time.sleep(0.005)

    def stop(self) -> None:
        atexit.unregister(self.stop)
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
        finally:
            self.process = None
            if self.base_dir is not None:
                remove_service_dir(self.base_dir)
                self.base_dir = None

    def messages(self) -> list[SinkDelivery]:
        """Completed transactions so far, oldest first (needs dump=True).

        smtp-sink writes the dump as the message arrives; a transaction counts
        once its file ends with smtp-sink's closing empty line.
        """
        if not self.dump:
            raise ServiceError("SmtpSink was started without dump=True")
        files = sorted(self.dump_dir.glob("msg.*"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        deliveries = []
        for path in files:
            raw = path.read_bytes()
            if raw.endswith(b"\n\n"):
                deliveries.append(parse_sink_dump(raw, path))
        return deliveries

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[SinkDelivery]:
        deadline = time.monotonic() + timeout
        while True:
            deliveries = self.messages()
            if len(deliveries) >= count:
                return deliveries
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"smtp-sink received {len(deliveries)} of {count} messages in {timeout:g} s"
                )
            time.sleep(0.02)


# --------------------------------------------------------------------------
# Postfix


@dataclass(frozen=True)
class ServerTLS:
    """STARTTLS on a PostfixInstance's public smtpd (main.cf smtpd_tls_*).

    level: smtpd_tls_security_level ("encrypt": no MAIL before STARTTLS; "may": offered).
    ca_file: smtpd_tls_CAfile, the CA a client certificate is verified against.
    ask_ccert: ask the client for a certificate (smtpd_tls_ask_ccert); with
        ccert_fingerprints, only a client presenting one of these (SHA-256,
        AA:BB:…) may give recipients (check_ccert_access); others get 450.
    sni: SNI name -> key+certificate chain file (tls_server_sni_maps, Postfix 3.4+):
        a client that names it gets that certificate instead of cert_file's.
    """

    cert_file: Path
    key_file: Path
    level: str = "encrypt"
    ca_file: Path | None = None
    ask_ccert: bool = False
    ccert_fingerprints: tuple[str, ...] = ()
    sni: Mapping[str, Path] = field(default_factory=dict)

    def main_cf(self, config_dir: Path) -> dict[str, str]:
        parameters = {
            "smtpd_tls_security_level": self.level,
            "smtpd_tls_cert_file": str(self.cert_file),
            "smtpd_tls_key_file": str(self.key_file),
            "smtpd_tls_loglevel": "1",  # "… TLS connection established from …" per session
            "smtpd_tls_received_header": "yes",  # "(using TLSv1.3 …)" and the client CN in Received:
            "smtpd_tls_fingerprint_digest": "sha256",
            "smtpd_tls_ask_ccert": "yes" if self.ask_ccert else "no",
        }
        if self.ca_file is not None:
            parameters["smtpd_tls_CAfile"] = str(self.ca_file)
        if self.ccert_fingerprints:
            allowed = _inline_map({fp: "OK" for fp in self.ccert_fingerprints})
            parameters["smtpd_recipient_restrictions"] = f"check_ccert_access {allowed}, defer"
        if self.sni:
            parameters["tls_server_sni_maps"] = f"hash:{config_dir / 'sni'}"
        return parameters

    def write_tables(self, config_dir: Path) -> None:
        """tls_server_sni_maps must be built with `postmap -F` (the values are the files' contents)."""
        if not self.sni:
            return
        (config_dir / "sni").write_text("".join(f"{name} {path}\n" for name, path in self.sni.items()))
        run_checked([POSTMAP, "-F", "-c", config_dir, f"hash:{config_dir / 'sni'}"], "postmap -F (SNI map)")


@dataclass
class Submission:
    """What a PostfixInstance answered to submit()."""

    queue_id: str | None
    reply: str
    refused: dict[str, tuple[int, bytes]] = field(default_factory=dict)


def _inline_map(entries: Mapping[str, str]) -> str:
    """Postfix 3.x inline: table; braces keep values with special characters whole."""
    if not entries:
        return ""
    return "inline:{ " + ", ".join(f"{{ {key} = {value} }}" for key, value in entries.items()) + " }"


# Services every instance runs; nothing chrooted (chroot needs copied files).
_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


# The after-filter smtpd of SMTPD_PROXY_README: the filter already decided.
_AFTER_FILTER_OPTIONS = {
    "smtpd_proxy_filter": "",
    "smtpd_authorized_xforward_hosts": "127.0.0.0/8",
    "smtpd_client_restrictions": "",
    "smtpd_helo_restrictions": "",
    "smtpd_sender_restrictions": "",
    "smtpd_relay_restrictions": "",
    "smtpd_recipient_restrictions": "permit_mynetworks, reject",
    "smtpd_data_restrictions": "",
    "mynetworks": "127.0.0.0/8",
    "receive_override_options": "no_unknown_recipient_checks",
}


def _smtpd_listener(port: int, options: Mapping[str, str]) -> str:
    lines = [f"127.0.0.1:{port} inet n - n - - smtpd"]
    for name, value in options.items():
        # Postfix 3.x master.cf: { name = value } keeps spaces and commas in one -o.
        lines.append(f"  -o {{ {name} = {value} }}" if re.search(r"[\s,]", value) else f"  -o {name}={value}")
    return "\n".join(lines) + "\n"


def _settle_config(config_dir: Path) -> None:
    """Date main.cf and master.cf back a minute.

    Postfix re-reads a table file written in the current second, 300 ms at a
    time, until its mtime is in the past (it might still be being written):
    1.5-2 s of every start on a freshly written config.
    """
    past = time.time() - 60
    for name in ("main.cf", "master.cf"):
        os.utime(config_dir / name, (past, past))


_queue_template: Path | None = None


def _copy_queue_template(queue_dir: Path, data_dir: Path) -> None:
    """Give a new instance its queue and data directories, ready to start.

    `postfix start` on an empty queue_directory runs post-install
    create-missing (~0.6 s of shell and postconf calls); doing that once per
    process and copying the result with its owners and modes takes ms. The
    quick-start marker tells `postfix start` the checks are done.
    """
    template = _make_queue_template()
    for source, target in ((template / "queue", queue_dir), (template / "data", data_dir)):
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        for dirpath, dirnames, filenames in os.walk(source):
            for name in ["", *dirnames, *filenames]:
                original = Path(dirpath, name)
                copy = target / original.relative_to(source)
                status = original.lstat()
                os.lchown(copy, status.st_uid, status.st_gid)
                if not copy.is_symlink():
                    os.chmod(copy, stat.S_IMODE(status.st_mode))
    (queue_dir / "quick-start").touch()


def _make_queue_template() -> Path:
    global _queue_template
    if _queue_template is not None and _queue_template.exists():
        return _queue_template
    base = make_service_dir("sendergate-postfix-template-")
    atexit.register(remove_service_dir, base)
    config_dir = base / "etc"
    config_dir.mkdir(mode=0o755)
    (base / "queue").mkdir(mode=0o755)
    (config_dir / "main.cf").write_text(
        f"compatibility_level = 3.6\n"
        f"queue_directory = {base / 'queue'}\n"
        f"data_directory = {base / 'data'}\n"
        "mail_owner = postfix\nsetgid_group = postdrop\n"
        f"maillog_file = {base / 'maillog'}\nmaillog_file_prefixes = {base}\n"
    )
    (config_dir / "master.cf").write_text(_MASTER_CF)
    _settle_config(config_dir)
    # `postfix check` runs post-install create-missing, like a first start.
    run_checked([POSTFIX, "-c", config_dir, "check"], f"postfix check (log: {base / 'maillog'})")
    _queue_template = base
    return base


class PostfixInstance(_Service):
    """A private Postfix (`postfix -c DIR start`) listening on 127.0.0.1:port.

    routes: domain -> where Postfix sends its mail: a port (-> smtp:[127.0.0.1]:PORT)
        or any transport string ("lmtp:inet:127.0.0.1:24"). Routed domains are
        also relay_domains, so any client may send to them.
    mailbox_domain, mailboxes: a virtual mailbox domain whose Maildirs receive
        mail (bounces for a sender's provider): mailboxes ("alice",) makes
        alice@sender.test. Clients in mynetworks (127.0.0.0/8) may relay.
    proxy_filter: a before-queue content filter (SenderGate behind Postfix,
        SMTPD_PROXY_README): the public smtpd hands each session to
        127.0.0.1:proxy_filter (a port, or "host:port"), which must deliver
        to 127.0.0.1:after_filter_port, where a second smtpd queues the mail
        for `routes`.
    smtpd_options: `-o name=value` for the public smtpd listener.
    main_cf: extra or overriding main.cf parameters.
    master_cf: extra master.cf lines (e.g. another listener).
    """

    def __init__(
        self,
        *,
        routes: Mapping[str, int | str] | None = None,
        mailbox_domain: str = "sender.test",
        mailboxes: Sequence[str] = ("sender",),
        hostname: str = "mta.test",
        proxy_filter: int | str | None = None,
        smtpd_options: Mapping[str, str] | None = None,
        main_cf: Mapping[str, str] | None = None,
        master_cf: Sequence[str] = (),
        tls: ServerTLS | None = None,
        start: bool = True,
    ) -> None:
        self.postfix = require_executable(POSTFIX, "Postfix (package postfix)")
        self.postqueue = require_executable(POSTQUEUE, "Postfix postqueue (package postfix)")
        require_executable(POSTFIX_DAEMONS / "master", "Postfix master daemon (package postfix)")
        if os.geteuid() != 0:
            raise ServiceError("a private Postfix instance needs root (postfix -c DIR start)")
        self.routes = dict(routes or {})
        self.mailbox_domain = mailbox_domain
        self.mailboxes = tuple(mailboxes)
        self.hostname = hostname
        self.proxy_filter = f"127.0.0.1:{proxy_filter}" if isinstance(proxy_filter, int) else proxy_filter
        self.smtpd_options = dict(smtpd_options or {})
        self.extra_main_cf = dict(main_cf or {})
        self.extra_master_cf = tuple(master_cf)
        self.tls = tls
        self.port = 0
        self.after_filter_port = 0
        self.base_dir: Path | None = None
        if start:
            self.start()

    # --- layout ------------------------------------------------------------

    def _path(self, name: str) -> Path:
        if self.base_dir is None:
            raise ServiceError("PostfixInstance is not running")
        return self.base_dir / name

    @property
    def config_dir(self) -> Path:
        return self._path("etc")

    @property
    def queue_dir(self) -> Path:
        return self._path("queue")

    @property
    def mail_dir(self) -> Path:
        return self._path("mail")

    @property
    def maillog_file(self) -> Path:
        return self._path("maillog")

    def mailbox_address(self, mailbox: str) -> str:
        return f"{mailbox}@{self.mailbox_domain}"

    def main_cf_parameters(self) -> dict[str, str]:
        """main.cf as a dict: the base settings, then `main_cf` on top."""
        transports = {
            domain: (f"smtp:[127.0.0.1]:{target}" if isinstance(target, int) else target)
            for domain, target in self.routes.items()
        }
        nobody = pwd.getpwnam("nobody")
        parameters = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self._path("data")),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "maillog_file": str(self.maillog_file),
            # Postfix refuses (silently, before it can log) a maillog_file outside these.
            "maillog_file_prefixes": str(self.base_dir),
            "myhostname": self.hostname,
            "mydomain": self.hostname,
            "myorigin": "$myhostname",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relay_domains": " ".join(self.routes),
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "transport_maps": _inline_map(transports),
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "virtual_mailbox_domains": self.mailbox_domain,
            "virtual_mailbox_base": str(self.mail_dir),
            "virtual_mailbox_maps": _inline_map(
                {self.mailbox_address(box): f"{box}/" for box in self.mailboxes}
            ),
            "virtual_uid_maps": f"static:{nobody.pw_uid}",
            "virtual_gid_maps": f"static:{nobody.pw_gid}",
            # Tests provoke errors on purpose: no tarpitting, no error limits.
            "smtpd_error_sleep_time": "0",
            "smtpd_soft_error_limit": "1000",
            "smtpd_hard_error_limit": "1000",
            "smtpd_junk_command_limit": "1000",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            # A deferred message waits for flush(), not for a backoff timer.
            "delay_warning_time": "0",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
        }
        if self.tls is not None:
            parameters.update(self.tls.main_cf(self.config_dir))
        parameters.update(self.extra_main_cf)
        return parameters

    def _master_cf(self) -> str:
        public_options = dict(self.smtpd_options)
        services = [_MASTER_CF]
        if self.tls is not None:  # smtpd asks tlsmgr for its PRNG seed and session cache
            services.append("tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n")
        if self.proxy_filter:
            public_options.setdefault("smtpd_proxy_filter", self.proxy_filter)
            services.append(_smtpd_listener(self.after_filter_port, _AFTER_FILTER_OPTIONS))
        services.append(_smtpd_listener(self.port, public_options))
        services.extend(f"{line}\n" for line in self.extra_master_cf)
        return "".join(services)

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> PostfixInstance:
        # The free ports we pick can be taken before master binds them (tests
        # run in parallel): then start again on new ones.
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            try:
                return self._start_once()
            except _PortTaken as taken:
                if attempt == _PORT_ATTEMPTS:
                    raise ServiceError(str(taken)) from None
        raise AssertionError("unreachable")

    def _start_once(self) -> PostfixInstance:
        if self.base_dir is not None:
            raise ServiceError("PostfixInstance already started")
        self.base_dir = make_service_dir("sendergate-postfix-")
        atexit.register(self.stop)
        try:
            self.port = free_loopback_port()
            if self.proxy_filter:
                self.after_filter_port = free_loopback_port()
            self.config_dir.mkdir(mode=0o755)
            self.queue_dir.mkdir(mode=0o755)
            self.mail_dir.mkdir(mode=0o755)
            nobody = pwd.getpwnam("nobody")
            os.chown(self.mail_dir, nobody.pw_uid, nobody.pw_gid)
            main_cf = "".join(f"{name} = {value}\n" for name, value in self.main_cf_parameters().items())
            (self.config_dir / "main.cf").write_text(main_cf)
            (self.config_dir / "master.cf").write_text(self._master_cf())
            if self.tls is not None:
                self.tls.write_tables(self.config_dir)
            _settle_config(self.config_dir)
            _copy_queue_template(self.queue_dir, self._path("data"))
            run_checked([self.postfix, "-c", self.config_dir, "start"], "postfix start")
            wait_for_port(self.port, 10, "Postfix smtpd")
        except ServiceError as error:
            failure = failed_start(error, self.maillog_file)
            busy = self._busy_listeners()
            ours = {f"127.0.0.1:{port}" for port in (self.port, self.after_filter_port)}
            self.stop()
            if busy:
                message = f"{failure}\n(master could not bind: {', '.join(busy)} in use)"
                raise (_PortTaken if set(busy) <= ours else ServiceError)(message) from None
            raise failure from None
        except BaseException:
            self.stop()
            raise
        return self

    def _busy_listeners(self) -> list[str]:
        """inet listeners in master.cf whose address someone else holds.

        master's own "bind ... Address already in use" never reaches
        maillog_file: it dies before it starts postlogd.
        """
        busy = []
        for line in (self.config_dir / "master.cf").read_text().splitlines():
            listener = re.match(r"(\d+\.\d+\.\d+\.\d+):(\d+)\s+inet\s", line)
            if not listener:
                continue
            with socket.socket() as probe:
                try:
                    probe.bind((listener.group(1), int(listener.group(2))))
                except OSError:
                    busy.append(f"{listener.group(1)}:{listener.group(2)}")
        return busy

    def _master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def pids(self) -> list[int]:
        """Every process running for this instance: master passes MAIL_CONFIG to all children."""
        marker = f"MAIL_CONFIG={self.config_dir}".encode()
        pids = []
        for entry in other_processes():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        """Stop master and every child, then remove the instance directory."""
        atexit.unregister(self.stop)
        if self.base_dir is None:
            return
        try:
            master = self._master_pid()
            if master is not None and pid_alive(master):
                self._stop_master(master)
            for pid in self.pids():
                kill_and_wait(pid)
        finally:
            remove_service_dir(self.base_dir)
            self.base_dir = None

    def _stop_master(self, master: int) -> None:
        # `postfix stop` and `postfix abort` both SIGTERM master (postfix-script);
        # stop then polls with `sleep 1`, so abort + polling the PID here is the
        # same shutdown up to a second sooner.
        try:
            run_checked([self.postfix, "-c", self.config_dir, "abort"], "postfix abort", timeout=15)
        finally:
            # Whether or not the command worked, master must be gone before its directory.
            kill_and_wait(master, timeout=10)

    # --- use ---------------------------------------------------------------

    def submit(
        self,
        envelope_sender: str,
        recipients: str | Sequence[str],
        message: bytes,
        *,
        helo: str = "client.test",
        timeout: float = 30.0,
    ) -> Submission:
        """Send one message to the instance's smtpd.

        Raises smtplib's SMTPSenderRefused / SMTPRecipientsRefused (every
        recipient refused) / SMTPDataError with Postfix's code and text.
        """
        rcpts = [recipients] if isinstance(recipients, str) else list(recipients)
        with smtplib.SMTP("127.0.0.1", self.port, local_hostname=helo, timeout=timeout) as client:
            client.ehlo()
            code, reply = client.mail(envelope_sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, envelope_sender)
            refused = {}
            for rcpt in rcpts:
                code, reply = client.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = (code, reply)
            if len(refused) == len(rcpts):
                raise smtplib.SMTPRecipientsRefused(refused)
            code, reply = client.data(message)
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
        text = reply.decode("utf-8", "replace")
        queued = re.search(r"queued as ([0-9A-Za-z]+)", text)
        return Submission(queue_id=queued.group(1) if queued else None, reply=text, refused=refused)

    def wait_for_mail(self, mailbox: str, timeout: float = 5.0) -> bytes:
        """The next message delivered to mailbox's Maildir (moved to cur/ once read)."""
        new = self.mail_dir / mailbox / "new"
        deadline = time.monotonic() + timeout
        while True:
            arrived = sorted(new.glob("*")) if new.is_dir() else []
            if arrived:
                path = arrived[0]
                message = path.read_bytes()
                path.rename(new.parent / "cur" / f"{path.name}:2,S")
                return message
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"no mail for {self.mailbox_address(mailbox)} within {timeout:g} s; "
                    f"queue: {self.queue()}; maillog tail:\n{self.maillog_tail()}"
                )
            time.sleep(0.02)

    def wait_for_bounce(self, mailbox: str, timeout: float = 5.0) -> bytes:
        """The next bounce (or any mail) in mailbox's Maildir; unfold() before searching it."""
        return self.wait_for_mail(mailbox, timeout)

    def flush(self) -> None:
        """Try every deferred message again now (postqueue -f)."""
        run_checked([self.postqueue, "-c", self.config_dir, "-f"], "postqueue -f")

    def queue(self) -> list[dict[str, Any]]:
        """The queue as postqueue -j reports it: one dict per message."""
        output = run_checked([self.postqueue, "-c", self.config_dir, "-j"], "postqueue -j")
        return [json.loads(line) for line in output.splitlines() if line.strip()]

    def wait_for_empty_queue(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while (pending := self.queue()):
            if time.monotonic() > deadline:
                raise ServiceError(f"queue not empty after {timeout:g} s: {pending}")
            time.sleep(0.05)

    def maillog(self) -> str:
        try:
            return self.maillog_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tls_sessions(self) -> list[str]:
        """smtpd's "… TLS connection established from …" lines (ServerTLS logs them), oldest first."""
        return re.findall(r"(?m)^.*postfix/smtpd\[\d+\]: \S+ TLS connection established from .*$", self.maillog())

    def maillog_tail(self, lines: int = 30) -> str:
        return "\n".join(self.maillog().splitlines()[-lines:])

    def wait_for_log(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """First maillog line matching the regular expression, waiting for it."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = compiled.search(self.maillog())
            if found:
                return found
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"maillog has no {pattern!r} after {timeout:g} s; tail:\n{self.maillog_tail()}"
                )
            time.sleep(0.02)
