"""aiosmtpd's protocol object, tuned for a gateway: enhanced status codes on every reply,
tracking of open transactions for graceful shutdown, and limits on connections."""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import ipaddress
import re
import ssl
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, _DataState, log as aiosmtpd_log, syntax

# A plain `<local@domain>` (what nearly every client sends) is taken apart
# without the email package's full RFC 5322 parser, which costs about a
# quarter of a short session's CPU. Anything else goes the full way.
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
    b"552 Error: message size exceeds fixed maximum message size": b"552 5.3.4 Message size exceeds fixed maximum message size",
    b"552 Error: Too much mail data": b"552 5.3.4 Message size exceeds fixed maximum message size",
    b"500 Line too long (see RFC5321 4.5.3.1.6)": b"500 5.5.2 Line too long",
}


class GatewaySMTP(SMTP):
    """One SMTP connection. Long lines in DATA are passed on unchanged (up to 64 KiB a line)."""

    line_length_limit = 65536

    def __init__(self, handler: Any, *, sessions: set["GatewaySMTP"], template: "SessionTemplate",
                 loop: asyncio.AbstractEventLoop) -> None:
        # aiosmtpd's __init__ inspects the handler and this class on every
        # connection (a quarter of a short session's CPU). The result is the
        # same each time, so it is worked out once per worker (SessionTemplate)
        # and only bound here. Pinned to aiosmtpd 1.4.6; the tests cover it.
        asyncio.StreamReaderProtocol.__init__(
            self, asyncio.StreamReader(loop=loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected, loop=loop)
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
        self._deadline = self._timer_at = 0.0  # loop.time() values: see _reset_timeout
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
        self._smtp_methods = _BoundMethods(self, template.smtp_methods)
        self._enforce_call_limit = False
        self._sessions = sessions
        self._max_connections = template.max_connections
        self._in_ehlo = False

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Move the idle deadline. aiosmtpd cancels its timer and makes a new one on every command;
        here one timer per connection is moved lazily: a command only writes the deadline, and the
        timer, when it fires early, sets itself again for what is left."""
        deadline = self.loop.time() + (duration or self._timeout_duration)
        self._deadline = deadline
        if self._timeout_handle is None or deadline < self._timer_at:
            if self._timeout_handle is not None:
                self._timeout_handle.cancel()
            self._timer_at = deadline
            self._timeout_handle = self.loop.call_at(deadline, self._timeout_due)

    def _timeout_due(self) -> None:
        if self.loop.time() < self._deadline:  # a command came in meanwhile: wait for the rest
            self._timer_at = self._deadline
            self._timeout_handle = self.loop.call_at(self._deadline, self._timeout_due)
        else:
            self._timeout_cb()

    def _create_session(self) -> Session:
        session = Session(self.loop)
        session.forwarded_ip = None  # the original client, as a trusted proxy (Postfix) told us by XFORWARD
        session.forwarded_helo = None
        return session

    @property
    def xforward_allowed(self) -> bool:
        """XFORWARD is believed only from loopback: the Postfix that proxies to us runs beside us."""
        peer = self.session.peer if self.session is not None else None
        if not isinstance(peer, tuple):
            return False
        try:
            return ipaddress.ip_address(peer[0].split("%", 1)[0]).is_loopback
        except ValueError:
            return False

    async def smtp_XFORWARD(self, arg: str | None) -> None:
        """Postfix's XFORWARD (XFORWARD_README): the original client's address and HELO."""
        assert self.session is not None
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
                self.session.forwarded_ip = str(ipaddress.ip_address(addr)) if addr else None
            except ValueError:
                await self.push("501 5.5.4 Bad XFORWARD ADDR")
                return
        if "HELO" in attrs:
            self.session.forwarded_helo = attrs["HELO"]
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
        if self._original_transport is None and len(self._sessions) >= self._max_connections:
            # over the limit: say so and hang up, without starting a session
            transport.write(b"421 4.7.0 Too many connections, try again later\r\n")  # type: ignore[attr-defined]
            transport.close()
            self.transport = None
            return
        self._sessions.add(self)
        _metrics(self).session_opened()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self.session is None:  # refused in connection_made: no session was started
            return
        self._sessions.discard(self)
        _metrics(self).session_closed()
        super().connection_lost(error)

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
            await super().push(b"\r\n".join(lines))

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
        await super().push(status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA (1.4.6), reading the message in runs of lines instead of line by line.

        aiosmtpd reads, counts and stores every line on its own: a tenth of a
        short session's CPU. Here the reader is asked for everything up to the
        next line that ends in "." (usually the end of the message); runs that
        could break a limit go through aiosmtpd's per-line rules, and once a
        run outgrows the reader's limit the rest is read line by line as
        aiosmtpd does. Replies, limits and the content are the same.
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
        # RFC 5321 4.5.2: a line's leading dot is transparency
        if content.startswith(b"."):
            content = content[1:]
        content = content.replace(b"\r\n.", b"\r\n")
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_message(self) -> tuple[_DataState, bytes]:
        """The message as sent (dot-stuffed, without the final "." line), or the limit it broke."""
        reader = self._reader
        limit = self.data_size_limit
        state = _DataState.NOMINAL
        kept: list[bytes] = []
        size = 0
        try:
            while self.transport is not None:  # runs of whole lines, up to a line ending in "."
                try:
                    run = await reader.readuntil(b".\r\n")
                except asyncio.LimitOverrunError:
                    break  # no such line within the reader's limit: go on line by line
                end = run == b".\r\n" or run.endswith(b"\r\n.\r\n")  # the "." is a line of its own
                body = run[:-3] if end else run
                if state is _DataState.NOMINAL and (len(body) > self.line_length_limit or
                                                    (limit and size + len(body) > limit)):
                    lines = body.split(b"\r\n")
                    for line in lines[:-1]:
                        state, size = self._count_line(state, size, len(line) + 2, kept)
                        if state is _DataState.NOMINAL:
                            kept.append(line + b"\r\n")
                else:
                    size += len(body)
                    if state is _DataState.NOMINAL:
                        kept.append(body)
                if end:
                    return state, b"".join(kept)
            fragments: list[bytes] = []
            while self.transport is not None:  # aiosmtpd's own loop
                try:
                    line = await reader.readuntil(b"\r\n")
                except asyncio.LimitOverrunError as e:
                    if state is _DataState.NOMINAL:
                        state = _DataState.TOO_LONG
                    kept.clear()
                    line = await reader.read(e.consumed)
                if not fragments and line == b".\r\n":
                    break
                size += len(line)
                if state is _DataState.NOMINAL and limit and size > limit:
                    state = _DataState.TOO_MUCH
                    kept.clear()
                fragments.append(line)
                if line.endswith(b"\r\n"):
                    if state is _DataState.NOMINAL:
                        line = b"".join(fragments)
                        if len(line) > self.line_length_limit:
                            state = _DataState.TOO_LONG
                            kept.clear()
                        else:
                            kept.append(line)
                    fragments.clear()
            return state, b"".join(kept)
        except asyncio.CancelledError:
            aiosmtpd_log.info("Connection lost during DATA")
            self._writer.close()
            raise

    def _count_line(self, state: _DataState, size: int, length: int, kept: list[bytes]) -> tuple[_DataState, int]:
        """aiosmtpd's per-line limits: a line its reader cannot hold, then the size, then the line length."""
        if state is _DataState.NOMINAL and length - 2 > self.line_length_limit:  # the reader's limit
            state = _DataState.TOO_LONG
            kept.clear()
        size += length
        if state is _DataState.NOMINAL and self.data_size_limit and size > self.data_size_limit:
            state = _DataState.TOO_MUCH
            kept.clear()
        if state is _DataState.NOMINAL and length > self.line_length_limit:
            state = _DataState.TOO_LONG
            kept.clear()
        return state, size

    async def shutdown_idle(self) -> None:
        """Close this connection politely if no transaction is open (used on SIGTERM)."""
        if self.transport is not None and not self.transport.is_closing():
            try:
                await super().push(b"421 4.3.2 Service shutting down, try again later")
            except (ConnectionError, OSError):
                pass
            self.transport.close()


class SessionTemplate:
    """What every connection of one worker shares, worked out once."""

    def __init__(self, handler: Any, *, hostname: str, ident: str, data_size_limit: int, timeout: float,
                 tls_context: ssl.SSLContext | None, max_connections: int) -> None:
        self.hostname = hostname
        self.max_connections = max_connections
        self.ident = ident
        self.data_size_limit = data_size_limit
        self.timeout = timeout
        self.tls_context = tls_context
        self.handle_hooks = {m[len("handle_"):]: getattr(handler, m) for m in dir(handler)
                             if m.startswith("handle_")}
        self.smtp_methods = {m[len("smtp_"):]: m for m in dir(GatewaySMTP) if m.startswith("smtp_")}


class _BoundMethods(collections.abc.Mapping):
    """aiosmtpd's command name -> bound smtp_* method table, bound when a command is looked up
    instead of for all fifteen commands on every connection."""

    __slots__ = ("_server", "_names")

    def __init__(self, server: "GatewaySMTP", names: dict[str, str]) -> None:
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


class _NoMetrics:
    def session_opened(self) -> None: ...
    def session_closed(self) -> None: ...


def _metrics(server: SMTP) -> Any:
    """The runtime's metrics (a handler without a runtime, as in unit tests, counts nothing)."""
    return getattr(getattr(server.event_handler, "rt", None), "metrics", None) or _NoMetrics()
