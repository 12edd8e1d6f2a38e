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

from aiosmtpd.smtp import (
    ALLOWED_BEFORE_STARTTLS,
    BOGUS_LIMIT,
    MISSING,
    SMTP,
    Envelope,
    Session,
    TLSSetupException,
    _DataState,
    sanitized_log,
    syntax,
)
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
_REPLY_CACHE = 256  # wire forms of replies kept per worker


def _wire_reply(status: str | bytes) -> bytes:
    """A reply as it goes out: aiosmtpd's texts replaced, the RFC 3463 code added where missing."""
    if isinstance(status, str):
        status = status.encode("utf-8", "replace")
    status = _AIOSMTPD_TEXT.get(status, status)
    if len(status) >= 4 and status[:3].isdigit() and not _HAS_ENHANCED.match(status):
        code = int(status[:3])
        enhanced = _ENHANCED_FOR.get(code)
        if enhanced and code != 220:
            sep = status[3:4]
            status = status[:3] + sep + enhanced.encode() + b" " + status[4:].replace(b"Error: ", b"")
    return status


class ClientGone(asyncio.CancelledError):
    """The client closed its side and everything it sent has been answered: end the session.

    A CancelledError, so the command loop ends the session as it does when
    a connection is lost, instead of answering the end of input as an error."""


class _Done:
    """Awaiting it finishes at once: what push, _send and flush return when there is nothing to wait for."""

    __slots__ = ()

    def __await__(self) -> Any:
        return iter(())


_DONE = _Done()


class GatewaySession(Session):
    """aiosmtpd's session, plus the original client as a trusted proxy (Postfix) told us by XFORWARD."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.forwarded_ip: str | None = None
        self.forwarded_helo: str | None = None


class GatewaySMTP(SMTP):
    """One SMTP connection. Long lines in DATA are passed on unchanged (up to 64 KiB a line).

    aiosmtpd 1.4.6's command methods (smtp_HELO, smtp_MAIL, ...) run unchanged on machinery of our own
    (issue 18 item 1; resources/docs/benchmarks.md, "The SMTP engine under the handler"): this object is its own
    reader (a bytearray fed by data_received, one waiter future) and writer (transport.write, a drain
    only while the transport has paused writing), the command loop is a copy of aiosmtpd's
    `_handle_client` without per-command logging work, and the idle timeout is one deadline per session
    (moved by each command, and in DATA by the bytes received: smtp.min_data_rate) checked by a per-worker
    sweep (SessionTemplate) instead of a timer re-armed on every command. The
    session's task starts with the client's first bytes: an idle connection holds no task."""

    line_length_limit = 65536
    # aiosmtpd's __del__ looks this up (StreamReaderProtocol's future): present, it returns at once
    # instead of formatting an AttributeError for every connection
    _closed = None

    def __init__(self, handler: Any, *, sessions: set[GatewaySMTP], template: SessionTemplate,
                 loop: asyncio.AbstractEventLoop) -> None:
        # aiosmtpd's __init__ inspects the handler and this class on every connection (its cost:
        # resources/docs/benchmarks.md, "Copied fast paths"). The result is the same each time, so it is
        # worked out once per worker (SessionTemplate) and only bound here. Made from aiosmtpd 1.4.6:
        # library_copies_ok refuses any other. No StreamReaderProtocol.__init__: no StreamReader/Writer.
        self._buf = bytearray()  # received, not yet read (the reader's buffer)
        self._waiter: asyncio.Future[None] | None = None  # the session task waiting for input
        self._eof = False  # the client half-closed: what is in _buf is all there will be
        self._reading_paused = False
        self._writing_paused = False  # the transport's buffer is over its high-water mark
        self._drain: asyncio.Future[None] | None = None  # a push waiting for resume_writing
        self._done = False  # the session ended on our side: nothing more is read, not even a held command
        self._deadline = 0.0  # loop.time() after which the idle sweep closes the connection
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
        self._enforce_call_limit = False  # never set here: the copied loop below has no call limits
        self._sessions = sessions
        self._template = template
        self._max_connections = template.max_connections
        self._in_ehlo = False
        self._errors = 0  # refused commands since the session began or last delivered a message
        self._peer_slot: int | None = None  # this session's entry in the per-address table
        self._xforward_ok: bool | None = None

    @property
    def _smtp_methods(self) -> _BoundMethods:  # type: ignore[override]  # aiosmtpd's: a dict bound per connection
        """aiosmtpd's command table (HELP reads it), bound when asked: kept on the object it would
        make a reference cycle, and every connection would wait for the garbage collector."""
        return _BoundMethods(self, self._template.smtp_methods)

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

    # -- the connection (asyncio.Protocol) ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is not None:  # the TLS layer STARTTLS put on the same connection
            self._tls_established(transport)
            return
        if len(self._sessions) >= self._max_connections:
            self._refuse(transport, b"421 4.7.0 Too many connections, try again later\r\n")
            return
        peer = transport.get_extra_info("peername")
        peers = self._template.peers
        if peers is not None:
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
        # From aiosmtpd 1.4.6's connection_made and the start of its _handle_client (no PROXY protocol).
        self._set_rset_state()
        self.session = self._create_session()
        self.session.peer = peer
        self.transport = transport
        self._deadline = self.loop.time() + self._timeout_duration
        self._template.watch(self, self.loop)
        aiosmtpd_log.info("Peer: %r", peer)
        transport.write(self._template.banner)  # type: ignore[attr-defined]  # a 220 is never held

    def _tls_established(self, transport: asyncio.BaseTransport) -> None:
        """aiosmtpd 1.4.6's connection_made for the TLS layer after STARTTLS (RFC 3207 4.2: state reset)."""
        self._set_rset_state()
        peer = transport.get_extra_info("peername")
        self.session = self._create_session()
        self.session.peer = peer
        self._deadline = self.loop.time() + self._timeout_duration
        self.transport = transport
        self._buf.clear()  # RFC 3207 4.2: anything sent in the clear after STARTTLS is discarded
        assert self._tls_protocol is not None
        self.session.ssl = self._tls_protocol._extra
        hook = self._handle_hooks.get("STARTTLS")
        self._tls_handshake_okay = True if hook is None else hook(self, self.session, self.envelope)

    def _refuse(self, transport: asyncio.BaseTransport, reply: bytes) -> None:
        """Over a limit: say so and hang up, without starting a session."""
        transport.write(reply)  # type: ignore[attr-defined]
        transport.close()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        elif self._handler_coroutine is None and self.session is not None:
            self._handler_coroutine = self.loop.create_task(self._handle_client())
        if len(buf) > 2 * self.line_length_limit and not self._reading_paused and self.transport is not None:
            try:  # as StreamReader: memory stays bounded while the session works through what it has
                self.transport.pause_reading()  # type: ignore[attr-defined]
                self._reading_paused = True
            except NotImplementedError:
                pass

    def eof_received(self) -> bool:
        """The client closed its sending side. Exim pipelines "." and QUIT and then half-closes
        (shutdown SHUT_WR): everything already received is still answered, end of DATA included,
        and the session ends when the input runs out (ClientGone) or at QUIT. aiosmtpd 1.4.6
        cancelled the running command here, so the end-of-DATA reply was never written."""
        assert self.session is not None
        self._eof = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        elif self._handler_coroutine is None:  # nothing was ever sent: nothing to answer
            if self.transport is not None:
                self.transport.close()
            return False
        # Over TLS a half-close cannot be kept open (True has no effect there and warns).
        return self.session.ssl is None

    def connection_lost(self, error: Exception | None) -> None:
        if self.session is None:  # refused in connection_made: no session was started
            return
        if self._peer_slot is not None and self._template.peers is not None:
            self._template.peers.leave(self._peer_slot)
            self._peer_slot = None
        self._sessions.discard(self)
        self._template.open.discard(self)
        self._template.metrics.session_closed()
        aiosmtpd_log.info("%r connection lost", self.session.peer)
        # After STARTTLS our transport is the TLS layer's: close the socket's own explicitly (as aiosmtpd)
        if self._original_transport is not None:
            self._original_transport.close()
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_exception(ConnectionResetError("Connection lost"))
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()
        self.transport = None

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        drain = self._drain
        if drain is not None:
            self._drain = None
            if not drain.done():
                drain.set_result(None)

    def timed_out(self) -> None:
        """The session's deadline passed (smtp.timeout since the last command, or DATA's deadline): 421 and
        close, as Postfix's smtpd (aiosmtpd's _timeout_cb closed without a word)."""
        aiosmtpd_log.info("%r connection timeout", self.session.peer if self.session else None)
        transport = self.transport
        if transport is None:
            return
        if self._writing_paused or transport.get_write_buffer_size():  # type: ignore[attr-defined]
            # a client that does not read: close() would wait for it to read what is queued, for ever
            transport.abort()  # type: ignore[attr-defined]
            return
        if not transport.is_closing():
            self.held.append(self._template.timeout_reply)
            self._write(b"".join(self.held))
            self.held.clear()
            transport.close()

    # -- reading -------------------------------------------------------------------------------------

    async def _wait_for_input(self) -> None:
        """Wait until more bytes arrive. Replies held back for a pipelining client go out first (the
        client may be waiting for them before it sends more); at the end of input the session ends."""
        if self.held:
            await self.flush()
        if self._eof or self._done:
            raise ClientGone()
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()  # type: ignore[attr-defined]
        self._waiter = waiter = self.loop.create_future()
        await waiter

    async def _handle_client(self) -> None:
        """aiosmtpd 1.4.6's SMTP._handle_client, copied (AIOSMTPD_VERSION) and changed: lines come from
        our buffer; nothing is logged or sanitised unless aiosmtpd's logger is on; a valid command moves
        the session's deadline (a float) instead of re-arming a timer; no PROXY protocol and no call
        limits (never configured here); a line over 64 KiB is skipped without being kept; the loop stops
        once the connection is closing (after QUIT, 421, a timeout), so nothing is answered after 221."""
        assert self.session is not None
        buf = self._buf
        limit = self.line_length_limit
        bogus_budget = BOGUS_LIMIT
        overlong = False  # inside a command line longer than `limit`: skipped to its end, then 500
        while not self._done and self.transport is not None and not self.transport.is_closing():
            try:
                end = buf.find(b"\n")
                if end < 0 or end > limit or overlong:
                    if end < 0:
                        if len(buf) > limit:
                            overlong = True
                            buf.clear()
                        await self._wait_for_input()
                        continue
                    del buf[:end + 1]
                    overlong = False
                    await self.push("500 Command line too long")
                    continue
                line = bytes(buf[:end]).rstrip(b"\r\n")
                del buf[:end + 1]
                if aiosmtpd_log.isEnabledFor(logging.INFO):
                    sanitized_log(aiosmtpd_log.info, "%r >> %r", self.session.peer, line)
                if not line:
                    await self.push("500 Error: bad syntax")
                    continue
                command_bytes, _, arg_bytes = line.partition(b" ")
                try:
                    command = command_bytes.upper().decode("ascii")
                except UnicodeDecodeError:
                    await self.push("500 Error: bad syntax")
                    continue
                arg: str | None
                if not arg_bytes:
                    arg = None
                else:
                    # UTF-8 with surrogateescape, as aiosmtpd with enable_SMTPUTF8 (always on here)
                    arg = str(arg_bytes.strip(), encoding="utf-8", errors="surrogateescape")
                max_sz = (self.command_size_limits[command] if self.session.extended_smtp
                          else self.command_size_limit)
                if len(line) > max_sz:
                    await self.push("500 Command line too long")
                    continue
                if not self._tls_handshake_okay and command != "QUIT":
                    await self.push("554 Command refused due to lack of security")
                    continue
                if self.require_starttls and not self._tls_protocol and command not in ALLOWED_BEFORE_STARTTLS:
                    await self.push("530 Must issue a STARTTLS command first")  # RFC 3207 4
                    continue
                name = self._template.smtp_methods.get(command)
                method = None if name is None else getattr(self, name)
                if method is None:
                    aiosmtpd_log.warning("%r unrecognised: %s", self.session.peer, command)
                    bogus_budget -= 1
                    if bogus_budget < 1:
                        aiosmtpd_log.warning("%r too many bogus commands", self.session.peer)
                        await self.push("502 5.5.1 Too many unrecognized commands, goodbye.")
                        self.transport.close()
                        continue
                    await self.push(f'500 Error: command "{command}" not recognized')
                    continue
                self._deadline = self.loop.time() + self._timeout_duration  # a valid command: idle again
                await method(arg)
            except (asyncio.CancelledError, ConnectionResetError):
                # the connection was lost (or the session ended: QUIT, the client's half-close, 421)
                aiosmtpd_log.info("%r Connection lost during _handle_client()", self.session.peer)
                if self.transport is not None:
                    self.transport.close()
                raise
            except Exception as error:  # noqa: BLE001  # as aiosmtpd: any error in a command is answered
                status = None
                try:
                    status = await self.handle_exception(error)
                except Exception as inner_error:  # noqa: BLE001  # the handler's own error handler failed
                    try:
                        aiosmtpd_log.exception("%r Exception in handle_exception()", self.session.peer)
                        status = f"500 Error: ({inner_error.__class__.__name__}) {inner_error}"
                    except Exception:  # noqa: BLE001  # as aiosmtpd: still a reply
                        status = "500 Error: Cannot describe error"
                finally:
                    if isinstance(error, TLSSetupException):
                        if self.transport is not None:
                            self.transport.close()
                    else:
                        await self.push(status)

    # -- writing -------------------------------------------------------------------------------------

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

    def push(self, status: Any) -> Any:
        """aiosmtpd's push, as a plain call (no coroutine per reply): the reply is written or held now;
        what it returns is what the caller (always `await self.push(...)`) waits for: nothing (_DONE),
        the transport's drain, or the 421 after smtp.error_limit refusals."""
        if self._in_ehlo:  # EHLO's lines go out as they are, in one write (smtp_EHLO)
            if isinstance(status, str):
                status = status.encode("utf-8", "replace")
            if status.startswith(b"250"):
                self._ehlo_lines.append(status)
                return _DONE
            wire = _AIOSMTPD_TEXT.get(status, status)
        else:
            # A reply's wire form is worked out once per worker (most are the same few strings)
            replies = self._template.replies
            wire = replies.get(status)
            if wire is None:
                wire = _wire_reply(status)
                if len(replies) >= _REPLY_CACHE:
                    replies.clear()  # bounded: unique replies (the 550 with its link) only cycle through
                replies[status] = wire
        waiting = self._send(wire)
        if wire[:1] in (b"4", b"5") and not wire.startswith(b"421"):
            self._errors += 1
            limit = self._template.error_limit
            if limit and self._errors >= limit:
                return self._then_too_many_errors(waiting)
        return waiting

    async def _then_too_many_errors(self, waiting: Any) -> None:
        await waiting
        await self._too_many_errors()

    def _send(self, reply: bytes) -> Any:
        """Send one reply, or hold it while the client's next command is already here (RFC 2920
        pipelining): the replies to a pipelined group go out in one write, as Postfix's smtpd sends
        them (it flushes only when its input buffer is empty). A held reply goes out before anything
        waits for input (_wait_for_input) and with any reply after which the connection closes or changes.
        Returns what to await (flush)."""
        self.held.append(reply + b"\r\n")
        if b"\n" not in self._buf or reply[:3] in _SENT_AT_ONCE or reply.startswith(_GOODBYE):
            return self.flush()
        return _DONE

    def flush(self) -> Any:
        """Send the held replies, in order, in one write. Returns what to await: the drain while the
        transport has paused writing, else nothing (_DONE)."""
        held = self.held
        if not held:
            return _DONE
        data = held[0] if len(held) == 1 else b"".join(held)
        held.clear()
        transport = self.transport
        if transport is None or transport.is_closing():
            return _DONE  # closed on our side or lost: nothing more reaches the client, and the loop stops
        self._write(data)
        if self._writing_paused:
            self._drain = drain = self.loop.create_future()
            return drain
        return _DONE

    def _write(self, data: bytes) -> None:
        """The one place replies are written (tests count the writes here)."""
        self.transport.write(data)  # type: ignore[union-attr]

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
        self._done = True  # not even a command already received
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
        self._deadline = self.loop.time() + self._timeout_duration  # the message is in: its answer has a timeout
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
        buf = self._buf
        limit = self.data_size_limit
        line_limit = self.line_length_limit
        per_byte = self._template.data_seconds_per_byte  # smtp.min_data_rate (SessionTemplate: the rule)
        credit_left = limit if limit else -1  # bytes that still move the deadline; -1: no size limit
        kept: list[bytes] = []
        keeping = True
        size = 0
        too_long = False
        line_len = 0  # the unfinished line's length so far
        tail = b"\r\n"  # the last two bytes received: DATA begins at the start of a line
        scanned = 0  # where the search for ".\r\n" goes on after a wait (what is before was searched)
        try:
            while True:
                # A run as asyncio's StreamReader.readuntil(b".\r\n") with limit line_limit gave it
                # (and read(consumed) after its LimitOverrunError): through the next ".\r\n", or up to
                # it when it lies beyond the limit, or all but the last two bytes held (a separator may
                # be split) when there is none within the limit; else wait for more.
                at = buf.find(b".\r\n", scanned)
                if at >= 0:
                    found = at <= line_limit
                    take = at + 3 if found else at
                elif len(buf) - 2 > line_limit:
                    found = False
                    take = len(buf) - 2
                else:
                    scanned = max(0, len(buf) - 2)
                    had = len(buf)
                    await self._wait_for_input()
                    if per_byte and credit_left:
                        got = len(buf) - had
                        if credit_left > 0:
                            got = min(got, credit_left)
                            credit_left -= got
                        now = self.loop.time()
                        deadline = self._deadline + got * per_byte
                        cap = now + self._timeout_duration
                        self._deadline = deadline if deadline < cap else cap
                    continue
                scanned = 0
                run = bytes(buf[:take])
                del buf[:take]
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
            if self.transport is not None:
                self.transport.close()
            raise

    async def shutdown_idle(self) -> None:
        """Close this connection politely if no transaction is open (used on SIGTERM)."""
        if self.transport is not None and not self.transport.is_closing():
            # written with anything held, never waiting for a drain: a client that reads nothing must
            # not hold the worker's shutdown (close() still sends what the transport has)
            self.held.append(b"421 4.3.2 Service shutting down, try again later\r\n")
            data = b"".join(self.held)
            self.held.clear()
            self._write(data)
            self.transport.close()


class SessionTemplate:
    """What every connection of one worker shares, worked out once."""

    def __init__(self, handler: Any, *, hostname: str, ident: str, data_size_limit: int, timeout: float,
                 tls_context: ssl.SSLContext | None, max_connections: int, error_limit: int = 0,
                 max_connections_per_ip: int = 0, peers: PeerTable | None = None,
                 xforward_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (),
                 metrics: SessionCounter | None = None, min_data_rate: int = 0) -> None:
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
        self.timeout_reply = f"421 4.4.2 {hostname} Error: timeout exceeded\r\n".encode("utf-8", "replace")
        # DATA's deadline (smtp.min_data_rate, as Postfix's smtpd_min_data_rate with per-request deadlines):
        # each read of n bytes moves it by n / min_data_rate seconds, never past `timeout` from that read,
        # and only for the first data_size_limit bytes. So a sender at or above the rate always has
        # `timeout` left, a stall of `timeout` is cut, a trickle at r < rate is cut within
        # timeout / (1 - r / rate) of slowing down (no time is banked), and no DATA outlives
        # timeout + data_size_limit / rate.
        # 0: no credit, the whole message within `timeout` of the DATA command (the behaviour before).
        self.data_seconds_per_byte = 1.0 / min_data_rate if min_data_rate else 0.0
        self.tls_context = tls_context
        self.handle_hooks = {m[len("handle_"):]: getattr(handler, m) for m in dir(handler)
                             if m.startswith("handle_")}
        self.smtp_methods = {m[len("smtp_"):]: m for m in dir(GatewaySMTP) if m.startswith("smtp_")}
        # aiosmtpd's greeting ("220 {hostname} {ident}"), written in connection_made
        self.banner = f"220 {hostname} {ident}\r\n".encode("utf-8", "replace")
        self.replies: dict[str | bytes, bytes] = {}  # push(): a reply's wire form by what was pushed
        self.open: set[GatewaySMTP] = set()  # this worker's sessions, for the idle sweep
        # One timer per worker checks the sessions' deadlines (aiosmtpd re-armed a timer per command):
        # a session is closed between `timeout` and `timeout` + this after its last command.
        self.sweep_every = min(1.0, max(0.01, timeout / 8))
        self._sweep: asyncio.TimerHandle | None = None

    def watch(self, session: GatewaySMTP, loop: asyncio.AbstractEventLoop) -> None:
        """Check `session`'s deadline until it ends (connection_lost takes it out of `open`)."""
        self.open.add(session)
        if self._sweep is None:
            self._sweep = loop.call_later(self.sweep_every, self._check_deadlines, loop)

    def _check_deadlines(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for session in [s for s in self.open if s._deadline <= now]:
            self.open.discard(session)
            session.timed_out()
        # Runs only while there are sessions: an idle worker has no timer going off.
        self._sweep = loop.call_later(self.sweep_every, self._check_deadlines, loop) if self.open else None

    @classmethod
    def from_config(cls, handler: Any, smtp: SMTPConfig, *, peers: PeerTable | None = None,
                    metrics: SessionCounter | None = None) -> SessionTemplate:
        """As `[smtp]` says (the gateway's workers, and the in-process tests, build it here)."""
        tls = tls_context(smtp.tls_cert, smtp.tls_key) if smtp.tls_cert else None
        return cls(handler, hostname=smtp.hostname, ident="ESMTP SenderGate", data_size_limit=smtp.max_message_size,
                   timeout=smtp.timeout, tls_context=tls, max_connections=smtp.max_connections,
                   error_limit=smtp.error_limit, max_connections_per_ip=smtp.max_connections_per_ip, peers=peers,
                   xforward_from=smtp.xforward_networks, metrics=metrics, min_data_rate=smtp.min_data_rate)


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
