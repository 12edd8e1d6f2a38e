"""Self-tests of the test-service launchers (tests/support/postgres.py,
tests/support/postfix.py and tests/support/sender_mtas.py): each one runs the
real daemon and proves it does what the gateway's tests rely on."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.common import (
    ServiceError,
    free_loopback_port,
    make_service_dir,
    remove_service_dir,
    sweep_stale_service_dirs,
)
from tests.support.postfix import PostfixInstance, SmtpSink, unfold
from tests.support.postgres import PostgresServer
from tests.support.sender_mtas import EximSender, OpenSMTPDSender, deb_files

REFUSAL = "550 5.7.1 Go to https://x.test/c/abc"

# 8-bit text, a line starting with a dot, a long line: what a sink must not alter.
MESSAGE = (
    b"From: Alice <alice@sender.test>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: launcher self-test\r\n"
    b"Message-ID: <self-test@sender.test>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\n"
    b".a line that starts with a dot\r\n"
    + b"x" * 900 + b"\r\n"
)


# --- PostgreSQL ---------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def test_postgres_serves_two_separate_databases(postgres: PostgresServer) -> None:
    first = postgres.create_database("launcher_first")
    second = postgres.create_database("launcher_second")
    assert first == f"postgresql://postgres@127.0.0.1:{postgres.port}/launcher_first"

    with psycopg.connect(first, autocommit=True) as connection:
        connection.execute("CREATE TABLE marker (id int)")
        assert connection.execute("SELECT current_database()").fetchone() == ("launcher_first",)
    with psycopg.connect(second) as connection:
        assert connection.execute("SELECT current_database()").fetchone() == ("launcher_second",)
        found = connection.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'marker'")
        assert found.fetchone() == (0,)


@pytest.mark.postgres  # its own server, not the session's fixture
def test_postgres_stop_removes_cluster_and_process() -> None:
    server = PostgresServer()
    data_dir = server.data_dir
    assert data_dir is not None
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    server.stop()
    assert not data_dir.parent.exists()
    assert not Path(f"/proc/{pid}/cmdline").exists() or not Path(f"/proc/{pid}/cmdline").read_bytes()
    server.stop()  # idempotent: fixtures may stop twice


def test_postgres_without_binaries_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="initdb not found at .*install"):
        PostgresServer(bin_dir=tmp_path)


# --- smtp-sink ------------------------------------------------------------------


def test_smtp_sink_keeps_the_message_byte_for_byte() -> None:
    with SmtpSink(dump=True) as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, local_hostname="client.test") as client:
            client.sendmail("alice@sender.test", ["bob@example.org", "carol@example.org"], MESSAGE)
        [delivery] = sink.wait_for_messages(1)

    assert delivery.message_crlf == MESSAGE
    assert delivery.envelope_sender == "alice@sender.test"
    assert delivery.envelope_recipients == ("bob@example.org", "carol@example.org")
    assert delivery.client_address == "127.0.0.1"
    assert delivery.helo == "client.test"


def test_smtp_sink_refuses_recipients_with_5xx() -> None:
    with SmtpSink(hard_reject=("RCPT",), hard_reply="550 5.1.1 No such user") as sink:
        with smtplib.SMTP("127.0.0.1", sink.port) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                client.sendmail("alice@sender.test", ["bob@example.org"], MESSAGE)
    assert refused.value.recipients == {"bob@example.org": (550, b"5.1.1 No such user")}


def test_smtp_sink_defers_at_end_of_data_with_4xx() -> None:
    with SmtpSink(dump=True, soft_reject=(".",)) as sink:
        with smtplib.SMTP("127.0.0.1", sink.port) as client:
            with pytest.raises(smtplib.SMTPDataError) as deferred:
                client.sendmail("alice@sender.test", ["bob@example.org"], MESSAGE)
    assert deferred.value.smtp_code == 450


# --- Postfix ----------------------------------------------------------------------


class ScriptedDownstream:
    """aiosmtpd handler answering end of DATA from a script of replies (last one repeats)."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.received: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope.original_content or b"")
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


@pytest.fixture
def downstream_factory() -> Iterator:
    controllers: list[Controller] = []

    def start(*replies: str) -> tuple[ScriptedDownstream, int]:
        handler = ScriptedDownstream(*replies)
        port = free_loopback_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="downstream.test")
        controller.start()
        controllers.append(controller)
        return handler, port

    yield start
    for controller in controllers:
        controller.stop()


def test_provider_turns_550_into_a_bounce_with_the_link(downstream_factory) -> None:
    _, port = downstream_factory(REFUSAL)
    with PostfixInstance(routes={"example.org": port}, mailboxes=("alice",)) as provider:
        started = time.monotonic()
        submission = provider.submit("alice@sender.test", "bob@example.org", MESSAGE)
        bounce = unfold(provider.wait_for_bounce("alice", timeout=10))
        elapsed = time.monotonic() - started

    assert submission.queue_id
    assert b"said: 550 5.7.1 Go to https://x.test/c/abc" in bounce
    assert b"(in reply to end of DATA command)" in bounce
    assert b"Subject: launcher self-test" in bounce  # the returned original
    assert elapsed < 5, f"bounce took {elapsed:.1f} s"


def test_provider_queues_a_451_and_flush_delivers_it(downstream_factory) -> None:
    downstream, port = downstream_factory("451 4.3.0 Try again later", "250 2.0.0 Accepted")
    with PostfixInstance(routes={"example.org": port}, mailboxes=("alice",)) as provider:
        submission = provider.submit("alice@sender.test", "bob@example.org", MESSAGE)
        provider.wait_for_log(rf"{submission.queue_id}: .*status=deferred .*451 4\.3\.0 Try again later")
        # qmgr moves the message from active to deferred just after smtp logs the deferral.
        deadline = time.monotonic() + 5
        while provider.queue()[0]["queue_name"] == "active" and time.monotonic() < deadline:
            time.sleep(0.02)
        [queued] = provider.queue()
        assert queued["queue_id"] == submission.queue_id
        assert queued["queue_name"] == "deferred"

        provider.flush()
        provider.wait_for_empty_queue(timeout=10)
        provider.wait_for_log(rf"{submission.queue_id}: .*status=sent")
    assert len(downstream.received) == 2


class StandInGateway:
    """A before-queue proxy in SenderGate's place: refuses one sender, relays the rest."""

    def __init__(self, after_filter_port: int) -> None:
        self.after_filter_port = after_filter_port

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if envelope.mail_from == "stranger@elsewhere.test":
            return "550 5.7.1 Unknown sender"
        # Blocking smtplib is fine for a one-message test.
        with smtplib.SMTP("127.0.0.1", self.after_filter_port, local_hostname="gateway.test") as relay:
            relay.sendmail(envelope.mail_from, envelope.rcpt_tos, envelope.original_content or b"")
        return "250 2.0.0 Relayed"


def test_receiving_mta_hands_sessions_to_a_before_queue_proxy() -> None:
    proxy_port = free_loopback_port()
    with SmtpSink(dump=True) as mailstore, PostfixInstance(
        routes={"example.org": mailstore.port},
        proxy_filter=proxy_port,
        main_cf={"mynetworks": ""},  # an MX: no relaying for anyone
    ) as mx:
        proxy = Controller(StandInGateway(mx.after_filter_port), hostname="127.0.0.1",
                           port=proxy_port, server_hostname="gateway.test")
        proxy.start()
        try:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                mx.submit("stranger@elsewhere.test", "bob@example.org", MESSAGE)
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                mx.submit("friend@elsewhere.test", "someone@not-ours.test", MESSAGE)
            accepted = mx.submit("friend@elsewhere.test", "bob@example.org", MESSAGE)
            [delivery] = mailstore.wait_for_messages(1)
        finally:
            proxy.stop()

    assert refused.value.smtp_code == 550
    assert b"Unknown sender" in refused.value.smtp_error
    assert "Relayed" in accepted.reply
    assert delivery.envelope_sender == "friend@elsewhere.test"
    assert delivery.message_crlf.endswith(MESSAGE.split(b"\r\n\r\n", 1)[1])


def test_postfix_that_cannot_start_says_why() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        with pytest.raises(ServiceError, match=f"postfix start failed(.|\\n)*{busy_port}.*in use"):
            PostfixInstance(master_cf=[f"127.0.0.1:{busy_port} inet n - n - - smtpd"])


def test_postfix_stop_leaves_no_process_and_no_directory() -> None:
    provider = PostfixInstance()
    base_dir = provider.base_dir
    assert base_dir is not None
    pids = provider.pids()
    assert pids, "no Postfix process found for the instance"
    provider.stop()
    assert not base_dir.exists()
    for pid in pids:
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "State:\tZ" in status.read_text(), f"process {pid} survived"
    provider.stop()  # idempotent


def test_a_killed_runs_directories_and_daemons_are_swept_and_a_live_runs_are_not() -> None:
    root = Path(__file__).resolve().parents[1]
    made = subprocess.run([sys.executable, "-c", ("from tests.support.common import make_service_dir; "
                            "print(make_service_dir('sendergate-sweeptest-'))")],
                          cwd=root, capture_output=True, text=True, check=True)
    stale = Path(made.stdout.strip())  # its owner has exited, as a killed test run would
    orphan = subprocess.Popen(["sleep", "300"], cwd=stale)  # a daemon still running from it
    mine = make_service_dir("sendergate-sweeptest-")  # owned by this (live) process
    try:
        removed = sweep_stale_service_dirs()
        assert stale in removed and not stale.exists()
        assert orphan.wait(5) == -signal.SIGKILL
        assert mine.exists() and mine not in removed
    finally:
        orphan.kill()
        orphan.wait()
        remove_service_dir(mine)
        remove_service_dir(stale)


# --- Exim and OpenSMTPD as a sender's server ---------------------------------------------


SENDER_MTAS = {"exim": EximSender, "opensmtpd": OpenSMTPDSender}


@pytest.mark.parametrize("name", SENDER_MTAS)
def test_sender_mta_bounces_a_550_keeps_a_451_until_flush(name: str, downstream_factory) -> None:
    downstream, port = downstream_factory(REFUSAL, "451 4.3.0 Try again later", "250 2.0.0 Accepted")
    with SENDER_MTAS[name](routes={"example.org": port}, mailboxes=("alice", "carol")) as mta:
        mta.submit("alice@sender.test", ["bob@example.org"], MESSAGE)
        bounce = unfold(mta.wait_for_mail("alice", timeout=15))
        assert b"550 5.7.1 Go to https://x.test/c/abc" in bounce
        assert b"bob@example.org" in bounce

        mta.submit("carol@sender.test", ["bob@example.org"], MESSAGE)
        deadline = time.monotonic() + 15
        while len(downstream.received) < 2:
            assert time.monotonic() < deadline, mta.log()
            time.sleep(0.05)
        assert mta.queued("carol@sender.test") == 1
        mta.flush()
        while mta.queued("carol@sender.test"):
            assert time.monotonic() < deadline + 15, mta.log()
            time.sleep(0.1)
        assert len(downstream.received) == 3
        assert mta.mail("carol") == []  # a deferral is no bounce


def test_exim_pipelines_quit_after_the_dot_and_half_closes() -> None:
    """What the matrix relies on: Exim, on a fresh delivery without TLS to a server that offers
    PIPELINING (as the gateway does), sends `.` and QUIT together and shuts its side down before
    it has the end-of-DATA reply; a server that answers anyway gets the mail delivered."""
    probe = HalfCloseProbe()
    probe.start()
    with EximSender(routes={"example.org": probe.port}, mailboxes=("alice",)) as exim:
        exim.submit("alice@sender.test", ["bob@example.org"], MESSAGE)
        probe.join(15)
        assert not probe.is_alive()
        deadline = time.monotonic() + 10
        while " => bob@example.org" not in exim.log():
            assert time.monotonic() < deadline, exim.log()
            time.sleep(0.05)
    assert probe.after_dot == b"QUIT\r\n"
    assert probe.eof_before_reply


class HalfCloseProbe(threading.Thread):
    """One SMTP session that advertises PIPELINING and, after the end-of-DATA dot, waits before
    it answers, recording what the client sends (and whether it half-closes) meanwhile."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.after_dot = b""
        self.eof_before_reply = False

    def run(self) -> None:
        conn, _ = self.listener.accept()
        self.listener.close()
        conn.settimeout(10)
        buffered = b""

        def line() -> bytes:
            nonlocal buffered
            while b"\r\n" not in buffered:
                chunk = conn.recv(65536)
                if not chunk:
                    return b""
                buffered += chunk
            first, buffered = buffered.split(b"\r\n", 1)
            return first + b"\r\n"

        with conn:
            conn.sendall(b"220 probe.test ESMTP\r\n")
            while command := line():
                verb = command[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-probe.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    while line() not in (b".\r\n", b""):
                        pass
                    conn.settimeout(1.0)  # whatever the client sends before our reply
                    try:
                        while chunk := conn.recv(65536):
                            buffered += chunk
                        self.eof_before_reply = True
                    except TimeoutError:
                        pass
                    self.after_dot = buffered
                    conn.sendall(b"250 2.0.0 Accepted\r\n")
                    if buffered.upper().startswith(b"QUIT"):
                        conn.sendall(b"221 2.0.0 Bye\r\n")
                        return
                    conn.settimeout(10)
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    conn.sendall(b"250 2.0.0 Ok\r\n")


@pytest.mark.parametrize("name", SENDER_MTAS)
def test_sender_mta_stop_leaves_no_process_no_directory_and_no_mount(name: str) -> None:
    mta = SENDER_MTAS[name](routes={"example.org": free_loopback_port()})
    assert mta.base is not None and mta.process is not None
    base, leader = mta.base, mta.process.pid
    session = mta.pids()
    assert leader in session and len(session) >= (1 if name == "exim" else 5)  # smtpd's processes
    mta.stop()
    assert not base.exists()
    for pid in session:
        assert not Path(f"/proc/{pid}").exists() or _session(pid) != leader, f"process {pid} survived"
    # The namespace was private: nothing of it shows on the machine.
    assert str(base) not in Path("/proc/self/mountinfo").read_text()
    assert "Debian-exim" not in Path("/etc/passwd").read_text()
    assert "opensmtpq" not in Path("/etc/passwd").read_text()
    mta.stop()  # idempotent


@pytest.mark.parametrize("name", SENDER_MTAS)
def test_a_killed_test_runs_sender_mta_is_swept(name: str) -> None:
    root = Path(__file__).resolve().parents[1]
    script = (f"from tests.support.sender_mtas import {SENDER_MTAS[name].__name__} as M; import sys, time; "
              "m = M(routes={'example.org': 9}); print(m.process.pid, m.base, flush=True); time.sleep(300)")
    run = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        pid_text, base_text = run.stdout.readline().split()  # type: ignore[union-attr]
        daemon, base = int(pid_text), Path(base_text)
        run.kill()  # as a SIGKILLed test run: no atexit, no fixture teardown
        run.wait(5)
        # The next session's sweep (or the kernel: smtpd dies with its parent) ends the daemon.
        sweep_stale_service_dirs()  # (another test session starting now may sweep it first)
        deadline = time.monotonic() + 5
        while _state(daemon) not in ("Z", "gone"):
            assert time.monotonic() < deadline, f"{name} (pid {daemon}) outlived its test process"
            time.sleep(0.05)
        assert not base.exists()
    finally:
        run.kill()
        run.wait(5)


def test_sender_mta_without_its_packages_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match=r"exim4-base_\*\.deb not found .*system-deps\.sh test"):
        deb_files(("exim4-base",), cache=tmp_path)


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except ProcessLookupError:
        return None


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
