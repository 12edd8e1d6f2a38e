"""Decisions made in the app change the gateway's state, checked through the API."""

from __future__ import annotations

import csv

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QApplication

from sendergate.desktop.api_client import GatewayClient

TIMEOUT = 10_000


def loaded(qtbot, window, key):
    page = window.show_page(key)
    qtbot.waitUntil(lambda: page.loaded, timeout=TIMEOUT)
    return page


def select_rows(view, rows):
    sel = view.selectionModel()
    sel.clearSelection()
    for r in rows:
        sel.select(view.model().index(r, 0), QItemSelectionModel.SelectionFlag.Select
                   | QItemSelectionModel.SelectionFlag.Rows)
    sel.setCurrentIndex(view.model().index(rows[0], 0), QItemSelectionModel.SelectionFlag.NoUpdate)


def row_of(proxy, sender):
    for r in range(proxy.rowCount()):
        if proxy.index(r, 0).data() == sender:
            return r
    raise AssertionError(f"{sender} not shown")


def test_approve_deny_allow_domain_with_keys_and_several_at_once(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    page = loaded(qtbot, w, "pending")
    api = GatewayClient(g.http_url, seeded.token)
    (c1, s1, _), (c2, s2, _), (c3, s3, _), (c4, s4, _) = seeded.pending

    # two at once with the keyboard: A approves
    page.table.setFocus()
    select_rows(page.table, [row_of(page.proxy, s1), row_of(page.proxy, s2)])
    qtbot.keyClick(page.table, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=TIMEOUT)
    allow = {e.entry for e in api.all_entries("allow")}
    assert {s1, s2} <= allow
    assert "Approved 2 senders" in w.messages.text()

    select_rows(page.table, [row_of(page.proxy, s3)])
    qtbot.keyClick(page.table, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=TIMEOUT)
    assert s3 in {e.entry for e in api.all_entries("block")}

    select_rows(page.table, [row_of(page.proxy, s4)])
    qtbot.mouseClick(page.domain_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.model.rowCount() == 0, timeout=TIMEOUT)
    assert "@" + s4.split("@")[1] in {e.entry for e in api.all_entries("allow")}

    statuses = {c.id: c.status for c in api.challenges(status="all").items}
    assert statuses[c1] == statuses[c2] == "approved" and statuses[c3] == "denied"
    assert statuses[c4] != "pending"
    assert api.all_pending() == []
    assert "Nobody is waiting" in page.empty.text()
    qtbot.waitUntil(lambda: w.tray.pending == 0, timeout=TIMEOUT)
    api.close()


def test_lists_add_validate_edit_remove_export(qtbot, fresh_gateway, window_for, tmp_path):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    page = loaded(qtbot, w, "allowlist")
    api = GatewayClient(g.http_url, seeded.token)

    qtbot.keyClicks(page.entry_edit, "not an address")
    assert not page.add_button.isEnabled() and page.validation.text().startswith("✗")
    page.entry_edit.setText("  Shop@Example.COM ")
    assert page.add_button.isEnabled()
    assert page.validation.text() == "✓ shop@example.com"
    page.note_edit.setText("orders")
    page.add_expiry.setChecked(True)
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(e.entry == "shop@example.com" for e in page.model.records()), timeout=TIMEOUT)
    entry = next(e for e in api.all_entries("allow") if e.entry == "shop@example.com")
    assert entry.note == "orders" and entry.expires_at is not None

    # edit: the note changes and the entry becomes permanent
    from sendergate.desktop.pages.lists import EntryDialog
    select_rows(page.table, [row_of(page.proxy, "shop@example.com")])
    page.edit_selected()
    dialog = page.findChild(EntryDialog)
    dialog.note.setText("orders and receipts")
    dialog.expires.setChecked(False)
    dialog.accept()
    qtbot.waitUntil(lambda: api.all_entries("allow", q="shop@")[0].note == "orders and receipts", timeout=TIMEOUT)
    assert api.all_entries("allow", q="shop@")[0].expires_at is None

    out = tmp_path / "allow.csv"
    page.export_csv(str(out))
    qtbot.waitUntil(lambda: out.exists(), timeout=TIMEOUT)
    qtbot.waitUntil(lambda: "Saved" in w.messages.text(), timeout=TIMEOUT)
    rows = list(csv.DictReader(out.open()))
    assert {r["entry"] for r in rows} == {e.entry for e in api.all_entries("allow")}

    qtbot.waitUntil(lambda: page.findChild(EntryDialog) is None)  # the dialog is gone once closed
    w.activateWindow()  # a window manager gives the window back its activation; offscreen does not
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w)
    select_rows(page.table, [row_of(page.proxy, "shop@example.com")])
    page.table.setFocus()
    qtbot.keyClick(page.table, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: not api.all_entries("allow", q="shop@"), timeout=TIMEOUT)
    api.close()


def test_activity_and_screened_decisions(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    api = GatewayClient(g.http_url, seeded.token)
    activity = loaded(qtbot, w, "activity")
    row = next(r for r in range(activity.model.rowCount()) if activity.model.event_at(r).verdict == "spam")
    spammer = activity.model.event_at(row).sender
    activity.table.setFocus()
    activity.table.selectRow(row)
    qtbot.keyClick(activity.table, Qt.Key.Key_B)
    qtbot.waitUntil(lambda: spammer in {e.entry for e in api.all_entries("block")}, timeout=TIMEOUT)
    activity.allow_domain.trigger()  # the same row: its domain on the allowlist
    qtbot.waitUntil(lambda: "@" + spammer.split("@")[1] in {e.entry for e in api.all_entries("allow")},
                    timeout=TIMEOUT)

    screened = loaded(qtbot, w, "screened")
    first = screened.model.records()[0].sender
    screened.table.setFocus()
    select_rows(screened.table, [row_of(screened.proxy, first)])
    qtbot.keyClick(screened.table, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: screened.model.row_of(first) < 0, timeout=TIMEOUT)
    assert first in {e.entry for e in api.all_entries("allow")}
    screened.loaded = False
    screened.refresh()  # an allowed sender does not come back
    qtbot.waitUntil(lambda: screened.loaded, timeout=TIMEOUT)
    assert screened.model.row_of(first) < 0
    api.close()
