"""Undo in the app (issue 17 item 2), against a real gateway: each action, undone by the toast's button and by
Ctrl+Z, and the gateway's state is back as it was (read through the API, not the table)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from sendergate.desktop.api_client import GatewayClient
from tests.desktop.test_actions import TIMEOUT, loaded, row_of, select_rows


def entries(api, action):
    return {e.entry: e for e in api.all_entries(action)}


def status(api, cid):
    return {c.id: c.status for c in api.challenges(status="all").items}[cid]


def toast_says(qtbot, w, text):
    qtbot.waitUntil(lambda: text in w.undo_toast.text(), timeout=TIMEOUT)


def click_undo(qtbot, w):
    qtbot.mouseClick(w.undo_toast.button, Qt.MouseButton.LeftButton)
    assert w.undo_toast.text() == ""  # the toast goes at once; the gateway is asked off the GUI thread


def ctrl_z(qtbot, widget):
    qtbot.keyClick(widget, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)


def settled(qtbot, w):
    qtbot.waitUntil(lambda: w.undo_stack.busy == 0, timeout=TIMEOUT)


def test_pending_approve_deny_allow_domain_undone(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    page = loaded(qtbot, w, "pending")
    api = GatewayClient(g.http_url, seeded.token)
    (c1, s1, _), (c2, s2, _), (c3, s3, _), _ = seeded.pending
    page.table.setFocus()

    select_rows(page.table, [row_of(page.proxy, s1), row_of(page.proxy, s2)])
    qtbot.keyClick(page.table, Qt.Key.Key_A)
    toast_says(qtbot, w, "Approved 2 sender")
    assert status(api, c1) == status(api, c2) == "approved"
    assert w.undo_action.isEnabled() and "Approved 2 sender" in w.undo_action.text()
    click_undo(qtbot, w)
    qtbot.waitUntil(lambda: status(api, c1) == status(api, c2) == "pending", timeout=TIMEOUT)
    settled(qtbot, w)
    assert not {s1, s2} & set(entries(api, "allow"))
    qtbot.waitUntil(lambda: page.model.rowCount() == 4, timeout=TIMEOUT)  # the rows are back
    assert "Undone" in w.messages.text()

    select_rows(page.table, [row_of(page.proxy, s3)])
    qtbot.keyClick(page.table, Qt.Key.Key_D)
    toast_says(qtbot, w, "Denied 1 sender")
    assert s3 in entries(api, "block")
    ctrl_z(qtbot, page.table)
    assert w.undo_toast.text() == ""  # Ctrl+Z undid what the toast offered: it goes
    qtbot.waitUntil(lambda: status(api, c3) == "pending", timeout=TIMEOUT)
    settled(qtbot, w)
    assert s3 not in entries(api, "block")

    select_rows(page.table, [row_of(page.proxy, s1)])
    qtbot.keyClick(page.table, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    toast_says(qtbot, w, "Allowed the domains of 1 sender")
    domain = "@" + s1.split("@")[1]
    assert domain in entries(api, "allow")
    ctrl_z(qtbot, page.table)
    qtbot.waitUntil(lambda: status(api, c1) == "pending", timeout=TIMEOUT)
    settled(qtbot, w)
    assert domain not in entries(api, "allow")
    assert not w.undo_action.isEnabled()  # everything undone: Ctrl+Z has nothing left
    ctrl_z(qtbot, page.table)
    assert w.undo_stack.busy == 0
    api.close()


def test_activity_and_screened_allow_block_undone(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    api = GatewayClient(g.http_url, seeded.token)
    activity = loaded(qtbot, w, "activity")
    row = next(r for r in range(activity.model.rowCount()) if activity.model.event_at(r).verdict == "spam")
    spammer = activity.model.event_at(row).sender
    activity.table.setFocus()
    activity.table.selectRow(row)
    qtbot.keyClick(activity.table, Qt.Key.Key_B)
    toast_says(qtbot, w, "Blocked " + spammer)
    assert spammer in entries(api, "block")
    click_undo(qtbot, w)
    qtbot.waitUntil(lambda: spammer not in entries(api, "block"), timeout=TIMEOUT)
    settled(qtbot, w)

    activity.allow_domain.trigger()
    domain = "@" + spammer.split("@")[1]
    toast_says(qtbot, w, "Allowed " + domain)
    ctrl_z(qtbot, activity.table)
    qtbot.waitUntil(lambda: domain not in entries(api, "allow"), timeout=TIMEOUT)
    settled(qtbot, w)

    screened = loaded(qtbot, w, "screened")
    first = screened.model.records()[0].sender
    screened.table.setFocus()
    select_rows(screened.table, [row_of(screened.proxy, first)])
    qtbot.keyClick(screened.table, Qt.Key.Key_B)
    toast_says(qtbot, w, "Blocked " + first)
    assert first in entries(api, "block")
    screened.loaded = False
    click_undo(qtbot, w)
    qtbot.waitUntil(lambda: first not in entries(api, "block"), timeout=TIMEOUT)
    qtbot.waitUntil(lambda: screened.loaded and screened.model.row_of(first) >= 0, timeout=TIMEOUT)  # back

    select_rows(screened.table, [row_of(screened.proxy, first)])
    qtbot.keyClick(screened.table, Qt.Key.Key_A)
    toast_says(qtbot, w, "Allowed " + first)
    ctrl_z(qtbot, screened.table)
    qtbot.waitUntil(lambda: first not in entries(api, "allow"), timeout=TIMEOUT)
    settled(qtbot, w)
    api.close()


def test_list_add_and_remove_undone(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    api = GatewayClient(g.http_url, seeded.token)
    allow = loaded(qtbot, w, "allowlist")
    allow.entry_edit.setText("newfriend@example.net")
    qtbot.mouseClick(allow.add_button, Qt.MouseButton.LeftButton)
    toast_says(qtbot, w, "Added newfriend@example.net")
    assert "newfriend@example.net" in entries(api, "allow")
    click_undo(qtbot, w)
    qtbot.waitUntil(lambda: "newfriend@example.net" not in entries(api, "allow"), timeout=TIMEOUT)
    settled(qtbot, w)

    before = entries(api, "allow")
    confirmed = next(e for e in before.values() if e.source == "confirmed")
    allow.table.setFocus()
    select_rows(allow.table, [row_of(allow.proxy, confirmed.entry)])
    qtbot.keyClick(allow.table, Qt.Key.Key_Delete)
    toast_says(qtbot, w, "Removed 1 entr")
    assert confirmed.entry not in entries(api, "allow")
    ctrl_z(qtbot, allow.table)
    qtbot.waitUntil(lambda: confirmed.entry in entries(api, "allow"), timeout=TIMEOUT)
    settled(qtbot, w)
    back = entries(api, "allow")[confirmed.entry]
    assert (back.source, back.note, back.kind, back.expires_at, back.created_at) == (
        confirmed.source, confirmed.note, confirmed.kind, confirmed.expires_at, confirmed.created_at)
    qtbot.waitUntil(lambda: allow.model.rowCount() == len(before), timeout=TIMEOUT)

    block = loaded(qtbot, w, "blocklist")
    gone = seeded.block[0]
    block.table.setFocus()
    select_rows(block.table, [row_of(block.proxy, gone)])
    qtbot.mouseClick(block.remove_button, Qt.MouseButton.LeftButton)
    toast_says(qtbot, w, "Removed 1 entr")
    click_undo(qtbot, w)
    qtbot.waitUntil(lambda: gone in entries(api, "block"), timeout=TIMEOUT)
    settled(qtbot, w)
    assert entries(api, "block")[gone].note == "never again"
    api.close()


def test_the_toast_is_reachable_and_named_and_goes_away(qtbot, fresh_gateway, window_for, monkeypatch):
    from sendergate.desktop import undo
    monkeypatch.setattr(undo, "TOAST_MS", 300)
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    page = loaded(qtbot, w, "pending")
    (c1, s1, _), *_ = seeded.pending
    page.table.setFocus()
    select_rows(page.table, [row_of(page.proxy, s1)])
    qtbot.keyClick(page.table, Qt.Key.Key_A)
    toast_says(qtbot, w, "Approved 1 sender")
    assert page.table.hasFocus()  # the toast does not take the focus: triage by keyboard goes on
    assert "Ctrl+Z" in w.undo_toast.accessibleName() and "Approved 1 sender" in w.undo_toast.button.accessibleName()
    assert w.undo_toast.button.focusPolicy() & Qt.FocusPolicy.TabFocus
    qtbot.waitUntil(lambda: w.undo_toast.text() == "", timeout=TIMEOUT)  # gone by itself
    assert w.undo_action.isEnabled()  # Ctrl+Z still undoes it after the toast went


def test_an_undo_the_gateway_refuses_says_why_and_changes_nothing(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    page = loaded(qtbot, w, "pending")
    api = GatewayClient(g.http_url, seeded.token)
    (c1, s1, _), *_ = seeded.pending
    page.table.setFocus()
    select_rows(page.table, [row_of(page.proxy, s1)])
    qtbot.keyClick(page.table, Qt.Key.Key_D)
    toast_says(qtbot, w, "Denied 1 sender")
    domain = "@" + s1.split("@")[1]
    api.add_entry("block", domain)  # meanwhile, from another device: the whole domain blocked
    click_undo(qtbot, w)
    qtbot.waitUntil(lambda: "Could not undo" in w.messages.text(), timeout=TIMEOUT)
    assert "still blocked" in w.messages.text() and w.messages.level == "error"
    assert status(api, c1) == "denied" and {s1, domain} <= set(entries(api, "block"))
    api.close()
