"""The decision log: one line per SMTP decision (logger `sendergate.decision`), key=value or JSON, and
the verdict counted for /metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from . import logformat
from .policy.decide import EventRecord

decisions = logging.getLogger("sendergate.decision")


class DecisionLog:
    """Called once per decision (rt.decision_log(ev)). `log_format` is "kv" or "json" (cli --log-format)."""

    def __init__(self, log_format: str = "kv", *, count: Callable[[str], None] | None = None) -> None:
        self.log_format = log_format
        self.count = count
        self._prefix = logformat.line_prefix(decisions.name)

    def __call__(self, ev: EventRecord) -> None:
        if self.count is not None:
            self.count(ev.verdict.value)
        if not decisions.isEnabledFor(logging.INFO):
            return
        direct = _direct_handler()
        if direct is None:
            decisions.info(self.line(ev))
            return
        # The line stdlib logging would write, without its LogRecord and Formatter: on the stream when
        # this returns (before the reply it explains is sent), as StreamHandler.emit writes it.
        text = self._prefix() + self.line(ev) + direct.terminator
        with direct.lock:  # type: ignore[union-attr]
            try:
                direct.stream.write(text)
                direct.stream.flush()
            except Exception:  # noqa: BLE001 - logging's own rule: a failed log line never fails the caller
                direct.handleError(logging.makeLogRecord({"name": decisions.name, "msg": text}))

    def line(self, ev: EventRecord) -> str:
        """The message part of the log line for one decision."""
        fields: dict[str, Any] = {"verdict": ev.verdict.value, "client_ip": ev.client_ip, "helo": ev.helo,
                                  "sender": ev.sender, "recipient": ev.recipient, "reason": ev.reason}
        if ev.subject:
            fields["subject"] = ev.subject
        if ev.message_id:
            fields["message_id"] = ev.message_id
        if ev.spam_score is not None:
            fields["spam_score"] = ev.spam_score
        if ev.virus:
            fields["virus"] = ev.virus
        if ev.tag:  # the sign-up address the message came in by (issue 19)
            fields["tag"] = ev.tag
        if self.log_format == "json":
            return json.dumps({"event": "decision", **fields}, ensure_ascii=False)
        return "decision " + " ".join(f"{k}={logformat.kv(v)}" for k, v in fields.items())


def _direct_handler() -> logging.StreamHandler | None:
    """The handler the decision line may be written to as text: when the only place a record of
    `sendergate.decision` would go is one plain StreamHandler with LOG_FORMAT (cli.py's configuration),
    no filter or other handler on the way. Otherwise (a test's caplog, an embedding application's
    handlers) None: the record goes through logging as usual."""
    logger: logging.Logger | None = decisions
    while logger is not None and logger is not logging.root:
        if logger.handlers or logger.filters or not logger.propagate:
            return None
        logger = logger.parent
    root = logging.root
    if len(root.handlers) != 1 or root.filters:
        return None
    handler = root.handlers[0]
    if type(handler) is not logging.StreamHandler or handler.filters or handler.level > logging.INFO:
        return None
    fmt = handler.formatter
    if type(fmt) is not logging.Formatter or fmt._fmt != logformat.LOG_FORMAT or fmt.datefmt is not None:
        return None
    return handler
