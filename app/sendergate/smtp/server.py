"""aiosmtpd's protocol object, tuned for a gateway: enhanced status codes on every reply,
tracking of open transactions for graceful shutdown, and limits on connections."""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import ipaddress
import logging
import mmap
import re
import socket
import ssl
from typing import Any, Protocol

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, _DataState, syntax
from aiosmtpd.smtp import log as aiosmtpd_log

from ..config import SMTPConfig
from ..libcopies import version_problem
from ..policy import headers as header_rule

log = logging.getLogger("sendergate.smtp")

# Parts of aiosmtpd's SMTP class are copied below and changed (its __init__ without super(), smtp_DATA,
# _getaddr, eof handling) and its private _DataState is used: they are right for this
# version of aiosmtpd and no other, so the gateway refuses to start with another (library_copies_ok).
AIOSMTPD_VERSION = "1.4.6"


def library_copies_ok() -> str:
    """"" when the installed aiosmtpd is the one the copies here were made from, else why not."""
    import aiosmtpd

    return version_problem("aiosmtpd", getattr(aiosmtpd, "__version__", "unknown"), AIOSMTPD_VERSION,
                           "smtp/server.py")


# A plain `<local@domain>` (what nearly every client sends) is taken apart without the email package's
# full RFC 5322 parser (its cost: resources/docs/benchmarks.md, "Copied fast paths"). Anything else goes
# the full way.
_PLAIN_ADDRESS = re.compile(r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9][A-Za-z0-9.-]{0,252})>")

# aiosmtpd's own replies carry no RFC 3463 code; add the fitting one.
_ENHANCED_FOR = {
    221: "2.0.0", 250: "2.0.0", 421: "4.3.0", 451: "4.3.0", 452: "4.3.1", 500: "5.5.2", 501: "5.5.4",
    502: "5.5.1", 503: "5.5.1", 504: "5.5.4", 530: "5.7.0", 550: "5.7.1", 552: "5.3.4", 553: "5.1.3",
    554: "5.7.0", 555: "5.5.4",
}
_XFORWARD_ATTRS = {"NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"}
_HAS_ENHANCED = re.compile(rb"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")
_AIOSMTPD_TEXT = {
    b"552 Error: message size exceeds fixed maximum message size":
        b"552 5.3.4 Message size exceeds fixed maximum message size",
    b"552 Error: Too much mail data": b"552 5.3.4 Message size exceeds fixed maximum message size",
    b"500 Line too long (see RFC5321 4.5.3.1.6)": b"500 5.5.2 Line too long",
}


_LINE_END = re.compile(rb"\r\n|\r|\n")
# Replies after which aiosmtpd 1.4.6 closes the connection (221, 421, its "goodbye" 502) or starts TLS
# (220): never held, so nothing held is lost or sent after the switch.
_SENT_AT_ONCE = {b"220", b"221", b"421"}
_GOODBYE = b"502 5.5.1 Too many unrecognized commands"


class ClientGone(asyncio.CancelledError):
    """The client closed its side and everything it sent has been answered: end the session.

    A CancelledError, so aiosmtpd's command loop ends the session as it does when
    a connection is lost, instead of answering the end of input as an error."""


class _Reader(asyncio.StreamReader):
    """The session's reader: running out of input after the client's half-close ends the session.
    Replies held back for a pipelining client (GatewaySMTP.push) are sent before any wait for input."""

    done = False  # set when the session ends on our side: nothing more is read
    replies: GatewaySMTP | None = None  # the session whose held replies go out before a read waits

    def holds(self, separator: bytes) -> bool:
        """Whether what was received already contains `separator` (a read for it will not wait)."""
        return separator in self._buffer  # type: ignore[attr-defined]  # StreamReader's own bytearray

    async def readuntil(self, separator: Any = b"\n") -> bytes:  # Any: typeshed's buffer-or-tuple union
        if self.done:
            raise ClientGone()
        if self.replies is not None and self.replies.held and not self.holds(separator):
            await self.replies.flush()  # the client may be waiting for them before it sends more
        try:
            return await super().readuntil(separator)
        except asyncio.IncompleteReadError:
            raise ClientGone() from None

    async def read(self, n: int = -1) -> bytes:
        if self.replies is not None and self.replies.held and not self._buffer:  # type: ignore[attr-defined]
            await self.replies.flush()
        return await super().read(n)


class GatewaySession(Session):
    """aiosmtpd's session, plus the original client as a trusted proxy (Postfix) told us by XFORWARD."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.forwarded_ip: str | None = None
        self.forwarded_helo: str | None = None


class GatewaySMTP(SMTP):
    """One SMTP connection. Long lines in DATA are passed on unchanged (up to 64 KiB a line)."""

    line_length_limit = 65536

    def __init__(self, handler: Any, *, sessions: set[GatewaySMTP], template: SessionTemplate,
                 loop: asyncio.AbstractEventLoop) -> None:
        # aiosmtpd's __init__ inspects the handler and this class on every connection (its cost:
        # resources/docs/benchmarks.md, "Copied fast paths"). The result is the same each time, so it is
        # worked out once per worker (SessionTemplate) and only bound here. Made from aiosmtpd 1.4.6:
        # library_copies_ok refuses any other.
        reader = _Reader(loop=loop, limit=self.line_length_limit)
        reader.replies = self
        asyncio.StreamReaderProtocol.__init__(self, reader, client_connected_cb=self._cb_client_connected, loop=loop)
        self._input = reader  # aiosmtpd's self._reader, typed as ours
        self.held: list[bytes] = []  # replies not yet sent: the client pipelined more commands (push)
        self.__ident__ = template.ident
        self.loop = loop
        self.event_handler = handler
        self.data_size_limit = template.data_size_limit
        self.enable_SMTPUTF8 = True
        self._decode_data = False
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self.hostname = template.hostname
        self.tls_context = template.tls_context
        self.require_starttls = False
        self._timeout_duration = template.timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = True
        self._proxy_timeout = None
        self._authenticator = None
        self._auth_callback = None
        self._auth_required = False
        self._auth_methods = {}  # no AUTH: a gateway receives, it does not relay for users
        self._handle_hooks = template.handle_hooks
        self._ehlo_hook_ver = "new"
        # aiosmtpd declares a dict but only looks commands up in it
        self._smtp_methods = _BoundMethods(self, template.smtp_methods)  # type: ignore[assignment]
        self._enforce_call_limit = False
        self._sessions = sessions
        self._template = template
        self._max_connections = template.max_connections
        self._in_ehlo = False
        self._errors = 0  # refused commands since the session began or last delivered a message
        self._peer_slot: int | None = None  # this session's entry in the per-address table
        self._xforward_ok: bool | None = None

    def _create_session(self) -> Session:
        return GatewaySession(self.loop)

    @property
    def xforward_allowed(self) -> bool:
        """XFORWARD is believed only from `smtp.xforward_from` (the Postfix that proxies to us), SPEC §4.5 item 6."""
        if self._xforward_ok is None:
            peer = self.session.peer if self.session is not None else None
            self._xforward_ok = _peer_in(peer, self._template.xforward_from)
        return self._xforward_ok

    async def smtp_XFORWARD(self, arg: str | None) -> None:
        """Postfix's XFORWARD (XFORWARD_README): the original client's address and HELO."""
        session = self.session
        assert isinstance(session, GatewaySession)
        if not self.xforward_allowed:
            await self.push("550 5.7.0 XFORWARD not permitted")
            return
        if self.envelope is not None and self.envelope.mail_from:
            await self.push("503 5.5.1 XFORWARD not permitted inside a transaction")
            return
        attrs = {}
        for item in (arg or "").split():
            name, eq, value = item.partition("=")
            if not eq or name.upper() not in _XFORWARD_ATTRS:
                await self.push("501 5.5.4 Bad XFORWARD attribute")
                return
            attrs[name.upper()] = None if value.upper() in ("[UNAVAILABLE]", "[TEMPUNAVAIL]") else value
        if not attrs:
            await self.push("501 5.5.4 Syntax: XFORWARD attribute=value...")
            return
        if "ADDR" in attrs:
            addr = attrs["ADDR"] or ""
            if addr.upper().startswith("IPV6:"):
                addr = addr[5:]
            try:
                session.forwarded_ip = str(ipaddress.ip_address(addr)) if addr else None
            except ValueError:
                await self.push("501 5.5.4 Bad XFORWARD ADDR")
                return
        if "HELO" in attrs:
            session.forwarded_helo = attrs["HELO"]
        await self.push("250 2.0.0 Ok")

    def _create_envelope(self) -> Envelope:
        return Envelope()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        s = arg.lstrip()
        if s.startswith("<>"):
            return "<>", s[2:]
        m = _PLAIN_ADDRESS.match(s)
        if m is not None and ".." not in m.group(1) and not m.group(1).startswith("."):
            return m.group(1), s[m.end():]
        return super()._getaddr(arg)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:  # not the TLS layer STARTTLS puts on the same connection
            if len(self._sessions) >= self._max_connections:
                self._refuse(transport, b"421 4.7.0 Too many connections, try again later\r\n")
                return
            peers = self._template.peers
            if peers is not None:
                peer = transport.get_extra_info("peername")
                key = peer_key(peer)
                if key is not None and not _peer_in(peer, self._template.xforward_from):
                    slot = peers.enter(key, self._template.max_connections_per_ip)
                    if slot is None:
                        log.info("refused %s: smtp.max_connections_per_ip reached", peer[0])
                        self._refuse(transport, b"421 4.7.0 Too many connections from your address, "
                                                b"try again later\r\n")
                        return
                    self._peer_slot = slot
            self._sessions.add(self)
            self._template.metrics.session_opened()
        super().connection_made(transport)

    def _refuse(self, transport: asyncio.BaseTransport, reply: bytes) -> None:
        """Over a limit: say so and hang up, without starting a session."""
        transport.write(reply)  # type: ignore[attr-defined]
        transport.close()
        self.transport = None

    def connection_lost(self, error: Exception | None) -> None:
        if self.session is None:  # refused in connection_made: no session was started
            return
        if self._peer_slot is not None and self._template.peers is not None:
            self._template.peers.leave(self._peer_slot)
            self._peer_slot = None
        self._sessions.discard(self)
        self._template.metrics.session_closed()
        super().connection_lost(error)

    def eof_received(self) -> bool:
        """The client closed its sending side. Exim pipelines "." and QUIT and then half-closes
        (shutdown SHUT_WR): everything already received is still answered, end of DATA included,
        and the session ends when the input runs out (ClientGone) or at QUIT. aiosmtpd 1.4.6
        cancelled the running command here, so the end-of-DATA reply was never written."""
        assert self.session is not None
        asyncio.StreamReaderProtocol.eof_received(self)  # the reader sees the end of input
        # Over TLS a half-close cannot be kept open (True has no effect there and warns).
        return self.session.ssl is None

    @property
    def in_transaction(self) -> bool:
        return self.envelope is not None and bool(self.envelope.mail_from)

    async def smtp_EHLO(self, hostname: str) -> None:
        # aiosmtpd writes (and drains) each EHLO line on its own; collect them into one write
        self._in_ehlo = True
        self._ehlo_lines: list[bytes] = []
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_ehlo = False
            lines, self._ehlo_lines = self._ehlo_lines, []
        if lines:
            await self._send(b"\r\n".join(lines))

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            status = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii", "replace")
        if self._in_ehlo and status.startswith(b"250"):
            self._ehlo_lines.append(status)
            return
        status = _AIOSMTPD_TEXT.get(status, status)
        if not self._in_ehlo and len(status) >= 4 and status[:3].isdigit() and not _HAS_ENHANCED.match(status):
            code = int(status[:3])
            enhanced = _ENHANCED_FOR.get(code)
            if enhanced and code != 220:
                sep = status[3:4]
                status = status[:3] + sep + enhanced.encode() + b" " + status[4:].replace(b"Error: ", b"")
        await self._send(status)
        if status[:1] in (b"4", b"5") and not status.startswith(b"421"):
            self._errors += 1
            limit = self._template.error_limit
            if limit and self._errors >= limit:
                await self._too_many_errors()

    async def _send(self, reply: bytes) -> None:
        """Send one reply, or hold it while the client's next command is already here (RFC 2920
        pipelining): the replies to a pipelined group go out in one write, as Postfix's smtpd sends
        them (it flushes only when its input buffer is empty). A held reply goes out before anything
        waits for input (_Reader) and with any reply after which the connection closes or changes."""
        self.held.append(reply + b"\r\n")
        if reply[:3] in _SENT_AT_ONCE or reply.startswith(_GOODBYE) or not self._input.holds(b"\n"):
            await self.flush()

    async def flush(self) -> None:
        """Send the held replies, in order, in one write."""
        if self.held:
            data = b"".join(self.held)
            self.held.clear()
            self._writer.write(data)
            await self._writer.drain()

    async def _too_many_errors(self) -> None:
        """smtp.error_limit refused commands (SPEC §4.5 item 5): 421 and close, as Postfix does at
        smtpd_hard_error_limit. What the client pipelined after the last refusal is not read."""
        log.info("closing session from %s: %d refused commands (smtp.error_limit)",
                 self.session.peer[0] if self.session and isinstance(self.session.peer, tuple) else "?",
                 self._errors)
        try:
            await self._send(b"421 4.7.0 Too many errors, closing connection")
        except (ConnectionError, OSError):
            pass
        if isinstance(self._reader, _Reader):
            self._reader.done = True  # not even a command already received
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()  # as aiosmtpd's QUIT: the command loop ends at its next step
        if self.transport is not None:
            self.transport.close()

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA (1.4.6) with one SMTP boundary (SPEC §4.5 item 4) and bounded memory.

        Only <CR><LF>.<CR><LF> ends DATA. Bare CR and bare LF in the content are
        made CRLF before anything reads the message (Postfix's
        `smtpd_forbid_bare_newline = normalize`, applied to CR as well): the
        message is accepted, as Postfix 3.9 accepts it by default, and a
        `<LF>.<CR><LF>` meant to end DATA at a server behind us is just a line
        holding a dot, which delivery dot-stuffs. Refusing would bounce the
        honest old software that still sends bare LF; normalising loses nothing.
        A clean message is only counted, never copied.
        """
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        state, content = await self._read_message()
        if state is not _DataState.NOMINAL:
            if state is _DataState.TOO_LONG:
                await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            else:
                await self.push("552 Error: Too much mail data")
            self._set_post_data_state()
            return
        content = header_rule.normalise(content)
        # RFC 5321 4.5.2: a line's leading dot is transparency
        if content.startswith(b"."):
            content = content[1:]
        content = content.replace(b"\r\n.", b"\r\n")
        self.envelope.content = content
        self.envelope.original_content = content
        # The decision, its event and the delivery run to the end even if the client goes away
        # meanwhile (RST, timeout): never a delivery without its event, never half a transaction.
        task = self.loop.create_task(self._call_handler_hook("DATA"))
        inflight = self._template.inflight
        inflight.add(task)

        def finished(t: asyncio.Task) -> None:
            inflight.discard(t)
            if not t.cancelled() and t.exception() is not None:  # the hook answers errors itself; this is a bug
                log.error("end-of-DATA handler failed", exc_info=t.exception())
        task.add_done_callback(finished)
        status = await asyncio.shield(task)
        self._set_post_data_state()
        if status is MISSING or (isinstance(status, str) and status.startswith("250")):
            self._errors = 0  # as Postfix's limit: errors "without delivering mail"
        await self.push("250 OK" if status is MISSING else status)

    async def _read_message(self) -> tuple[_DataState, bytes]:
        """The message as sent (dot-stuffed, without the final "." line), or the limit it broke.

        Reads runs up to the next ".<CR><LF>" (usually the end of the message), or
        what the reader holds when there is none within its limit; only a "." line
        after a <CR><LF> ends DATA. Once the size limit is passed nothing more is
        kept: memory stays within max_message_size plus the reader's buffer
        whatever the line structure. A message over the size limit gets 552 even
        when it also holds a line over 64 KiB (the answer that tells the sender
        what to change)."""
        reader = self._reader
        limit = self.data_size_limit
        line_limit = self.line_length_limit
        kept: list[bytes] = []
        keeping = True
        size = 0
        too_long = False
        line_len = 0  # the unfinished line's length so far
        tail = b"\r\n"  # the last two bytes received: DATA begins at the start of a line
        try:
            while True:
                try:
                    run = await reader.readuntil(b".\r\n")
                    found = True
                except asyncio.LimitOverrunError as e:
                    run = await reader.read(e.consumed)
                    found = False
                end = False
                body = run
                if found:
                    before = run[:-3]
                    end = (before[-2:] if len(before) >= 2 else (tail + before)[-2:]) == b"\r\n"
                    if end:
                        body = before
                size += len(body)
                if keeping:
                    if line_len + len(body) > line_limit:  # a line may be too long: look closer
                        parts = _LINE_END.split(body)
                        if len(parts) == 1:
                            line_len += len(body)
                        else:
                            too_long = too_long or line_len + len(parts[0]) > line_limit or \
                                max(map(len, parts[1:])) > line_limit
                            line_len = len(parts[-1])
                        too_long = too_long or line_len > line_limit
                    else:
                        last = max(body.rfind(b"\n"), body.rfind(b"\r"))
                        line_len = line_len + len(body) if last < 0 else len(body) - last - 1
                    if too_long or (limit and size > limit):
                        keeping = False
                        kept.clear()
                    else:
                        kept.append(body)
                if len(body) >= 2:
                    tail = body[-2:]
                elif body:
                    tail = tail[-1:] + body
                if end:
                    break
            if limit and size > limit:
                return _DataState.TOO_MUCH, b""
            if too_long:
                return _DataState.TOO_LONG, b""
            return _DataState.NOMINAL, b"".join(kept)
        except asyncio.CancelledError:
            aiosmtpd_log.info("Connection lost during DATA")
            self._writer.close()
            raise

    async def shutdown_idle(self) -> None:
        """Close this connection politely if no transaction is open (used on SIGTERM)."""
        if self.transport is not None and not self.transport.is_closing():
            try:
                await self._send(b"421 4.3.2 Service shutting down, try again later")
            except (ConnectionError, OSError):
                pass
            self.transport.close()


class SessionTemplate:
    """What every connection of one worker shares, worked out once."""

    def __init__(self, handler: Any, *, hostname: str, ident: str, data_size_limit: int, timeout: float,
                 tls_context: ssl.SSLContext | None, max_connections: int, error_limit: int = 0,
                 max_connections_per_ip: int = 0, peers: PeerTable | None = None,
                 xforward_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (),
                 metrics: SessionCounter | None = None) -> None:
        self.hostname = hostname
        self.metrics: SessionCounter = metrics or _NoMetrics()  # none: a test's server counts nothing
        self.max_connections = max_connections
        self.error_limit = error_limit
        self.max_connections_per_ip = max_connections_per_ip
        self.peers = peers if max_connections_per_ip else None
        self.xforward_from = xforward_from
        self.inflight: set[asyncio.Task] = set()  # end-of-DATA work still running (waited for on SIGTERM)
        self.ident = ident
        self.data_size_limit = data_size_limit
        self.timeout = timeout
        self.tls_context = tls_context
        self.handle_hooks = {m[len("handle_"):]: getattr(handler, m) for m in dir(handler)
                             if m.startswith("handle_")}
        self.smtp_methods = {m[len("smtp_"):]: m for m in dir(GatewaySMTP) if m.startswith("smtp_")}

    @classmethod
    def from_config(cls, handler: Any, smtp: SMTPConfig, *, peers: PeerTable | None = None,
                    metrics: SessionCounter | None = None) -> SessionTemplate:
        """As `[smtp]` says (the gateway's workers, and the in-process tests, build it here)."""
        tls = tls_context(smtp.tls_cert, smtp.tls_key) if smtp.tls_cert else None
        return cls(handler, hostname=smtp.hostname, ident="ESMTP SenderGate", data_size_limit=smtp.max_message_size,
                   timeout=smtp.timeout, tls_context=tls, max_connections=smtp.max_connections,
                   error_limit=smtp.error_limit, max_connections_per_ip=smtp.max_connections_per_ip, peers=peers,
                   xforward_from=smtp.xforward_networks, metrics=metrics)


class _BoundMethods(collections.abc.Mapping):
    """aiosmtpd's command name -> bound smtp_* method table, bound when a command is looked up
    instead of for all fifteen commands on every connection."""

    __slots__ = ("_server", "_names")

    def __init__(self, server: GatewaySMTP, names: dict[str, str]) -> None:
        self._server = server
        self._names = names

    def __getitem__(self, command: str) -> Any:
        return getattr(self._server, self._names[command])

    def get(self, command: str, default: Any = None) -> Any:
        attr = self._names.get(command)
        return default if attr is None else getattr(self._server, attr)

    def __iter__(self) -> Any:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


class SessionCounter(Protocol):
    """The open-sessions gauge and sessions counter (runtime.MetricsSink has these)."""

    def session_opened(self) -> None: ...
    def session_closed(self) -> None: ...


class _NoMetrics:
    def session_opened(self) -> None: ...
    def session_closed(self) -> None: ...


def _peer_in(peer: Any, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    if not networks or not isinstance(peer, tuple):
        return False
    try:
        ip = ipaddress.ip_address(peer[0].split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


def peer_key(peer: Any) -> bytes | None:
    """The 16-byte key a client address counts under: an IPv4 address, or an IPv6 /64
    (one site's hosts share one, as one IPv4 address does)."""
    if not isinstance(peer, tuple) or not peer:
        return None
    host = str(peer[0])
    try:
        if ":" not in host:
            return b"\x01" + socket.inet_pton(socket.AF_INET, host) + b"\0" * 11
        packed = socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
    except OSError:
        return None
    if packed[:12] == _V4_MAPPED:
        return b"\x01" + packed[12:] + b"\0" * 11
    return b"\x02" + packed[:8] + b"\0" * 7


class PeerTable:
    """Open SMTP sessions per client address, shared by the pre-forked workers (SPEC §4.5 item 5).

    One anonymous shared memory map made before the workers fork. Each worker owns
    one region of `slots` 16-byte entries, one entry per open session holding its
    client's key, and writes only there, so no lock is needed; counting an address
    reads every region up to the highest entry its worker has used (kept in a
    header; freed entries are reused first, so that stays near the worker's peak
    of concurrent sessions). A worker that dies leaves its region behind: the
    supervisor clears it before starting the replacement. Two workers admitting the
    same address in the same instant may both see count = cap - 1: the cap can be
    passed by at most workers - 1 sessions, for that instant only.
    """

    ENTRY = 16

    def __init__(self, workers: int, slots: int) -> None:
        self.workers = workers
        self.slots = slots
        self._head = workers * self.ENTRY  # per worker: the number of entries in use or used before
        self.map = mmap.mmap(-1, self._head + workers * slots * self.ENTRY)  # MAP_SHARED across fork
        self._index = 0
        self._used = 0
        self._free: list[int] = []

    def _start(self, index: int) -> int:
        return self._head + index * self.slots * self.ENTRY

    def use_region(self, index: int) -> None:
        """In a worker: take region `index` as this worker's own."""
        self._index = index
        self._used = 0
        self._free = list(range(self.slots - 1, -1, -1))  # pop() gives the lowest entry first

    def clear_region(self, index: int) -> None:
        start, size = self._start(index), self.slots * self.ENTRY
        self.map[start:start + size] = bytes(size)
        self.map[index * self.ENTRY:(index + 1) * self.ENTRY] = bytes(self.ENTRY)

    def count(self, key: bytes, stop: int) -> int:
        """Open sessions of key in all workers (counting stops at `stop`)."""
        found = 0
        mm = self.map
        for w in range(self.workers):
            used = int.from_bytes(mm[w * self.ENTRY:w * self.ENTRY + 4], "little")
            if not used:
                continue
            start = self._start(w)
            end = start + used * self.ENTRY
            pos = mm.find(key, start, end)
            while pos >= 0:
                if (pos - start) % self.ENTRY == 0:
                    found += 1
                    if found >= stop:
                        return found
                pos = mm.find(key, pos + 1, end)
        return found

    def enter(self, key: bytes, cap: int) -> int | None:
        """Record a session of key and return its entry, or None when key has cap sessions open already."""
        if not self._free or self.count(key, cap) >= cap:
            return None
        slot = self._free.pop()
        at = self._start(self._index) + slot * self.ENTRY
        self.map[at:at + self.ENTRY] = key
        if slot >= self._used:
            self._used = slot + 1
            head = self._index * self.ENTRY
            self.map[head:head + 4] = self._used.to_bytes(4, "little")
        return slot

    def leave(self, slot: int) -> None:
        at = self._start(self._index) + slot * self.ENTRY
        self.map[at:at + self.ENTRY] = bytes(self.ENTRY)
        self._free.append(slot)
