"""Shared pieces of the table models: columns, time formatting, verdict names."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as GuiQt  # mightBeRichText lives in QtGui's part of the Qt namespace

from ..dates import exact, when
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
    """A time as people read it ("Today 08:10", "Yesterday", weekday, then a medium date); the exact one is
    `exact_time`, for tooltips."""
    return when(ts)


exact_time = exact


class RichText(str):
    """A tooltip our own code built as HTML (its parts escaped); every other tooltip is plain text."""


def plain_tooltip(text: object) -> str | None:
    """A tooltip Qt shows as text. Qt renders a tooltip that merely *looks* like HTML as HTML, and subjects,
    senders, reasons and notes are written by strangers: escaped inside an explicit rich-text document they
    show literally (no remote image, no fake bold "verified"). Only `RichText` passes as it is."""
    if not isinstance(text, str) or not text:
        return None
    if isinstance(text, RichText) or not GuiQt.mightBeRichText(text):
        return text
    return "<qt>" + html.escape(text, quote=False).replace("\n", "<br>") + "</qt>"


@dataclass(frozen=True)
class Column:
    title: Callable[[], str]  # translated when asked, so a language change shows at once
    display: Callable[[Any], Any]
    sort: Callable[[Any], Any] | None = None
    tooltip: Callable[[Any], str] | None = None
