"""The polish pass (issue 17 item 4) against a real gateway: tables fit 1,024 px with Reason in view,
verdict icons, the Today box per role, relative dates, empty states, actions off without a selection,
icons that mean what they do."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from PySide6.QtCore import QDateTime, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QTableView, QToolButton

from sendergate.desktop import dates, verdicts
from sendergate.desktop.models.base import RecordRole
from tests.desktop.conftest import open_main_window

TIMEOUT = 10_000
SHORT_DATE = re.compile(r"\b\d{1,2}[./]\d{1,2}[./]\d{2}\b|\d{4}-\d{2}-\d{2}")  # "6/12/26", "2026-12-06"


def loaded(qtbot, window, key):
    page = window.show_page(key)
    qtbot.waitUntil(lambda: page.loaded, timeout=TIMEOUT)
    return page


@pytest.fixture
def admin_window(qtbot, seeded_gateway, settings):
    """The main window of an admin (Staff page, admin-only verdicts) on the seeded gateway."""
    from sendergate.desktop import operations
    g, _ = seeded_gateway
    try:
        _, token = g.store.add_user("boss@example.org", name="The Boss", admin=True)
    except Exception:  # noqa: BLE001 - the session's gateway already has the admin from an earlier test
        _, token = g.store.add_user(f"boss{datetime.now().timestamp():.0f}@example.org", admin=True)
    w = open_main_window(qtbot, g.http_url, token, settings)
    w.set_me(w.client.me())  # what the app does after sign-in: the Staff page appears
    yield w
    from shiboken6 import isValid
    if isValid(w):  # a window closed for good is deleted; pytest-qt's teardown may have closed it first
        w.stream.stop()
        w.close()
    qtbot.waitUntil(lambda: operations.running() == 0, timeout=TIMEOUT)


def tables_of(page) -> list[QTableView]:
    return [t for t in page.findChildren(QTableView) if t.isVisibleTo(page)]


IMPORTANT = {"activity": 5, "screened": 2, "allowlist": 1, "blocklist": 1}  # Reason, Latest subject, Note


@pytest.mark.parametrize("width", [1024, 1280])
def test_every_table_fits_and_activity_reason_is_in_view(qtbot, admin_window, width):
    w = admin_window
    w.resize(width, 700)
    qtbot.waitUntil(lambda: w.width() == width, timeout=TIMEOUT)
    for key in ("activity", "pending", "screened", "allowlist", "blocklist", "devices", "staff"):
        page = loaded(qtbot, w, key)
        if key == "staff":
            page.table.selectRow(0)
        qtbot.wait(50)  # layouts settle
        for table in tables_of(page):
            bar = table.horizontalScrollBar()
            assert bar.maximum() == 0 and not bar.isVisible(), f"{key}: {table.objectName()} scrolls sideways"
            last = table.model().columnCount() - 1
            right = table.columnViewportPosition(last) + table.columnWidth(last)
            assert right <= table.viewport().width() + 1, f"{key}: the last column ends off-screen"
        if key in IMPORTANT:  # the column that says most starts well inside the view
            table, column = page.table, IMPORTANT[key]
            left = table.columnViewportPosition(column)
            assert 0 < left < table.viewport().width() - table.fontMetrics().averageCharWidth() * 20, key
    # Pending: Sender and Subject share the room; the Domain mark (the last column) keeps its width
    pending = w.pages["pending"].table
    assert pending.columnWidth(1) > pending.columnWidth(3) and pending.columnWidth(0) > pending.columnWidth(3) * 0.9
    activity = w.pages["activity"]
    reason = 5
    assert activity.model.headerData(reason, Qt.Orientation.Horizontal) == "Reason"
    left = activity.table.columnViewportPosition(reason)
    assert 0 < left < activity.table.viewport().width() - activity.table.fontMetrics().averageCharWidth() * 20
    # and it is wide enough to read (the Sign-up address column after it, mostly empty, does not take the room)
    assert activity.table.columnWidth(reason) >= activity.table.fontMetrics().averageCharWidth() * 30
    assert activity.table.columnWidth(reason) > activity.table.columnWidth(reason + 1)
    assert activity.table.isColumnHidden(reason + 1), "no event has a sign-up address: its column waits"
    # a cut-off cell still has all its text in the tooltip
    index = activity.model.index(0, 4)
    assert index.data(Qt.ItemDataRole.ToolTipRole) == activity.model.event_at(0).subject or not \
        activity.model.event_at(0).subject


def test_user_resizing_is_kept_while_it_fits(qtbot, seeded_gateway, window_for):
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    w.resize(1280, 700)
    page = loaded(qtbot, w, "activity")
    page.table.horizontalHeader().resizeSection(2, 150)
    w.resize(1300, 700)
    qtbot.waitUntil(lambda: w.width() == 1300, timeout=TIMEOUT)
    assert page.table.columnWidth(2) == 150


def test_verdicts_have_their_colour_and_icon_in_chart_chips_and_column(qtbot, seeded_gateway, window_for):
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    overview = loaded(qtbot, w, "overview")
    bars = {s.label(): s.color().name().lower() for s in overview.chart.series()[0].barSets()}
    for verdict in ("delivered", "spam", "challenged", "blocked"):
        assert bars[verdicts.label(verdict)] == verdicts.colour_hex(verdict).lower()
    activity = loaded(qtbot, w, "activity")
    for verdict, chip in activity.chips.items():
        assert not chip.icon().isNull(), verdict
    decoration = activity.model.index(0, 1).data(Qt.ItemDataRole.DecorationRole)
    assert isinstance(decoration, QIcon) and not decoration.isNull()
    assert decoration.cacheKey() == verdicts.icon(activity.model.event_at(0).verdict).cacheKey()
    assert activity.model.index(0, 2).data(Qt.ItemDataRole.DecorationRole) is None  # only the Verdict column


def test_today_shows_a_users_own_verdicts_and_an_admins_all(qtbot, seeded_gateway, window_for, admin_window):
    g, seeded = seeded_gateway
    user = window_for(g, seeded)
    page = loaded(qtbot, user, "overview")
    qtbot.waitUntil(lambda: page.me is not None, timeout=TIMEOUT)
    shown = set(page.today_labels)
    assert not shown & verdicts.ADMIN_ONLY, "a user sees admin-only verdicts"
    assert {"delivered", "challenged", "spam", "observed"} <= shown
    for verdict, value in page.today_labels.items():  # the name right next to its number
        assert value.text() == str(seeded.today.get(verdict, 0))
        name = value.parentWidget().layout()
        grid = page.today_grid
        row, col, _, _ = grid.getItemPosition(grid.indexOf(value))
        assert grid.itemAtPosition(row, col + 1).widget().text() == verdicts.label(verdict)
        assert name is grid
    admin = admin_window
    page = loaded(qtbot, admin, "overview")
    qtbot.waitUntil(lambda: page.me is not None and verdicts.ADMIN_ONLY <= set(page.today_labels), timeout=TIMEOUT)


def test_dates_are_relative_with_the_exact_time_in_the_tooltip(qtbot, seeded_gateway, window_for):
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    activity = loaded(qtbot, w, "activity")
    event = activity.model.event_at(0)  # the newest: today
    shown = activity.model.index(0, 0).data()
    assert shown == dates.when(event.ts) and shown.startswith(("Today", "Yesterday"))
    assert activity.model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole) == dates.exact(event.ts)
    for key in ("pending", "screened", "allowlist"):
        page = loaded(qtbot, w, key)
        texts = [page.model.index(r, c).data() for r in range(page.model.rowCount())
                 for c in range(page.model.columnCount())]
        assert not [t for t in texts if isinstance(t, str) and SHORT_DATE.search(t)], key
    devices = loaded(qtbot, w, "devices")
    paired = devices.table.item(0, 1)
    assert paired.text().startswith("Today") and re.search(r"\d{4}", paired.toolTip())
    # sorting stays by the real time: the allowlist by "Added", newest first
    allow = w.pages["allowlist"]
    allow.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)
    added = [allow.proxy.index(r, 0).data(RecordRole).created_at for r in range(allow.proxy.rowCount())]
    assert added == sorted(added, reverse=True)


def test_relative_dates_in_the_past_and_future():
    now = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
    local = QDateTime.fromSecsSinceEpoch(int(now.timestamp())).toLocalTime()
    assert dates.when(now, now).startswith("Today")
    old = datetime(2025, 3, 4, 12, 0, tzinfo=timezone.utc)
    assert "2025" in dates.when(old, now) and local.isValid()


def test_empty_states_say_what_to_do(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    activity = loaded(qtbot, w, "activity")
    assert activity.empty.shown_text() == ""
    activity.search.setText("nobody-sent-this-zz9")
    activity._filter_changed()
    qtbot.waitUntil(lambda: not activity.model.loading and bool(activity.empty.shown_text()), timeout=TIMEOUT)
    assert "No decisions match this filter" in activity.empty.shown_text()
    screened = loaded(qtbot, w, "screened")
    screened.filter.setText("nobody-sent-this-zz9")
    assert "No sender matches" in screened.empty.shown_text()
    screened.filter.clear()
    for group in list(screened.model.records()):
        screened.model.remove_key(group.sender)
    assert "No automated senders are waiting" in screened.empty.shown_text()
    for key, words in (("allowlist", "Your allowlist is empty"), ("blocklist", "Your blocklist is empty")):
        page = loaded(qtbot, w, key)
        page.search.setText("nobody-sent-this-zz9")
        assert "No entry matches" in page.empty.shown_text()
        page.search.clear()
        for entry in page.model.records():
            page.model.remove_key(entry.id)
        assert words in page.empty.shown_text(), key


def test_actions_are_off_without_a_selection(qtbot, seeded_gateway, window_for):
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    screened = loaded(qtbot, w, "screened")
    qtbot.waitUntil(lambda: screened.model.rowCount() > 0, timeout=TIMEOUT)
    screened.table.clearSelection()
    assert not screened.allow_button.isEnabled() and not screened.block_button.isEnabled()
    screened.table.selectRow(0)
    assert screened.allow_button.isEnabled() and screened.block_button.isEnabled()
    allow = loaded(qtbot, w, "allowlist")
    allow.table.clearSelection()
    assert not allow.edit_button.isEnabled() and not allow.remove_button.isEnabled()
    allow.table.selectRow(0)
    assert allow.edit_button.isEnabled() and allow.remove_button.isEnabled()
    allow.table.selectAll()
    assert not allow.edit_button.isEnabled() and allow.remove_button.isEnabled()  # edit is for one entry
    activity = loaded(qtbot, w, "activity")
    activity.table.clearSelection()
    activity.table.setCurrentIndex(activity.model.index(-1, -1))
    activity._enable()
    assert not activity.allow_sender.isEnabled() and not activity.block_sender.isEnabled()
    activity.table.selectRow(0)
    assert activity.allow_sender.isEnabled() and activity.block_sender.isEnabled()
    pending = loaded(qtbot, w, "pending")
    pending.table.clearSelection()
    assert not pending.approve_button.isEnabled()
    devices = loaded(qtbot, w, "devices")
    devices.table.clearSelection()
    assert not devices.revoke_button.isEnabled()


# what each button does -> the icon that says it (issue 17: "Edit…" showed the refresh icon)
MEANING = {"&Edit…": "edit", "&Remove": "remove", "A&dd": "add", "E&xport CSV…": "export", "&Approve": "approve",
           "&Deny": "deny", "Allow do&main": "domain", "&Allow": "allowlist", "&Block": "blocklist"}


def test_icons_mean_what_the_buttons_do(qtbot, seeded_gateway, window_for):
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    seen = {}
    for key, page in w.pages.items():
        for button in page.findChildren(QToolButton):
            name = button.property("iconName")
            if name is None:
                continue
            seen[button.text()] = name
            if button.text() in MEANING:
                assert MEANING[button.text()] == name, f"{key}: {button.text()!r} shows the {name} icon"
            else:  # a button added later: at least not an icon that says something else here
                assert name not in ("refresh", "edit", "remove", "add") or button.text().strip("&…").lower() \
                    .replace("&", "") in ("refresh", "edit", "remove", "add"), f"{key}: {button.text()!r}: {name}"
    assert {"&Edit…", "&Remove", "A&dd"} <= set(seen)


def test_dark_palette_reaches_the_chart_and_messages(qtbot, seeded_gateway, window_for, qapp):
    """A dark desktop theme changes the palette while the app runs: the chart, its axes and the message bar
    follow it (no colour is fixed to a light window); the verdict colours stay the same."""
    from PySide6.QtGui import QPalette

    from tests.desktop.screenshots import dark_palette
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    overview = loaded(qtbot, w, "overview")
    before = qapp.palette()
    try:
        qapp.setPalette(dark_palette())
        window_colour = dark_palette().color(QPalette.ColorRole.Window)
        qtbot.waitUntil(lambda: overview.chart.backgroundBrush().color() == window_colour, timeout=TIMEOUT)
        text = dark_palette().color(QPalette.ColorRole.WindowText)
        assert overview.chart.titleBrush().color() == text
        assert all(axis.labelsColor() == text for axis in overview.chart.axes())
        bars = {s.label(): s.color().name().lower() for s in overview.chart.series()[0].barSets()}
        assert bars[verdicts.label("delivered")] == verdicts.colour_hex("delivered").lower()
        w.messages.error("gateway unreachable")
        assert w.messages.palette().color(QPalette.ColorRole.Window).lightness() < 128  # a dark tint, not pink
    finally:
        qapp.setPalette(before)


def test_cached_times_are_made_again_after_midnight(qapp):
    """Activity caches its time texts; a "Today 08:10" made yesterday must not survive midnight."""
    from sendergate.desktop.models import events
    iso = datetime.now(timezone.utc).isoformat()
    fresh = events._time_text(iso)
    assert fresh.startswith("Today")
    events._times[iso] = "Today 00:00 (made yesterday)"  # what the cache held before midnight
    assert events._time_text(iso) == "Today 00:00 (made yesterday)"  # same day: from the cache
    events._times_valid_until[0] = 0.0  # midnight has passed
    assert events._time_text(iso) == fresh


def test_cached_times_follow_a_language_change(qapp):
    """A switch of language (i18n.install sets the default locale) makes the cached time texts again:
    an en_US "4:14 PM" must not stay on screen in a German window, nor "16:14" in an American one."""
    from PySide6.QtCore import QLocale

    from sendergate.desktop.models import events
    iso = datetime(2026, 12, 6, 16, 14, tzinfo=timezone.utc).isoformat()
    previous = QLocale()
    try:
        QLocale.setDefault(QLocale("en_US"))
        american = events._time_text(iso)
        QLocale.setDefault(QLocale("de_DE"))
        german = events._time_text(iso)
        assert german != american
        assert german == dates.when(datetime.fromisoformat(iso))  # what a fresh text in German reads
    finally:
        QLocale.setDefault(previous)


def shown_chips(page) -> set[str]:
    return {v for v, chip in page.chips.items() if not chip.isHidden()}


def test_activity_chips_show_a_users_own_verdicts_and_an_admins_all(qtbot, seeded_gateway, window_for, admin_window):
    g, seeded = seeded_gateway
    user = window_for(g, seeded)
    page = loaded(qtbot, user, "activity")
    qtbot.waitUntil(lambda: page.role == "user", timeout=TIMEOUT)
    shown = shown_chips(page)
    assert not shown & verdicts.ADMIN_ONLY, "a user is offered verdicts they cannot have"
    assert set(verdicts.EXTRA) <= shown, "the action verdicts (confirmed, approved, denied) have chips"
    assert shown == set(verdicts.visible_to("user", tuple(page.chips)))
    # and nothing the user does have is hidden: every verdict of their own events has its chip (a message of
    # theirs deferred, tempfail, is theirs; relayed or misaddressed mail reached no one's mailbox)
    theirs = {str(e.verdict) for e in g.events() if e.user_id == seeded.user_id}
    assert "tempfail" in theirs and theirs <= shown, theirs - shown
    assert not {str(e.verdict) for e in g.events() if e.user_id is not None} & verdicts.ADMIN_ONLY
    # a hidden chip takes no room: the chips shown sit side by side without gaps for the hidden ones
    visible = [page.chips[v] for v in page.chips if v in shown]
    row = [c for c in visible if c.y() == visible[0].y()]
    for a, b in zip(row, row[1:], strict=False):
        assert 0 <= b.x() - (a.x() + a.width()) <= 8
    # a chip of an action verdict filters the log like any other
    page.chips["confirmed"].setChecked(True)
    qtbot.waitUntil(lambda: not page.model.loading, timeout=TIMEOUT)
    assert page.selected_verdicts() == ("confirmed",)
    assert all(page.model.event_at(r).verdict == "confirmed" for r in range(page.model.rowCount()))
    page.chips["confirmed"].setChecked(False)

    admin = admin_window
    page = loaded(qtbot, admin, "activity")
    qtbot.waitUntil(lambda: verdicts.ADMIN_ONLY <= shown_chips(page), timeout=TIMEOUT)
    assert shown_chips(page) == set(page.chips)
