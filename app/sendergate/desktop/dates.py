"""Dates as a person reads them: "Today 08:10", "Yesterday 17:45", "Tuesday 09:00" within the last
week, then the locale's medium date with a four-digit year ("6 Dec 2026 08:10", "6. Dez. 2026 08:10").

Qt has no medium date format (only short, "6 12 2026" in C or "12/6/26" in en_US, and long with the
weekday), so the medium one is the long one without its weekday and with abbreviated month names.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from PySide6.QtCore import QDate, QDateTime, QLocale

from .i18n import tr

_WEEKDAY = re.compile(r"\s*dddd[,.]?\s*")
_ZONE = re.compile(r"\s*\(?t+\)?")  # Qt time formats name the zone with t, tt, ttt or tttt


def medium_date_format(locale: QLocale | None = None) -> str:
    """The locale's long date format without the weekday, month names abbreviated, year in four digits."""
    fmt = (locale or QLocale()).dateFormat(QLocale.FormatType.LongFormat)
    fmt = _WEEKDAY.sub(" ", fmt).strip(" ,")
    fmt = fmt.replace("MMMM", "MMM")
    if "yyyy" not in fmt:
        fmt = fmt.replace("yy", "yyyy")
    return fmt


def _local(ts: datetime) -> QDateTime:
    return QDateTime.fromSecsSinceEpoch(int(ts.timestamp())).toLocalTime()


def when(ts: datetime | None, now: datetime | None = None, locale: QLocale | None = None) -> str:
    """A time relative to `now` (default: this moment): today and yesterday by name, the last week by
    weekday, anything older (or in the future beyond today) by the medium date. Empty for None."""
    if ts is None:
        return ""
    loc = locale or QLocale()
    qdt = _local(ts)
    today = _local(now).date() if now is not None else QDate.currentDate()
    day = qdt.date()
    clock = loc.toString(qdt.time(), QLocale.FormatType.ShortFormat)
    age = day.daysTo(today)
    if age == 0:
        return tr("Today %1").replace("%1", clock)
    if age == 1:
        return tr("Yesterday %1").replace("%1", clock)
    if 1 < age < 7:
        return f"{loc.dayName(day.dayOfWeek(), QLocale.FormatType.LongFormat)} {clock}"
    return f"{loc.toString(day, medium_date_format(loc))} {clock}"


def day_text(d: date, today: date | None = None, locale: QLocale | None = None) -> str:
    """A calendar day without a time: "Today", "Yesterday", weekday within the week, else the medium date."""
    loc = locale or QLocale()
    qd = QDate(d.year, d.month, d.day)
    base = today or date.today()
    age = (base - d).days
    if age == 0:
        return tr("Today")
    if age == 1:
        return tr("Yesterday")
    if 1 < age < 7:
        return loc.dayName(qd.dayOfWeek(), QLocale.FormatType.LongFormat)
    return loc.toString(qd, medium_date_format(loc))


def exact(ts: datetime | None, locale: QLocale | None = None) -> str:
    """The full local date and time with a four-digit year, for tooltips next to a relative `when`."""
    if ts is None:
        return ""
    loc = locale or QLocale()
    qdt = _local(ts)
    # the long time format with seconds, its zone as the short abbreviation ("UTC", "CET"), not the
    # zone's full name ("Coordinated Universal Time") that filled half a details pane
    clock = loc.toString(qdt.time(), _ZONE.sub("", loc.timeFormat(QLocale.FormatType.LongFormat)).strip())
    zone = qdt.timeZoneAbbreviation()
    return f"{loc.toString(qdt.date(), medium_date_format(loc))} {clock}" + (f" {zone}" if zone else "")


__all__ = ["medium_date_format", "when", "day_text", "exact"]
