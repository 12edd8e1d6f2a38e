"""Relative dates (issue 17 item 4): today and yesterday by name, the week by weekday, then a medium
date with a four-digit year, in English, German and the C locale that used to show "6 12 2026"."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from PySide6.QtCore import QLocale

from sendergate.desktop.dates import day_text, exact, medium_date_format, when

NOW = datetime(2026, 12, 6, 15, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("name,expected", [("en_US", "MMM d, yyyy"), ("en_GB", "d MMM yyyy"),
                                           ("de_DE", "d. MMM yyyy"), ("C", "d MMM yyyy"),
                                           ("ja_JP", "yyyy年M月d日")])
def test_medium_format_has_no_weekday_and_four_digit_year(name: str, expected: str) -> None:
    assert medium_date_format(QLocale(name)) == expected


def test_relative_days(qapp: object) -> None:
    loc = QLocale("en_GB")
    today = when(NOW - timedelta(minutes=5), NOW, loc)
    assert today.startswith("Today ") and ":" in today
    assert when(NOW - timedelta(days=1), NOW, loc).startswith("Yesterday ")
    three = NOW - timedelta(days=3)
    assert when(three, NOW, loc).startswith(loc.dayName(three.astimezone().isoweekday()))
    old = when(datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc), NOW, loc)
    assert "2025" in old and "Mar" in old
    assert when(None, NOW, loc) == ""


def test_day_text_and_exact(qapp: object) -> None:
    loc = QLocale("de_DE")
    base = date(2026, 12, 6)
    assert day_text(base, base, loc) == "Today"  # untranslated here: no translator installed in this test
    assert day_text(base - timedelta(days=1), base, loc) == "Yesterday"
    assert day_text(date(2026, 11, 2), base, loc) == "2. Nov. 2026"
    full = exact(NOW, loc)
    assert "2026" in full and ":" in full
    assert "Coordinated" not in full and "Weltzeit" not in full  # the zone's abbreviation, not its long name
