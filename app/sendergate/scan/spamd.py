"""spamd through aiospamc, the maintained async SPAMC client.

aiospamc 1.2.0 speaks SPAMC/1.5 over TCP and unix sockets without blocking
the event loop, but three of its habits do not suit a gateway, so we use its
`Client` and connection managers directly instead of its frontend functions:
- each frontend call (`aiospamc.check`, `aiospamc.ping`, ...) builds two
  `ssl.create_default_context()`s, reading the system CA store on the event
  loop, even for plain TCP: measured 49 ms of blocked loop per message on
  this (busy, 2-core) machine;
- it leaves the connection open when a request times out or fails (fixed
  below by closing it in every case);
- it logs every request through loguru at INFO/SUCCESS to stderr, and every
  failure with a traceback; we report failures ourselves, once, with context,
  so its logger is disabled.
We ask with SYMBOLS: one round trip gives the score and the rule names the
events record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aiospamc.client import Client
from aiospamc.connections import ConnectionManager, TcpConnectionManager, Timeout, UnixConnectionManager
from aiospamc.exceptions import AIOSpamcConnectionFailed, BadResponse, ClientException
from aiospamc.requests import Request
from aiospamc.responses import ResponseException
from loguru import logger

from ..libcopies import version_problem
from .address import SocketAddress, describe, os_reason

logger.disable("aiospamc")

# _ClosesConnections below copies aiospamc's ConnectionManager._send and calls its private _connect and
# _receive: right for this version and no other, so a gateway that asks spamd refuses to start with
# another (gateway.library_copies_problem).
AIOSPAMC_VERSION = "1.2.0"


def library_copy_ok() -> str:
    """"" when the installed aiospamc is the one the copy here was made from, else why not."""
    import aiospamc

    return version_problem("aiospamc", getattr(aiospamc, "__version__", "unknown"), AIOSPAMC_VERSION,
                           "scan/spamd.py")


# SpamAssassin rule names: letters, digits, underscores.
_SYMBOL = re.compile(r"^[A-Za-z0-9_]{1,100}$")


class SpamdError(Exception):
    """spamd could not be reached or gave an answer we cannot use; the text says which."""


@dataclass(frozen=True, slots=True)
class SpamReport:
    score: float
    symbols: tuple[str, ...]


def parse_symbols(body: bytes) -> tuple[str, ...]:
    """The body of a SYMBOLS answer: comma-separated rule names (may be empty)."""
    try:
        text = body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise SpamdError("bad answer: symbols are not ASCII") from None
    if not text:
        return ()
    symbols = tuple(s.strip() for s in text.split(","))
    bad = [s for s in symbols if not _SYMBOL.match(s)]
    if bad:
        raise SpamdError(f"bad answer: {bad[0][:40]!r} is not a rule name")
    return symbols


class _ClosesConnections(ConnectionManager):
    """aiospamc 1.2.0 closes its connection only after a complete answer: a
    timeout (cancellation) or an error leaves the socket open until garbage
    collection (ResourceWarning, and one fd per hung request). This is its
    `ConnectionManager._send` with the connection always closed."""

    async def _send(self, data: bytes) -> bytes:
        reader, writer = await self._connect()
        answered = False
        try:
            writer.write(data)
            if writer.can_write_eof():
                writer.write_eof()
            await writer.drain()
            response = await self._receive(reader)
            answered = True
            return response
        finally:
            if answered:
                writer.close()
            else:
                writer.transport.abort()  # the peer may be stuck: do not wait for it


class _TcpManager(_ClosesConnections, TcpConnectionManager):
    pass


class _UnixManager(_ClosesConnections, UnixConnectionManager):
    pass


def connection_manager(address: SocketAddress, timeout: float) -> ConnectionManager:
    # aiospamc's own total timeout is a backstop only: the caller bounds the
    # whole call with scan.timeout (a little shorter than this).
    backstop = Timeout(total=timeout + 5.0)
    _, where = address
    if isinstance(where, str):  # ("unix", path)
        return _UnixManager(Path(where), timeout=backstop)
    host, port = where
    return _TcpManager(host, port, ssl_context=None, timeout=backstop)


class SpamdClient:
    def __init__(self, address: SocketAddress, timeout: float) -> None:
        self.address = address
        self._client = Client(connection_manager(address, timeout))

    async def symbols(self, message: bytes) -> SpamReport:
        """Score one message; raises SpamdError for any trouble short of a timeout."""
        response = await self._request(Request("SYMBOLS", body=message))
        spam = response.headers.spam
        if spam is None:
            raise SpamdError("bad answer: no Spam header")
        return SpamReport(score=float(spam.score), symbols=parse_symbols(response.body))

    async def ping(self) -> None:
        response = await self._request(Request("PING"))
        if response.message != "PONG":
            raise SpamdError(f"bad answer to PING: {response.message[:40]!r}")

    async def _request(self, request: Request):  # -> aiospamc.responses.Response
        try:
            return await self._client.request(request)
        except AIOSpamcConnectionFailed as exc:
            cause = exc.__cause__
            why = os_reason(cause) if isinstance(cause, OSError) else str(cause or exc)
            raise SpamdError(f"unreachable at {describe(self.address)}: {why}") from exc
        except BadResponse as exc:
            raw = bytes(exc.args[0]) if exc.args and isinstance(exc.args[0], bytes) else b""
            shown = raw[:80].decode("latin-1").encode("unicode_escape").decode("ascii")
            raise SpamdError(f"bad answer: {shown!r}" if raw else "closed the connection without answering") from exc
        except ResponseException as exc:
            raise SpamdError(f"spamd error: {exc.__class__.__name__} {str(exc)[:80]}") from exc
        except ClientException as exc:
            raise SpamdError(f"{exc.__class__.__name__}: {str(exc)[:80]}") from exc
        except OSError as exc:
            raise SpamdError(f"connection lost: {os_reason(exc)}") from exc


