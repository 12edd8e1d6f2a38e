"""Virus and spam scanning against real clamd and spamd (SPEC §4.2 item 1).

The daemons are started here (tests/support/scanners.py): clamd with a
one-signature EICAR database, spamd with SpamAssassin's stock rules (GTUBE).
A fake peer stands in only where the real daemons cannot misbehave on
demand: a server that answers garbage, and one that records whether anyone
connected at all.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import os
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import pytest

from sendergate.config import ScanConfig
from sendergate.policy.decide import KNOWN, UNKNOWN, MessageFacts, Route, ScanOutcome, Verdict, decide_data
from sendergate.scan import Scanners, first_part
from sendergate.scan.clamd import ClamdError, StreamVerdict, frame_chunks, parse_instream_answer
from sendergate.scan.spamd import SpamdError, parse_symbols
from tests.support.scanners import EICAR, EICAR_REPORTED, GTUBE, ScannerDaemon, start_clamd, start_spamd

# The session clamd stops streams at 2 MB so the "over clamd's own limit"
# case needs only a 3 MB message.
CLAMD_STREAM_MAX = 2 * 1024 * 1024


# -- daemons -----------------------------------------------------------------


@pytest.fixture(scope="session")
def clamd_daemon() -> Iterator[ScannerDaemon]:
    daemon = start_clamd(stream_max_length="2M")
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def spamd_daemon() -> Iterator[ScannerDaemon]:
    daemon = start_spamd()
    yield daemon
    daemon.stop()


@pytest.fixture
def own_clamd() -> Iterator[ScannerDaemon]:
    """A clamd this test may pause or kill (starts in ~0.1 s)."""
    daemon = start_clamd()
    yield daemon
    daemon.stop()


@pytest.fixture
def paused_spamd(spamd_daemon: ScannerDaemon) -> Iterator[ScannerDaemon]:
    """The session spamd, stopped with SIGSTOP: it accepts connections but never answers."""
    spamd_daemon.pause()
    try:
        yield spamd_daemon
    finally:
        spamd_daemon.resume()


# -- messages ----------------------------------------------------------------


def message(body: str | bytes, *, subject: str = "Lunch on Thursday", attachment: bytes | None = None) -> bytes:
    """A plausible message with the headers a real MUA sets, CRLF line endings,
    as the SMTP handler hands it over."""
    msg = EmailMessage()
    msg["From"] = "Carol Sender <carol@sender.test>"
    msg["To"] = "Alice <alice@example.org>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc))
    msg["Message-ID"] = make_msgid(domain="sender.test")
    text = body.decode("ascii") if isinstance(body, bytes) else body
    msg.set_content(text)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="invoice.com")
    raw = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    return (b"Received: from mail.sender.test (mail.sender.test [93.184.216.34])\r\n"
            b"\tby mx.example.org; Thu, 26 Nov 2026 10:00:01 +0000\r\n" + raw)


CLEAN = message("Hi Alice,\n\nare we still on for lunch on Thursday at noon?\n\nCarol\n")


def padded(payload: bytes, size: int, *, at_end: bool = True) -> bytes:
    """A message of about `size` bytes with `payload` at the very end of the body
    (so a scanner that stops reading early cannot see it), or at its start
    (SpamAssassin reads only the first 50 kB of a text part: body_part_scan_size)."""
    filler_line = "The quick brown fox jumps over the lazy dog again and again.\n"
    filler = filler_line * (size // len(filler_line) + 1)
    text = payload.decode("ascii") + "\n"
    raw = message(filler + text if at_end else text + filler)
    assert len(raw) > size
    return raw


def scanners(**settings) -> Scanners:
    return Scanners(ScanConfig(**settings))


def decide(outcome: ScanOutcome, *, known: bool = False, on_failure: str = "tempfail"):
    """The pure end-of-DATA decision, as the SMTP handler will call it."""
    facts = MessageFacts(sender_class=KNOWN if known else UNKNOWN, sender=None)
    routed = Route(known, "allowlisted sender" if known else "unknown sender", not known)
    texts = {Verdict.VIRUS: f"Message refused: it contains a virus ({outcome.virus}).",
             Verdict.SPAM: f"Message refused as spam (score {outcome.spam_score}).", Verdict.BULK: "bulk"}
    return decide_data(facts, routed, outcome, on_failure=on_failure, spam_threshold=5.0, reply_text=texts.__getitem__)


def run(coro):
    return asyncio.run(coro)


# -- fake peers (only where the real daemons cannot misbehave on demand) -------


@contextlib.asynccontextmanager
async def fake_peer(answer: bytes | None) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A loopback server that reads what it is sent and answers `answer`
    (then closes), or never answers when `answer` is None. Yields its
    `tcp:` spec and the list of requests it received."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received.append(await reader.read(65536))
            if answer is None:
                await asyncio.sleep(3600)
            writer.write(answer)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"tcp:127.0.0.1:{port}", received
    finally:
        server.close()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task() and task.get_coro().__qualname__.endswith("serve"):
                task.cancel()


# -- pure parts ---------------------------------------------------------------


@pytest.mark.parametrize("answer, verdict", [
    (b"stream: OK\0", StreamVerdict()),
    (b"stream: Win.Test.EICAR_HDB-1 FOUND\0", StreamVerdict(virus="Win.Test.EICAR_HDB-1")),
    (b"INSTREAM size limit exceeded. ERROR\0", StreamVerdict(over_limit=True)),
])
def test_clamd_answers_are_understood(answer: bytes, verdict: StreamVerdict) -> None:
    assert parse_instream_answer(answer) == verdict


@pytest.mark.parametrize("answer, reason", [
    (b"Can't allocate memory ERROR\0", "clamd error: \"Can't allocate memory\""),
    (b"HTTP/1.1 400 Bad Request\r\n\0", "bad answer"),
    # A signature name must never carry a second SMTP reply line into our 554.
    (b"stream: Evil\r\n250 2.0.0 Ok FOUND\0", "bad answer"),
    (b"stream: \xff FOUND\0", "bad answer"),
    (b"\0", "bad answer"),
])
def test_clamd_errors_and_garbage_are_failures(answer: bytes, reason: str) -> None:
    with pytest.raises(ClamdError) as caught:
        parse_instream_answer(answer)
    assert str(caught.value).startswith(reason)
    assert "\r" not in str(caught.value) and "\n" not in str(caught.value)


def test_instream_framing_carries_the_whole_message_in_bounded_chunks() -> None:
    body = os.urandom(150_000)
    frames = list(frame_chunks(body, chunk_size=65536))
    sizes = [int.from_bytes(f, "big") for f in frames[0::2]]
    assert sizes == [65536, 65536, 150_000 - 2 * 65536, 0]
    assert b"".join(bytes(f) for f in frames[1::2]) == body
    assert [bytes(f) for f in frame_chunks(b"")] == [b"\0\0\0\0"]


def test_spamd_symbols_are_rule_names() -> None:
    assert parse_symbols(b"GTUBE,MISSING_DATE,__TEST_1\r\n") == ("GTUBE", "MISSING_DATE", "__TEST_1")
    assert parse_symbols(b"") == ()
    with pytest.raises(SpamdError):
        parse_symbols(b"GTUBE,<script>")


# -- real daemons: verdicts -------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_eicar_is_refused_naming_the_signature(clamd_daemon: ScannerDaemon, spamd_daemon: ScannerDaemon,
                                               transport: str) -> None:
    spec = {"tcp": clamd_daemon.tcp_spec, "unix": clamd_daemon.unix_spec}[transport]
    outcome = run(scanners(clamd=spec).scan(message(EICAR), spam=False))
    assert outcome.virus == EICAR_REPORTED
    assert outcome.virus_failed is None and outcome.virus_skipped is None
    decision = decide(outcome)
    assert decision.verdict is Verdict.VIRUS
    assert (decision.reply.code, decision.reply.status) == (554, "5.7.0")
    assert EICAR_REPORTED in decision.reply.text and EICAR_REPORTED in decision.reason


def test_eicar_in_a_base64_attachment_is_found(clamd_daemon: ScannerDaemon) -> None:
    raw = message("Please find the invoice attached.\n", attachment=EICAR)
    assert EICAR not in raw and base64.b64encode(EICAR) in raw.replace(b"\r\n", b"")
    outcome = run(scanners(clamd=clamd_daemon.unix_spec).scan(raw, spam=False))
    assert outcome.virus == EICAR_REPORTED


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_gtube_is_refused_as_spam_with_score_and_symbols(clamd_daemon: ScannerDaemon, spamd_daemon: ScannerDaemon,
                                                         transport: str) -> None:
    spec = {"tcp": spamd_daemon.tcp_spec, "unix": spamd_daemon.unix_spec}[transport]
    outcome = run(scanners(clamd=clamd_daemon.tcp_spec, spamd=spec).scan(message(GTUBE), spam=True))
    assert outcome.virus is None and outcome.virus_failed is None
    assert outcome.spam_score is not None and outcome.spam_score >= 1000
    assert "GTUBE" in outcome.spam_symbols
    decision = decide(outcome)
    assert decision.verdict is Verdict.SPAM
    assert (decision.reply.code, decision.reply.status) == (554, "5.7.1")
    assert "1005" in decision.reason or str(outcome.spam_score)[:4] in decision.reason


def test_clean_message_passes_both_scanners(clamd_daemon: ScannerDaemon, spamd_daemon: ScannerDaemon) -> None:
    scan = scanners(clamd=clamd_daemon.unix_spec, spamd=spamd_daemon.unix_spec)
    observed: list[tuple[str, float]] = []
    scan.observe = lambda name, seconds: observed.append((name, seconds))
    outcome = run(scan.scan(CLEAN, spam=True))
    assert sorted(name for name, _ in observed) == ["clamd", "spamd"]
    assert all(0 < seconds < 10 for _, seconds in observed)
    assert outcome.virus is None
    assert outcome.spam_score is not None and outcome.spam_score < 5.0, outcome
    assert "GTUBE" not in outcome.spam_symbols
    assert (outcome.virus_failed, outcome.virus_skipped, outcome.spam_failed, outcome.spam_skipped) == (None,) * 4
    assert decide(outcome).verdict is Verdict.CHALLENGED
    assert decide(outcome, known=True).verdict is Verdict.DELIVERED


def test_known_senders_are_not_sent_to_spamd(clamd_daemon: ScannerDaemon) -> None:
    async def scenario() -> tuple[ScanOutcome, list[bytes]]:
        async with fake_peer(b"SPAMD/1.5 0 EX_OK\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n") as (spec, received):
            outcome = await scanners(clamd=clamd_daemon.tcp_spec, spamd=spec).scan(message(GTUBE), spam=False)
            return outcome, received

    outcome, received = run(scenario())
    assert received == []
    assert outcome.spam_score is None and outcome.spam_failed is None and outcome.spam_skipped is None
    assert outcome.virus is None and outcome.virus_failed is None


def test_scanners_that_are_off_are_not_used() -> None:
    outcome = run(scanners().scan(message(EICAR + b"\n" + GTUBE), spam=True))
    assert outcome == ScanOutcome()
    assert run(scanners().ping()) == {}


# -- real daemons: failures ---------------------------------------------------


def test_clamd_killed_mid_run_is_a_failure(own_clamd: ScannerDaemon) -> None:
    scan = scanners(clamd=own_clamd.tcp_spec, timeout=10.0)

    async def scenario() -> tuple[ScanOutcome, ScanOutcome, ScanOutcome, float]:
        before = await scan.scan(CLEAN, spam=False)
        own_clamd.pause()  # hold clamd while our message is in flight ...
        in_flight = asyncio.create_task(scan.scan(message(EICAR), spam=False))
        await asyncio.sleep(0.3)
        assert not in_flight.done()
        started = time.monotonic()
        own_clamd.kill()  # ... then it dies before answering
        during = await in_flight
        waited = time.monotonic() - started
        after = await scan.scan(message(EICAR), spam=False)
        return before, during, after, waited

    before, during, after, waited = run(scenario())
    assert before == ScanOutcome()
    assert during.virus is None
    assert during.virus_failed in ("closed the connection without answering",
                                   "connection lost: Connection reset by peer")
    assert waited < 2.0, "a dead clamd must not wait for scan.timeout"
    assert after.virus_failed == f"unreachable at {own_clamd.tcp_spec}: Connection refused"
    decision = decide(during)
    assert decision.verdict is Verdict.TEMPFAIL
    assert (decision.reply.code, decision.reply.status) == (451, "4.7.0")
    assert "clamd failed" in decision.reason
    accepted = decide(after, known=True, on_failure="accept")
    assert accepted.verdict is Verdict.DELIVERED
    assert "not scanned by clamd: unreachable" in accepted.scan_note


def test_clamd_unix_socket_left_behind_by_a_dead_clamd(own_clamd: ScannerDaemon) -> None:
    own_clamd.kill()
    outcome = run(scanners(clamd=own_clamd.unix_spec).scan(CLEAN, spam=False))
    assert outcome.virus_failed in (f"unreachable at {own_clamd.unix_spec}: Connection refused",
                                    f"unreachable at {own_clamd.unix_spec}: No such file or directory")


def test_spamd_slower_than_the_timeout_is_a_failure(clamd_daemon: ScannerDaemon, paused_spamd: ScannerDaemon) -> None:
    scan = scanners(clamd=clamd_daemon.tcp_spec, spamd=paused_spamd.tcp_spec, timeout=0.5)
    started = time.monotonic()
    outcome = run(scan.scan(message(GTUBE), spam=True))
    elapsed = time.monotonic() - started
    assert outcome.spam_failed == "timed out after 0.5 s"
    assert outcome.spam_score is None
    assert outcome.virus is None and outcome.virus_failed is None  # clamd answered meanwhile
    assert 0.45 <= elapsed < 1.5
    assert decide(outcome).verdict is Verdict.TEMPFAIL
    relaxed = decide(outcome, on_failure="accept")
    assert relaxed.verdict is Verdict.CHALLENGED
    assert "not scanned by spamd: timed out after 0.5 s" in relaxed.scan_note
    # A known sender's message never waited for spamd, so its failure does not count.
    assert decide(outcome, known=True).verdict is Verdict.DELIVERED


def test_spamd_answers_again_after_it_recovers(clamd_daemon: ScannerDaemon, spamd_daemon: ScannerDaemon) -> None:
    spamd_daemon.pause()
    try:
        stuck = run(scanners(spamd=spamd_daemon.unix_spec, timeout=0.3).scan(message(GTUBE), spam=True))
    finally:
        spamd_daemon.resume()
    assert stuck.spam_failed == "timed out after 0.3 s"
    healthy = run(scanners(spamd=spamd_daemon.unix_spec, timeout=10).scan(message(GTUBE), spam=True))
    assert healthy.spam_score is not None and healthy.spam_score >= 1000


def test_both_scans_run_concurrently(own_clamd: ScannerDaemon, paused_spamd: ScannerDaemon) -> None:
    """Both daemons hung: the wait is one timeout, not two."""
    own_clamd.pause()
    scan = scanners(clamd=own_clamd.unix_spec, spamd=paused_spamd.unix_spec, timeout=0.6)
    started = time.monotonic()
    outcome = run(scan.scan(CLEAN, spam=True))
    elapsed = time.monotonic() - started
    assert outcome.virus_failed == "timed out after 0.6 s"
    assert outcome.spam_failed == "timed out after 0.6 s"
    assert 0.55 <= elapsed < 1.1, elapsed
    assert set(scan.last_timings) == {"clamd", "spamd"}


@pytest.mark.parametrize("scanner, garbage", [
    ("clamd", b"HTTP/1.1 400 Bad Request\r\n\r\n"),
    ("clamd", b"stream: OK"),  # no NUL terminator, then the connection closes
    ("spamd", b"HTTP/1.1 400 Bad Request\r\n\r\n"),
    ("spamd", b"SPAMD/1.5 0 EX_OK\r\nContent-length: 5\r\n\r\nGTUBE"),  # no Spam header
])
def test_garbage_answers_are_failures(scanner: str, garbage: bytes) -> None:
    async def scenario() -> ScanOutcome:
        async with fake_peer(garbage) as (spec, received):
            outcome = await scanners(**{scanner: spec}).scan(message(GTUBE), spam=True)
            assert received, "the scanner was never asked"
            return outcome

    outcome = run(scenario())
    failed = outcome.virus_failed if scanner == "clamd" else outcome.spam_failed
    assert failed is not None and failed.startswith("bad answer"), outcome
    assert decide(outcome).reply.code == 451


def test_a_peer_that_never_answers_times_out() -> None:
    async def scenario() -> ScanOutcome:
        async with fake_peer(None) as (clamd_spec, _), fake_peer(None) as (spamd_spec, _):
            return await scanners(clamd=clamd_spec, spamd=spamd_spec, timeout=0.3).scan(CLEAN, spam=True)

    outcome = run(scenario())
    assert outcome.virus_failed == outcome.spam_failed == "timed out after 0.3 s"


def test_failed_scans_leave_no_open_sockets(clamd_daemon: ScannerDaemon, paused_spamd: ScannerDaemon) -> None:
    """Timeouts cancel the scanner calls mid-conversation; their connections must not leak."""
    scan = scanners(clamd=clamd_daemon.tcp_spec, spamd=paused_spamd.tcp_spec, timeout=0.05)

    async def scenario() -> list[ScanOutcome]:
        return [await scan.scan(CLEAN, spam=True) for _ in range(20)]

    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        outcomes = run(scenario())
        gc.collect()
    after = len(os.listdir("/proc/self/fd"))
    assert all(o.spam_failed == "timed out after 0.05 s" for o in outcomes)
    assert after - before <= 2, f"{after - before} file descriptors leaked"
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


# -- size caps -----------------------------------------------------------------


def test_messages_over_the_spamd_cap_are_scanned_on_their_first_part(spamd_daemon: ScannerDaemon) -> None:
    """SPEC §4.5 item 1: a big message is scanned on its first part (as spamc's cap), never skipped;
    padding a spam past the cap must not get it through unscanned."""
    raw = padded(GTUBE, 6000, at_end=False)
    outcome = run(scanners(spamd=spamd_daemon.unix_spec, spamd_max_size=5000).scan(raw, spam=True))
    assert outcome.spam_skipped is None and outcome.spam_failed is None
    assert outcome.spam_score is not None and outcome.spam_score >= 1000
    sent = first_part(raw, 5000)
    assert outcome.spam_partial == f"first {len(sent)} of {len(raw)} bytes"
    decision = decide(outcome)
    assert decision.verdict is Verdict.SPAM and f"spamd scanned the first {len(sent)}" in decision.scan_note


def test_first_part_keeps_the_headers_and_cuts_at_a_line_end() -> None:
    raw = padded(GTUBE, 6000, at_end=False)
    part = first_part(raw, 5000)
    assert raw.startswith(part) and len(part) <= 5000 and part.endswith(b"\n")
    assert part.startswith(raw[: raw.index(b"\r\n\r\n") + 4])
    big_head = b"X-Filler: " + b"x" * 8000 + b"\r\nSubject: hi\r\n\r\nbody line\r\n" * 3
    assert first_part(big_head, 5000).endswith(b"\r\n\r\n")  # the whole header block, however long
    assert first_part(CLEAN, 10 * len(CLEAN)) == CLEAN


def test_default_spamd_cap_is_500_kB(spamd_daemon: ScannerDaemon) -> None:
    assert ScanConfig().spamd_max_size == 500_000
    scan = scanners(spamd=spamd_daemon.unix_spec)
    under = run(scan.scan(padded(GTUBE, 400_000, at_end=False), spam=True))
    over = run(scan.scan(padded(GTUBE, 1_000_000, at_end=False), spam=True))
    assert under.spam_score is not None and under.spam_score >= 1000 and under.spam_partial is None
    assert over.spam_score is not None and over.spam_score >= 1000 and over.spam_skipped is None
    assert over.spam_partial is not None and over.spam_partial.startswith("first ")


def test_messages_over_the_clamd_cap_pass_unscanned_by_clamd(clamd_daemon: ScannerDaemon) -> None:
    raw = padded(EICAR, 6000)
    capped = run(scanners(clamd=clamd_daemon.tcp_spec, clamd_max_size=5000).scan(raw, spam=False))
    assert capped.virus is None and capped.virus_failed is None
    assert capped.virus_skipped == f"over size cap ({len(raw)} > 5000 bytes)"
    uncapped = run(scanners(clamd=clamd_daemon.tcp_spec, clamd_max_size=10_000).scan(raw, spam=False))
    assert uncapped.virus == EICAR_REPORTED


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_default_clamd_cap_is_clamds_own_stream_max_length(clamd_daemon: ScannerDaemon, transport: str) -> None:
    spec = {"tcp": clamd_daemon.tcp_spec, "unix": clamd_daemon.unix_spec}[transport]
    scan = scanners(clamd=spec)  # clamd_max_size = 0: clamd's StreamMaxLength (2 MB here)
    under = run(scan.scan(padded(EICAR, CLAMD_STREAM_MAX - 100_000), spam=False))
    over_raw = padded(EICAR, CLAMD_STREAM_MAX + 1_000_000)
    over = run(scan.scan(over_raw, spam=False))
    assert under.virus == EICAR_REPORTED
    assert over.virus is None and over.virus_failed is None
    assert over.virus_skipped == f"over clamd's StreamMaxLength ({len(over_raw)} bytes)"
    assert "not scanned by clamd: over clamd's StreamMaxLength" in decide(over, known=True).scan_note


# -- health -------------------------------------------------------------------


def test_ping_reports_each_configured_scanner(clamd_daemon: ScannerDaemon, spamd_daemon: ScannerDaemon) -> None:
    assert run(scanners(clamd=clamd_daemon.unix_spec, spamd=spamd_daemon.tcp_spec).ping()) == {
        "clamd": "ok", "spamd": "ok"}
    assert run(scanners(clamd=clamd_daemon.tcp_spec).ping()) == {"clamd": "ok"}
    assert run(scanners(spamd=spamd_daemon.unix_spec).ping()) == {"spamd": "ok"}


def test_scanner_addresses_may_name_a_host(clamd_daemon: ScannerDaemon, spamd_daemon: ScannerDaemon) -> None:
    """tcp:HOST:PORT with a host name, resolved without blocking the loop."""
    scan = scanners(clamd=f"tcp:localhost:{clamd_daemon.port}", spamd=f"tcp:localhost:{spamd_daemon.port}")
    assert run(scan.ping()) == {"clamd": "ok", "spamd": "ok"}
    outcome = run(scan.scan(message(EICAR), spam=True))
    assert outcome.virus == EICAR_REPORTED and outcome.spam_score is not None


def test_ping_reports_unreachable_and_hung_scanners(own_clamd: ScannerDaemon, paused_spamd: ScannerDaemon) -> None:
    hung = run(scanners(clamd=own_clamd.tcp_spec, spamd=paused_spamd.tcp_spec, timeout=0.3).ping())
    assert hung == {"clamd": "ok", "spamd": "no answer within 0.3 s"}
    own_clamd.kill()
    dead = run(scanners(clamd=own_clamd.tcp_spec, spamd="unix:/nonexistent/spamd.sock").ping())
    assert dead == {"clamd": f"unreachable at {own_clamd.tcp_spec}: Connection refused",
                    "spamd": "unreachable at unix:/nonexistent/spamd.sock: No such file or directory"}


# -- the event loop stays free -----------------------------------------------


def test_scanning_a_large_message_does_not_block_the_event_loop(own_clamd: ScannerDaemon,
                                                                spamd_daemon: ScannerDaemon) -> None:
    """Other SMTP sessions share the loop: while a 20 MB message streams to clamd
    and a 490 kB one to spamd, a 5 ms ticker must keep ticking. CPU time spent
    between two ticks is what our code can be blamed for (wall-clock gaps also
    include the other processes on this busy 2-core machine), so that is held
    tight and the wall-clock gap only loosely."""
    big = padded(EICAR, 20_000_000)
    spam_sized = padded(GTUBE, 490_000, at_end=False)
    scan = scanners(clamd=own_clamd.tcp_spec, spamd=spamd_daemon.tcp_spec)

    async def scenario() -> tuple[ScanOutcome, ScanOutcome, float, float]:
        wall_gaps: list[float] = []
        cpu_gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            wall, cpu = time.perf_counter(), time.thread_time()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now_wall, now_cpu = time.perf_counter(), time.thread_time()
                wall_gaps.append(now_wall - wall)
                cpu_gaps.append(now_cpu - cpu)
                wall, cpu = now_wall, now_cpu

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        virus_outcome = await scan.scan(big, spam=False)
        spam_outcome = await scan.scan(spam_sized, spam=True)
        stop.set()
        await tick
        return virus_outcome, spam_outcome, max(wall_gaps), max(cpu_gaps)

    virus_outcome, spam_outcome, wall_gap, cpu_gap = run(scenario())
    assert virus_outcome.virus == EICAR_REPORTED
    assert spam_outcome.spam_score is not None and spam_outcome.spam_score >= 1000
    assert cpu_gap < 0.03, f"event loop busy for {cpu_gap * 1000:.0f} ms of CPU between two ticks"
    assert wall_gap < 0.5, f"event loop stalled for {wall_gap * 1000:.0f} ms"
