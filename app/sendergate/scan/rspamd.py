"""rspamd's HTTP protocol: POST /checkv2 to scan a message, GET /ping to see it answer.

Our own small client, HTTP/1.1 over asyncio streams with h11 (the sans-I/O parser httpx itself
uses) reading the answer, rather than an httpx.AsyncClient. Measured against rspamd 3.4 here
(tests/bench/bench_rspamd_client.py: 500 requests of a small message, one and 10 at a time,
three runs on 2026-12-06):
- an httpx.AsyncClient costs 24-88 ms to create (it loads the system CA store for a TLS context
  we never use, on the event loop: once per worker process) and 1.8-3.3 ms of CPU per request;
  this client costs 0.5-0.8 ms of CPU per request and nothing to create;
- rspamd answers every request with `Connection: close`, so httpx's connection pool saves
  nothing;
- the protocol we need is one request and one JSON answer.
Every call opens one connection and closes it, also when cancelled (scan.timeout).

The envelope goes along as rspamd's request headers (its protocol documentation, "HTTP
headers"): IP, Helo, From, one Rcpt per recipient, Queue-Id. Hostname is not sent: we do not
look up the client's PTR, and rspamd looks it up itself when the MTA did not pass it.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
import socket
from dataclasses import dataclass
from typing import cast

import h11

from .address import SocketAddress, os_reason

MAX_ANSWER = 4 * 1024 * 1024  # a /checkv2 answer with every symbol's options is well under this
MAX_SYMBOLS = 200

# Symbol names are rspamd's (upper-case by convention) or a site's own: printable ASCII, no
# spaces or commas (events keep them in a list, the log joins them).
_SYMBOL = re.compile(r"^[\x21-\x2b\x2d-\x7e]{1,100}$")
_ACTION = re.compile(r"^[a-z ]{1,40}$")


class RspamdError(Exception):
    """rspamd could not be reached or gave an answer we cannot use; the text says which."""


@dataclass(frozen=True, slots=True)
class ScanEnvelope:
    """The SMTP facts rspamd scores with (its SPF, DKIM/DMARC alignment, HELO and rDNS rules)."""

    client_ip: str = ""
    helo: str = ""
    sender: str = ""  # MAIL FROM as given; "" for the null sender
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RspamdReport:
    score: float
    required_score: float | None  # the score of its "reject" action
    action: str  # "no action", "greylist", "add header", "rewrite subject", "soft reject", "reject", ...
    symbols: tuple[str, ...]  # highest score first
    skipped: bool = False  # rspamd decided without running its rules (GTUBE, a settings rule, ...)
    smtp_message: str = ""  # the reply text rspamd suggests, cleaned for a log line


def describe(address: SocketAddress) -> str:
    """Back to the config's spelling: http://host:port or unix:/path."""
    kind, where = address
    if kind == "unix":
        return f"unix:{where}"
    host, port = cast("tuple[str, int]", where)
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def new_queue_id() -> str:
    """A Queue-Id for rspamd's log line, so the event and rspamd's log can be matched."""
    return secrets.token_hex(6).upper()


def _clean(value: str, limit: int = 998) -> bytes:
    """One header value: no control characters (no CR/LF: no second header), bounded."""
    text = "".join(c for c in value if c >= " " and c != "\x7f")[:limit].strip()
    return text.encode("utf-8", "replace")


def request_headers(envelope: ScanEnvelope | None, queue_id: str, length: int,
                    host: str) -> list[tuple[bytes, bytes]]:
    headers = [(b"Host", host.encode("ascii", "replace")), (b"Content-Length", str(length).encode()),
               (b"Connection", b"close")]
    if queue_id:
        headers.append((b"Queue-Id", _clean(queue_id, 64)))
    if envelope is None:
        return headers
    if envelope.client_ip:
        headers.append((b"IP", _clean(envelope.client_ip, 64)))
    if envelope.helo:
        headers.append((b"Helo", _clean(envelope.helo, 255)))
    headers.append((b"From", _clean(envelope.sender) if envelope.sender else b"<>"))
    for rcpt in envelope.recipients[:1000]:
        headers.append((b"Rcpt", _clean(rcpt)))
    return [(name, value) for name, value in headers if value]


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RspamdError(f"bad answer: {what} is not a number")
    return float(value)


def parse_checkv2(body: bytes) -> RspamdReport:
    """The JSON answer to /checkv2 -> report; RspamdError for errors and garbage."""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RspamdError(f"bad answer: not JSON: {_shown(body)}") from None
    if not isinstance(answer, dict):
        raise RspamdError("bad answer: not a JSON object")
    if "error" in answer and "action" not in answer:
        raise RspamdError(f"rspamd error: {_shown(str(answer['error']).encode())}")
    action = answer.get("action")
    if not isinstance(action, str) or not _ACTION.match(action):
        raise RspamdError(f"bad answer: action {_shown(str(action).encode())}")
    score = _number(answer.get("score"), "score")
    required = answer.get("required_score")
    required_score = _number(required, "required_score") if required is not None else None
    symbols = answer.get("symbols") or {}
    if not isinstance(symbols, dict):
        raise RspamdError("bad answer: symbols is not an object")
    scored = []
    for name, detail in symbols.items():
        if not _SYMBOL.match(name):
            raise RspamdError(f"bad answer: {_shown(name.encode())} is not a symbol name")
        weight = detail.get("score", 0) if isinstance(detail, dict) else 0
        scored.append((-_number(weight, f"the score of {name}"), name))
    scored.sort()
    messages = answer.get("messages")
    smtp_message = messages.get("smtp_message", "") if isinstance(messages, dict) else ""
    return RspamdReport(score=score, required_score=required_score, action=action,
                        symbols=tuple(name for _, name in scored[:MAX_SYMBOLS]),
                        skipped=answer.get("is_skipped") is True,
                        smtp_message=_clean(str(smtp_message), 200).decode("utf-8", "replace"))


def _shown(raw: bytes, limit: int = 80) -> str:
    """Part of an answer as it may appear in a log line or event: one line, bounded."""
    text = raw[:limit].decode("latin-1").encode("unicode_escape").decode("ascii")
    return repr(text + ("..." if len(raw) > limit else ""))


class RspamdClient:
    def __init__(self, address: SocketAddress) -> None:
        self.address = address
        kind, where = address
        self._host = "localhost" if kind == "unix" else describe(address)[len("http://"):]

    async def check(self, message: bytes, envelope: ScanEnvelope | None = None,
                    queue_id: str = "") -> RspamdReport:
        """Scan one message; raises RspamdError for any trouble short of a timeout (the caller's)."""
        status, body = await self._request(
            "POST", "/checkv2", request_headers(envelope, queue_id, len(message), self._host), message)
        if status != 200:
            raise RspamdError(f"HTTP {status}: {_error_text(body)}")
        return parse_checkv2(body)

    async def ping(self) -> None:
        status, body = await self._request("GET", "/ping", [(b"Host", self._host.encode()),
                                                            (b"Connection", b"close")], b"")
        if status != 200 or body.strip() != b"pong":
            raise RspamdError(f"bad answer to /ping: HTTP {status} {_shown(body)}")

    async def _request(self, method: str, target: str, headers: list[tuple[bytes, bytes]],
                       body: bytes) -> tuple[int, bytes]:
        reader, writer = await self._connect()
        answered = False
        try:
            conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
            try:
                writer.write(conn.send(h11.Request(method=method, target=target, headers=headers)))
                if body:
                    writer.write(conn.send(h11.Data(data=body)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
            except OSError as exc:
                # rspamd may answer (an error) before reading all: reading says so.
                if not isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                    raise RspamdError(f"connection lost: {os_reason(exc)}") from exc
            except h11.LocalProtocolError as exc:
                raise RspamdError(f"cannot send the request: {exc}") from exc
            status, answer = await self._read_answer(reader, conn)
            answered = True
            return status, answer
        finally:
            if answered:
                writer.close()
            else:
                writer.transport.abort()  # cancelled or broken: do not wait for the peer

    async def _read_answer(self, reader: asyncio.StreamReader, conn: h11.Connection) -> tuple[int, bytes]:
        status = 0
        answer = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise RspamdError(f"bad answer: {exc}") from exc
            if event is h11.NEED_DATA:
                try:
                    data = await reader.read(65536)
                except OSError as exc:
                    raise RspamdError(f"connection lost: {os_reason(exc)}") from exc
                if not data and status == 0:
                    raise RspamdError("closed the connection without answering")
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                answer += event.data
                if len(answer) > MAX_ANSWER:
                    raise RspamdError(f"bad answer: longer than {MAX_ANSWER} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return status, bytes(answer)
            elif isinstance(event, h11.ConnectionClosed):
                raise RspamdError("closed the connection mid-answer")

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        kind, where = self.address
        try:
            if kind == "unix":
                return await asyncio.open_unix_connection(cast(str, where))
            host, port = cast("tuple[str, int]", where)
            reader, writer = await asyncio.open_connection(host, port)
            sock = writer.get_extra_info("socket")
            if sock is not None:  # the request is one write; do not let Nagle hold its tail
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return reader, writer
        except OSError as exc:
            raise RspamdError(f"unreachable at {describe(self.address)}: {os_reason(exc)}") from exc


def _error_text(body: bytes) -> str:
    """rspamd's errors are JSON {"error": "..."}; anything else is shown as it came."""
    try:
        answer = json.loads(body)
        if isinstance(answer, dict) and "error" in answer:
            return _shown(str(answer["error"]).encode())
    except (ValueError, UnicodeDecodeError):
        pass
    return _shown(body)
