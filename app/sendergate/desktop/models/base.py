"""Shared pieces of the table models: columns, time formatting, verdict names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import QCoreApplication, QDateTime, QLocale, Qt

RecordRole = Qt.ItemDataRole.UserRole + 1  # the row's record (Event, Challenge, ...)
SortRole = Qt.ItemDataRole.UserRole + 2  # a value that sorts right (times as numbers)
IdRole = Qt.ItemDataRole.UserRole + 3


def tr(text: str) -> str:
    return QCoreApplication.translate("Models", text)


def verdict_label(verdict: str) -> str:
    labels = {
        "delivered": QCoreApplication.translate("Verdict", "Delivered"),
        "screened": QCoreApplication.translate("Verdict", "Screened"),
        "challenged": QCoreApplication.translate("Verdict", "Challenged"),
        "bulk": QCoreApplication.translate("Verdict", "Bulk"),
        "virus": QCoreApplication.translate("Verdict", "Virus"),
        "spam": QCoreApplication.translate("Verdict", "Spam"),
        "blocked": QCoreApplication.translate("Verdict", "Blocked"),
        "relay_denied": QCoreApplication.translate("Verdict", "Relay denied"),
        "unknown_recipient": QCoreApplication.translate("Verdict", "Unknown recipient"),
        "tempfail": QCoreApplication.translate("Verdict", "Temporary failure"),
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
