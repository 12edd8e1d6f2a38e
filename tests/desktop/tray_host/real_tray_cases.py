"""With a real system tray (Xvfb + trayer), run only by tests/desktop/test_stay_running.py in a process of
its own (this file's name keeps a plain run from collecting it; run alone, it fails without the tray):
closing hides the window to the tray and says so once, the app keeps following the
gateway, a click on the notification balloon opens Pending on that sender, a click on the tray icon
brings the window back, and Quit in the tray's menu quits."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

from sendergate.desktop.pages.pending import PendingPage
from sendergate.desktop.stream import ONLINE
from tests.desktop.test_live import send_from_stranger

TIMEOUT = 15_000
STILL_RUNNING = "SenderGate is still running"


def shown(class_name: str) -> QWidget | None:
    """The visible top-level widget of this Qt class (the balloon, the embedded tray icon)."""
    return next((w for w in QApplication.topLevelWidgets()
                 if w.metaObject().className() == class_name and w.isVisible()), None)


def test_close_hides_to_the_tray_and_a_notification_click_opens_the_sender(qtbot, fresh_gateway, window_for):
    qtbot.waitUntil(QSystemTrayIcon.isSystemTrayAvailable, timeout=TIMEOUT)
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    pending = w.pages["pending"]
    assert isinstance(pending, PendingPage)
    qtbot.waitUntil(lambda: pending.loaded and w.connection_state == ONLINE, timeout=TIMEOUT)
    assert w.keep_running_action.isEnabled() and w.keep_running_action.isChecked()  # on by default with a tray
    qtbot.waitUntil(lambda: shown("QSystemTrayIconSys") is not None, timeout=TIMEOUT)  # embedded in trayer
    w.show_page("overview")

    w.close()
    assert not w.isVisible() and not w.stream._stop.is_set()  # hidden, still following the gateway
    assert [t for t, _ in w.tray.notified] == [STILL_RUNNING]
    qtbot.waitUntil(lambda: shown("QBalloonTip") is not None, timeout=TIMEOUT)

    icon = shown("QSystemTrayIconSys")
    qtbot.mouseClick(icon, Qt.MouseButton.LeftButton, pos=icon.rect().center())  # the tray icon, clicked
    qtbot.waitUntil(w.isVisible, timeout=TIMEOUT)
    w.close()
    assert not w.isVisible()
    assert [t for t, _ in w.tray.notified].count(STILL_RUNNING) == 1  # told once only

    send_from_stranger(g, "late.night@stranger.example", "While you were away")
    qtbot.waitUntil(lambda: pending.model.row_of_sender("late.night@stranger.example") >= 0, timeout=TIMEOUT)
    assert w.tray.notified[-1] == ("New pending sender", "late.night@stranger.example\nWhile you were away")
    qtbot.waitUntil(lambda: shown("QBalloonTip") is not None, timeout=TIMEOUT)
    qtbot.mouseClick(shown("QBalloonTip"), Qt.MouseButton.LeftButton, pos=QPoint(20, 20))  # the balloon, clicked
    qtbot.waitUntil(w.isVisible, timeout=TIMEOUT)
    assert w.current_page() is pending
    assert [c.sender for c in pending.selected()] == ["late.night@stranger.example"]

    quit_item = next(a for a in w.tray.icon.contextMenu().actions() if a.text() == "Quit")
    quit_item.trigger()  # the tray menu's Quit: quits even though closing only hides
    assert not w.isVisible() and w.stream._stop.is_set()


def test_started_at_login_it_opens_in_the_tray_without_a_window(qtbot, fresh_gateway, tmp_path, monkeypatch):
    """What Start at login registers (--autostart): the app runs, in the tray, its window hidden, told nothing."""
    from PySide6.QtCore import QTimer

    from sendergate.desktop import app
    from sendergate.desktop.main_window import MainWindow

    qtbot.waitUntil(QSystemTrayIcon.isSystemTrayAvailable, timeout=TIMEOUT)
    g, seeded = fresh_gateway
    monkeypatch.setenv("SENDERGATE_TOKEN", seeded.token)
    seen: dict[str, object] = {}

    def ours() -> MainWindow | None:
        return next((w for w in QApplication.topLevelWidgets()
                     if isinstance(w, MainWindow) and w.client.base_url == g.http_url), None)

    def look() -> None:
        w = ours()
        if w is None or w.connection_state != ONLINE:
            return
        seen.update(window=w.isVisible(), icon=w.tray.icon.isVisible(), told=list(w.tray.notified))
        timer.stop()
        w.quit_app()

    timer = QTimer()
    timer.timeout.connect(look)
    timer.start(100)
    failsafe = QTimer(singleShot=True, interval=30_000)  # never hang the suite
    failsafe.timeout.connect(QApplication.quit)
    failsafe.start()
    code = app.main(["--gateway", g.http_url, "--autostart", "--settings-file", str(tmp_path / "settings.ini")])
    timer.stop()
    failsafe.stop()
    assert code == 0 and seen == {"window": False, "icon": True, "told": []}, seen


def test_the_demo_ends_when_its_window_is_closed_even_with_a_tray(qtbot, fresh_gateway):
    """`sendergate demo` runs until its window is closed: there it must not hide to the tray."""
    from PySide6.QtCore import QTimer

    from sendergate.desktop import app
    from sendergate.desktop.main_window import MainWindow

    qtbot.waitUntil(QSystemTrayIcon.isSystemTrayAvailable, timeout=TIMEOUT)
    g, seeded = fresh_gateway
    closed: list[bool] = []

    def close_it() -> None:
        w = next(w for w in QApplication.topLevelWidgets()
                 if isinstance(w, MainWindow) and w.client.base_url == g.http_url)
        closed.append(w.close())

    fired: list[bool] = []
    failsafe = QTimer(singleShot=True, interval=30_000)  # never hang the suite
    failsafe.timeout.connect(lambda: (fired.append(True), QApplication.quit()))
    failsafe.start()
    assert app.run_connected(g.http_url, seeded.token, on_running=close_it) == 0
    failsafe.stop()
    assert closed == [True] and not fired  # closing the window ended the app, not the failsafe


def test_with_keep_running_turned_off_closing_quits_even_with_a_tray(qtbot, seeded_gateway, window_for):
    qtbot.waitUntil(QSystemTrayIcon.isSystemTrayAvailable, timeout=TIMEOUT)
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    w.keep_running_action.trigger()  # File → Keep running in the tray…: off
    assert w.settings.keep_running is False
    assert w.close()  # accepted: the window really closes
    assert not w.isVisible() and w.stream._stop.is_set() and not w.tray.icon.isVisible()
    assert STILL_RUNNING not in [t for t, _ in w.tray.notified]
