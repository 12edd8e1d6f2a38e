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

    def __call__(self, ev: EventRecord) -> None:
        if self.count is not None:
            self.count(ev.verdict.value)
        if not decisions.isEnabledFor(logging.INFO):
            return
        decisions.info(self.line(ev))

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
