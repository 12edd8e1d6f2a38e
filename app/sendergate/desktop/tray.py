"""The system-tray icon: the pending count, and a native notification for each new challenge."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from .i18n import tr
from .icons import badge_icon


class Tray(QObject):
    show_window = Signal()
    quit_requested = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pending = 0
        self.offline = False
        self.notifications_enabled = True
        self.notified: list[tuple[str, str]] = []  # (title, text) of every notification raised; tests read it
        self.icon = QSystemTrayIcon(badge_icon(0), self)
        menu = QMenu()
        menu.addAction(tr("Show SenderGate"), self.show_window.emit)
        menu.addSeparator()
        menu.addAction(tr("Quit"), self.quit_requested.emit)
        self._menu = menu
        self.icon.setContextMenu(menu)
        self.icon.activated.connect(self._activated)
        self.icon.messageClicked.connect(self.show_window.emit)
        self._update()
        # without a tray host (some Linux desktops, Xvfb) show() does nothing; the window still works
        self.icon.show()

    @staticmethod
    def available() -> bool:
        return QSystemTrayIcon.isSystemTrayAvailable()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.show_window.emit()

    def _update(self) -> None:
        self.icon.setIcon(badge_icon(self.pending, self.offline))
        if self.offline:
            tip = tr("SenderGate: offline — retrying")
        elif self.pending:
            tip = tr("SenderGate: %n pending sender(s)", None, self.pending)
        else:
            tip = tr("SenderGate: nothing pending")
        self.icon.setToolTip(tip)

    def set_pending(self, count: int) -> None:
        if count != self.pending:
            self.pending = count
            self._update()

    def set_offline(self, offline: bool) -> None:
        if offline != self.offline:
            self.offline = offline
            self._update()

    def notify_challenge(self, sender: str, subject: str) -> None:
        if not self.notifications_enabled:
            return
        title = tr("New pending sender")
        text = f"{sender}\n{subject}" if subject else sender
        self.notified.append((title, text))
        if QSystemTrayIcon.supportsMessages() and self.icon.isVisible():
            self.icon.showMessage(title, text, QSystemTrayIcon.MessageIcon.Information, 8000)

    def hide(self) -> None:
        self.icon.hide()
