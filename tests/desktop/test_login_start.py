"""Started at login (`--autostart`): the window stays out of the way while the desktop's tray comes up.

A tray host cannot run here (offscreen Qt, or Xvfb without a panel), so `Tray.available` is replaced by a
stand-in that turns true when the test says: a panel that starts after the app, one that never does.
Everything else is real: the main window on a real gateway, its tray object, Qt's timers."""

from __future__ import annotations

import time

import pytest
from PySide6.QtWidgets import QApplication

from sendergate.desktop import app as desktop_app
from sendergate.desktop.api_client import GatewayClient
from sendergate.desktop.tray import Tray


class Panel:
    """The desktop's tray host: there from `after` seconds on (None: never)."""

    def __init__(self, after: float | None) -> None:
        self.start = time.monotonic()
        self.after = after

    def available(self) -> bool:
        return self.after is not None and time.monotonic() - self.start >= self.after


@pytest.fixture
def login_window(qtbot, seeded_gateway, settings, monkeypatch):
    made = []

    def make(panel: Panel, keep_running: bool = True):
        monkeypatch.setattr(Tray, "available", staticmethod(panel.available))
        settings.keep_running = keep_running
        g, seeded = seeded_gateway
        window = desktop_app.open_window(GatewayClient(g.http_url, seeded.token, timeout=5), settings, show=False)
        qtbot.addWidget(window)
        made.append(window)
        return window

    yield make
    for w in made:
        w.stream.stop()
    QApplication.setQuitOnLastWindowClosed(True)


def watch_visible(qtbot, window, seconds: float) -> bool:
    """Whether the window was ever visible in the next `seconds` (checked every 20 ms)."""
    seen = False
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen = seen or window.isVisible()
        qtbot.wait(20)
    return seen


def test_a_tray_that_comes_up_late_gets_the_app_and_the_window_never_shows(qtbot, login_window) -> None:
    window = login_window(Panel(after=1.0))
    desktop_app.start_at_login(window, wait=5.0, every=0.1)
    assert not watch_visible(qtbot, window, 2.0), "the window flashed up before the tray came"
    assert not QApplication.quitOnLastWindowClosed()  # hidden to the tray: a closing dialog does not quit
    window.tray.show_window.emit()  # the tray's "Show SenderGate"
    qtbot.waitUntil(window.isVisible, timeout=2000)


def test_no_tray_at_all_shows_the_window_after_the_wait(qtbot, login_window) -> None:
    window = login_window(Panel(after=None))
    started = time.monotonic()
    desktop_app.start_at_login(window, wait=1.0, every=0.1)
    assert not window.isVisible()
    qtbot.waitUntil(window.isVisible, timeout=5000)
    assert time.monotonic() - started >= 0.9  # it waited for the panel first
    assert QApplication.quitOnLastWindowClosed()  # shown for good: closing it ends the app as usual


def test_someone_who_does_not_keep_it_running_gets_the_window_at_once(qtbot, login_window) -> None:
    window = login_window(Panel(after=0.0), keep_running=False)
    desktop_app.start_at_login(window, wait=5.0)
    assert window.isVisible()


def test_a_tray_ready_at_login_hides_at_once(qtbot, login_window) -> None:
    window = login_window(Panel(after=0.0))
    desktop_app.start_at_login(window, wait=5.0)
    assert not window.isVisible() and not QApplication.quitOnLastWindowClosed()


def test_with_a_real_tray_that_comes_late():
    """tray_host/late_tray_cases.py under Xvfb, trayer started a second after the app: the real
    isSystemTrayAvailable() turns true late, and the window never shows."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.support import trayhost

    assert not trayhost.missing(), f"no tray host: {trayhost.missing()}"  # the test command installs it
    with trayhost.tray_desktop(tray=False) as env:
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                              "tests/desktop/tray_host/late_tray_cases.py"],
                             cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
                             timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]
