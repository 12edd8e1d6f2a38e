"""The system-tray icon: the pending count, and a native notification for each new challenge.

Challenges that arrive while the last notification is still up are told together in one ("3 new
pending senders"); clicking it asks for exactly those challenges (`open_challenges`), newest last.
"""

from __future__ import annotations

import re
import time

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from .i18n import tr
from .icons import badge_icon

MESSAGE_MS = 8000  # how long a notification stays up; later challenges within it join its batch
# Controls (line breaks among them), U+2028/2029 and bidi overrides: a sender's text cannot add lines or
# reorder what the notification shows
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def plain(value: str, limit: int = 120) -> str:
    """A sender's address or subject as notification text. Freedesktop notification servers may read
    the body as markup (links, images): angle brackets become look-alikes so no tag survives."""
    out = _UNSAFE.sub(" ", value).replace("<", "\u2039").replace(">", "\u203a").strip()
    return out if len(out) <= limit else out[: limit - 1] + "…"


class Tray(QObject):
    show_window = Signal()
    quit_requested = Signal()
    open_challenges = Signal(list)  # challenge ids of the clicked notification, oldest first

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pending = 0
        self.offline = False
        self.notifications_enabled = True
        self.notified: list[tuple[str, str]] = []  # (title, text) of every notification raised; tests read it
        self.batch: list[tuple[int, str]] = []  # (challenge id, sender) told by the notification now up
        self._batch_until = 0.0
        self.icon = QSystemTrayIcon(badge_icon(0), self)
        menu = QMenu()
        menu.addAction(tr("Show SenderGate"), self.show_window.emit)
        menu.addSeparator()
        menu.addAction(tr("Quit"), self.quit_requested.emit)
        self._menu = menu
        self.icon.setContextMenu(menu)
        self.icon.activated.connect(self._activated)
        self.icon.messageClicked.connect(self.message_clicked)
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

    def notify_challenge(self, sender: str, subject: str, challenge_id: int | None = None) -> None:
        if not self.notifications_enabled:
            return
        sender, subject = plain(sender), plain(subject)
        now = time.monotonic()
        if now > self._batch_until:
            self.batch = []
        if challenge_id is not None:
            self.batch.append((challenge_id, sender))
        if len(self.batch) > 1:
            title = tr("%n new pending sender(s)", None, len(self.batch))
            senders = [s for _, s in reversed(self.batch)]  # newest first, as Pending lists them
            text = "\n".join(senders[:4]) + ("\n…" if len(senders) > 4 else "")
        else:
            title = tr("New pending sender")
            text = f"{sender}\n{subject}" if subject else sender
        self.notified.append((title, text))
        self._batch_until = now + MESSAGE_MS / 1000
        self.show_message(title, text)

    def show_message(self, title: str, text: str) -> None:
        if QSystemTrayIcon.supportsMessages() and self.icon.isVisible():
            self.icon.showMessage(title, text, QSystemTrayIcon.MessageIcon.Information, MESSAGE_MS)

    def tell_still_running(self) -> None:
        """Once, the first time the window hides: where the app went."""
        self.batch, self._batch_until = [], 0.0  # a click on this message opens the window, no challenge
        title, text = tr("SenderGate is still running"), tr(
            "It keeps watching for new senders here in the tray. To quit, choose Quit from this icon's menu.")
        self.notified.append((title, text))
        self.show_message(title, text)

    def message_clicked(self) -> None:
        """The notification was clicked: its challenges (none for other messages) and the window."""
        ids = [i for i, _ in self.batch]
        self.batch, self._batch_until = [], 0.0
        if ids:
            self.open_challenges.emit(ids)
        else:
            self.show_window.emit()

    def hide(self) -> None:
        self.icon.hide()
