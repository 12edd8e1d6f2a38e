"""Shared pieces of the table models: columns, time formatting, verdict names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import QDateTime, QLocale, Qt

from ..i18n import tr

RecordRole = Qt.ItemDataRole.UserRole + 1  # the row's record (Event, Challenge, ...)
SortRole = Qt.ItemDataRole.UserRole + 2  # a value that sorts right (times as numbers)
IdRole = Qt.ItemDataRole.UserRole + 3



def verdict_label(verdict: str) -> str:
    labels = {
        "delivered": tr("Delivered"),
        "screened": tr("Screened"),
        "challenged": tr("Challenged"),
        "bulk": tr("Bulk"),
        "virus": tr("Virus"),
        "spam": tr("Spam"),
        "blocked": tr("Blocked"),
        "relay_denied": tr("Relay denied"),
        "unknown_recipient": tr("Unknown recipient"),
        "tempfail": tr("Temporary failure"),
        "observed": tr("Observed"),
        "confirmed": tr("Confirmed"),
        "approved": tr("Approved"),
        "denied": tr("Denied"),
    }
    return labels.get(verdict, verdict)


def local_time(ts: datetime | None) -> str:
    if ts is None:
        return ""
    qdt = QDateTime.fromSecsSinceEpoch(int(ts.timestamp())).toLocalTime()
    return QLocale().toString(qdt, QLocale.FormatType.ShortFormat)


@dataclass(frozen=True)
class Column:
    title: Callable[[], str]  # translated when asked, so a language change shows at once
    display: Callable[[Any], Any]
    sort: Callable[[Any], Any] | None = None
    tooltip: Callable[[Any], str] | None = None
