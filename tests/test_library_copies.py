"""Guards for the fast paths that copy a library's behaviour (issue 14, deliverable 5): the gateway
refuses to run with an aiosmtpd other than the one smtp/server.py copies (or, when it asks spamd, an
aiospamc other than the one scan/spamd.py copies), and the decision log's direct write gives the line
logging.Formatter would."""

from __future__ import annotations

import io
import logging
import time
from datetime import datetime, timezone

import aiosmtpd
import aiospamc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendergate import decisionlog, gateway, logformat
from sendergate.config import from_dict
from sendergate.decisionlog import DecisionLog
from sendergate.policy.decide import EventRecord, Verdict
from sendergate.scan.spamd import AIOSPAMC_VERSION
from sendergate.smtp.server import AIOSMTPD_VERSION, library_copies_ok


def test_the_installed_aiosmtpd_is_the_one_the_copies_were_made_from() -> None:
    assert aiosmtpd.__version__ == AIOSMTPD_VERSION
    assert library_copies_ok() == ""


def test_another_aiosmtpd_stops_the_gateway_with_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiosmtpd, "__version__", "1.4.7")
    assert "aiosmtpd 1.4.7 is installed" in library_copies_ok()
    cfg = from_dict({"domains": {"local": ["example.org"]}, "store": {"url": "sqlite:////nonexistent/x.db"}})
    with pytest.raises(gateway.StartupError, match=r"copies parts of aiosmtpd 1\.4\.6"):
        gateway.run(cfg)  # refused before it touches the store or a socket


def test_the_installed_aiospamc_is_the_one_the_copy_was_made_from() -> None:
    assert aiospamc.__version__ == AIOSPAMC_VERSION
    assert gateway.library_copies_problem(from_dict({"domains": {"local": ["example.org"]},
                                                     "scan": {"spamd": "tcp:127.0.0.1:783"}})) == ""


def test_another_aiospamc_stops_a_gateway_that_asks_spamd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiospamc, "__version__", "1.3.0")
    without = from_dict({"domains": {"local": ["example.org"]}})
    assert gateway.library_copies_problem(without) == ""  # the copy is not used: no reason to refuse
    cfg = from_dict({"domains": {"local": ["example.org"]}, "store": {"url": "sqlite:////nonexistent/x.db"},
                     "scan": {"spamd": "tcp:127.0.0.1:783"}})
    with pytest.raises(gateway.StartupError, match=r"aiospamc 1\.3\.0 is installed, but scan/spamd\.py copies"):
        gateway.run(cfg)  # refused before it touches the store or a socket


@settings(max_examples=300, deadline=None)
@given(message=st.text(max_size=300), name=st.sampled_from(["sendergate.decision", "sendergate.smtp", "x"]),
       level=st.sampled_from(["INFO", "WARNING", "ERROR"]),
       when=st.floats(min_value=1e9, max_value=4e9, allow_nan=False))
def test_the_decision_logs_direct_write_is_what_logging_writes(message: str, name: str, level: str,
                                                               when: float) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter(logformat.LOG_FORMAT))
    assert logformat.plain_stream_handler(_logger_with(handler)) is handler  # the fast path applies
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time", lambda: when)
        logformat._second = (-1, "")
        logformat.write_line(handler, level, name, message)
    record = logging.LogRecord(name, getattr(logging, level), __file__, 1, message, None, None)
    record.created, record.msecs = when, int((when - int(when)) * 1000) + 0.0
    assert out.getvalue() == handler.format(record) + handler.terminator


def _logger_with(handler: logging.Handler) -> logging.Logger:
    logger = logging.Logger("sendergate.test-fast-path", logging.INFO)
    logger.addHandler(handler)
    logger.propagate = False
    return logger


_TEXT = st.text(max_size=40)


@settings(max_examples=200, deadline=None)
@given(sender=_TEXT, recipient=_TEXT, subject=_TEXT, reason=_TEXT, virus=_TEXT,
       verdict=st.sampled_from(list(Verdict)), fmt=st.sampled_from(["kv", "json"]),
       spam_score=st.none() | st.floats(-100, 100, allow_nan=False),
       when=st.floats(min_value=1e9, max_value=4e9, allow_nan=False))
def test_a_decision_line_is_the_same_through_the_fast_path_and_through_logging(
        sender: str, recipient: str, subject: str, reason: str, virus: str, verdict: Verdict, fmt: str,
        spam_score: float | None, when: float) -> None:
    ev = EventRecord(ts=datetime.now(timezone.utc), verdict=verdict, reason=reason, client_ip="192.0.2.1",
                     helo="client.test", sender=sender, recipient=recipient, subject=subject,
                     spam_score=spam_score, virus=virus)
    written = {}
    for path in ("fast", "logging"):
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(logging.Formatter(logformat.LOG_FORMAT))
        counted: list[str] = []
        log = DecisionLog(fmt, count=counted.append)
        if path == "logging":
            log._looked = True  # as when another handler or a filter would see the record: no direct write
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(decisionlog.decisions, "handlers", [handler])
            patch.setattr(decisionlog.decisions, "propagate", False)  # pytest's own capture sits on the root
            patch.setattr(decisionlog.decisions, "level", logging.INFO)
            patch.setattr(decisionlog.decisions, "disabled", False)
            patch.setattr(decisionlog.decisions, "_cache", {})  # isEnabledFor's, from an earlier level
            patch.setattr(time, "time", lambda: when)
            logformat._second = (-1, "")
            if path == "fast":
                assert logformat.plain_stream_handler(decisionlog.decisions) is handler
            log(ev)
        assert counted == [verdict.value]
        written[path] = out.getvalue()
    assert written["fast"] == written["logging"]
    assert written["fast"].count("\n") == 1 and " INFO sendergate.decision: " in written["fast"]
