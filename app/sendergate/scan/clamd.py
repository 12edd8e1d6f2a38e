"""A small async client for clamd's INSTREAM and PING commands.

Why not aioclamd (1.1.0, in the dependency list)? Measured against clamd
1.4 here: it speaks TCP only, so `scan.clamd = "unix:/path"` (the usual local
setup) cannot work; it sends 1 KiB chunks and hops to a worker thread for
each (a 20 MB message took 1.9 s, 0.15 s with this module); and when clamd
stops a stream at its StreamMaxLength it raises a bare ConnectionResetError
instead of reading clamd's "size limit exceeded" answer, so an oversized
message would look like a broken scanner (451) instead of "not scanned".
The protocol is small (clamd(8), "INSTREAM"), so we speak it here, with the
parsing kept pure and tested on its own.

Every call opens one connection, as clamd expects for non-session commands.
Commands use the `z` form (NUL-terminated), so each answer ends with a NUL.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .address import SocketAddress, describe, os_reason

CHUNK_SIZE = 64 * 1024
MAX_ANSWER = 64 * 1024  # clamd's answers are one short line; more is not clamd

# clamd answers "stream: OK", "stream: <signature> FOUND" or "<text> ERROR".
# Signature names are printable ASCII without spaces; anything else is not
# clamd, and must never reach an SMTP reply (no CR/LF injection).
_FOUND = re.compile(r"^stream: ([\x21-\x7e]{1,200}) FOUND$")
_SIZE_LIMIT = "INSTREAM size limit exceeded. ERROR"


class ClamdError(Exception):
    """clamd could not be reached or gave an answer we cannot use; the text says which."""


@dataclass(frozen=True, slots=True)
class StreamVerdict:
    """What clamd said about one message."""

    virus: str | None = None  # signature name, e.g. "SenderGate.Test.EICAR.UNOFFICIAL"
    over_limit: bool = False  # clamd stopped reading at its StreamMaxLength


def parse_instream_answer(answer: bytes) -> StreamVerdict:
    """clamd's answer to INSTREAM -> verdict; ClamdError for errors and garbage."""
    text = _decode_answer(answer)
    if text == "stream: OK":
        return StreamVerdict()
    if text == _SIZE_LIMIT:
        return StreamVerdict(over_limit=True)
    found = _FOUND.match(text)
    if found:
        return StreamVerdict(virus=found.group(1))
    if text.endswith(" ERROR"):
        raise ClamdError(f"clamd error: {_shown(text[:-6])}")
    raise ClamdError(f"bad answer: {_shown(text)}")


def parse_ping_answer(answer: bytes) -> None:
    text = _decode_answer(answer)
    if text != "PONG":
        raise ClamdError(f"bad answer to PING: {_shown(text)}")


def _decode_answer(answer: bytes) -> str:
    if answer.endswith(b"\0"):
        answer = answer[:-1]
    try:
        return answer.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ClamdError(f"bad answer: {_shown(answer.decode('latin-1'))}") from None


def _shown(text: str, limit: int = 80) -> str:
    """An answer as it may appear in a log line or event: one line, bounded."""
    text = text.encode("unicode_escape").decode("ascii")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def frame_chunks(message: bytes | memoryview, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes | memoryview]:
    """INSTREAM framing: each chunk preceded by its 4-byte big-endian length, then a zero length."""
    view = memoryview(message)
    for start in range(0, len(view), chunk_size):
        chunk = view[start:start + chunk_size]
        yield struct.pack("!L", len(chunk))
        yield chunk
    yield struct.pack("!L", 0)


# Plain non-blocking sockets with the loop's sock_* calls rather than asyncio
# streams: when clamd stops reading at its StreamMaxLength it answers and
# closes, our next send fails, and a stream transport would then close the
# socket and drop the answer still waiting in it. Here the socket stays ours
# until we have read that answer.


async def _connect(address: SocketAddress) -> socket.socket:
    loop = asyncio.get_running_loop()
    _, where = address
    try:
        targets: list[tuple[socket.AddressFamily, str | tuple[Any, ...]]]
        if isinstance(where, str):  # ("unix", path)
            targets = [(socket.AF_UNIX, where)]
        else:
            host, port = where
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            targets = [(family, sockaddr) for family, _, _, _, sockaddr in infos]
        last: OSError | None = None
        for family, target in targets:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, target)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
            except BaseException:  # cancelled (timeout): do not leak the socket
                sock.close()
                raise
        raise last or OSError(f"no address for {where}")
    except OSError as exc:
        raise ClamdError(f"unreachable at {describe(address)}: {os_reason(exc)}") from exc


async def _read_answer(sock: socket.socket) -> bytes:
    """Everything up to clamd's NUL terminator."""
    loop = asyncio.get_running_loop()
    answer = b""
    while b"\0" not in answer:
        try:
            chunk = await loop.sock_recv(sock, 4096)
        except OSError as exc:
            if answer:
                break
            raise ClamdError(f"connection lost: {os_reason(exc)}") from exc
        if not chunk:
            break
        answer += chunk
        if len(answer) > MAX_ANSWER:
            raise ClamdError(f"bad answer: longer than {MAX_ANSWER} bytes")
    if not answer:
        raise ClamdError("closed the connection without answering")
    if not answer.endswith(b"\0"):
        raise ClamdError(f"bad answer: {_shown(answer.decode('latin-1'))} (no terminator)")
    return answer


async def instream(address: SocketAddress, message: bytes) -> StreamVerdict:
    """Stream one message to clamd and return its verdict.

    No timeout here: the caller bounds the whole call (connect, send, answer);
    a cancellation closes the connection.
    """
    loop = asyncio.get_running_loop()
    sock = await _connect(address)
    try:
        try:
            await loop.sock_sendall(sock, b"zINSTREAM\0")
            for frame in frame_chunks(message):
                await loop.sock_sendall(sock, frame)
        except OSError:
            # clamd closes the stream when it passes StreamMaxLength, having
            # answered first: its answer is the verdict, not our EPIPE. If it
            # died instead, reading says so.
            pass
        return parse_instream_answer(await _read_answer(sock))
    finally:
        sock.close()


async def ping(address: SocketAddress) -> None:
    """Raises ClamdError unless clamd answers PONG."""
    loop = asyncio.get_running_loop()
    sock = await _connect(address)
    try:
        try:
            await loop.sock_sendall(sock, b"zPING\0")
        except OSError as exc:
            raise ClamdError(f"connection lost: {os_reason(exc)}") from exc
        parse_ping_answer(await _read_answer(sock))
    finally:
        sock.close()
