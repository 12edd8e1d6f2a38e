"""A login start on a desktop whose tray comes up after the app (Xvfb; trayer started by the test a second
later), run only by tests/desktop/test_login_start.py in a process of its own: the window never shows, and
once the real tray is there the app is in it."""

from __future__ import annotations

import os
import subprocess
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from sendergate.desktop import app as desktop_app
from sendergate.desktop.api_client import GatewayClient
from tests.support.trayhost import TRAYER


def test_a_login_start_waits_for_a_tray_that_comes_late(qtbot, seeded_gateway, settings):
    assert not QSystemTrayIcon.isSystemTrayAvailable(), "this display must start without a tray"
    g, seeded = seeded_gateway
    settings.keep_running = True
    window = desktop_app.open_window(GatewayClient(g.http_url, seeded.token, timeout=5), settings, show=False)
    qtbot.addWidget(window)
    trayer: list[subprocess.Popen[bytes]] = []
    QTimer.singleShot(1000, lambda: trayer.append(subprocess.Popen(TRAYER, env=dict(os.environ),
                                                                   stdout=subprocess.DEVNULL,
                                                                   stderr=subprocess.DEVNULL)))
    try:
        desktop_app.start_at_login(window, wait=20.0, every=0.1)
        seen = False
        end = time.monotonic() + 8
        while time.monotonic() < end and not (QSystemTrayIcon.isSystemTrayAvailable() and trayer):
            seen = seen or window.isVisible()
            qtbot.wait(20)
        assert trayer and QSystemTrayIcon.isSystemTrayAvailable(), "trayer did not come up"
        for _ in range(50):  # the next check (every 0.1 s) hides it to the tray
            seen = seen or window.isVisible()
            qtbot.wait(20)
        assert not seen, "the window showed before the tray came"
        assert not QApplication.quitOnLastWindowClosed()  # in the tray: a closing dialog does not quit
    finally:
        window.stream.stop()
        QApplication.setQuitOnLastWindowClosed(True)
        for t in trayer:
            t.terminate()
            t.wait(10)
