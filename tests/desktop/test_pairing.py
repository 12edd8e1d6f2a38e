"""Pairing and the owner's view in the desktop app against a real gateway (issue 16 items 1, 2): the setup
with a code and with a link, the Devices page and revoking, the Staff page, the Whose selector.
Screenshots (offscreen rendering) go to /tmp/pairing/."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from PySide6.QtCore import Qt

from sendergate.desktop.api_client import ROW_RECIPIENT, GatewayClient, Unauthorized
from sendergate.desktop.secrets import SERVICE, TOKEN, SecretStore
from sendergate.desktop.setup import SetupDialog
from sendergate.policy.decide import EventRecord, Verdict
from tests.desktop.conftest import open_main_window
from tests.desktop.seed import Seeded, seed
from tests.support.gateway import GatewayProcess, write_config

SHOTS = Path(os.environ.get("SENDERGATE_SHOTS", "/tmp/pairing"))


@pytest.fixture(scope="module")
def office() -> Iterator[tuple[GatewayProcess, Seeded, str]]:
    """A gateway whose public URL is itself (so its links can be followed here): alice with pending senders,
    bob with one, and an admin (whose token is returned)."""
    g = GatewayProcess()
    g.sections["http"]["public_url"] = g.http_url
    write_config(g.config_path, g.sections)
    seeded = seed(g.store, events=60, pending=3)
    bob, _ = g.store.add_user("bob@example.org", name="Bob Builder")
    g.store.add_events([EventRecord(ts=datetime.now(timezone.utc), verdict=Verdict.DELIVERED, reason="test",
                                    sender=f"pal{i}@friend.example", recipient="bob@example.org", user_id=bob.id,
                                    subject=f"bob's mail {i}") for i in range(3)])
    g.store.add_alias("bob@example.org", "sales@example.org")
    g.store.open_challenge(bob.id, "bob@example.org", "stranger@far.example", ttl=3600, subject="for bob only")
    _, admin_token = g.store.add_user("owner@example.org", name="Olga Owner", admin=True)
    g.start()
    try:
        yield g, seeded, admin_token
    finally:
        g.close()


def _dialog(qtbot, settings, url: str = "") -> SetupDialog:
    d = SetupDialog(settings, SecretStore(), url=url)
    qtbot.addWidget(d)
    d.show()
    return d


def _pair_and_wait(qtbot, d: SetupDialog) -> tuple[int, str]:
    with qtbot.waitSignal(d.tested, timeout=10_000) as blocker:
        qtbot.mouseClick(d.pair_button, Qt.MouseButton.LeftButton)
    return tuple(blocker.args)  # type: ignore[return-value]


def _devices(g: GatewayProcess, user_id: int) -> list[str]:
    return [d.name for d in g.store.list_devices(user_id)]


def test_setup_with_a_code(qtbot, office, settings, memory_keyring) -> None:
    g, seeded, _ = office
    code, _ = g.store.create_pairing_code(seeded.user_id)
    d = _dialog(qtbot, settings, url=g.http_url)
    assert d.device_edit.text()  # the host name, editable
    d.device_edit.setText("alice-laptop")
    assert not d.pair_button.isEnabled()
    qtbot.keyClicks(d.pair_edit, code.lower())  # typed as a person types it
    SHOTS.mkdir(parents=True, exist_ok=True)
    d.grab().save(str(SHOTS / "pairing-step.png"))
    ok, message = _pair_and_wait(qtbot, d)
    assert ok and "alice-laptop" in message and seeded.address in message, message
    assert d.save_button.isEnabled() and d.pair_edit.text() == ""
    d.grab().save(str(SHOTS / "pairing-done.png"))
    qtbot.mouseClick(d.save_button, Qt.MouseButton.LeftButton)
    assert d.result() == SetupDialog.DialogCode.Accepted
    token = memory_keyring.secrets[(SERVICE, TOKEN)]
    assert token == d.connection.token and token != seeded.token
    assert GatewayClient(g.http_url, token).me().addresses[0] == seeded.address
    assert "alice-laptop" in _devices(g, seeded.user_id)
    # the same code a second time: a clear refusal, nothing paired
    d2 = _dialog(qtbot, settings, url=g.http_url)
    d2.pair_edit.setText(code)
    ok, message = _pair_and_wait(qtbot, d2)
    assert not ok and "unknown, used or expired" in message and not d2.save_button.isEnabled()


@pytest.mark.parametrize("form", ["https", "app"])
def test_setup_with_a_link_fills_in_the_gateway(qtbot, office, settings, form) -> None:
    g, seeded, admin_token = office
    r = httpx.post(f"{g.http_url}/api/v1/users/{seeded.user_id}/pairing-code",
                   headers={"Authorization": f"Bearer {admin_token}"}, timeout=10)
    link = r.json()["link" if form == "https" else "app_link"]
    d = _dialog(qtbot, settings)
    name = f"desk-{form}-{uuid.uuid4().hex[:4]}"
    d.device_edit.setText(name)
    d.pair_edit.setText(link)  # pasted whole
    assert d.url_edit.text() == g.http_url
    ok, message = _pair_and_wait(qtbot, d)
    assert ok, message
    assert name in _devices(g, seeded.user_id)


def test_devices_page_marks_this_one_and_revokes_another(qtbot, office, settings) -> None:
    g, seeded, _ = office
    code, _ = g.store.create_pairing_code(seeded.user_id)
    r = httpx.post(f"{g.http_url}/api/v1/pair", json={"code": code, "device": "lost phone"}, timeout=10)
    lost_token = r.json()["token"]
    w = open_main_window(qtbot, g.http_url, seeded.token, settings)
    page = w.show_page("devices")
    qtbot.waitUntil(lambda: page.loaded and page.table.rowCount() >= 2, timeout=10_000)
    names = [page.table.item(i, 0).text() for i in range(page.table.rowCount())]
    assert "script (this computer)" in names
    page.confirm = lambda *_: True
    row = next(i for i, n in enumerate(names) if n == "lost phone")
    page.table.selectRow(names.index("script (this computer)"))
    assert not page.revoke_button.isEnabled()  # not this computer: that is File → Connection
    page.table.selectRow(row)
    assert page.revoke_button.isEnabled()
    SHOTS.mkdir(parents=True, exist_ok=True)
    w.grab().save(str(SHOTS / "devices.png"))
    qtbot.mouseClick(page.revoke_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Revoked" in w.messages.text(), timeout=10_000)
    qtbot.waitUntil(lambda: "lost phone" not in [page.table.item(i, 0).text() for i in range(page.table.rowCount())],
                    timeout=10_000)
    # the revoked device's next call is refused, and the app there says why and what to do
    lost = GatewayClient(g.http_url, lost_token)
    with pytest.raises(Unauthorized, match="revoked; pair it again"):
        lost.me()
    w.stream.stop()
    w.close()
    other = open_main_window(qtbot, g.http_url, lost_token, settings)
    qtbot.waitUntil(lambda: "revoked; pair it again" in other.messages.text(), timeout=10_000)
    other.stream.stop()
    other.close()


def test_staff_page_and_adding_a_person(qtbot, office, settings) -> None:
    g, seeded, admin_token = office
    w = open_main_window(qtbot, g.http_url, admin_token, settings)
    assert "staff" not in w.pages  # until the app knows the user is an admin
    w.set_me(w.client.me())
    assert w.nav.item(w.nav.count() - 1).text() == "Staff"
    page = w.show_page("staff")
    qtbot.waitUntil(lambda: page.loaded and page.table.rowCount() >= 3, timeout=10_000)
    rows = {page.table.item(i, 1).text(): i for i in range(page.table.rowCount())}
    assert page.table.item(rows["bob@example.org"], 2).text() == "sales@example.org"
    assert not page.table.isColumnHidden(4)  # the gateway has mailbox modes: each person's is shown
    assert page.table.item(rows["bob@example.org"], 4).text() == "Enforce"  # the gateway's default_mode, by its name
    page.table.selectRow(rows[seeded.address])
    assert page.devices.rowCount() >= 1
    new = f"carol-{uuid.uuid4().hex[:4]}@example.org"
    page.ask_person = lambda: (new, "Carol")
    qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.pairing.isVisible() and page.pairing.code.text() != "", timeout=10_000)
    code = page.pairing.code.text()
    assert page.pairing.link.text() == f"{g.http_url}/pair#{code}"
    qtbot.waitUntil(lambda: new in [page.table.item(i, 1).text() for i in range(page.table.rowCount())],
                    timeout=10_000)
    w.resize(1100, 720)
    SHOTS.mkdir(parents=True, exist_ok=True)
    w.grab().save(str(SHOTS / "staff.png"))
    r = httpx.post(f"{g.http_url}/api/v1/pair", json={"code": code, "device": "carol-pc"}, timeout=10)
    assert r.status_code == 201 and r.json()["user"]["addresses"] == [new]
    w.stream.stop()
    w.close()


def test_whose_selector_shows_one_persons_pending(qtbot, office, settings) -> None:
    g, seeded, admin_token = office
    w = open_main_window(qtbot, g.http_url, admin_token, settings)
    w.set_me(w.client.me())
    pending = w.show_page("pending")
    assert w.whose_bar.isVisible()
    qtbot.waitUntil(lambda: w.whose.count() >= 4, timeout=10_000)
    qtbot.waitUntil(lambda: pending.model.rowCount() >= len(seeded.pending) + 1, timeout=10_000)  # everyone's
    bob = next(i for i in range(w.whose.count()) if "bob@example.org" in w.whose.itemText(i))
    w.whose.setCurrentIndex(bob)
    w.whose.activated.emit(bob)
    qtbot.waitUntil(lambda: pending.model.rowCount() == 1, timeout=10_000)
    w.grab().save(str(SHOTS / "whose.png"))
    activity = w.show_page("activity")
    assert w.whose_bar.isVisible()
    qtbot.waitUntil(lambda: activity.model.rowCount() == 3, timeout=10_000)  # bob's three, no one else's
    assert {activity.model.row_at(i)[ROW_RECIPIENT] for i in range(3)} == {"bob@example.org"}
    everyone = w.whose.findData(None)
    w.whose.setCurrentIndex(everyone)
    w.whose.activated.emit(everyone)
    qtbot.waitUntil(lambda: activity.model.rowCount() > 3, timeout=10_000)
    w.show_page("overview")
    assert not w.whose_bar.isVisible()  # only Pending and Activity have it
    w.stream.stop()
    w.close()


def test_a_user_has_no_staff_page_or_whose(qtbot, office, settings) -> None:
    g, seeded, _ = office
    w = open_main_window(qtbot, g.http_url, seeded.token, settings)
    w.set_me(w.client.me())
    assert "staff" not in w.pages
    w.show_page("pending")
    assert not w.whose_bar.isVisible()
    w.stream.stop()
    w.close()
