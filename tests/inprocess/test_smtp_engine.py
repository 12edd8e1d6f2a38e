"""The SMTP machinery under the handler (smtp/server.py, issue 18 item 1): its own reader and writer, the
copied command loop, one deadline per session checked by a per-worker sweep.

The gateway's own server class and handler on a loopback socket of this process (as
tests/inprocess/test_handler.py's `serving`, which this extends with the session set), raw sockets as
clients. What a client can see must be what aiosmtpd's machinery gave: the timeouts, the 500 for a line
over the limit, the half-close, flow control. Real MTAs: tests/test_sender_mtas.py.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from sendergate.smtp.server import GatewaySMTP
from tests.inprocess.test_handler import engine, make, run  # noqa: F401  (make: a fixture)
from tests.inprocess.test_pipelining import Raw, _raw

pytestmark = pytest.mark.fast


async def _in_data(port: int) -> Raw:
    """A raw client of a known sender's, past the banner, EHLO, MAIL, RCPT and DATA's 354."""
    c = await _raw(port)
    await c.replies(1)
    await c.send(b"EHLO client.friend.example\r\nMAIL FROM:<bob@friend.example>\r\n"
                 b"RCPT TO:<alice@example.org>\r\nDATA\r\n")
    assert [r[:3] for r in await c.replies(4)] == ["250", "250", "250", "354"]
    return c


async def _reads_nothing(port: int, sessions: Any) -> tuple[Raw, GatewaySMTP]:
    """A client that pipelines 20,000 NOOPs and reads none of the replies: its session's writing is paused."""
    stuck = await _raw(port)
    await stuck.replies(1)
    (session,) = sessions
    assert session.transport is not None
    session.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    await stuck.send(b"NOOP\r\n" * 20_000)
    await asyncio.sleep(0.3)
    assert session._writing_paused
    return stuck, session


async def _closed_within(c: Raw, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds` (whatever it sends before is kept)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(c.sock, 65536), end - loop.time())
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        if not chunk:
            return True
        c.buf += chunk
    return False


def test_an_idle_client_is_cut_after_the_timeout_and_not_before(make: Any) -> None:  # noqa: F811
    gw = make(smtp={"timeout": "0.5s"})

    async def scenario() -> None:
        async with engine(gw) as (port, sessions, template):
            c = await _raw(port)
            started = time.monotonic()
            assert (await c.replies(1))[0].startswith("220")
            assert await _closed_within(c, 20)
            assert time.monotonic() - started >= 0.45  # the deadline, not the sweep's first tick
            c.sock.close()
            await asyncio.sleep(0.05)
            assert not sessions and not template.open
            await asyncio.sleep(2 * template.sweep_every)
            assert template._sweep is None  # no session, no timer going off in an idle worker

    run(scenario())


def test_each_command_moves_the_deadline_and_a_command_dribbled_byte_by_byte_does_not(
        make: Any) -> None:  # noqa: F811
    """Only a whole valid command makes a session busy again (as aiosmtpd's timer): a client that keeps a
    connection with one byte now and then, never finishing a line, is cut at the timeout."""
    gw = make(smtp={"timeout": "0.5s"})

    async def scenario() -> None:
        async with engine(gw) as (port, _sessions, _template):
            c = await _raw(port)
            await c.replies(1)
            for _ in range(8):  # 1.6 s busy: three timeouts' worth, never cut
                await c.send(b"NOOP\r\n")
                assert (await c.replies(1))[0].startswith("250")
                await asyncio.sleep(0.2)
            cut = False
            for byte in b"NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP":  # a byte every 0.1 s: 5 s at most
                try:
                    await c.send(bytes([byte]))
                except (ConnectionResetError, BrokenPipeError):
                    cut = True
                    break
                if await _closed_within(c, 0.1):
                    cut = True
                    break
            assert cut
            c.sock.close()

    run(scenario())


def test_a_client_that_stops_in_the_middle_of_data_is_cut(make: Any) -> None:  # noqa: F811
    gw = make(smtp={"timeout": "0.5s"})

    async def scenario() -> None:
        async with engine(gw) as (port, _sessions, _template):
            c = await _in_data(port)
            await c.send(b"Subject: half\r\n\r\nhalf a message")
            assert await _closed_within(c, 20)
            c.sock.close()

    run(scenario())
    assert not gw.deliverer.handed


@pytest.mark.parametrize("rate", [500, 0])
def test_a_body_arriving_above_min_data_rate_outlives_the_timeout_and_rate_0_is_one_deadline(
        make: Any, rate: int) -> None:  # noqa: F811
    """smtp.min_data_rate: 4,000 bytes/s for three timeouts is delivered at 500 bytes/s (its deadline moves
    with the bytes); at 0 the whole body had to arrive within the timeout of DATA (the behaviour before):
    cut with 421 4.4.2, nothing handed on (stalls and trickles: tests/test_smtp_data_rate.py)."""
    gw = make(smtp={"timeout": "0.5s", "min_data_rate": rate})

    async def scenario() -> bool:
        async with engine(gw) as (port, _sessions, _template):
            c = await _in_data(port)
            await c.send(b"Subject: steady\r\n\r\n")
            for _ in range(30):  # 1.5 s
                if await _closed_within(c, 0.05):
                    assert c.buf.startswith(b"421 4.4.2 "), c.buf
                    c.sock.close()
                    return False
                await c.send(b"z" * 198 + b"\r\n")
            await c.send(b".\r\n")
            assert (await c.replies(1))[0].startswith("250")
            c.sock.close()
            return True

    assert run(scenario()) is (rate > 0)
    assert len(gw.deliverer.handed) == (1 if rate else 0)


def test_bytes_past_max_message_size_buy_no_more_time(make: Any) -> None:  # noqa: F811
    """Only the first max_message_size bytes move DATA's deadline: a sender that goes on at 8 x the rate past
    the limit (a message that is refused anyway) is cut about a timeout later, never held open by it. The
    old single deadline cut it at 0.5 s; a deadline moved by every byte would never cut it."""
    gw = make(smtp={"timeout": "0.5s", "max_message_size": "10KB"})

    async def scenario() -> int:
        async with engine(gw) as (port, _sessions, _template):
            c = await _in_data(port)
            sent = 0
            while sent < 60_000:  # 15 s at most
                if await _closed_within(c, 0.05):
                    assert c.buf.startswith(b"421 4.4.2 "), c.buf
                    break
                await c.send(b"z" * 198 + b"\r\n")
                sent += 200
            c.sock.close()
            return sent

    sent = run(scenario())
    assert 8_000 <= sent < 30_000, sent  # cut after the limit (10 KB at 2.5 s), within a few timeouts of it
    assert not gw.deliverer.handed


def test_a_command_line_over_the_limits_gets_500_and_the_session_goes_on(make: Any) -> None:  # noqa: F811
    """Over aiosmtpd's 512 bytes, and over 64 KiB (the reader's limit): 500, the line is dropped, the
    next command is answered. A line with no end is not kept: the session's buffer stays bounded."""
    gw = make()

    async def scenario() -> None:
        async with engine(gw) as (port, sessions, _template):
            c = await _raw(port)
            await c.replies(1)
            await c.send(b"NOOP " + b"x" * 600 + b"\r\nNOOP\r\n")
            assert [r for r in await c.replies(2)] == ["500 5.5.2 Command line too long", "250 2.0.0 OK"]
            for _ in range(16):  # 1 MiB without a line end
                await c.send(b"y" * 65536)
            await asyncio.sleep(0.2)
            (session,) = sessions
            assert len(session._buf) <= 3 * GatewaySMTP.line_length_limit
            await c.send(b"\r\nNOOP\r\n")
            assert await c.replies(2) == ["500 5.5.2 Command line too long", "250 2.0.0 OK"]
            await c.send(b"QUIT\r\n")
            assert (await c.replies(1))[0].startswith("221")
            c.sock.close()

    run(scenario())


def test_idle_connections_hold_no_task_and_the_next_one_gets_its_banner(make: Any) -> None:  # noqa: F811
    """An idle connection is a protocol object and its deadline, no task (bench_smtp.py's idle part
    measures memory per idle connection); a connection after 300 idle ones is greeted at once."""
    gw = make()

    async def scenario() -> None:
        async with engine(gw) as (port, sessions, _template):
            idle = [await _raw(port) for _ in range(300)]
            for c in idle:
                assert (await c.replies(1))[0].startswith("220")
            assert len(sessions) == 300
            assert all(s._handler_coroutine is None for s in sessions)
            late = await _raw(port)
            assert (await late.replies(1))[0].startswith("220")
            assert (await _client_cmd(late, b"NOOP\r\n")).startswith("250")
            for c in [*idle, late]:
                c.sock.close()

    run(scenario())


async def _client_cmd(c: Raw, line: bytes) -> str:
    await c.send(line)
    return (await c.replies(1))[0]


def test_a_half_close_after_the_end_of_data_and_quit_is_answered(make: Any) -> None:  # noqa: F811
    """Exim pipelines "." and QUIT and then shuts its sending side: the end-of-DATA reply and the 221
    still arrive (SPEC §4.5; the real Exim is in tests/test_sender_mtas.py)."""
    gw = make()

    async def scenario() -> None:
        async with engine(gw) as (port, _sessions, _template):
            c = await _in_data(port)
            await c.send(b"From: bob@friend.example\r\nSubject: hi\r\n\r\nhi\r\n.\r\nQUIT\r\n")
            c.sock.shutdown(socket.SHUT_WR)
            first, bye = await c.replies(2)
            assert first.startswith("250 2.0.0") and bye.startswith("221")
            assert await _closed_within(c, 20)
            c.sock.close()

    run(scenario())
    assert len(gw.deliverer.handed) == 1


def test_a_client_that_does_not_read_its_replies_is_served_as_it_reads(make: Any) -> None:  # noqa: F811
    """Flow control: 50,000 pipelined NOOPs (700 KB of replies) from a client that reads nothing at first.
    The server's writes pause, its reading pauses with them (what it holds stays bounded), and every
    reply arrives, in order, once the client reads. SIGTERM's 421 does not wait for such a client."""
    gw = make()
    count = 50_000
    one_read = 256 * 1024  # what one read from the socket may add (asyncio's and uvloop's)

    async def scenario() -> None:
        async with engine(gw) as (port, sessions, _template):
            c = await _raw(port)  # its receive buffer stays small while it reads nothing (no autotuning)
            await c.replies(1)
            (session,) = sessions
            assert session.transport is not None  # small kernel buffers: the replies back up in the transport
            session.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            loop = asyncio.get_running_loop()
            sender = loop.create_task(c.send(b"NOOP\r\n" * count + b"QUIT\r\n"))
            await asyncio.sleep(0.5)
            assert session._writing_paused and session._reading_paused
            assert len(session._buf) <= 2 * GatewaySMTP.line_length_limit + one_read
            session.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            received = bytearray(c.buf)
            while chunk := await asyncio.wait_for(loop.sock_recv(c.sock, 1 << 20), 30):  # until the close
                received += chunk
            await sender
            got = bytes(received).split(b"\r\n")
            assert got[:count] == [b"250 2.0.0 OK"] * count and got[count].startswith(b"221") and got[-1] == b""
            c.sock.close()

            stuck, session = await _reads_nothing(port, sessions)  # SIGTERM: the 421 is not waited for
            await asyncio.wait_for(session.shutdown_idle(), 5)
            stuck.sock.close()

    run(scenario())


def test_a_client_that_reads_nothing_is_gone_after_the_timeout(make: Any) -> None:  # noqa: F811
    """Pipelined NOOPs and then nothing, not even reading the replies: at the timeout the session ends and
    frees its slot (a close would wait for the client to read what is queued, for ever)."""
    gw = make(smtp={"timeout": "0.5s"})

    async def scenario() -> None:
        async with engine(gw) as (port, sessions, _template):
            stuck, session = await _reads_nothing(port, sessions)
            for _ in range(100):  # 5 s at most
                if not sessions:
                    break
                await asyncio.sleep(0.05)
            assert not sessions, "a client that reads nothing held its session past the timeout"
            stuck.sock.close()

    run(scenario())


def test_commands_sent_in_the_clear_with_starttls_are_discarded(make: Any, tmp_path: Any) -> None:  # noqa: F811
    """RFC 3207 4.2 (the STARTTLS command injection of CVE-2011-0411): a MAIL sent in the same packet as
    STARTTLS, before the handshake, must not be run inside the TLS session; the session starts over."""
    import ssl
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=mx.example.org", "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    gw = make(smtp={"tls_cert": str(tmp_path / "cert.pem"), "tls_key": str(tmp_path / "key.pem")})

    def client(port: int) -> list[str]:
        ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        ctx.check_hostname = False
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
            f = raw.makefile("rb")

            def reply() -> str:
                lines = []
                while True:
                    line = f.readline().decode().rstrip("\r\n")
                    lines.append(line)
                    if line[3:4] != "-":
                        return "\n".join(lines)

            got = [reply()]
            raw.sendall(b"EHLO client.friend.example\r\n")
            got.append(reply())
            raw.sendall(b"STARTTLS\r\nMAIL FROM:<bob@friend.example>\r\n")  # the injection, in the clear
            got.append(reply())
            with ctx.wrap_socket(raw, server_hostname="mx.example.org") as tls:
                tf = tls.makefile("rb")
                for line in (b"EHLO client.friend.example\r\n", b"RCPT TO:<alice@example.org>\r\n", b"QUIT\r\n"):
                    tls.sendall(line)
                    lines = []
                    while True:
                        one = tf.readline().decode().rstrip("\r\n")
                        lines.append(one)
                        if one[3:4] != "-":
                            break
                    got.append("\n".join(lines))
            return got

    async def scenario() -> list[str]:
        async with engine(gw) as (port, _sessions, _template):
            return await asyncio.to_thread(client, port)

    banner, ehlo, ready, ehlo_tls, rcpt, bye = run(scenario())
    assert "STARTTLS" in ehlo and ready.startswith("220")
    assert "STARTTLS" not in ehlo_tls
    assert rcpt.startswith("503")  # no MAIL in this session: the one sent in the clear was dropped
    assert bye.startswith("221")
