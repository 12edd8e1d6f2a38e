"""Automated senders (screened or refused as bulk), grouped by sender: counts and the latest subject."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime

from ..api_client import Event
from .base import Column, exact_time, local_time, tr, verdict_label
from .records import RecordsModel


@dataclass(frozen=True)
class SenderGroup:
    sender: str
    count: int
    screened: int
    bulk: int
    latest_subject: str
    latest: datetime

    @property
    def verdicts(self) -> str:
        parts = []
        if self.screened:
            parts.append(f"{verdict_label('screened')} {self.screened}")
        if self.bulk:
            parts.append(f"{verdict_label('bulk')} {self.bulk}")
        return ", ".join(parts)


def group_by_sender(events: Iterable[Event], decided: AbstractSet[str] = frozenset()) -> list[SenderGroup]:
    """Pure: events (any order) -> one group per sender, newest first; senders in `decided` left out."""
    groups: dict[str, dict] = {}
    for e in events:
        if e.verdict not in ("screened", "bulk") or not e.sender:
            continue
        key = e.sender.lower()
        if key in decided:
            continue
        g = groups.setdefault(key, {"count": 0, "screened": 0, "bulk": 0, "latest": None, "subject": ""})
        g["count"] += 1
        g[e.verdict] += 1
        if g["latest"] is None or e.ts > g["latest"]:
            g["latest"], g["subject"] = e.ts, e.subject
    out = [SenderGroup(k, g["count"], g["screened"], g["bulk"], g["subject"], g["latest"]) for k, g in groups.items()]
    out.sort(key=lambda g: g.latest, reverse=True)
    return out


class ScreenedModel(RecordsModel[SenderGroup]):
    columns = (
        Column(lambda: tr("Sender"), lambda g: g.sender, lambda g: g.sender),
        Column(lambda: tr("Messages"), lambda g: g.count, lambda g: g.count, lambda g: g.verdicts),
        Column(lambda: tr("Latest subject"), lambda g: g.latest_subject, lambda g: g.latest_subject,
               lambda g: g.latest_subject),
        Column(lambda: tr("Latest"), lambda g: local_time(g.latest), lambda g: g.latest.timestamp(),
               lambda g: exact_time(g.latest)),
        Column(lambda: tr("Outcome"), lambda g: g.verdicts, lambda g: g.verdicts),
    )

    def __init__(self, parent: object = None) -> None:
        super().__init__(parent, key=lambda g: g.sender)
