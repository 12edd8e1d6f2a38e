"""Handing accepted mail to the mail server behind the gateway: SMTP, LMTP or a Maildir.

The gateway answers 250 only after this returned success, so the outcome is
explicit: `Delivered`, or a `DeliveryError` carrying the downstream's reply
(temporary or permanent) for the handler to pass on. STARTTLS to a tcp target
follows [delivery] tls (see tls.py for the levels).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import DeliveryConfig, parse_hostport
from ..policy.headers import normalise
from .tls import (
    NOT_OFFERED,
    TLS_FAILED,
    ProbeReport,
    TLSState,
    client_context,
    describe_certificate,
    describe_error,
    tls_state,
)

log = logging.getLogger("sendergate.delivery")


class DeliveryError(Exception):
    def __init__(self, code: int, status: str, text: str, *, where: str, tls: bool = False) -> None:
        self.code, self.status, self.text, self.where = code, status, text, where
        self.tls = tls  # the failure is TLS's (the client gets 451 4.7.x), not the downstream's answer
        super().__init__(f"{where}: {code} {status} {text}")

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


@dataclass(frozen=True)
class Delivered:
    reply: str  # the downstream's final reply, for the log
    tls: str = ""  # "TLSv1.3 TLS_AES_256_GCM_SHA384 verified", "plaintext"; "" for Maildir


class _StaleConnection(Exception):
    """A pooled connection failed before the message's DATA was sent: retried once on a new one."""


class _PlaintextRetry(Exception):
    """Opportunistic TLS whose handshake failed: the transaction again, in plaintext, on a new
    connection (what Postfix does at smtp_tls_security_level = may)."""


@dataclass(frozen=True)
class Outbound:
    mail_from: str  # "" for the null sender
    recipients: list[str]  # as given in RCPT TO (with +tag), or "user+folder@…" for LMTP screening
    message: bytes  # CRLF line endings, not dot-stuffed
    mail_options: tuple[str, ...] = ()  # BODY=8BITMIME, SMTPUTF8
    mailboxes: tuple[str, ...] = ()  # per recipient, the canonical stored address (Maildir directory names)


class _Conn:
    """A minimal SMTP/LMTP client: enough for a gateway, strict about replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str) -> None:
        self.reader, self.writer, self.where = reader, writer, where
        self.lines: list[str] = []  # the last reply's lines, without their codes
        self.broken = False  # a handshake failed midway: nothing more can be said on it
        self.caps: set[str] = set()  # the keywords that hold for transactions (after STARTTLS if any)
        self.ctx: ssl.SSLContext | None = None  # the TLS context it was opened with (pooled per context)
        self.reused = False  # taken from the pool (RSET), not opened for this message
        self.reset_pending = False  # reused under PIPELINING: its RSET goes out with the next MAIL

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.caps

    def keywords(self) -> set[str]:
        """The EHLO/LHLO keywords of the last reply (its first line is the greeting)."""
        return {line.split(" ", 1)[0].upper() for line in self.lines[1:] if line}

    def buffered(self) -> int:
        """Bytes received and not yet read: after the 220 to STARTTLS there must be none, or a
        man in the middle could have them read as if they came over TLS (CVE-2011-0411's class)."""
        return len(self.reader._buffer)  # type: ignore[attr-defined]  # no public peek; a test guards the name

    async def reply(self) -> tuple[int, str, str]:
        lines = self.lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise DeliveryError(421, "4.4.2", "connection closed by downstream", where=self.where)
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if len(text) < 3 or not text[:3].isdigit():
                raise DeliveryError(451, "4.5.0", f"garbled reply from downstream: {text[:80]!r}", where=self.where)
            lines.append(text[4:])
            if len(text) == 3 or text[3] != "-":
                code = int(text[:3])
                break
        lines = list(lines)
        first = lines[0]
        parts = first.split(" ", 1)
        status = ""
        if parts and _is_enhanced(parts[0]):
            status = parts[0]
            lines[0] = parts[1] if len(parts) > 1 else ""
        return code, status, " ".join(part for part in lines if part).strip()

    async def command(self, line: str, expect: int = 2) -> tuple[int, str, str]:
        self.writer.write(line.encode("utf-8", "surrogateescape") + b"\r\n")
        await self.writer.drain()
        code, status, text = await self.reply()
        if code // 100 != expect:
            raise DeliveryError(code, status or _default_status(code), text,
                                where=f"{self.where} ({line.split(' ')[0]})")
        return code, status, text

    async def group(self, lines: list[str], expects: list[int]) -> None:
        """RFC 2920 pipelining: the commands in one write, then every reply read in order (the
        connection stays in step); raises the first refusal's DeliveryError once all are read."""
        self.writer.write(b"".join(line.encode("utf-8", "surrogateescape") + b"\r\n" for line in lines))
        await self.writer.drain()
        first: DeliveryError | None = None
        for line, expect in zip(lines, expects, strict=True):
            code, status, text = await self.reply()
            if code // 100 != expect and first is None:
                first = DeliveryError(code, status or _default_status(code), text,
                                      where=f"{self.where} ({line.split(' ')[0]})")
            if code == 354 and first is not None:
                # refused earlier in the group, yet in DATA: only a close (no "." line, no QUIT, which
                # would be message text) ends the transaction without a message
                self.broken = True
        if first is not None:
            raise first

    async def close(self, quit: bool = True) -> None:
        try:
            if quit:
                self.writer.write(b"QUIT\r\n")
                await self.writer.drain()
        except (ConnectionError, OSError, RuntimeError):  # RuntimeError: a transport a failed handshake left
            pass
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError, RuntimeError):
            pass


def _is_enhanced(word: str) -> bool:
    bits = word.split(".")
    return len(bits) == 3 and all(b.isdigit() for b in bits) and bits[0] in "245"


def _default_status(code: int) -> str:
    return {4: "4.0.0", 5: "5.0.0"}.get(code // 100, "2.0.0")


def dot_stuff(message: bytes) -> bytes:
    """The DATA bytes for message: CRLF line ends only (a bare CR or LF becomes one: a server behind
    us must never see a line end it might read differently), every leading dot doubled, the final
    "." line added. Only this function's own last line can end DATA at the receiver."""
    message = normalise(message)
    body = message if message.endswith(b"\r\n") else message + b"\r\n"
    if body.startswith(b"."):
        body = b"." + body
    return body.replace(b"\r\n.", b"\r\n..") + b".\r\n"


class Deliverer:
    def __init__(self, cfg: DeliveryConfig, helo_name: str) -> None:
        self.cfg = cfg
        self.helo_name = helo_name
        # Built once per process: with the system store one costs ~0.1 s (benchmarks.md), never per message.
        self.tls_context = client_context(cfg)
        self.tls_required = cfg.tls == "required" and self.tls_context is not None
        self.tls_verified = self.tls_required and cfg.tls_verify
        self.server_name = parse_hostport(cfg.target)[0] if cfg.tcp else ""  # SNI and the name checked
        self.hello = ("LHLO " if cfg.mode == "lmtp" else "EHLO ") + helo_name
        # Per worker (built in each worker process): (connection, idle since), most recent last.
        self._idle: list[tuple[_Conn, float]] = []
        self._closing = False
        if self.tls_verified and not self.server_name:
            # asyncio's start_tls with no server_hostname skips the host name check without a word.
            raise ValueError("delivery.target: a host name is needed to verify the certificate")

    @property
    def where(self) -> str:
        return f"{self.cfg.mode} {self.cfg.target}"

    async def deliver(self, out: Outbound, *, folder: str = "") -> Delivered:
        if self.cfg.mode == "maildir":
            return await asyncio.get_running_loop().run_in_executor(None, self._maildir, out, folder)
        try:
            async with asyncio.timeout(self.cfg.timeout):  # (wait_for would make a task per message)
                return await self._attempts(out, folder)
        except TimeoutError:
            raise DeliveryError(451, "4.4.2", "downstream timed out", where=self.where) from None
        except (ConnectionError, OSError) as exc:
            raise DeliveryError(451, "4.4.1", f"downstream unreachable: {exc.strerror or exc}",
                                where=self.where) from None

    async def _open(self) -> _Conn:
        target = self.cfg.target
        if target.startswith("/"):
            reader, writer = await asyncio.open_unix_connection(target)
        else:
            host, port = parse_hostport(target)
            reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Conn(reader, writer, self.where)

    async def _attempts(self, out: Outbound, folder: str) -> Delivered:
        try:
            return await self._session(out, folder, self.tls_context)
        except _PlaintextRetry as retry:
            log.warning("delivery to %s: %s; sending in plaintext on a new connection (tls = opportunistic)",
                        self.cfg.target, retry)
            try:
                return await self._session(out, folder, None)
            except DeliveryError as exc:
                if exc.code == 530:  # "Must issue a STARTTLS command first": TLS is the problem, not the mail
                    raise DeliveryError(451, TLS_FAILED, f"{retry}; in plaintext the downstream answered "
                                        f"{exc.code} {exc.status} {exc.text}", where=self.where, tls=True) from None
                raise

    async def _starttls(self, conn: _Conn, ctx: ssl.SSLContext, hello: str) -> set[str]:
        """STARTTLS and the second EHLO/LHLO (RFC 3207 §4.2), or plaintext, or the failure, as the
        level says; the keywords that then hold. Nothing of the transaction is sent before this returns."""
        caps = conn.keywords()
        def failed(status: str, problem: str) -> Exception:
            if self.tls_required:
                return DeliveryError(451, status, problem, where=self.where, tls=True)
            return _PlaintextRetry(problem)

        if "STARTTLS" not in caps:
            if self.tls_required:
                raise failed(NOT_OFFERED, "TLS required, but the downstream does not offer STARTTLS")
            return caps
        conn.writer.write(b"STARTTLS\r\n")
        await conn.writer.drain()
        code, status, text = await conn.reply()
        if code != 220:
            if self.tls_required:
                raise failed(TLS_FAILED, f"the downstream refused STARTTLS: {code} {status} {text}".strip())
            return caps  # Postfix's `may` goes on in plaintext on this connection: nothing was started
        if conn.buffered():
            raise failed(TLS_FAILED, "the downstream sent more after its 220 to STARTTLS (plaintext injection)")
        try:
            await conn.writer.start_tls(ctx, server_hostname=self.server_name)
        except (ssl.SSLError, ConnectionError, OSError, EOFError) as exc:
            conn.broken = True
            raise failed(TLS_FAILED, describe_error(exc)) from None
        # TLS 1.3: a server that wanted our certificate says so only now (Postfix: "421 4.7.1 … No client
        # certificate presented"); any failure here belongs to TLS, as a failed handshake does.
        try:
            await conn.command(hello)
        except (ssl.SSLError, ConnectionError) as exc:
            conn.broken = True
            raise failed(TLS_FAILED, describe_error(exc)) from None
        except DeliveryError as exc:
            raise failed(TLS_FAILED, f"after the TLS handshake the downstream answered {exc.code} {exc.status} "
                                     f"{exc.text}") from None
        return conn.keywords()

    async def _connect(self, ctx: ssl.SSLContext | None) -> _Conn:
        """A new connection, greeted, EHLO/LHLO'd and (as [delivery] tls says) under TLS; closed again if
        any of that fails."""
        conn = await self._open()
        conn.ctx = ctx
        try:
            code, _, _ = await conn.reply()
            if code != 220:
                raise DeliveryError(451, "4.4.2", f"downstream greeting {code}", where=self.where)
            await conn.command(self.hello)
            conn.caps = await self._starttls(conn, ctx, self.hello) if ctx is not None else conn.keywords()
        except BaseException:
            await conn.close(quit=not conn.broken)
            raise
        return conn

    async def _checkout(self, ctx: ssl.SSLContext | None) -> _Conn | None:
        """A pooled connection made with the same TLS context and reset (RSET answered 250), or None.
        One the downstream closed, timed out or refused to reset is closed here, never used."""
        now = time.monotonic()
        while self._idle:
            conn, since = self._idle.pop()
            if conn.ctx is not ctx or now - since > self.cfg.pool_idle or conn.buffered():
                await conn.close()
                continue
            conn.reused = True
            if conn.pipelining:  # its RSET goes out with the transaction's commands: no round trip of its own
                conn.reset_pending = True
                return conn
            try:
                await conn.command("RSET")
            except (DeliveryError, ConnectionError, OSError, ssl.SSLError):
                await conn.close()
                continue
            return conn
        return None

    def _checkin(self, conn: _Conn) -> bool:
        """Keep conn for the next message if the pool has room; False: the caller closes it."""
        if self._closing or conn.broken or len(self._idle) >= self.cfg.pool_size:
            return False
        self._idle.append((conn, time.monotonic()))
        return True

    async def close(self) -> None:
        """At the worker's end: every pooled connection closed with QUIT."""
        self._closing = True
        while self._idle:
            conn, _ = self._idle.pop()
            await conn.close()

    async def _session(self, out: Outbound, folder: str, ctx: ssl.SSLContext | None) -> Delivered:
        conn = await self._checkout(ctx) if self.cfg.pool_size else None
        if conn is not None:
            try:
                return await self._transaction(conn, out, folder, ctx)
            except _StaleConnection:
                pass  # the pooled connection went away before the message was sent: once more, fresh
        return await self._transaction(await self._connect(ctx), out, folder, ctx)

    async def _transaction(self, conn: _Conn, out: Outbound, folder: str, ctx: ssl.SSLContext | None) -> Delivered:
        """One message on conn (greeted, or reset); conn goes back to the pool after a 250, else is closed."""
        lmtp = self.cfg.mode == "lmtp"
        keep = False
        sent = False  # the message's DATA went out: from here a lost connection is never retried
        try:
            caps = conn.caps
            opts = [o for o in out.mail_options
                    if (o.startswith("BODY=") and "8BITMIME" in caps) or (o == "SMTPUTF8" and "SMTPUTF8" in caps)]
            mail = f"MAIL FROM:<{out.mail_from}>" + "".join(" " + o for o in opts)
            rcpts = out.recipients
            if lmtp and folder:
                rcpts = [_plus_folder(r, folder) for r in rcpts]
            if conn.pipelining:  # MAIL, each RCPT and DATA (after a reused connection's RSET) in one write
                lines = [mail, *(f"RCPT TO:<{r}>" for r in rcpts), "DATA"]
                expects = [2] * (len(lines) - 1) + [3]
                if conn.reset_pending:
                    conn.reset_pending = False
                    lines, expects = ["RSET", *lines], [2, *expects]
                try:
                    await conn.group(lines, expects)
                except DeliveryError as exc:
                    if conn.reused and exc.where.endswith("(RSET)"):  # not this message's answer, as at checkout
                        raise _StaleConnection from exc
                    raise
            else:
                await conn.command(mail)
                for r in rcpts:
                    await conn.command(f"RCPT TO:<{r}>")
                await conn.command("DATA", expect=3)
            sent = True
            conn.writer.write(dot_stuff(out.message))
            await conn.writer.drain()
            replies = [await conn.reply() for _ in (rcpts if lmtp else [None])]
            failed = [r for r in replies if r[0] // 100 != 2]
            if failed:
                # Any refusal fails the whole message: the client retries or bounces it.
                worst = max(failed, key=lambda r: r[0])
                code, status, text = worst
                raise DeliveryError(code, status or _default_status(code), text, where=f"{self.where} (end of DATA)")
            code, status, text = replies[-1]
            state = tls_state(conn.writer, self.tls_verified) if ctx is not None else TLSState()
            keep = True
            return Delivered(f"{code} {status} {text}".strip(), str(state))
        except (DeliveryError, ConnectionError, OSError, ssl.SSLError) as exc:
            # A reused connection the downstream dropped (or answered 421 on, e.g. a per-connection
            # message limit) before our DATA went out: nothing was delivered, so a fresh one may retry.
            if conn.reused and not sent and (not isinstance(exc, DeliveryError) or exc.code == 421):
                raise _StaleConnection from exc
            raise
        finally:
            if not (keep and self._checkin(conn)):
                await conn.close(quit=not conn.broken)

    async def probe(self, limit: float = 10.0) -> ProbeReport:
        """For check-config: connect, EHLO/LHLO, STARTTLS with the certificate checked (then, if only
        that failed, again without), EHLO, QUIT. No mail is sent."""
        report = ProbeReport(self.cfg.target)
        try:
            await asyncio.wait_for(self._probe(report), limit)
        except TimeoutError:
            report.error = report.error or f"no answer within {limit:g} s"
        except DeliveryError as exc:
            report.error = f"{exc.code} {exc.status} {exc.text}".strip()
        except (ConnectionError, OSError) as exc:
            report.error = exc.strerror or str(exc)
        return report

    async def _probe(self, report: ProbeReport) -> None:
        ctx = client_context(self.cfg, verify=True) if self.cfg.tcp else None  # no TLS over a unix socket
        await self._probe_once(report, ctx, verifying=True)
        if report.verify_error and not report.tls and self.cfg.tcp:
            await self._probe_once(report, client_context(self.cfg, verify=False), verifying=False)

    async def _probe_once(self, report: ProbeReport, ctx: ssl.SSLContext | None, *, verifying: bool) -> None:
        conn = await self._open()
        try:
            code, _, text = await conn.reply()
            report.reachable = True
            if code != 220:
                report.error = f"greeting {code} {text}"
                return
            hello = ("LHLO " if self.cfg.mode == "lmtp" else "EHLO ") + self.helo_name
            await conn.command(hello)
            report.starttls = "STARTTLS" in conn.keywords()
            if not report.starttls or ctx is None:
                return
            await conn.command("STARTTLS")
            if conn.buffered():
                report.error = "the downstream sent more after its 220 to STARTTLS (plaintext injection)"
                conn.broken = True
                return
            try:
                await conn.writer.start_tls(ctx, server_hostname=self.server_name)
            except (ssl.SSLError, ConnectionError, OSError, EOFError) as exc:
                conn.broken = True
                if verifying and isinstance(exc, ssl.SSLCertVerificationError):
                    report.verify_error = describe_error(exc)
                else:
                    report.error = describe_error(exc)
                return
            obj = conn.writer.get_extra_info("ssl_object")
            state = tls_state(conn.writer, verifying)
            report.tls, report.verified = f"{state.version} {state.cipher}", verifying
            report.certificate = describe_certificate(obj)
            await conn.command(hello)
        finally:
            await conn.close(quit=not conn.broken)

    def _maildir(self, out: Outbound, folder: str) -> Delivered:
        """Deliver into <root>/<address>/Maildir[/.<folder>]: write to tmp/, fsync, link into new/.

        <address> is the recipient's canonical stored address (SPEC §4.5 item 7), never
        the RCPT string: with a catch-all, `</srv/x@…>` or `<../../x@…>` would otherwise
        name a directory outside the root. Names are checked again here, and the final
        directory must lie under the root (after resolving symbolic links)."""
        root = Path(self.cfg.target)
        written = []
        try:
            real_root = os.path.realpath(root)
            for i, rcpt in enumerate(out.recipients):
                name = out.mailboxes[i] if i < len(out.mailboxes) else _mailbox_name(rcpt)
                if not _safe_name(name) or (folder and not _safe_name(folder)):
                    raise DeliveryError(550, "5.1.3", "Mailbox name not allowed", where=self.where)
                mdir = root / name / "Maildir"
                if folder:
                    mdir = mdir / f".{folder}"
                real = os.path.realpath(mdir)
                if os.path.commonpath([real_root, real]) != real_root or real == real_root:
                    raise DeliveryError(550, "5.1.3", "Mailbox outside the Maildir root", where=self.where)
                for sub in ("tmp", "new", "cur"):
                    (mdir / sub).mkdir(parents=True, exist_ok=True)
                if folder:  # Maildir++: marks a subfolder, as Dovecot and Courier create them
                    (mdir / "maildirfolder").touch(exist_ok=True)
                fname = f"{time.time():.6f}.P{os.getpid()}R{os.urandom(6).hex()}.{socket.gethostname()}"
                tmp = mdir / "tmp" / fname
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                try:
                    os.write(fd, out.message)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, mdir / "new" / fname)
                written.append(mdir / "new" / fname)
            return Delivered(f"250 2.0.0 stored in {len(written)} Maildir(s)")
        except (OSError, DeliveryError) as exc:
            for p in written:  # all or nothing: the client will retry the whole message
                try:
                    p.unlink()
                except OSError:
                    pass
            if isinstance(exc, DeliveryError):
                raise
            raise DeliveryError(451, "4.3.0", f"Maildir write failed: {exc.strerror}", where=self.where) from None


def _mailbox_name(address: str) -> str:
    """A recipient's directory name when no stored address was given: lower case, without +tag."""
    local, _, domain = address.rpartition("@")
    return f"{local.split('+', 1)[0].lower()}@{domain.lower()}"


def _safe_name(name: str) -> bool:
    """One path element: no separator, no NUL, not hidden, "." or ".." (SPEC §4.5 item 7)."""
    return bool(name) and "/" not in name and "\0" not in name and not name.startswith(".")


def _plus_folder(address: str, folder: str) -> str:
    """Dovecot LMTP's `user+folder@domain` convention (lmtp_save_to_detail_mailbox)."""
    local, _, domain = address.rpartition("@")
    return f"{local.split('+', 1)[0]}+{folder}@{domain}"
