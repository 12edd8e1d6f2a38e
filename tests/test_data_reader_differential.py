"""The gateway's DATA reader (smtp/server.py: runs of lines, one SMTP boundary, bounded memory) against
the aiosmtpd 1.4.6 DATA it replaces (issue 14, deliverable 5): for CRLF-only streams, whatever their
lines (leading dots, empty lines, long lines, a size limit crossed), the handler gets the same content
and the client the same reply codes. (Bare CR/LF are where the two differ on purpose: tests/adversary.)

Both servers run in this process on loopback, driven by one raw client each.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from sendergate.smtp.server import GatewaySMTP, SessionTemplate

pytestmark = pytest.mark.fast  # in process: no daemon, no subprocess

SIZE_LIMIT = 6000


class Recorder:
    """The handler both servers call: it keeps what DATA handed over."""

    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_EHLO(self, server: object, session: object, envelope: object, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname  # type: ignore[attr-defined]
        return responses

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.contents.append(envelope.content)  # type: ignore[attr-defined]
        return "250 2.0.0 Stored"


class StockSMTP(SMTP):
    line_length_limit = GatewaySMTP.line_length_limit  # the gateway passes long lines on: compare like for like


class Servers:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.stock, self.ours = Recorder(), Recorder()
        self.ports: dict[str, int] = {}
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        template = SessionTemplate(self.ours, hostname="mx.test", ident="test", data_size_limit=SIZE_LIMIT,
                                   timeout=30, tls_context=None, max_connections=100)
        sessions: set[GatewaySMTP] = set()
        loop = self.loop

        async def start() -> None:
            stock = await loop.create_server(
                lambda: StockSMTP(self.stock, data_size_limit=SIZE_LIMIT, hostname="mx.test", loop=loop),
                "127.0.0.1", 0)
            ours = await loop.create_server(
                lambda: GatewaySMTP(self.ours, sessions=sessions, template=template, loop=loop), "127.0.0.1", 0)
            self.ports = {"stock": stock.sockets[0].getsockname()[1], "ours": ours.sockets[0].getsockname()[1]}

        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.close()


def session(port: int, data: bytes) -> list[int]:
    """One transaction on a raw socket, the DATA content sent as given; the reply codes in order."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rb")
        codes = [_reply(stream)]
        for command in (b"EHLO client.test", b"MAIL FROM:<a@sender.test>", b"RCPT TO:<b@example.org>", b"DATA"):
            sock.sendall(command + b"\r\n")
            codes.append(_reply(stream))
        sock.sendall(data + b".\r\n")
        codes.append(_reply(stream))
        sock.sendall(b"QUIT\r\n")
        codes.append(_reply(stream))
    return codes


def _reply(stream: object) -> int:
    while True:
        line = stream.readline()  # type: ignore[attr-defined]
        if not line:
            return 0
        if line[3:4] != b"-":
            return int(line[:3])


_LINE = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    st.just(""), st.just("."), st.just(".."), st.builds(lambda s: "." + s, st.text("ab .", max_size=10)),
    st.builds(lambda n: "x" * n, st.integers(990, 1100)),  # around aiosmtpd's own line limit
)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(_LINE, max_size=120))
def test_the_gateways_data_reader_hands_over_what_aiosmtpds_does(servers: Servers, lines: list[str]) -> None:
    body = b"".join(line.encode() + b"\r\n" for line in lines)
    stuffed = b"".join((b"." + ln if ln.startswith(b".") else ln) for ln in body.splitlines(keepends=True))
    results = {}
    for name, recorder in (("stock", servers.stock), ("ours", servers.ours)):
        before = len(recorder.contents)
        codes = session(servers.ports[name], stuffed)
        results[name] = (codes, recorder.contents[before:])
    assert results["ours"] == results["stock"]
    codes, contents = results["ours"]
    if len(body) <= SIZE_LIMIT:
        assert codes[5] == 250 and contents == [body]  # the content is the body as sent, unstuffed
    else:
        assert codes[5] == 552 and contents == []
