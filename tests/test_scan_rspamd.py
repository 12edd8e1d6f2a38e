"""rspamd as the spam scanner (issue 15 item 4): its /checkv2 answer, the envelope we send, the
decision its actions lead to, against Debian's real rspamd (tests/support/scanners.py).

A fake peer stands in only where real rspamd cannot misbehave on demand: answers that are
garbage, cut short, too long or hostile, and a peer that never answers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate

import pytest

from sendergate.config import ConfigError, ScanConfig, from_dict, parse_rspamd_url
from sendergate.policy.decide import KNOWN, UNKNOWN, MessageFacts, Route, ScanOutcome, Verdict, decide_data, judge_spam
from sendergate.scan import Scanners
from sendergate.scan.rspamd import MAX_ANSWER, RspamdError, ScanEnvelope, parse_checkv2, request_headers
from tests.support.scanners import GTUBE, ScannerDaemon, start_rspamd

ENVELOPE = ScanEnvelope(client_ip="192.0.2.7", helo="mail.sender.test", sender="carol@sender.test",
                        recipients=("alice@example.org", "bob@example.org"))


def message(body: bytes) -> bytes:
    return (b"From: Carol <carol@sender.test>\r\nTo: Alice <alice@example.org>\r\nSubject: Lunch\r\n"
            b"Date: " + formatdate().encode() + b"\r\nMessage-ID: <1@sender.test>\r\n\r\n" + body + b"\r\n")


CLEAN = message(b"Are we still on for Thursday?")


@pytest.fixture(scope="module")
def rspamd() -> Iterator[ScannerDaemon]:
    d = start_rspamd()
    yield d
    d.stop()


def run(coro):
    return asyncio.run(coro)


def scanners(**settings) -> Scanners:
    return Scanners(ScanConfig(**settings))


# -- configuration ------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, address", [
    ("http://127.0.0.1:11333", ("tcp", ("127.0.0.1", 11333))),
    ("http://localhost", ("tcp", ("localhost", 11333))),
    ("http://[::1]:11335/", ("tcp", ("::1", 11335))),
    ("unix:/run/rspamd/normal.sock", ("unix", "/run/rspamd/normal.sock")),
])
def test_rspamd_addresses(spec: str, address) -> None:
    assert parse_rspamd_url(spec) == address


@pytest.mark.parametrize("spec", ["https://127.0.0.1:11333", "http://127.0.0.1:11333/checkv2",
                                  "tcp:127.0.0.1:11333", "http://user:pw@127.0.0.1", "http://h:99999",
                                  "unix:relative.sock"])
def test_bad_rspamd_addresses_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict({"domains": {"local": ["example.org"]}, "scan": {"rspamd": spec}})
    assert [key for key, _ in caught.value.problems] == ["scan.rspamd"]


def test_spamd_and_rspamd_together_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict({"domains": {"local": ["example.org"]},
                   "scan": {"spamd": "tcp:127.0.0.1:783", "rspamd": "http://127.0.0.1:11333"}})
    assert caught.value.problems == [("scan.rspamd", ("set scan.spamd or scan.rspamd, not both: "
                                                      "one spam scanner decides"))]


def test_rspamd_choices_are_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict({"domains": {"local": ["example.org"]},
                   "scan": {"rspamd_action": "obey", "rspamd_add_header": "deliver"}})
    assert {key for key, _ in caught.value.problems} == {"scan.rspamd_action", "scan.rspamd_add_header"}
    cfg = from_dict({"domains": {"local": ["example.org"]}, "scan": {"rspamd": "http://127.0.0.1"}})
    assert (cfg.scan.rspamd_action, cfg.scan.rspamd_add_header, cfg.scan.spam_scanner) == ("honour", "refuse", "rspamd")


# -- what we send -------------------------------------------------------------------------------

def test_the_envelope_goes_as_rspamds_headers() -> None:
    headers = request_headers(ENVELOPE, "0A1B2C", 123, "127.0.0.1:11333")
    assert headers == [(b"Host", b"127.0.0.1:11333"), (b"Content-Length", b"123"), (b"Connection", b"close"),
                       (b"Queue-Id", b"0A1B2C"), (b"IP", b"192.0.2.7"), (b"Helo", b"mail.sender.test"),
                       (b"From", b"carol@sender.test"), (b"Rcpt", b"alice@example.org"),
                       (b"Rcpt", b"bob@example.org")]


def test_the_null_sender_is_sent_as_empty_brackets() -> None:
    headers = dict(request_headers(ScanEnvelope(sender=""), "", 1, "h"))
    assert headers[b"From"] == b"<>"


def test_no_envelope_value_can_add_a_header() -> None:
    """A HELO or address is the client's text: no CR, LF or other control character may reach
    rspamd's request (a second header line, e.g. a forged `Settings-Id` or `Pass: all`)."""
    hostile = ScanEnvelope(client_ip="192.0.2.7", helo="evil\r\nSettings-Id: whitelist",
                           sender="a@b.example\nPass: all", recipients=("x@y.example\r\n\r\nbody", "\t "))
    for name, value in request_headers(hostile, "Q\r\nX: 1", 1, "h"):
        assert not any(c < 0x20 or c == 0x7f for c in value), (name, value)
    names = [name for name, _ in request_headers(hostile, "Q", 1, "h")]
    assert names.count(b"Rcpt") == 1  # the one made of blanks only is dropped, not sent empty


# -- what rspamd answers ------------------------------------------------------------------------

def answer(**fields) -> bytes:
    base = {"is_skipped": False, "score": 7.5, "required_score": 15.0, "action": "add header",
            "symbols": {"LOW": {"name": "LOW", "score": 0.5}, "HIGH": {"name": "HIGH", "score": 7.0},
                        "NEG": {"name": "NEG", "score": -1.0}}}
    base.update(fields)
    return json.dumps(base).encode()


def test_checkv2_answer_is_understood() -> None:
    report = parse_checkv2(answer(messages={"smtp_message": "Try\r\nagain"}))
    assert (report.score, report.required_score, report.action) == (7.5, 15.0, "add header")
    assert report.symbols == ("HIGH", "LOW", "NEG")  # the heaviest first
    assert report.smtp_message == "Tryagain"


@pytest.mark.parametrize("body, why", [
    (b"<html>", "bad answer: not JSON"),
    (b"[]", "bad answer: not a JSON object"),
    (b'{"error": "cannot parse input"}', "rspamd error: 'cannot parse input'"),
    (answer(action="reject\r\n250 ok"), "bad answer: action"),
    (answer(action=None), "bad answer: action"),
    (answer(score="15"), "bad answer: score is not a number"),
    (answer(score=float("nan")), "bad answer: score is not a number"),
    (answer(symbols={"GTUBE\r\nX": {"score": 0}}), "bad answer: "),
    (answer(symbols=["GTUBE"]), "bad answer: symbols is not an object"),
])
def test_garbage_answers_are_errors(body: bytes, why: str) -> None:
    with pytest.raises(RspamdError) as caught:
        parse_checkv2(body)
    assert str(caught.value).startswith(why)


# -- the decision -------------------------------------------------------------------------------

def outcome(action: str | None, score: float = 7.0) -> ScanOutcome:
    return ScanOutcome(spam_scanner="rspamd", spam_score=score, spam_action=action, spam_required=15.0)


@pytest.mark.parametrize("action, honour, marked, expected", [
    ("reject", True, "refuse", "spam"),
    ("discard", True, "refuse", "spam"),  # never a silent drop: refused openly
    ("quarantine", True, "screen", "spam"),
    ("soft reject", True, "refuse", "defer"),
    ("add header", True, "refuse", "spam"),
    ("rewrite subject", True, "refuse", "spam"),
    ("add header", True, "screen", "screen"),
    ("rewrite subject", True, "screen", "screen"),
    ("greylist", True, "refuse", ""),  # a score band; the greylist module says "soft reject" itself
    ("no action", True, "refuse", ""),
    ("custom thing", True, "refuse", ""),
    ("reject", False, "refuse", "spam"),  # score mode: 7 >= 5
    ("no action", False, "refuse", "spam"),  # score mode: our threshold, whatever rspamd's action
])
def test_judge_spam(action: str, honour: bool, marked: str, expected: str) -> None:
    judged, why = judge_spam(outcome(action), 5.0, honour_action=honour, marked=marked)
    assert judged == expected, why


def test_score_mode_below_our_threshold_passes_whatever_the_action() -> None:
    assert judge_spam(outcome("reject", score=4.0), 5.0, honour_action=False) == ("", "")


def decide(scan: ScanOutcome, *, known: bool, needs_scan: bool = True, marked: str = "refuse"):
    facts = MessageFacts(sender_class=KNOWN if known else UNKNOWN, sender=None)
    routed = Route(known, "allowlisted sender" if known else "unknown sender", needs_scan)
    return decide_data(facts, routed, scan, on_failure="tempfail", spam_threshold=5.0,
                       reply_text=lambda v: v.value, honour_action=True, marked=marked)


def test_actions_to_replies() -> None:
    assert decide(outcome("reject"), known=True).reply.code == 554
    deferred = decide(outcome("soft reject"), known=True)
    assert (deferred.verdict, deferred.reply.code, deferred.reply.status) == (Verdict.TEMPFAIL, 451, "4.7.1")
    assert decide(outcome("greylist"), known=True).verdict is Verdict.DELIVERED
    assert decide(outcome("add header"), known=True).verdict is Verdict.SPAM
    assert decide(outcome("add header"), known=True, marked="screen").verdict is Verdict.SCREENED


def test_screening_never_delivers_an_unknown_sender() -> None:
    """"screen" moves what would be delivered into the Screened folder; it is not a way in."""
    d = decide(outcome("add header"), known=False, marked="screen")
    assert d.verdict is Verdict.CHALLENGED and "rspamd action 'add header'" in d.scan_note


def test_an_action_for_another_recipient_does_not_apply_to_one_that_skips_the_scan() -> None:
    """rspamd scanned the message for one recipient; an authenticated allowlisted sender's own
    recipient (needs_spam_scan False) is not refused by it, exactly as with spamd's score."""
    assert decide(outcome("reject"), known=True, needs_scan=False).verdict is Verdict.DELIVERED


def test_rspamd_failure_is_named_in_the_decision() -> None:
    d = decide(ScanOutcome(spam_scanner="rspamd", spam_failed="unreachable at http://127.0.0.1:9"), known=True)
    assert d.verdict is Verdict.TEMPFAIL and d.reason == "rspamd failed: unreachable at http://127.0.0.1:9"


# -- against the real rspamd --------------------------------------------------------------------

def test_gtube_is_rejected_by_rspamd(rspamd: ScannerDaemon) -> None:
    got = run(scanners(rspamd=rspamd.url).scan(message(GTUBE), spam=True, envelope=ENVELOPE))
    assert (got.spam_scanner, got.spam_action, got.spam_symbols) == ("rspamd", "reject", ("GTUBE",))
    assert got.spam_score == got.spam_required == 15.0 and len(got.scan_id) == 12


def test_clean_mail_gets_no_action_and_its_symbols(rspamd: ScannerDaemon) -> None:
    got = run(scanners(rspamd=rspamd.url).scan(CLEAN, spam=True, envelope=ENVELOPE))
    assert got.spam_action == "no action" and got.spam_score < 1 and got.spam_symbols
    assert got.spam_failed is None


def test_rspamd_is_not_asked_when_no_spam_scan_is_wanted(rspamd: ScannerDaemon) -> None:
    scan = scanners(rspamd=rspamd.url)
    assert run(scan.scan(message(GTUBE), spam=False)) == ScanOutcome()
    assert scan.last_timings == {}


def test_ping(rspamd: ScannerDaemon) -> None:
    assert run(scanners(rspamd=rspamd.url).ping()) == {"rspamd": "ok"}
    assert run(scanners(rspamd=f"unix:{rspamd.socket_path}").ping()) == {"rspamd": "ok"}
    assert run(scanners(rspamd="http://127.0.0.1:9").ping()) == {
        "rspamd": "unreachable at http://127.0.0.1:9: Connection refused"}


def test_hung_rspamd_times_out_and_leaks_no_sockets(rspamd: ScannerDaemon) -> None:
    scan = scanners(rspamd=rspamd.url, timeout=0.05)
    rspamd.pause()
    try:
        gc.collect()
        before = len(os.listdir("/proc/self/fd"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            outcomes = run(_many(scan, 20))
            gc.collect()
        after = len(os.listdir("/proc/self/fd"))
    finally:
        rspamd.resume()
    assert all(o.spam_failed == "timed out after 0.05 s" for o in outcomes)
    assert after - before <= 2, f"{after - before} file descriptors leaked"
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert run(scanners(rspamd=rspamd.url).ping()) == {"rspamd": "ok"}  # and it answers again once resumed


async def _many(scan: Scanners, n: int) -> list[ScanOutcome]:
    return [await scan.scan(CLEAN, spam=True, envelope=ENVELOPE) for _ in range(n)]


def test_a_large_message_is_sent_whole(rspamd: ScannerDaemon) -> None:
    """No cap of ours (rspamd's milter sends the whole message; rspamd's max_message bounds it):
    rspamd logs the length it scanned. (Where it then looks is rspamd's business: it checks for
    GTUBE only in small text parts, so a GTUBE at the end of 3 MB of text is no test of ours.)"""
    filler = b"The quick brown fox jumps over the lazy dog again and again.\r\n" * 50_000
    big = message(filler)
    got = run(scanners(rspamd=rspamd.url, timeout=30).scan(big, spam=True))
    assert got.spam_action is not None and got.spam_failed is None, got
    deadline = time.monotonic() + 10
    while f"qid: <{got.scan_id}>" not in rspamd.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(ln for ln in rspamd.log_path.read_text().splitlines() if f"qid: <{got.scan_id}>" in ln)
    assert f"len: {len(big)}," in line, line


# -- fake peers (only where the real rspamd cannot misbehave on demand) --------------------------

@contextlib.asynccontextmanager
async def fake_rspamd(answer_bytes: bytes | None) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A loopback HTTP peer that reads the request and answers `answer_bytes` (then closes), or
    never answers when None. Yields its `http://` spec and the requests it received."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received.append(await reader.read(65536))
            if answer_bytes is None:
                await asyncio.sleep(3600)
            writer.write(answer_bytes)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.close()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task() and task.get_coro().__qualname__.endswith("serve"):
                task.cancel()


def http(body: bytes, status: str = "200 OK", length: int | None = None) -> bytes:
    return (f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n\r\n").encode() + body


@pytest.mark.parametrize("raw, why", [
    (http(b'{"error": "message is too big"}', "413 Request Entity Too Large"), "HTTP 413: 'message is too big'"),
    (http(answer(action="reject"), length=10_000), "bad answer: "),  # cut short: never a verdict
    (b"SPAMD/1.5 0 EX_OK\r\n\r\n", "bad answer: "),  # not HTTP
    (b"", "closed the connection without answering"),
    (http(b"{}" + b" " * (MAX_ANSWER + 10)), f"bad answer: longer than {MAX_ANSWER} bytes"),
])
def test_bad_answers_are_failures_and_tempfail(raw: bytes, why: str) -> None:
    async def scenario() -> tuple[ScanOutcome, list[bytes]]:
        async with fake_rspamd(raw) as (spec, received):
            return await scanners(rspamd=spec, timeout=5).scan(CLEAN, spam=True, envelope=ENVELOPE), received

    got, received = run(scenario())
    assert received and received[0].startswith(b"POST /checkv2 HTTP/1.1\r\n")
    assert got.spam_failed is not None and got.spam_failed.startswith(why), got.spam_failed
    assert decide(got, known=False).reply.code == 451


def test_a_peer_that_never_answers_times_out() -> None:
    async def scenario() -> ScanOutcome:
        async with fake_rspamd(None) as (spec, _):
            return await scanners(rspamd=spec, timeout=0.3).scan(CLEAN, spam=True)

    started = time.monotonic()
    assert run(scenario()).spam_failed == "timed out after 0.3 s"
    assert time.monotonic() - started < 5


def test_an_internationalised_envelope_is_sent_as_utf8(rspamd: ScannerDaemon) -> None:
    """SMTPUTF8 addresses and a non-ASCII HELO must not turn every such message into a 451."""
    envelope = ScanEnvelope(client_ip="192.0.2.7", helo="mäil.bücher.example", sender="jörg@bücher.example",
                            recipients=("ålice@example.org",))
    got = run(scanners(rspamd=rspamd.url).scan(CLEAN, spam=True, envelope=envelope))
    assert got.spam_failed is None and got.spam_action is not None, got


def test_padding_past_rspamds_max_message_does_not_skip_the_scan() -> None:
    """rspamd answers 413 to a message above its max_message, which with on_failure = "accept"
    would deliver it unscanned (SPEC §4.5 item 1): above scan.rspamd_max_size the first part is
    scanned instead, as for spamd."""
    small = start_rspamd(options="max_message = 100k;")
    try:
        filler = b"The quick brown fox jumps over the lazy dog again and again.\r\n" * 5_000  # 310 kB
        padded = message(b"Cheap pills, see below.\r\n" + filler)
        uncapped = run(scanners(rspamd=small.url, rspamd_max_size=0).scan(padded, spam=True))
        # rspamd 3.4 resets the connection (or answers 413) once the body passes max_message
        assert uncapped.spam_failed is not None and uncapped.spam_action is None, uncapped
        capped = run(scanners(rspamd=small.url, rspamd_max_size=90_000).scan(padded, spam=True))
        assert capped.spam_failed is None and capped.spam_action is not None, capped
        assert capped.spam_partial is not None and capped.spam_partial.startswith("first ")
        assert int(capped.spam_partial.split()[1]) <= 90_000
        d = decide(capped, known=True)
        assert d.verdict is Verdict.DELIVERED and "rspamd scanned the first" in d.scan_note
    finally:
        small.stop()
