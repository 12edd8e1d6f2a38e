"""Downstream connection reuse ([delivery] pool_size, issue 18): a worker keeps a few connections to
the mail server behind it open between messages, with RSET before each reuse.

What must hold (real Postfix and smtp-sink downstreams, the real Deliverer or a real gateway):
- a second message goes over the first one's connection (one smtpd session, RSET between);
- a pooled connection the downstream closed while idle (Postfix's smtpd_timeout, smtp-sink killed
  and started again) is not used: the next message is still delivered, on a new connection;
- a downstream answering 421 to RSET: the message goes on a fresh connection;
- the pool holds at most pool_size connections, however many messages ran at once;
- a worker that stops closes its pooled connections with QUIT;
- pool_size = 0: a connection per message, closed with QUIT, as before;
- to a downstream that announces PIPELINING: (RSET,) MAIL, RCPT and DATA in one write; a refusal in
  the group (a recipient, the RSET) is answered as one sent alone would be, and no message goes out.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from sendergate.config import DeliveryConfig
from sendergate.delivery import Deliverer, DeliveryError, Outbound
from tests.support.gateway import GatewayProcess
from tests.support.postfix import PostfixInstance, ServerTLS, SmtpSink
from tests.support.tls_certs import TestCA

MESSAGE = (b"From: Bob <bob@friend.example>\r\nTo: Alice <alice@example.org>\r\nSubject: pooled\r\n"
           b"Message-ID: <pool-1@friend.example>\r\n\r\nHello again.\r\n")


def out(n: int = 0) -> Outbound:
    return Outbound("bob@friend.example", ["alice@example.org"], MESSAGE.replace(b"pooled", b"pooled %d" % n))


def deliverer(port: int, **kw: object) -> Deliverer:
    return Deliverer(DeliveryConfig(mode="smtp", target=f"127.0.0.1:{port}", tls="off", **kw),  # type: ignore[arg-type]
                     "gw.test")


def mailserver(**main_cf: str) -> PostfixInstance:
    return PostfixInstance(mailbox_domain="example.org", mailboxes=("alice",), hostname="store.example.org",
                           main_cf=main_cf)


def sessions(server: PostfixInstance) -> list[str]:
    """smtpd's per-session summaries ("ehlo=1 mail=2 rcpt=2 data=2 rset=1 quit=1 commands=9"), not the
    start-up probe's."""
    return [s for s in re.findall(r"disconnect from \S+ (.*)", server.maillog()) if s != "commands=0/0"]


def delivered(server: PostfixInstance) -> int:
    new = server.mail_dir / "alice" / "new"
    return len(list(new.iterdir())) if new.is_dir() else 0


def wait_for(cond, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return bool(cond())


def test_second_message_reuses_the_connection_with_rset_and_quit_at_close() -> None:
    server = mailserver()
    try:
        d = deliverer(server.port)

        async def run() -> None:
            await d.deliver(out(1))
            await d.deliver(out(2))
            await d.close()
        asyncio.run(run())
        assert wait_for(lambda: delivered(server) == 2 and sessions(server)), server.maillog_tail()
        assert len(sessions(server)) == 1, sessions(server)
        summary = sessions(server)[0]
        assert "mail=2" in summary and "rset=1" in summary and "quit=1" in summary, summary
    finally:
        server.stop()


def test_pool_size_zero_opens_a_connection_per_message() -> None:
    server = mailserver()
    try:
        d = deliverer(server.port, pool_size=0)

        async def run() -> None:
            await d.deliver(out(1))
            await d.deliver(out(2))
        asyncio.run(run())
        assert wait_for(lambda: delivered(server) == 2 and len(sessions(server)) == 2), server.maillog_tail()
        assert all("mail=1" in s and "quit=1" in s for s in sessions(server)), sessions(server)
    finally:
        server.stop()


def test_connection_the_downstream_timed_out_is_not_used() -> None:
    # Postfix answers "421 4.4.2 … timeout exceeded" and closes an idle session after smtpd_timeout
    server = mailserver(smtpd_timeout="1s")
    try:
        d = deliverer(server.port)

        async def run() -> None:
            await d.deliver(out(1))
            await asyncio.sleep(3)
            await d.deliver(out(2))
            await d.close()
        asyncio.run(run())
        assert wait_for(lambda: delivered(server) == 2), server.maillog_tail()
        assert "timeout" in server.maillog(), server.maillog_tail()  # the first session did time out
    finally:
        server.stop()


def test_downstream_restarted_between_messages() -> None:
    sink = SmtpSink()
    restarted = SmtpSink(dump=True, start=False)
    try:
        d = deliverer(sink.port)

        async def run() -> str:
            await d.deliver(out(1))
            assert len(d._idle) == 1
            assert sink.process is not None
            sink.process.kill()  # the pooled connection dies with it
            sink.process.wait()
            _start_on(restarted, sink.port)
            reply = (await d.deliver(out(2))).reply
            await d.close()
            return reply
        assert asyncio.run(run()).startswith("250")
        assert wait_for(lambda: len(list(restarted.dump_dir.iterdir())) == 1)
    finally:
        restarted.stop()
        sink.stop()


def _start_on(sink: SmtpSink, port: int) -> None:
    """smtp-sink on a given port (SmtpSink picks its own: this is a restart on the old one)."""
    import tests.support.postfix as pf
    saved = pf.free_loopback_port
    pf.free_loopback_port = lambda: port  # type: ignore[assignment]
    try:
        sink._start_once()
    finally:
        pf.free_loopback_port = saved  # type: ignore[assignment]


async def deliver_three(d: Deliverer) -> list[str]:
    """Three messages through `d` one after the other (the second and third on a pooled connection, when
    the first's is kept), then the pool closed: the three replies."""
    replies = [(await d.deliver(out(n))).reply for n in range(3)]
    await d.close()
    return replies


def test_421_on_rset_goes_on_a_fresh_connection() -> None:
    sink = SmtpSink(dump=True, disconnect_421=("RSET",))
    try:
        d = deliverer(sink.port)

        replies = asyncio.run(deliver_three(d))
        assert all(r.startswith("250") for r in replies), replies
        assert wait_for(lambda: len(list(sink.dump_dir.iterdir())) == 3)
    finally:
        sink.stop()


def test_pool_is_bounded() -> None:
    sink = SmtpSink()
    try:
        d = deliverer(sink.port, pool_size=2)

        async def run() -> tuple[int, int]:
            replies = await asyncio.gather(*(d.deliver(out(n)) for n in range(12)))
            assert all(r.reply.startswith("250") for r in replies)
            kept = len(d._idle)
            await asyncio.gather(*(d.deliver(out(n)) for n in range(12)))
            return kept, len(d._idle)
        assert asyncio.run(run()) == (2, 2)
    finally:
        sink.stop()


def test_worker_shutdown_closes_pooled_connections_with_quit() -> None:
    server = mailserver()
    gw = GatewayProcess(delivery=("smtp", f"127.0.0.1:{server.port}"), workers=1,
                        extra={"delivery": {"tls": "off"}})
    try:
        alice, _ = gw.store.add_user("alice@example.org")
        gw.store.add_entry(alice.id, "allow", "bob@friend.example")
        gw.start()
        for n in range(2):
            with gw.smtp() as client:
                client.mail("bob@friend.example")
                client.rcpt("alice@example.org")
                code, _ = client.data(MESSAGE.replace(b"pooled", b"pooled %d" % n))
                assert code == 250
        assert wait_for(lambda: delivered(server) == 2), server.maillog_tail()
        assert sessions(server) == []  # the connection is still open, in the worker's pool
        gw.close()
        assert wait_for(lambda: len(sessions(server)) == 1), server.maillog_tail()
        summary = sessions(server)[0]
        assert "mail=2" in summary and "quit=1" in summary, summary
    finally:
        gw.close()
        server.stop()


def test_starttls_connection_is_reused_under_tls(tmp_path: Path) -> None:
    # tls = "required" against a Postfix that demands STARTTLS: the second message goes over the same
    # TLS session (one smtpd session, one STARTTLS), and both say they went over verified TLS
    ca = TestCA(tmp_path)
    cert = ca.issue("server", dns=("localhost",), ips=("127.0.0.1",))
    server = PostfixInstance(mailbox_domain="example.org", mailboxes=("alice",), hostname="store.example.org",
                             tls=ServerTLS(cert.cert_file, cert.key_file))
    try:
        d = Deliverer(DeliveryConfig(mode="smtp", target=f"localhost:{server.port}", tls="required",
                                     tls_ca_file=str(ca.cert_file)), "gw.test")

        async def run() -> list[str]:
            states = [(await d.deliver(out(n))).tls for n in range(2)]
            await d.close()
            return states
        states = asyncio.run(run())
        assert all("verified" in s for s in states), states
        assert wait_for(lambda: delivered(server) == 2 and sessions(server)), server.maillog_tail()
        assert len(sessions(server)) == 1, sessions(server)
        assert "starttls=1" in sessions(server)[0] and "mail=2" in sessions(server)[0], sessions(server)
    finally:
        server.stop()


def test_lmtp_connection_is_reused_and_a_screened_folder_follows_on_it() -> None:
    # LMTP to Dovecot: the second message (to the Screened folder, user+folder@) goes over the same
    # connection after RSET; both are in their folders
    from imapclient import IMAPClient

    from tests.support.dovecot import DovecotServer

    with DovecotServer() as dovecot:
        dovecot.add_user("alice@example.org", "secret")
        d = Deliverer(DeliveryConfig(mode="lmtp", target=f"127.0.0.1:{dovecot.lmtp_port}", tls="off"), "gw.test")

        async def run() -> list[int]:
            await d.deliver(out(1))
            first = d._idle[0][0]
            await d.deliver(out(2), folder="Screened")
            same = [1] if d._idle and d._idle[0][0] is first else []
            await d.close()
            return same
        assert asyncio.run(run()) == [1]
        with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False) as imap:
            imap.login("alice@example.org", "secret")
            counts = {}
            for folder in ("INBOX", "Screened"):
                imap.select_folder(folder)
                counts[folder] = len(imap.search("ALL"))
        assert counts == {"INBOX": 1, "Screened": 1}, counts


# -- RFC 2920 pipelining to the downstream (issue 18 item 1) ----------------------------------------------

def recording(d: Deliverer) -> list[bytes]:
    """What the deliverer writes on each of its connections, write by write (the real Deliverer; only
    its StreamWriter.write is watched)."""
    writes: list[bytes] = []
    opened = d._open

    async def watched_open() -> Any:
        conn = await opened()
        real = conn.writer.write

        def write(data: bytes) -> None:
            writes.append(bytes(data))
            real(data)
        conn.writer.write = write  # type: ignore[method-assign]
        return conn
    d._open = watched_open  # type: ignore[method-assign]
    return writes


def test_commands_go_in_one_write_to_a_pipelining_downstream() -> None:
    sink = SmtpSink(dump=True)  # smtp-sink announces PIPELINING
    try:
        d = deliverer(sink.port)
        writes = recording(d)
        two = Outbound("bob@friend.example", ["alice@example.org", "carol@example.org"], MESSAGE)

        async def run() -> list[str]:
            replies = [(await d.deliver(out(1))).reply, (await d.deliver(two)).reply]
            await d.close()
            return replies
        assert all(r.startswith("250") for r in asyncio.run(run()))
        assert wait_for(lambda: len(list(sink.dump_dir.iterdir())) == 2)
        groups = [w for w in writes if w.startswith((b"MAIL", b"RSET"))]
        assert groups == [b"MAIL FROM:<bob@friend.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n",
                          (b"RSET\r\nMAIL FROM:<bob@friend.example>\r\nRCPT TO:<alice@example.org>\r\n"
                           b"RCPT TO:<carol@example.org>\r\nDATA\r\n")]
    finally:
        sink.stop()


def test_a_downstream_without_pipelining_gets_one_command_at_a_time() -> None:
    sink = SmtpSink(dump=True, extra_args=("-p",))
    try:
        d = deliverer(sink.port)
        writes = recording(d)

        async def run() -> None:
            for n in range(2):
                assert (await d.deliver(out(n))).reply.startswith("250")
            await d.close()
        asyncio.run(run())
        assert wait_for(lambda: len(list(sink.dump_dir.iterdir())) == 2)
        commands = [w for w in writes if w[:4] in (b"MAIL", b"RCPT", b"DATA", b"RSET")]
        assert [w.split(b" ")[0].rstrip(b"\r\n") for w in commands] == [b"MAIL", b"RCPT", b"DATA",
                                                                       b"RSET", b"MAIL", b"RCPT", b"DATA"]
        assert all(w.count(b"\r\n") == 1 for w in commands)
    finally:
        sink.stop()


def test_a_recipient_refused_in_a_pipelined_group_sends_no_message() -> None:
    sink = SmtpSink(dump=True, hard_reject=("RCPT",))
    try:
        d = deliverer(sink.port)

        async def run() -> DeliveryError:
            try:
                await d.deliver(out(1))
            except DeliveryError as exc:
                return exc
            finally:
                await d.close()
            raise AssertionError("delivered although the downstream refused the recipient")
        exc = asyncio.run(run())
        assert exc.permanent and exc.where.endswith("(RCPT)"), exc
        time.sleep(0.5)
        assert list(sink.dump_dir.iterdir()) == []  # whatever it answered to DATA, no message went out
        assert not d._idle
    finally:
        sink.stop()


def test_a_refused_rset_in_a_pipelined_group_is_not_the_message_s_answer() -> None:
    sink = SmtpSink(dump=True, hard_reject=("RSET",))
    try:
        d = deliverer(sink.port)

        replies = asyncio.run(deliver_three(d))
        assert all(r.startswith("250") for r in replies), replies  # each on a fresh connection
        assert wait_for(lambda: len(list(sink.dump_dir.iterdir())) == 3)
    finally:
        sink.stop()


def test_a_downstream_that_says_354_after_refusing_a_recipient_gets_no_message() -> None:
    # A scripted downstream (no real server here answers 354 to DATA after refusing a recipient, but RFC
    # 2920 lets one): the refusal is the answer, the DATA is never ended, nothing else is sent.
    received: list[bytes] = []

    async def run() -> DeliveryError:
        async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"220 odd.test ESMTP\r\n")
            while line := await reader.readline():
                received.append(line)
                word = line[:4].upper()
                if word == b"EHLO":
                    writer.write(b"250-odd.test\r\n250 PIPELINING\r\n")
                elif word == b"RCPT" and b"carol" in line:
                    writer.write(b"550 5.1.1 <carol@example.org>: no such user\r\n")
                elif word == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                else:
                    writer.write(b"250 2.0.0 ok\r\n")
            writer.close()

        server = await asyncio.start_server(session, "127.0.0.1", 0)
        d = deliverer(server.sockets[0].getsockname()[1])
        try:
            await d.deliver(Outbound("bob@friend.example", ["alice@example.org", "carol@example.org"], MESSAGE))
        except DeliveryError as exc:
            return exc
        finally:
            await d.close()
            await asyncio.sleep(0.2)
            server.close()
        raise AssertionError("delivered although the downstream refused a recipient")

    exc = asyncio.run(run())
    assert (exc.code, exc.status) == (550, "5.1.1") and exc.where.endswith("(RCPT)"), exc
    after_data = received[[ln[:4] for ln in received].index(b"DATA") + 1:]
    assert after_data == [], after_data  # neither the message, nor its ".", nor a QUIT it would take for text
