"""The sender history panel (issue 17 item 3) against a real gateway: opened from every page's rows (key H,
Enter on Activity, the context menu), showing the sender's events, what was seen and the matching entries,
and acting through the API."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QApplication, QMenu, QWidget

from sendergate.desktop.api_client import GatewayClient
from sendergate.desktop.history import PANEL_ATTR, HistoryPanel, open_history
from sendergate.desktop.models.base import RecordRole
from tests.desktop.conftest import OFFSCREEN_NOISE, open_main_window
from tests.desktop.seed import seed
from tests.support.common import free_loopback_port
from tests.support.gateway import GatewayProcess

# raise() of the panel and a context menu's keyboard grab: the offscreen platform has neither (as in
# test_checklist.py); per test, since the conftest's marker is the one pytest-qt reads for the module
QUIET = pytest.mark.qt_log_ignore(*OFFSCREEN_NOISE, r"This plugin does not support raise\(\)",
                                  r"This plugin does not support grabbing")

TIMEOUT = 10_000
RELOAD_WAIT_MS = 1800  # the panel's LIVE_RELOAD_MS, and some


def loaded(qtbot, window, key):
    page = window.show_page(key)
    qtbot.waitUntil(lambda: page.loaded, timeout=TIMEOUT)
    return page


def select_row(view, row):
    sel = view.selectionModel()
    sel.clearSelection()
    index = view.model().index(row, 0)
    sel.select(index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)
    sel.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)


def row_where(view, pred):
    model = view.model()
    for r in range(model.rowCount()):
        record = model.data(model.index(r, 0), RecordRole)
        if record is not None and pred(record):
            return r
    raise AssertionError("no such row")


def key_on(qtbot, window, view, key):
    """A key on a page's table, as a person presses it: the main window active, the table focused."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=TIMEOUT)
    view.setFocus()
    qtbot.keyClick(view, key)


def panel_of(window) -> HistoryPanel:
    panel = getattr(window, PANEL_ATTR, None)
    assert panel is not None, "no history panel was opened"
    return panel


def settled(qtbot, panel):
    qtbot.waitUntil(lambda: not panel.model.loading and panel.busy == 0
                    and panel.status.text() not in ("", "Loading…"), timeout=TIMEOUT)


def entries_of(panel):
    return [panel.entries.item(i).text() for i in range(panel.entries.count())]


def shown_senders(panel):
    return [panel.model.event_at(r).sender for r in range(panel.model.rowCount())]


def stored(g, user_id, sender):
    """The user's events from `sender` (any case), from the store itself, newest first."""
    return [e for e in reversed(g.events()) if e.user_id == user_id and e.sender.lower() == sender.lower()]


@QUIET
def test_opens_from_every_page_and_shows_the_senders_events_and_entries(qtbot, seeded_gateway, window_for):
    g, seeded = seeded_gateway
    w = window_for(g, seeded)

    # Activity: H on a row of the blocked sender
    page = loaded(qtbot, w, "activity")
    row = row_where(page.table, lambda e: e.sender == "pest@annoying.example")
    select_row(page.table, row)
    key_on(qtbot, w, page.table, Qt.Key.Key_H)
    panel = panel_of(w)
    settled(qtbot, panel)
    assert panel.isVisible() and not panel.isModal()
    assert "pest@annoying.example" in panel.heading.text()
    want = stored(g, seeded.user_id, "pest@annoying.example")
    assert want and [panel.model.event_at(r).id for r in range(panel.model.rowCount())] == [e.id for e in want]
    assert f"{len(want)} event" in panel.summary.text() and "Blocked" in panel.summary.text()
    qtbot.waitUntil(lambda: entries_of(panel) == ["Blocked: pest@annoying.example — you — decides today"],
                    timeout=TIMEOUT)
    # the same columns as Activity: the model is Activity's
    assert panel.model.columnCount() == page.model.columnCount()

    # Activity: Enter on another row shows that sender instead, in the same panel
    row = row_where(page.table, lambda e: e.verdict == "challenged")
    stranger = page.model.event_at(row).sender
    select_row(page.table, row)
    page.table.setCurrentIndex(page.table.model().index(row, 0))
    key_on(qtbot, w, page.table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: stranger in panel.heading.text(), timeout=TIMEOUT)
    settled(qtbot, panel)
    assert panel_of(w) is panel
    assert set(shown_senders(panel)) == {stranger}
    assert len(shown_senders(panel)) == len(stored(g, seeded.user_id, stranger))

    # Pending: H
    page = loaded(qtbot, w, "pending")
    _, pending_sender, _ = seeded.pending[0]
    select_row(page.table, row_where(page.table, lambda c: c.sender == pending_sender))
    key_on(qtbot, w, page.table, Qt.Key.Key_H)
    qtbot.waitUntil(lambda: pending_sender in panel.heading.text(), timeout=TIMEOUT)
    settled(qtbot, panel)
    assert set(shown_senders(panel)) <= {pending_sender}

    # Screened: H
    page = loaded(qtbot, w, "screened")
    qtbot.waitUntil(lambda: page.model.rowCount() > 0, timeout=TIMEOUT)
    automated = page.table.model().data(page.table.model().index(0, 0), RecordRole).sender
    select_row(page.table, 0)
    key_on(qtbot, w, page.table, Qt.Key.Key_H)
    qtbot.waitUntil(lambda: automated in panel.heading.text(), timeout=TIMEOUT)
    settled(qtbot, panel)
    assert panel.model.rowCount() == len(stored(g, seeded.user_id, automated)) > 0

    # Allowlist, a domain entry, through the context menu: the domain's history, the entry that matches it
    page = loaded(qtbot, w, "allowlist")
    row = row_where(page.table, lambda e: e.entry == "@harbour-studio.co.uk")
    rect = page.table.visualRect(page.table.model().index(row, 0))
    w.activateWindow()
    page.table.customContextMenuRequested.emit(rect.center())
    menu = next(m for m in QApplication.topLevelWidgets() if isinstance(m, QMenu) and m.isVisible())
    [action] = [a for a in menu.actions() if a.text() == "History of this sender…"]
    action.trigger()
    menu.close()
    qtbot.waitUntil(lambda: "@harbour-studio.co.uk" in panel.heading.text(), timeout=TIMEOUT)
    settled(qtbot, panel)
    assert panel.scope.count() == 1 and panel.whole_domain()  # a domain has no "this sender"
    assert not panel.allow_sender.isEnabled()
    assert all(s.lower().endswith("@harbour-studio.co.uk") for s in shown_senders(panel))
    assert any("Allowed: @harbour-studio.co.uk" in text for text in entries_of(panel))

    # Blocklist: H
    page = loaded(qtbot, w, "blocklist")
    select_row(page.table, row_where(page.table, lambda e: e.entry == "pest@annoying.example"))
    key_on(qtbot, w, page.table, Qt.Key.Key_H)
    qtbot.waitUntil(lambda: "History of pest@annoying.example" == panel.heading.text(), timeout=TIMEOUT)
    settled(qtbot, panel)
    assert panel.model.rowCount() == len(stored(g, seeded.user_id, "pest@annoying.example"))

    # the whole domain, chosen in the panel
    panel.scope.setCurrentIndex(1)
    panel.scope.activated.emit(1)
    settled(qtbot, panel)
    assert panel.whole_domain() and all(s.lower().endswith("@annoying.example") for s in shown_senders(panel))
    panel.close()


@QUIET
def test_actions_from_the_panel_go_through_the_api(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    api = GatewayClient(g.http_url, seeded.token)
    page = loaded(qtbot, w, "pending")
    _, sender, _ = seeded.pending[1]
    domain = "@" + sender.split("@")[1]
    select_row(page.table, row_where(page.table, lambda c: c.sender == sender))
    key_on(qtbot, w, page.table, Qt.Key.Key_H)
    panel = panel_of(w)
    settled(qtbot, panel)
    assert "No allow or block entry matches" in panel.entries.item(0).text()
    assert not panel.remove_entry.isEnabled()

    qtbot.mouseClick(panel.allow_domain, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: domain in {e.entry for e in api.all_entries("allow")}, timeout=TIMEOUT)
    settled(qtbot, panel)
    qtbot.waitUntil(lambda: entries_of(panel) == [f"Allowed: {domain} — you — decides today"], timeout=TIMEOUT)

    qtbot.mouseClick(panel.block_sender, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: sender in {e.entry for e in api.all_entries("block")}, timeout=TIMEOUT)
    settled(qtbot, panel)
    assert sorted(entries_of(panel)) == [f"Allowed: {domain} — you", f"Blocked: {sender} — you — decides today"]

    # remove the block, chosen in the entries list with the keyboard
    panel.activateWindow()
    blocked = next(i for i in range(panel.entries.count()) if panel.entries.item(i).text().startswith("Blocked"))
    panel.entries.setCurrentRow(blocked)
    assert panel.remove_entry.isEnabled()
    qtbot.mouseClick(panel.remove_entry, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: sender not in {e.entry for e in api.all_entries("block")}, timeout=TIMEOUT)
    settled(qtbot, panel)
    assert "Removed" in panel.status.text()
    assert domain in {e.entry for e in api.all_entries("allow")}, "only the chosen entry went"
    api.close()
    panel.close()


@QUIET
def test_empty_and_unreachable(qtbot, seeded_gateway):
    g, seeded = seeded_gateway
    host = QWidget()
    qtbot.addWidget(host)
    client = GatewayClient(g.http_url, seeded.token, timeout=5)
    panel = open_history(host, client, "nobody@nowhere.example")
    assert panel is not None
    settled(qtbot, panel)
    assert panel.status.text() == "Nothing from this sender yet."
    assert entries_of(panel) == ["No allow or block entry matches this sender."]
    # no history for the null sender or a mailing-list entry: no panel, no call
    assert open_history(host, client, "<>") is None and open_history(host, client, "list:dev.example.org") is None
    panel.close()

    down = QWidget()
    qtbot.addWidget(down)
    dead = GatewayClient(f"http://127.0.0.1:{free_loopback_port()}", "x", timeout=2)
    panel = open_history(down, dead, "pest@annoying.example")
    assert panel is not None
    qtbot.waitUntil(lambda: "cannot reach the gateway" in panel.status.text(), timeout=TIMEOUT)
    assert panel.status.text().startswith("The history could not be loaded")
    qtbot.mouseClick(panel.block_sender, Qt.MouseButton.LeftButton)  # an action fails the same clear way
    qtbot.waitUntil(lambda: panel.busy == 0 and "That did not work" in panel.status.text(), timeout=TIMEOUT)
    panel.close()


def panel_toast(panel):
    return panel.undo_toast.label.text() if panel.undo_toast.isVisible() else ""


def panel_ctrl_z(qtbot, panel):
    """Ctrl+Z as a person presses it in the panel: the panel is the active window."""
    panel.activateWindow()
    qtbot.waitUntil(panel.isActiveWindow, timeout=TIMEOUT)
    qtbot.keyClick(panel.entries, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)


def undone(qtbot, w, panel):
    qtbot.waitUntil(lambda: w.undo_stack.busy == 0, timeout=TIMEOUT)
    settled(qtbot, panel)


@QUIET
def test_panel_actions_are_undone_by_the_toast_and_ctrl_z(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    api = GatewayClient(g.http_url, seeded.token)

    def allowed():
        return {e.entry: e for e in api.all_entries("allow")}

    def blocked():
        return {e.entry: e for e in api.all_entries("block")}

    page = loaded(qtbot, w, "pending")
    _, sender, _ = seeded.pending[1]
    domain = "@" + sender.split("@")[1]
    select_row(page.table, row_where(page.table, lambda c: c.sender == sender))
    key_on(qtbot, w, page.table, Qt.Key.Key_H)
    panel = panel_of(w)
    settled(qtbot, panel)
    assert panel.undo_toast is not None and panel_toast(panel) == ""

    # allow the domain, undone by the panel's toast
    qtbot.mouseClick(panel.allow_domain, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel_toast(panel) == f"Allowed {domain}", timeout=TIMEOUT)
    assert domain in allowed()
    assert w.undo_toast.text() == f"Allowed {domain}"  # the main window offers the same
    qtbot.mouseClick(panel.undo_toast.button, Qt.MouseButton.LeftButton)
    assert panel_toast(panel) == "" and w.undo_toast.text() == ""
    undone(qtbot, w, panel)
    assert domain not in allowed()
    qtbot.waitUntil(lambda: "Undone: Allowed" in panel.status.text(), timeout=TIMEOUT)
    assert entries_of(panel) == ["No allow or block entry matches this sender."]

    # allow the sender, undone by Ctrl+Z in the panel
    qtbot.mouseClick(panel.allow_sender, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel_toast(panel) == f"Allowed {sender}", timeout=TIMEOUT)
    assert sender in allowed()
    panel_ctrl_z(qtbot, panel)
    assert panel_toast(panel) == ""  # Ctrl+Z undid what the toast offered: it goes
    undone(qtbot, w, panel)
    assert sender not in allowed()

    # block the sender while they are allowed: the block replaces the allow, and its undo brings it back
    api.add_entry("allow", sender, note="kept by hand")
    qtbot.mouseClick(panel.block_sender, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel_toast(panel) == f"Blocked {sender}", timeout=TIMEOUT)
    assert sender in blocked() and sender not in allowed()
    panel_ctrl_z(qtbot, panel)
    undone(qtbot, w, panel)
    assert sender not in blocked()
    assert allowed()[sender].note == "kept by hand"

    # remove the entry chosen in the list; the undo brings it back as it was (its note)
    qtbot.waitUntil(lambda: any(t.startswith("Allowed: " + sender) for t in entries_of(panel)), timeout=TIMEOUT)
    panel.entries.setCurrentRow(next(i for i, t in enumerate(entries_of(panel)) if t.startswith("Allowed: ")))
    qtbot.mouseClick(panel.remove_entry, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel_toast(panel) == f"Removed {sender}", timeout=TIMEOUT)
    assert sender not in allowed()
    qtbot.mouseClick(panel.undo_toast.button, Qt.MouseButton.LeftButton)
    undone(qtbot, w, panel)
    assert allowed()[sender].note == "kept by hand"
    qtbot.waitUntil(lambda: any(t.startswith("Allowed: " + sender) for t in entries_of(panel)), timeout=TIMEOUT)
    assert w.undo_stack.latest() is None  # everything offered was undone

    # what must not happen: allowing what is allowed already offers no undo, so Ctrl+Z cannot take away an
    # entry this action did not add
    api.add_entry("allow", domain, note="older")
    qtbot.mouseClick(panel.allow_domain, Qt.MouseButton.LeftButton)
    settled(qtbot, panel)
    qtbot.waitUntil(lambda: "Allowed " + domain in panel.status.text(), timeout=TIMEOUT)
    assert panel_toast(panel) == "" and w.undo_stack.latest() is None
    panel_ctrl_z(qtbot, panel)
    assert w.undo_stack.busy == 0
    assert allowed()[domain].note == "older" and sender in allowed()
    api.close()
    panel.close()


def knock(g, sender, rcpt):
    """A stranger's message over SMTP; the gateway decides (a challenge) and records the event. The reply code."""
    with g.smtp() as s:
        s.mail(sender)
        code, _ = s.rcpt(rcpt)
        if code != 250:
            return code
        code, _ = s.data(f"From: {sender}\r\nTo: {rcpt}\r\nSubject: Hello\r\n\r\nHi.\r\n".encode())
        return code


@QUIET
def counts_said(panel) -> list[str]:
    """The summary lines without their first/last seen (those read "just now", "1 minute ago")."""
    return [line.split(", first seen")[0] for line in panel.summary.text().splitlines()]


def test_the_panel_follows_the_live_stream(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    qtbot.waitUntil(lambda: w.connection_state == "online", timeout=TIMEOUT)
    page = loaded(qtbot, w, "activity")
    sender = "newcomer@fresh-startup.example"
    panel = open_history(page, w.client, sender)
    assert panel is not None
    settled(qtbot, panel)
    assert panel.model.rowCount() == 0 and panel.status.text() == "Nothing from this sender yet."

    # another sender first, then ours (the stream keeps the order): only ours appears
    assert knock(g, "someone.else@other.example", seeded.address) >= 250
    assert knock(g, "someone@fresh-startup.example", seeded.address) >= 250  # same domain, other sender
    assert knock(g, sender.upper(), seeded.address) >= 250  # any case: the same sender
    qtbot.waitUntil(lambda: panel.model.rowCount() == 1, timeout=TIMEOUT)
    [ours] = stored(g, seeded.user_id, sender)
    assert panel.model.event_at(0).id == ours.id
    qtbot.waitUntil(lambda: page.model.rowCount() and page.model.event_at(0).id == ours.id, timeout=TIMEOUT)
    assert shown_senders(panel) == [sender.upper()]
    assert panel.status.text().startswith("1 event")
    # the summary lines follow too (the sender's: 1; the domain's: 2, the other sender's counted) and say
    # what a load says
    qtbot.waitUntil(lambda: counts_said(panel) == ["This sender: 1 event (Challenged 1)",
                                                   "@fresh-startup.example: 2 events (Challenged 2)"], timeout=TIMEOUT)
    live = counts_said(panel)
    panel.reload()
    settled(qtbot, panel)
    assert counts_said(panel) == live

    # the whole domain: both of the domain's senders appear live, the other domain's does not
    panel.scope.setCurrentIndex(1)
    panel.scope.activated.emit(1)
    settled(qtbot, panel)
    assert panel.model.rowCount() == 2
    assert knock(g, "third@fresh-startup.example", seeded.address) >= 250
    assert knock(g, "outsider@fresh-startup.example.evil", seeded.address) >= 250
    qtbot.waitUntil(lambda: page.model.rowCount() and page.model.event_at(0).sender.endswith(".evil"),
                    timeout=TIMEOUT)
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3, timeout=TIMEOUT)
    assert all(s.lower().endswith("@fresh-startup.example") for s in shown_senders(panel))

    # a closed panel takes nothing in; reopened, it loads afresh
    panel.close()
    assert knock(g, sender, seeded.address) >= 250
    qtbot.waitUntil(lambda: page.model.rowCount() and page.model.event_at(0).sender == sender, timeout=TIMEOUT)
    assert panel.model.rowCount() == 3


@pytest.fixture
def office_gateway():
    """Alice (seeded), Bob with one address, and an admin (whose token is returned): the "Whose" view."""
    g = GatewayProcess()
    seeded = seed(g.store, events=40, pending=2)
    bob, _ = g.store.add_user("bob@example.org", name="Bob Builder")
    _, admin_token = g.store.add_user("owner@example.org", name="Olga Owner", admin=True)
    g.start()
    try:
        yield g, seeded, bob.id, admin_token
    finally:
        g.close()


def bobs_activity(qtbot, w):
    """The admin's window online, on Activity, looking at Bob's mail (the Whose selector)."""
    qtbot.waitUntil(lambda: w.connection_state == "online", timeout=TIMEOUT)
    page = loaded(qtbot, w, "activity")
    choose_whose(qtbot, w, "bob@example.org")
    return page


def choose_whose(qtbot, w, address):
    w.set_me(w.client.me())
    qtbot.waitUntil(lambda: any(address in w.whose.itemText(i) for i in range(w.whose.count())), timeout=TIMEOUT)
    i = next(i for i in range(w.whose.count()) if address in w.whose.itemText(i))
    w.whose.setCurrentIndex(i)
    w.whose.activated.emit(i)


@QUIET
def test_the_panel_follows_the_live_stream_in_an_admins_whose_view(qtbot, office_gateway, settings):
    """An admin looking at Bob's mail: the panel takes in Bob's new events from the sender, not another person's
    from the same sender, and does not ask the gateway again for events it can place (or that are not its)."""
    g, seeded, bob_id, admin_token = office_gateway
    w = open_main_window(qtbot, g.http_url, admin_token, settings)
    try:
        page = bobs_activity(qtbot, w)
        assert w.client.whose == bob_id
        sender = "newcomer@fresh-startup.example"
        panel = open_history(page, w.client, sender)
        assert panel is not None
        settled(qtbot, panel)
        assert panel.model.rowCount() == 0
        asked = []
        history = w.client.sender_history
        w.client.sender_history = lambda *a, **k: asked.append(a) or history(*a, **k)  # counts the panel's loads

        # to Alice first (another person: not in Bob's view), then unrelated senders, then to Bob
        assert knock(g, sender, seeded.address) >= 250
        for i in range(5):
            assert knock(g, f"other{i}@elsewhere.example", "bob@example.org") >= 250
        assert knock(g, sender.upper(), "bob@example.org") >= 250
        qtbot.waitUntil(lambda: panel.model.rowCount() == 1, timeout=TIMEOUT)
        [bobs] = stored(g, bob_id, sender)
        assert panel.model.event_at(0).id == bobs.id
        assert panel.status.text().startswith("1 event")
        qtbot.waitUntil(lambda: counts_said(panel) == ["This sender: 1 event (Challenged 1)",  # Bob's only
                                                       "@fresh-startup.example: 1 event (Challenged 1)"],
                        timeout=TIMEOUT)
        qtbot.wait(RELOAD_WAIT_MS)
        assert panel.model.rowCount() == 1  # Alice's event from the same sender never shows in Bob's view
        assert asked == [] and panel.live_reloads == 0  # placed from the stream: no load for any of them

        # the whole domain, live, still Bob's only
        panel.scope.setCurrentIndex(1)
        panel.scope.activated.emit(1)
        settled(qtbot, panel)
        assert knock(g, "third@fresh-startup.example", "bob@example.org") >= 250
        assert knock(g, "fourth@fresh-startup.example", seeded.address) >= 250
        qtbot.waitUntil(lambda: panel.model.rowCount() == 2, timeout=TIMEOUT)
        qtbot.wait(500)
        assert shown_senders(panel) == ["third@fresh-startup.example", sender.upper()]

        # Whose changed while the panel is open: it shows the new view's history (Alice's)
        choose_whose(qtbot, w, seeded.address)
        qtbot.waitUntil(lambda: w.client.whose == seeded.user_id, timeout=TIMEOUT)
        settled(qtbot, panel)
        qtbot.waitUntil(lambda: sorted(shown_senders(panel)) == ["fourth@fresh-startup.example", sender],
                        timeout=TIMEOUT)
    finally:
        w.stream.stop()
        w.close()


@QUIET
def test_a_whose_view_asks_again_only_for_the_senders_events_it_cannot_place(qtbot, office_gateway, settings):
    """A gateway that does not say whose an event is: the panel reloads once for a burst of the sender's events,
    and never for other senders'."""
    g, seeded, bob_id, admin_token = office_gateway
    w = open_main_window(qtbot, g.http_url, admin_token, settings)
    try:
        page = bobs_activity(qtbot, w)
        sender = "burst@fresh-startup.example"
        panel = open_history(page, w.client, sender)
        settled(qtbot, panel)
        unplaced = []

        def without_owner(msg):
            unplaced.append(msg.record.sender)
            return replace(msg, user_id=None, owner_known=False)

        w.stream.message.disconnect(panel._live)  # what an older gateway's stream would say
        w.stream.message.connect(lambda msg: panel._live(without_owner(msg)))
        for i in range(3):
            assert knock(g, f"other{i}@elsewhere.example", "bob@example.org") >= 250
        qtbot.waitUntil(lambda: len(unplaced) >= 3, timeout=TIMEOUT)
        qtbot.wait(RELOAD_WAIT_MS)
        assert getattr(panel, "live_reloads", 0) == 0  # other senders: nothing to ask
        for _ in range(3):
            assert knock(g, sender, "bob@example.org") >= 250
        qtbot.waitUntil(lambda: panel.model.rowCount() == 3, timeout=TIMEOUT)
        settled(qtbot, panel)
        assert panel.live_reloads <= 2  # a burst: one reload (two if it straddled the delay), not three
    finally:
        w.stream.stop()
        w.close()
