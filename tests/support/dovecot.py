"""A private Dovecot 2.3 (IMAP + LMTP) for tests and benchmarks.

    with DovecotServer() as dovecot:
        dovecot.add_user("alice@example.test", "secret")
        IMAPClient("127.0.0.1", dovecot.imap_port, ssl=False).login(...)
        # the SMTP gateway delivers to 127.0.0.1:dovecot.lmtp_port

Everything lives in a 0755 directory under /tmp (the auth process runs as
`dovecot` and must reach the passwd file; mail processes run as nobody).
Variants: `special_use=False` serves no SPECIAL-USE flags (old servers,
fallback by folder name); `tls=True` adds an implicit-TLS port and STARTTLS
with a self-signed certificate (`cert_path` to trust it);
`oauth2_introspection_url` accepts XOAUTH2/OAUTHBEARER logins whose token
that URL (RFC 7662 token introspection, POST) vouches for.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.support.common import (
    ServiceError,
    free_loopback_port,
    kill_and_wait,
    make_service_dir,
    remove_service_dir,
    require_executable,
    run_checked,
)

DOVECOT = Path("/usr/sbin/dovecot")
OPENSSL = Path("/usr/bin/openssl")
MAIL_UID = 65534  # nobody: Dovecot refuses to run mail processes as root
MAIL_GID = 65534  # nogroup


class DovecotServer:
    def __init__(self, *, special_use: bool = True, tls: bool = False,
                 oauth2_introspection_url: str | None = None, oauth2_mechanisms: str = "xoauth2 oauthbearer",
                 auth_failure_delay: str = "0",
                 start: bool = True) -> None:
        require_executable(DOVECOT, "Dovecot (dovecot-core, dovecot-imapd, dovecot-lmtpd)")
        self.special_use = special_use
        self.tls = tls
        self.oauth2_introspection_url = oauth2_introspection_url
        self.oauth2_mechanisms = oauth2_mechanisms  # "xoauth2" alone: a server like Microsoft 365's
        self.auth_failure_delay = auth_failure_delay
        self.base_dir: Path | None = None
        self.imap_port = 0
        self.imaps_port = 0
        self.lmtp_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        if start:
            self.start()

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> DovecotServer:
        if self.process is not None:
            raise ServiceError("DovecotServer already started")
        self.base_dir = make_service_dir("sendergate-dovecot-")
        atexit.register(self.stop)
        for sub in ("run", "state", "home"):
            (self.base_dir / sub).mkdir(mode=0o755)
        self.passwd_dir.mkdir(mode=0o755)
        self.imap_port = free_loopback_port()
        self.lmtp_port = free_loopback_port()
        self.imaps_port = free_loopback_port() if self.tls else 0
        if self.tls:
            self._make_certificate()
        self.config_path.write_text(self._config())
        log = (self.base_dir / "stdout.log").open("wb")
        self.process = subprocess.Popen([str(DOVECOT), "-F", "-c", str(self.config_path)],
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            kill_and_wait(self.process.pid, timeout=10.0)
            self.process.wait()
            self.process = None
        if self.base_dir is not None:
            remove_service_dir(self.base_dir)
            self.base_dir = None

    def __enter__(self) -> DovecotServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- users -------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """A mail user, usable at once (one passwd file per user: Dovecot re-reads a
        changed passwd file at most once a second, a new one at first use)."""
        if ":" in name or ":" in password or "\n" in name + password or "/" in name:
            raise ServiceError("user names and passwords cannot hold ':', '/' or newlines")
        home = self.home(name)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(home, MAIL_UID, MAIL_GID)
        entry = self.passwd_dir / name
        entry.write_text(f"{name}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_GID}::{home}::\n")
        entry.chmod(0o644)

    def home(self, user: str) -> Path:
        return self._base() / "home" / user

    def maildir(self, user: str) -> Path:
        return self.home(user) / "Maildir"

    # --- paths -------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self._base() / "dovecot.conf"

    @property
    def passwd_dir(self) -> Path:
        return self._base() / "passwd.d"

    @property
    def log_path(self) -> Path:
        return self._base() / "dovecot.log"

    @property
    def cert_path(self) -> Path:
        return self._base() / "cert.pem"

    def log(self) -> str:
        parts = []
        for p in (self.log_path, self._base() / "stdout.log"):
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)

    def imap_process_pids(self, user: str | None = None) -> list[int]:
        """PIDs of the `imap` mail processes (one per logged-in session), for killing one mid-fetch."""
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if (self.process is not None and parent == self.process.pid
                    and cmdline.startswith("dovecot/imap") and "login" not in cmdline
                    and (user is None or user in cmdline)):
                pids.append(int(proc.name))
        return pids

    def _base(self) -> Path:
        if self.base_dir is None:
            raise ServiceError("DovecotServer is not started")
        return self.base_dir

    # --- setup -------------------------------------------------------------

    def _make_certificate(self) -> None:
        require_executable(OPENSSL, "openssl")
        key = self._base() / "key.pem"
        run_checked([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-days", "2", "-subj", "/CN=localhost",
                     "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                     "-keyout", key, "-out", self.cert_path], "openssl self-signed certificate")
        key.chmod(0o644)  # read by the unprivileged login processes' parent only, test key

    def _config(self) -> str:
        base = self._base()
        sent = ("mailbox Sent {\n    special_use = \\Sent\n    auto = subscribe\n  }\n"
                "  mailbox Drafts {\n    special_use = \\Drafts\n    auto = subscribe\n  }\n"
                "  mailbox Trash {\n    special_use = \\Trash\n    auto = subscribe\n  }\n"
                if self.special_use else "")
        mechanisms = "plain login"
        oauth2_passdb = ""
        if self.oauth2_introspection_url:
            mechanisms += " " + self.oauth2_mechanisms
            oauth_conf = base / "dovecot-oauth2.conf.ext"
            oauth_conf.write_text(
                f"introspection_url = {self.oauth2_introspection_url}\n"
                "introspection_mode = post\n"
                "username_attribute = username\n"
                "active_attribute = active\n"
                "active_value = true\n")
            oauth2_passdb = (f"passdb {{\n  driver = oauth2\n  mechanisms = {self.oauth2_mechanisms}\n"
                             f"  args = {oauth_conf}\n}}\n")
        ssl_block = "ssl = no\n"
        imaps_listener = ""
        if self.tls:
            ssl_block = (f"ssl = yes\nssl_cert = <{self.cert_path}\nssl_key = <{base / 'key.pem'}\n"
                         "ssl_min_protocol = TLSv1.2\n")
            imaps_listener = (f"  inet_listener imaps {{\n    address = 127.0.0.1\n"
                              f"    port = {self.imaps_port}\n    ssl = yes\n  }}\n")
        return f"""# Written by tests/support/dovecot.py
base_dir = {base}/run
state_dir = {base}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
listen = 127.0.0.1
protocols = imap lmtp
{ssl_block}disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_failure_delay = {self.auth_failure_delay}
auth_verbose = yes
mail_location = maildir:~/Maildir
# Test mail is disposable: skip fsync, which costs ~1 ms per appended message.
mail_fsync = never
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = {MAIL_UID}
recipient_delimiter = +
lmtp_save_to_detail_mailbox = yes
# user+Screened@ (the gateway's screened_folder over LMTP) creates the folder at first use;
# without these Dovecot would drop such mail into INBOX.
lda_mailbox_autocreate = yes
lda_mailbox_autosubscribe = yes
postmaster_address = postmaster@example.test
mail_max_userip_connections = 100
# `dovecot/imap [user ip]` process titles let a test find one session's process
verbose_proctitle = yes

namespace inbox {{
  inbox = yes
  separator = /
  {sent}}}

{oauth2_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.passwd_dir}/%u
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
{imaps_listener}}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
"""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        ports = [p for p in (self.imap_port, self.lmtp_port, self.imaps_port) if p]
        pending = list(ports)
        while pending:
            if self.process is None or self.process.poll() is not None:
                raise ServiceError(f"dovecot exited at start:\n{self.log()}")
            port = pending[0]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pending.pop(0)
                    continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServiceError(f"dovecot did not listen on 127.0.0.1:{port}:\n{self.log()}")
            time.sleep(0.02)
