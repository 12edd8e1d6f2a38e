"""The decision line written without a LogRecord (decisionlog.DecisionLog, issue 18 item 1): the same
bytes as stdlib logging writes, on the stream when the call returns (before the reply it explains goes
out), in order with every other record; and any other logging configuration (a test's caplog, an
embedding application's handlers, a filter) still gets a LogRecord per decision."""

from __future__ import annotations

import io
import logging
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


def gateway_logging(root: logging.Logger) -> tuple[logging.StreamHandler, io.StringIO]:  # type: ignore[type-arg]
    """What cli.py's logging.basicConfig(format=LOG_FORMAT) makes, on a StringIO."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
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

        class Classic(logging.StreamHandler):  # type: ignore[type-arg]
            """Not the plain StreamHandler: records go through logging's own path."""

        plain = Classic(classic)
        plain.setFormatter(logging.Formatter(logformat.LOG_FORMAT))
        root.handlers[:] = [plain]
        assert decisionlog._direct_handler() is None
        log(event())
        assert direct.getvalue() == classic.getvalue()
        assert direct.getvalue().startswith(
            f"{logging.Formatter().formatTime(logging.makeLogRecord({'created': 1_780_000_123.0456}))} "
            "INFO sendergate.decision: ")
        assert direct.getvalue().split(" INFO")[0].endswith(",045")


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


def test_each_line_is_on_the_stream_when_the_call_returns_in_order(root: logging.Logger) -> None:
    _, out = gateway_logging(root)
    log = DecisionLog("kv")
    log(event(1))
    assert out.getvalue().count("\n") == 1  # written at once: before the reply it explains is sent
    logging.getLogger("sendergate.smtp").error("store unavailable")
    log(event(2))
    lines = out.getvalue().splitlines()
    assert [ln.split(": ", 1)[1].split(" client_ip")[0] for ln in lines] == [
        "decision verdict=challenged", "store unavailable", "decision verdict=challenged"]
    assert "sender=s1@far.test" in lines[0] and "sender=s2@far.test" in lines[2]


def test_a_stream_that_fails_does_not_fail_the_decision(root: logging.Logger,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    handler, out = gateway_logging(root)
    out.close()  # writing raises ValueError, as a closed stderr does
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", reported.append)
    DecisionLog("kv")(event())
    assert len(reported) == 1 and "decision verdict=challenged" in reported[0].getMessage()


@pytest.mark.parametrize("where", ["sendergate.decision", "sendergate", "root", "handler"])
def test_a_filter_on_the_way_still_decides(root: logging.Logger, where: str) -> None:
    """As stdlib logging has it: the decision logger's own filter and the handler's drop the line; a
    parent logger's filter sees only records logged on that logger, not the decision's."""
    handler, out = gateway_logging(root)
    holder: logging.Filterer = handler if where == "handler" else logging.getLogger(
        None if where == "root" else where)

    def drop(record: logging.LogRecord) -> bool:
        return record.name != "sendergate.decision"

    holder.addFilter(drop)
    try:
        assert decisionlog._direct_handler() is None
        DecisionLog("kv")(event())
        dropped = where in ("sendergate.decision", "handler")
        assert (out.getvalue() == "") is dropped, out.getvalue()
    finally:
        holder.removeFilter(drop)
