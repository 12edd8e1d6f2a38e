"""The newcomer measurement of issue 16: clicks, pastes and typed characters from "app installed" to "first
pending sender approved", driven through the real setup dialog and main window against a real gateway.

Before (main at 13b7161): the administrator hands over the gateway's address and an API token
(`sendergate users add`); the newcomer fills in both, tests the connection, saves. The setup's token path
today is the same widgets (address, token, Test connection, Save), so it is driven here as "before".
Now: the administrator hands over one pairing link (`sendergate users invite`); pasting it fills in the
address too; Pair, Save. Then, in both: Pending, the sender, Approve. The numbers are printed and
asserted, so resources/docs/desktop-app.md's table is checked by this test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWidget

from sendergate.desktop.api_client import GatewayClient
from sendergate.desktop.secrets import SecretStore
from sendergate.desktop.setup import SetupDialog
from tests.desktop.conftest import open_main_window
from tests.support.gateway import GatewayProcess, write_config

TIMEOUT = 10_000


@pytest.fixture
def gateway() -> Iterator[GatewayProcess]:
    """An empty gateway whose public URL is itself, so its pairing links point here."""
    g = GatewayProcess()
    g.sections["http"]["public_url"] = g.http_url
    write_config(g.config_path, g.sections)
    g.start()
    try:
        yield g
    finally:
        g.close()


@dataclass
class Count:
    clicks: int = 0
    pastes: int = 0
    typed: int = 0  # characters the newcomer would type if they typed instead of pasting

    def click(self, qtbot: object, widget: QWidget) -> None:
        self.clicks += 1
        qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)  # type: ignore[attr-defined]

    def paste(self, qtbot: object, widget: QWidget, text: str) -> None:
        """Into the focused field, with Ctrl+V from the clipboard (what the admin's message gave)."""
        self.pastes += 1
        self.typed += len(text)
        QApplication.clipboard().setText(text)
        qtbot.keyClick(widget, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)  # type: ignore[attr-defined]


def approve_first_pending(qtbot: object, count: Count, token: str, url: str, settings: object,
                          g: object, challenge_id: int) -> None:
    w = open_main_window(qtbot, url, token, settings)
    try:
        row = w.nav.visualItemRect(w.nav.item(2))  # Pending
        count.clicks += 1
        qtbot.mouseClick(w.nav.viewport(), Qt.MouseButton.LeftButton, pos=row.center())  # type: ignore[attr-defined]
        page = w.current_page()
        assert page.key == "pending"
        qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=TIMEOUT)  # type: ignore[attr-defined]
        rect = page.table.visualRect(page.table.model().index(0, 0))
        count.clicks += 1
        qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # type: ignore[attr-defined]
        count.click(qtbot, page.approve_button)
        qtbot.waitUntil(lambda: g.store.get_challenge(None, challenge_id)["status"] == "approved",  # type: ignore[attr-defined]
                        timeout=TIMEOUT)
    finally:
        from sendergate.desktop import operations
        w.stream.stop()
        w.close()
        qtbot.waitUntil(lambda: operations.running() == 0, timeout=TIMEOUT)  # type: ignore[attr-defined]


def newcomer(g: object, address: str) -> tuple[int, str, int]:
    user, token = g.store.add_user(address)  # type: ignore[attr-defined]
    challenge_id, _ = g.store.open_challenge(user.id, address, "stranger@far.example",  # type: ignore[attr-defined]
                                             ttl=3600, subject="hello")
    return user.id, token, challenge_id


def test_before_address_and_token(qtbot, gateway, settings, capsys):
    g = gateway
    _, token, challenge_id = newcomer(g, "before@example.org")
    c = Count()
    d = SetupDialog(settings, SecretStore())  # first run: nothing filled in
    qtbot.addWidget(d)
    d.show()
    c.click(qtbot, d.url_edit)
    c.paste(qtbot, d.url_edit, g.http_url)
    c.click(qtbot, d.token_edit)
    c.paste(qtbot, d.token_edit, token)
    with qtbot.waitSignal(d.tested, timeout=TIMEOUT):
        c.click(qtbot, d.test_button)
    c.click(qtbot, d.save_button)
    assert d.result() == SetupDialog.DialogCode.Accepted
    approve_first_pending(qtbot, c, d.connection.token, d.connection.url, settings, g, challenge_id)
    with capsys.disabled():
        print(f"\nbefore: {c}")
    assert (c.clicks, c.pastes) == (7, 2)
    assert c.typed == len(g.http_url) + len(token)


def test_now_pairing_link(qtbot, gateway, settings, capsys):
    g = gateway
    user_id, _, challenge_id = newcomer(g, "now@example.org")
    admin = GatewayClient(g.http_url, g.store.add_user("owner@example.org", admin=True)[1])
    link = admin._call("POST", f"/users/{user_id}/pairing-code")["link"]
    admin.close()
    c = Count()
    d = SetupDialog(settings, SecretStore())
    qtbot.addWidget(d)
    d.show()
    c.click(qtbot, d.pair_edit)
    c.paste(qtbot, d.pair_edit, link)
    assert d.url_edit.text() == g.http_url  # the link named the gateway
    with qtbot.waitSignal(d.tested, timeout=TIMEOUT):
        c.click(qtbot, d.pair_button)
    c.click(qtbot, d.save_button)
    assert d.result() == SetupDialog.DialogCode.Accepted
    approve_first_pending(qtbot, c, d.connection.token, d.connection.url, settings, g, challenge_id)
    with capsys.disabled():
        print(f"\nnow: {c}; link {link!r}")
    assert (c.clicks, c.pastes) == (6, 1)
    assert c.typed == len(link)
