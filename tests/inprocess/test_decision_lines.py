"""The gateway's log handler (logformat.LoopBufferedHandler) and the decision line written without a
LogRecord (decisionlog.DecisionLog, issue 18 item 1): the same bytes as stdlib logging writes, in the
same order as every other record, all of them on the stream by the loop turn's end, at shutdown too;
and any other logging configuration (a test's caplog, an embedding application's handlers) still gets
a LogRecord per decision."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from sendergate import decisionlog, logformat
from sendergate.decisionlog import DecisionLog
from sendergate.policy.decide import EventRecord, Verdict

pytestmark = pytest.mark.fast


def event(n: int = 0, **kw: object) -> EventRecord:
    fields: dict[str, object] = dict(ts=datetime.now(timezone.utc), verdict=Verdict.CHALLENGED, reason="unknown sender",
                                     client_ip="192.0.2.7", helo="mail.far.test", sender=f"s{n}@far.test",
                                     recipient="alice@example.org", user_id=1, subject="Hi\nthere \u202e")
    fields.update(kw)
    return EventRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger's handlers and level as the test left them, restored after it."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = saved
    root.setLevel(level)


def gateway_logging(root: logging.Logger) -> tuple[logformat.LoopBufferedHandler, io.StringIO]:
    """What cli.py's logformat.configure() makes, on a StringIO."""
    out = io.StringIO()
    handler = logformat.LoopBufferedHandler(out)
    handler.setFormatter(logging.Formatter(logformat.LOG_FORMAT))
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    return handler, out


def test_the_direct_line_is_the_line_stdlib_logging_writes(root: logging.Logger,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.time", lambda: 1_780_000_123.0456)
    for fmt in ("kv", "json"):
        log = DecisionLog(fmt)
        handler, direct = gateway_logging(root)
        assert decisionlog._direct_handler() is handler
        log(event())
        classic = io.StringIO()
        plain = logging.StreamHandler(classic)
        plain.setFormatter(logging.Formatter(logformat.LOG_FORMAT))
        root.handlers[:] = [plain]
        assert decisionlog._direct_handler() is None
        log(event())
        assert direct.getvalue() == classic.getvalue()
        assert direct.getvalue().startswith(
            f"{logging.Formatter().formatTime(logging.makeLogRecord({'created': 1_780_000_123.0456}))} "
            "INFO sendergate.decision: ")
        assert direct.getvalue().split(" INFO")[0].endswith(",045")


def test_lines_of_one_loop_turn_are_written_together_in_order(root: logging.Logger) -> None:
    handler, out = gateway_logging(root)
    log = DecisionLog("kv")
    other = logging.getLogger("sendergate.smtp")
    writes: list[str] = []
    real_write = out.write

    def counting(text: str) -> int:
        writes.append(text)
        return real_write(text)

    out.write = counting  # type: ignore[method-assign]

    async def turn() -> str:
        log(event(1))
        other.error("store unavailable")
        log(event(2))
        held = out.getvalue()
        await asyncio.sleep(0)  # the turn ends: the flush runs
        await asyncio.sleep(0)
        log(event(3))  # a later turn of the same loop flushes too
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return held

    held = asyncio.run(turn())
    assert held == ""  # nothing written mid-turn
    lines = out.getvalue().splitlines()
    assert [ln.split(": ", 1)[1].split(" client_ip")[0] for ln in lines] == [
        "decision verdict=challenged", "store unavailable", "decision verdict=challenged",
        "decision verdict=challenged"]
    assert "sender=s1@far.test" in lines[0] and "sender=s2@far.test" in lines[2] and "sender=s3@" in lines[3]
    assert len(writes) == 2  # one write for each turn


def test_a_line_from_another_thread_writes_what_is_held_first(root: logging.Logger) -> None:
    _, out = gateway_logging(root)
    log = DecisionLog("kv")

    async def turn() -> None:
        log(event(1))
        t = threading.Thread(target=logging.getLogger("sendergate.store").error, args=("writer thread",))
        t.start()
        t.join()

    asyncio.run(turn())
    lines = out.getvalue().splitlines()
    assert "sender=s1@far.test" in lines[0] and lines[1].endswith("sendergate.store: writer thread")


def test_lines_held_when_the_loop_ends_reach_the_stream_at_shutdown(root: logging.Logger) -> None:
    handler, out = gateway_logging(root)
    log = DecisionLog("kv")
    loop = asyncio.new_event_loop()

    def decide() -> None:
        for n in range(3):
            log(event(n))
        loop.stop()  # the loop ends with this turn: the flush it scheduled never runs

    loop.call_soon(decide)
    loop.run_forever()
    loop.close()
    assert out.getvalue() == ""
    logging.shutdown([lambda: handler])  # what a worker's exit (gateway.py) and atexit run
    assert [ln.count("decision verdict=challenged") for ln in out.getvalue().splitlines()] == [1, 1, 1]

    async def later() -> None:  # a new loop in the same process flushes on its own turn
        log(event(9))

    asyncio.run(later())
    assert "sender=s9@far.test" in out.getvalue()


def test_a_full_hold_is_written_at_once(root: logging.Logger) -> None:
    _, out = gateway_logging(root)
    log = DecisionLog("kv")

    async def flood() -> str:
        for n in range(logformat.LoopBufferedHandler.HOLD):
            log(event(n))
        return out.getvalue()

    assert asyncio.run(flood()).count("\n") == logformat.LoopBufferedHandler.HOLD


@pytest.mark.parametrize("setup", ["caplog", "second handler", "filter", "level", "not propagating"])
def test_any_other_logging_configuration_gets_a_log_record(root: logging.Logger, setup: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    handler, out = gateway_logging(root)
    logger = logging.getLogger("sendergate.decision")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    undo = []
    if setup == "caplog":
        root.addHandler(caplog.handler)  # as pytest's logging plugin has it during a test
        caplog.set_level(logging.INFO, "sendergate.decision")
        seen_records = caplog.records
    else:
        seen_records = seen
        if setup == "second handler":
            root.addHandler(Keep())
        elif setup == "filter":
            logger.addFilter(f := logging.Filter("sendergate.decision"))
            undo.append(lambda: logger.removeFilter(f))
            root.addHandler(Keep())
        elif setup == "level":
            handler.setLevel(logging.WARNING)
            root.addHandler(Keep())
        else:
            logger.propagate = False
            logger.addHandler(k := Keep())
            undo.append(lambda: (logger.removeHandler(k), setattr(logger, "propagate", True)))
    try:
        assert decisionlog._direct_handler() is None
        DecisionLog("kv")(event())
        assert [r.getMessage().split(" client_ip")[0] for r in seen_records
                if r.name == "sendergate.decision"] == ["decision verdict=challenged"]
    finally:
        for u in undo:
            u()


def test_writes_are_whole_lines_of_at_most_pipe_buf_bytes(root: logging.Logger) -> None:
    # The workers share stderr; on a pipe (a service manager's journal) a write of at most PIPE_BUF
    # bytes is never interleaved with another process's, so no held write may be larger or split a line.
    _, out = gateway_logging(root)
    writes: list[str] = []
    real_write = out.write

    def counting(text: str) -> int:
        writes.append(text)
        return real_write(text)

    out.write = counting  # type: ignore[method-assign]
    log = DecisionLog("kv")
    long_subject = "\u00e9" * 3000  # 6,000 bytes in UTF-8: a line longer than PIPE_BUF goes alone

    async def turn() -> None:
        for n in range(40):
            log(event(n, subject=long_subject if n == 7 else f"subject {n} \u00e9\u00e9"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(turn())
    assert len(writes) > 2
    assert all(w.endswith("\n") for w in writes)
    assert [len(w.encode()) <= logformat.PIPE_BUF or w.count("\n") == 1 for w in writes] == [True] * len(writes)
    lines = "".join(writes).splitlines()
    assert [ln.split("sender=")[1].split()[0] for ln in lines] == [f"s{n}@far.test" for n in range(40)]
