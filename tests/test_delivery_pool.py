"""Downstream connection reuse ([delivery] pool_size, issue 18): a worker keeps a few connections to
the mail server behind it open between messages, with RSET before each reuse.

What must hold (real Postfix and smtp-sink downstreams, the real Deliverer or a real gateway):
- a second message goes over the first one's connection (one smtpd session, RSET between);
- a pooled connection the downstream closed while idle (Postfix's smtpd_timeout, smtp-sink killed
  and started again) is not used: the next message is still delivered, on a new connection;
- a downstream answering 421 to RSET: the message goes on a fresh connection;
- the pool holds at most pool_size connections, however many messages ran at once;
- a worker that stops closes its pooled connections with QUIT;
- pool_size = 0: a connection per message, closed with QUIT, as before.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from sendergate.config import DeliveryConfig
from sendergate.delivery import Deliverer, Outbound
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


def test_421_on_rset_goes_on_a_fresh_connection() -> None:
    sink = SmtpSink(dump=True, disconnect_421=("RSET",))
    try:
        d = deliverer(sink.port)

        async def run() -> list[str]:
            replies = [(await d.deliver(out(n))).reply for n in range(3)]
            await d.close()
            return replies
        replies = asyncio.run(run())
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
