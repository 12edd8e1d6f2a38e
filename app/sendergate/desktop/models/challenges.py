"""Pending challenges: sender, subject, first seen, attempts."""

from __future__ import annotations

from ..api_client import Challenge
from .base import Column, exact_time, local_time, tr
from .records import RecordsModel


class PendingModel(RecordsModel[Challenge]):
    columns = (
        Column(lambda: tr("Sender"), lambda c: c.sender, lambda c: c.sender),
        Column(lambda: tr("Subject"), lambda c: c.subject, lambda c: c.subject, lambda c: c.subject),
        Column(lambda: tr("Recipient"), lambda c: c.recipient, lambda c: c.recipient),
        Column(lambda: tr("First seen"), lambda c: local_time(c.created_at), lambda c: c.created_at.timestamp(),
               lambda c: exact_time(c.created_at)),
        Column(lambda: tr("Attempts"), lambda c: c.attempts, lambda c: c.attempts),
    )

    def apply(self, challenge: Challenge) -> None:
        """A challenge from the live stream: shown while pending, gone once decided or expired."""
        if challenge.status == "pending":
            self.upsert(challenge)
        else:
            self.remove_key(challenge.id)

    def row_of_sender(self, sender: str) -> int:
        sender = sender.lower()
        return next((i for i, c in enumerate(self._rows) if c.sender == sender), -1)
