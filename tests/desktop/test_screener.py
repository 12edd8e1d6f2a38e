"""The Pending page as a screener (issue 17 item 1), against a real gateway whose challenges come from
real SMTP refusals (SPF and DKIM answered by the loopback DNS server, as in tests/test_screener_api.py):
the fields shown, verified vs could-not-verify, one key each, fitting 1,024 px, live additions that keep
the selection and what is in view."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QApplication

from sendergate.desktop.api_client import GatewayClient
from sendergate.desktop.models.base import RecordRole
from sendergate.desktop.models.challenges import AuthRole, SecondLineRole
from sendergate.policy.decide import EventRecord, Verdict
from tests.desktop.conftest import open_main_window
from tests.support.dkim_keys import Zones, signing_zones
from tests.support.gateway import GatewayProcess
from tests.test_screener_api import GOOD_IP, STRANGER_IP, encoded, send

TIMEOUT = 10_000
ALICE = "alice@example.org"
SHOTS = Path("/tmp/screener")  # a picture of the page for the report (not an assertion)


@pytest.fixture(scope="module")
def zones() -> Iterator[Zones]:
    with signing_zones(["signed.test"]) as zones:
        zones.server.add_txt("spf.test", f"v=spf1 ip4:{GOOD_IP} -all")
        zones.server.add_txt("soft.test", f"v=spf1 ip4:{GOOD_IP} ~all")
        yield zones


@pytest.fixture
def gw(zones: Zones) -> Iterator[GatewayProcess]:
    g = GatewayProcess(extra={"dns": {"nameservers": ["{}:{}".format(*zones.server.address)], "timeout": "1s"}})
    g.start()
    alice, g.token = g.store.add_user(ALICE, name="Alice")  # type: ignore[attr-defined]
    g.alice_id = alice.id  # type: ignore[attr-defined]
    yield g
    g.close()


def window(qtbot: object, gw: GatewayProcess, settings: object, width: int = 1024) -> object:
    w = open_main_window(qtbot, gw.http_url, gw.token, settings)  # type: ignore[attr-defined]
    w.resize(width, 720)  # type: ignore[attr-defined]
    page = w.show_page("pending")  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: page.loaded, timeout=TIMEOUT)  # type: ignore[attr-defined]
    return w


@pytest.fixture
def opened(qtbot: object) -> Iterator[list[object]]:
    windows: list[object] = []
    yield windows
    from sendergate.desktop import operations
    for w in windows:
        w.stream.stop()  # type: ignore[attr-defined]
        w.close()  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: operations.running() == 0, timeout=10_000)  # type: ignore[attr-defined]


def row_of(page: object, sender: str) -> int:
    proxy = page.proxy  # type: ignore[attr-defined]
    for r in range(proxy.rowCount()):
        if proxy.index(r, 0).data(RecordRole).sender == sender:
            return r
    raise AssertionError(f"{sender} not shown")


def cells(page: object, sender: str) -> list[tuple[str, str]]:
    r = row_of(page, sender)
    proxy = page.proxy  # type: ignore[attr-defined]
    return [(proxy.index(r, c).data(), proxy.index(r, c).data(SecondLineRole)) for c in range(proxy.columnCount())]


def select(page: object, senders: list[str]) -> None:
    view = page.table  # type: ignore[attr-defined]
    sel = view.selectionModel()
    sel.clearSelection()
    rows = [row_of(page, s) for s in senders]
    for r in rows:
        sel.select(view.model().index(r, 0), QItemSelectionModel.SelectionFlag.Select
                   | QItemSelectionModel.SelectionFlag.Rows)
    sel.setCurrentIndex(view.model().index(rows[0], 0), QItemSelectionModel.SelectionFlag.NoUpdate)


def test_each_sender_shows_name_address_subject_when_auth_captcha_and_history(qtbot, gw, zones, settings, opened):
    send(gw, "ann@spf.test", b"Ann Example <ann@spf.test>", ip=GOOD_IP, subject="Lunch on Friday?")
    send(gw, "ann@spf.test", b"Ann Example <ann@spf.test>", ip=GOOD_IP, subject="Lunch on Friday?")
    send(gw, "sam@soft.test", b"Sam Soft <sam@soft.test>", ip=STRANGER_IP, subject="Invoice")
    send(gw, "x1@soft.test", encoded("ceo@example.org") + b" <x1@soft.test>", ip=STRANGER_IP, subject="Urgent")
    gw.store.add_events([EventRecord(ts=datetime.now(timezone.utc) - timedelta(days=3), verdict=Verdict.SPAM,
                                     sender="sam@soft.test", recipient=ALICE, user_id=gw.alice_id, reason="spam")])
    w = window(qtbot, gw, settings)
    opened.append(w)
    page = w.pages["pending"]

    ann = cells(page, "ann@spf.test")
    assert ann[0] == ("Ann Example", "ann@spf.test")
    assert ann[1] == ("Lunch on Friday?", "First contact")
    assert ann[2][0].startswith("Today") and ann[2][1] == "2 messages"
    assert ann[3] == ("Verified domain", "CAPTCHA not tried")
    sam = cells(page, "sam@soft.test")
    assert sam[0] == ("Sam Soft", "sam@soft.test")
    assert sam[1][1].startswith("1 earlier refusal since ")
    assert sam[3][0] == "Could not verify"
    assert page.proxy.index(row_of(page, "ann@spf.test"), 3).data(AuthRole) == "verified"
    assert page.proxy.index(row_of(page, "sam@soft.test"), 3).data(AuthRole) == "unverified"
    # a name that poses as an address is not shown: the envelope address is, and why the name is not
    forged = cells(page, "x1@soft.test")
    assert forged[0] == ("x1@soft.test", "name hidden: it looked like an address")
    assert "ceo@example.org" not in str(forged)

    select(page, ["ann@spf.test"])
    details = page.details.toPlainText()
    for text in ("Ann Example <ann@spf.test>", "To alice@example.org", "Lunch on Friday?", "2 messages",
                 "Verified domain — SPF pass for spf.test", "CAPTCHA not tried", "First contact"):
        assert text in details.replace("\t", " ").replace("\n", " ") or text.split(" ", 1)[1] in details, text
    select(page, ["sam@soft.test"])
    assert "Could not verify — SPF softfail" in page.details.toPlainText()
    SHOTS.mkdir(parents=True, exist_ok=True)
    w.grab().save(str(SHOTS / "pending-1024.png"))


def test_the_details_pane_escapes_what_the_sender_wrote(qtbot, gw, settings, opened):
    send(gw, "tag@soft.test", encoded("<b>Boss</b> <img src=x>") + b" <tag@soft.test>", ip=STRANGER_IP,
         subject="<i>hi</i>")
    w = window(qtbot, gw, settings)
    opened.append(w)
    page = w.pages["pending"]
    select(page, ["tag@soft.test"])
    assert "<b>Boss</b>" in page.details.toPlainText()  # shown as text, not as markup
    assert "<i>hi</i>" in page.details.toPlainText()
    assert html.escape("<img src=x>") in page.details.toHtml()


def test_fits_1024_px_without_a_horizontal_scrollbar(qtbot, gw, settings, opened):
    send(gw, "long@soft.test", b"A Very Long Display Name That Goes On And On Forever <long@soft.test>",
         ip=STRANGER_IP, subject="A subject line that is much longer than any column could ever show at once " * 2)
    w = window(qtbot, gw, settings, width=1024)
    opened.append(w)
    page = w.pages["pending"]
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=TIMEOUT)
    QApplication.processEvents()
    assert w.width() <= 1024
    table = page.table
    assert not table.horizontalScrollBar().isVisible()
    assert table.horizontalScrollBar().maximum() == 0
    used = sum(table.columnWidth(c) for c in range(page.proxy.columnCount()))
    assert used <= table.viewport().width()
    assert all(table.columnWidth(c) >= 100 for c in range(page.proxy.columnCount()))  # nothing squeezed out


def test_one_key_each_allow_sender_allow_domain_deny_and_the_old_alias(qtbot, gw, settings, opened):
    senders = ["k1@soft.test", "k2@spf.test", "k3@soft.test", "k4@signed.test", "k5@soft.test"]
    for s in senders:
        assert send(gw, s, f"K <{s}>".encode(), ip=GOOD_IP if s.endswith("spf.test") else STRANGER_IP)[0] == 550
    w = window(qtbot, gw, settings)
    opened.append(w)
    page = w.pages["pending"]
    api = GatewayClient(gw.http_url, gw.token)  # type: ignore[attr-defined]
    page.table.setFocus()
    for keys, chosen, left in ((Qt.Key.Key_A, ["k1@soft.test", "k5@soft.test"], 3),  # several at once
                               (Qt.Key.Key_M, ["k2@spf.test"], 2),
                               (Qt.Key.Key_D, ["k3@soft.test"], 1)):
        select(page, chosen)
        qtbot.keyClick(page.table, keys)
        qtbot.waitUntil(lambda n=left: page.model.rowCount() == n, timeout=TIMEOUT)
    allow = {e.entry for e in api.all_entries("allow")}
    assert {"k1@soft.test", "k5@soft.test", "@spf.test"} <= allow
    assert "k3@soft.test" in {e.entry for e in api.all_entries("block")}
    select(page, ["k4@signed.test"])  # Shift+A: allow the domain, as before
    qtbot.keyClick(page.table, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: page.model.rowCount() == 0, timeout=TIMEOUT)
    assert "@signed.test" in {e.entry for e in api.all_entries("allow")}
    api.close()


def test_context_menu_offers_the_three_decisions(qtbot, gw, settings, opened):
    send(gw, "menu@soft.test", b"M <menu@soft.test>", ip=STRANGER_IP)
    w = window(qtbot, gw, settings)
    opened.append(w)
    page = w.pages["pending"]
    assert [a.text() for a in page.actions_by_decision.values()] == ["Approve", "Allow domain", "Deny"]
    assert [s.toString() for s in page.actions_by_decision["allow-domain"].shortcuts()] == ["M", "Shift+A"]
    select(page, ["menu@soft.test"])
    page.actions_by_decision["deny"].trigger()  # what the menu's item does
    qtbot.waitUntil(lambda: page.model.rowCount() == 0, timeout=TIMEOUT)


def test_live_additions_keep_the_selection_and_what_is_in_view(qtbot, gw, settings, opened):
    for i in range(60):
        gw.store.open_challenge(gw.alice_id, ALICE, f"old{i:02d}@soft.test", ttl=3600, subject=f"old {i}")
        time.sleep(0.002)  # distinct first-seen times: a stable order
    w = window(qtbot, gw, settings, width=1024)
    opened.append(w)
    page = w.pages["pending"]
    table = page.table
    qtbot.waitUntil(lambda: w.connection_state == "online", timeout=TIMEOUT)
    qtbot.waitUntil(lambda: table.verticalScrollBar().maximum() > 30, timeout=TIMEOUT)
    table.verticalScrollBar().setValue(30)  # scrolled down, half way
    qtbot.waitUntil(lambda: table.rowAt(0) >= 25, timeout=TIMEOUT)
    top_before = page.proxy.index(table.rowAt(0), 0).data(RecordRole).sender
    chosen = page.proxy.index(table.rowAt(0) + 1, 0).data(RecordRole).sender
    select(page, [chosen])
    for i in range(3):
        gw.store.open_challenge(gw.alice_id, ALICE, f"new{i}@soft.test", ttl=3600, subject="new")
    qtbot.waitUntil(lambda: page.model.rowCount() == 63, timeout=TIMEOUT)
    QApplication.processEvents()
    assert [r.sender for r in page.selected()] == [chosen]
    assert page.proxy.index(table.rowAt(0), 0).data(RecordRole).sender == top_before
    # the stream carries no history; the page fetches it for the newcomers
    row = page.model.row_of_sender("new0@soft.test")
    qtbot.waitUntil(lambda: page.model.record(row).history is not None, timeout=TIMEOUT)
    assert page.model.index(row, 1).data(SecondLineRole) == "First contact"
    # at the very top, the newest arrivals show
    table.scrollToTop()
    gw.store.open_challenge(gw.alice_id, ALICE, "newest@soft.test", ttl=3600, subject="newest")
    qtbot.waitUntil(lambda: page.model.rowCount() == 64, timeout=TIMEOUT)
    QApplication.processEvents()
    assert page.proxy.index(table.rowAt(0), 0).data(RecordRole).sender == "newest@soft.test"
    assert [r.sender for r in page.selected()] == [chosen]
    # a reload (F5, a reconnect) keeps the selection too
    page.loaded = False
    page.refresh()
    qtbot.waitUntil(lambda: page.loaded, timeout=TIMEOUT)
    assert [r.sender for r in page.selected()] == [chosen]


def test_after_a_decision_the_next_sender_is_selected_one_key_each(qtbot, gw, settings, opened):
    for s in ("n1@soft.test", "n2@soft.test", "n3@soft.test"):
        send(gw, s, f"N <{s}>".encode(), ip=STRANGER_IP)
        time.sleep(0.01)
    w = window(qtbot, gw, settings)
    opened.append(w)
    page = w.pages["pending"]
    page.table.setFocus()
    assert len(page.selected()) == 1  # the page opens with the top sender selected
    for left, key in ((2, Qt.Key.Key_D), (1, Qt.Key.Key_A), (0, Qt.Key.Key_D)):  # no selecting in between
        qtbot.keyClick(page.table, key)
        qtbot.waitUntil(lambda n=left: page.model.rowCount() == n, timeout=TIMEOUT)
        if left:  # generous: the decision's answer can queue behind calls still running from an earlier test
            qtbot.waitUntil(lambda: len(page.selected()) == 1, timeout=3 * TIMEOUT)
    api = GatewayClient(gw.http_url, gw.token)  # type: ignore[attr-defined]
    assert {"n1@soft.test", "n3@soft.test"} <= {e.entry for e in api.all_entries("block")}
    assert "n2@soft.test" in {e.entry for e in api.all_entries("allow")}
    api.close()


def test_a_sender_decided_elsewhere_hands_the_selection_to_the_next(qtbot, gw, settings, opened):
    """Another device (or this one, its answer still on the way) decides the selected sender: the stream
    takes the row away, and the next sender is selected at once, ready for the next key."""
    for s in ("e1@soft.test", "e2@soft.test", "e3@soft.test"):
        send(gw, s, f"E <{s}>".encode(), ip=STRANGER_IP)
        time.sleep(0.01)
    w = window(qtbot, gw, settings)
    opened.append(w)
    page = w.pages["pending"]
    qtbot.waitUntil(lambda: page.model.rowCount() == 3, timeout=TIMEOUT)
    [chosen] = page.selected()
    api = GatewayClient(gw.http_url, gw.token)  # type: ignore[attr-defined]
    try:
        api.decide_many([chosen.id], "deny")  # not through this window: only the stream tells it
    finally:
        api.close()
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: len(page.selected()) == 1, timeout=TIMEOUT)
    assert page.selected()[0].id != chosen.id
