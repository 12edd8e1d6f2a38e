"""Replies to pipelined commands (RFC 2920): one write for a group, never held while the client waits.

The gateway's own server class on a loopback socket of this process (tests/inprocess/test_handler.py's
`serving`), a raw socket as the client. Real MTAs' pipelining is in tests/test_sender_mtas.py.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from sendergate.smtp.server import GatewaySMTP
from tests.inprocess.test_handler import make, run, serving  # noqa: F401  (make: a fixture)

pytestmark = pytest.mark.fast


class Raw:
    """A client on a plain socket: sends exact bytes, reads replies as they come."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def replies(self, count: int) -> list[str]:
        """The next `count` replies (multi-line ones joined by \\n); fails after 30 s without them."""
        out: list[str] = []
        lines: list[str] = []
        while len(out) < count:
            while b"\r\n" not in self.buf:
                chunk = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sock, 65536), 30)
                assert chunk, f"connection closed after {out + lines}"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if line[3:4] != b"-":
                out.append("\n".join(lines))
                lines = []
        return out

    async def closed(self) -> bool:
        chunk = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sock, 65536), 30)
        self.buf += chunk
        return chunk == b""


async def _raw(port: int) -> Raw:
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return Raw(sock)


class CountWrites:
    """Counts the server's socket writes of replies (GatewaySMTP._write, the one place they are written)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = GatewaySMTP._write

        def write(server: GatewaySMTP, data: Any) -> None:
            self.count += 1
            original(server, data)

        monkeypatch.setattr(GatewaySMTP, "_write", write)


def test_the_replies_to_a_pipelined_group_go_out_in_one_write(make: Any,  # noqa: F811
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    gw = make()
    writes = CountWrites(monkeypatch)

    async def scenario() -> None:
        async with serving(gw) as port:
            c = await _raw(port)
            assert (await c.replies(1))[0].startswith("220")
            await c.send(b"EHLO client.friend.example\r\n")
            assert "PIPELINING" in (await c.replies(1))[0]
            before = writes.count
            await c.send(b"MAIL FROM:<bob@friend.example>\r\nRCPT TO:<alice@example.org>\r\n"
                         b"RCPT TO:<nobody@example.org>\r\nDATA\r\n")
            assert [r[:3] for r in await c.replies(4)] == ["250", "250", "550", "354"]
            assert writes.count - before == 1  # four replies, one write (each its own write before)
            await c.send(b"From: bob@friend.example\r\nSubject: hi\r\n\r\nhi\r\n.\r\nQUIT\r\n")
            first, bye = await c.replies(2)
            assert first.startswith("250 2.0.0") and bye.startswith("221")
            assert writes.count - before == 2  # the end of DATA's reply went out with QUIT's
            assert await c.closed()
            c.sock.close()

    run(scenario())
    assert len(gw.deliverer.handed) == 1


def test_a_client_waiting_for_a_reply_is_never_kept_waiting_by_pipelining(make: Any) -> None:  # noqa: F811
    """What must not happen: a reply held back while the client waits for it. Each group below ends where
    a client must wait (MAIL and RCPT sent without DATA; DATA before its 354; a partial command line)."""
    gw = make()

    async def scenario() -> None:
        async with serving(gw) as port:
            c = await _raw(port)
            await c.replies(1)
            await c.send(b"EHLO client.friend.example\r\nMAIL FROM:<bob@friend.example>\r\n"
                         b"RCPT TO:<alice@example.org>\r\n")
            assert [r[:3] for r in await c.replies(3)] == ["250", "250", "250"]
            await c.send(b"NOOP\r\nDATA\r\n")
            assert [r[:3] for r in await c.replies(2)] == ["250", "354"]
            # a body line arriving with the end of DATA's terminator still to come: the 354 is already out
            await c.send(b"Subject: hi\r\n\r\nhi\r\n")
            await asyncio.sleep(0.05)
            await c.send(b".\r\nNOOP\r\nRSET\r\nNO")  # ...and half a command: the three replies go out
            assert [r[:3] for r in await c.replies(3)] == ["250", "250", "250"]
            await c.send(b"OP\r\n")
            assert (await c.replies(1))[0].startswith("250")
            # a client that sends a header line before the 354 it should wait for, then waits for it
            await c.send(b"MAIL FROM:<bob@friend.example>\r\nRCPT TO:<alice@example.org>\r\n"
                         b"DATA\r\nSubject: early\r\n")
            assert [r[:3] for r in await c.replies(3)] == ["250", "250", "354"]
            await c.send(b"\r\nhi\r\n.\r\n")
            assert (await c.replies(1))[0].startswith("250 2.0.0")
            # pipelined after QUIT: nothing more is answered, but the 221 is not lost
            await c.send(b"RSET\r\nQUIT\r\nNOOP\r\n")
            assert [r[:3] for r in await c.replies(2)] == ["250", "221"]
            assert await c.closed()
            c.sock.close()

    run(scenario())
    assert len(gw.deliverer.handed) == 2


def test_pipelined_errors_past_the_limit_are_answered_then_421_and_close(make: Any) -> None:  # noqa: F811
    """smtp.error_limit with every bad command in one group: the held refusals and the 421 all arrive, in
    order, and nothing after the limit is answered (SPEC §4.5 item 5)."""
    gw = make(smtp={"error_limit": 3})

    async def scenario() -> None:
        async with serving(gw) as port:
            c = await _raw(port)
            await c.replies(1)
            await c.send(b"EHLO client.friend.example\r\n" + b"BOGUS\r\n" * 6)
            got = await c.replies(4)
            assert [r[:3] for r in got] == ["250", "500", "500", "500"]
            assert (await c.replies(1))[0].startswith("421 4.7.0")
            assert await c.closed()
            c.sock.close()

    run(scenario())
