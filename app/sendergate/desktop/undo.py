"""Undo (issue 17 item 2): every decision and list change a page makes can be taken back, by the toast's
Undo button (shown ~10 s at the bottom of the window), by Ctrl+Z or by Edit > Undo, for a few minutes.

The reverse is done by the gateway (POST …/reopen, …/withdraw, …/restore), which keeps what the action
changed and refuses after its own window (five minutes), so the app never rebuilds state from what it
shows. A page calls `offer(self, label, reverse, after)` when an action is done; `reverse` runs off the
GUI thread like every network call; `after` (on the GUI thread) refreshes what the page shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

from .api_client import ApiError, GatewayClient, Unauthorized, Unreachable
from .i18n import tr
from .operations import Operation

TOAST_MS = 10_000  # how long the toast offers Undo
WINDOW = 270.0  # seconds Ctrl+Z still undoes an action: inside the gateway's five minutes, with room for a slow call


@dataclass
class UndoAction:
    label: str  # what was done, as the toast says it: "Approved 3 senders"
    reverse: Callable[[], list[str]]  # off the GUI thread: undo it; returns what could not be undone
    after: Callable[[], object] | None = None  # on the GUI thread, once undone: refresh what shows
    at: float = field(default_factory=time.monotonic)

    def fresh(self, now: float | None = None) -> bool:
        return (now if now is not None else time.monotonic()) - self.at < WINDOW


class UndoStack(QObject):
    """The window's undoable actions, newest last; each can be undone once, while fresh."""

    changed = Signal()  # what Ctrl+Z would undo changed (Edit menu text)
    pushed = Signal(object)  # a new action: the toast shows it
    finished = Signal(str, str)  # level ('info' or 'error'), message: an undo came back

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.actions: list[UndoAction] = []
        self.busy = 0  # undos in flight (tests wait for 0)

    def push(self, action: UndoAction) -> None:
        self.actions = [a for a in self.actions if a.fresh()][-49:] + [action]
        self.pushed.emit(action)
        self.changed.emit()

    def latest(self) -> UndoAction | None:
        now = time.monotonic()
        return next((a for a in reversed(self.actions) if a.fresh(now)), None)

    def undo(self, action: UndoAction | None = None) -> bool:
        """Undo `action` (default: the newest still fresh). False when there is nothing (left) to undo."""
        action = action or self.latest()
        if action is None or action not in self.actions or not action.fresh():
            return False
        self.actions.remove(action)
        self.changed.emit()
        self.busy += 1

        def done(failed: list[str]) -> None:
            self.busy -= 1
            if action.after is not None:
                action.after()
            if failed:
                self.finished.emit("error", tr("Could not undo “%1”: %2").replace("%1", action.label)
                                   .replace("%2", failed[0]))
            else:
                self.finished.emit("info", tr("Undone: %1").replace("%1", action.label))

        def failure(exc: ApiError) -> None:
            done([str(exc)])

        Operation(self, action.reverse, done).failure(failure).run()
        return True


def stack_of(widget: QWidget) -> UndoStack | None:
    stack = getattr(widget.window(), "undo_stack", None)
    return stack if isinstance(stack, UndoStack) else None


def offer(widget: QWidget, label: str, reverse: Callable[[], list[str]],
          after: Callable[[], object] | None = None) -> None:
    """A page's action is done: offer its undo (toast, Ctrl+Z, Edit > Undo). Without a main window, nothing."""
    stack = stack_of(widget)
    if stack is not None:
        stack.push(UndoAction(label, reverse, after))


def each(calls: Iterable[Callable[[], object]]) -> list[str]:
    """Run every reverse call; the reasons of those the gateway refused (it says why), the rest done.
    Unreachable or a refused token stop at once: nothing further could succeed."""
    failed: list[str] = []
    for call in calls:
        try:
            call()
        except (Unauthorized, Unreachable):
            raise
        except ApiError as exc:
            failed.append(str(exc))
    return failed


# -- the reverses, one per kind of action -----------------------------------------------------------
def reopen(client: GatewayClient, challenge_ids: list[int]) -> Callable[[], list[str]]:
    """Undo approve / deny / allow-domain: the challenges are pending again (one call for all of them)."""
    return lambda: client.reopen_many(challenge_ids)


def withdraw(client: GatewayClient, action: str, entry_ids: list[int]) -> Callable[[], list[str]]:
    """Undo an allow or block added here: the entry goes, and an entry it replaced comes back."""
    return lambda: each(partial(client.withdraw_entry, action, i) for i in entry_ids)


def restore(client: GatewayClient, action: str, entry_ids: list[int]) -> Callable[[], list[str]]:
    """Undo a removal: the entries come back as they were (note, expiry, source)."""
    return lambda: each(partial(client.restore_entry, action, i) for i in entry_ids)


class UndoToast(QFrame):
    """"Approved 3 senders — Undo" at the bottom of the window for ~10 s. Non-modal and never takes the
    focus (keyboard triage goes on); Tab reaches its button, Ctrl+Z does the same, and a screen reader is
    told the text when it appears."""

    def __init__(self, stack: UndoStack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("undoToast")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.stack = stack
        self.action: UndoAction | None = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        self.label = QLabel()
        self.label.setObjectName("undoText")
        layout.addWidget(self.label, 1)
        self.button = QPushButton(tr("Undo"))
        self.button.setObjectName("undoButton")
        self.button.setToolTip(tr("Undo this (Ctrl+Z)"))
        self.button.setFocusPolicy(Qt.FocusPolicy.TabFocus)  # reachable by Tab; a click does not move focus
        self.button.clicked.connect(self._undo)
        layout.addWidget(self.button)
        close = QToolButton()
        close.setText("×")
        close.setAccessibleName(tr("Dismiss"))
        close.setToolTip(tr("Dismiss"))
        close.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        close.clicked.connect(self.dismiss)
        layout.addWidget(close)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.dismiss)
        stack.pushed.connect(self.show_action)
        stack.changed.connect(self._still_undoable)
        self.hide()

    def text(self) -> str:
        return self.label.text() if self.isVisibleTo(self.parentWidget() or self) else ""

    def show_action(self, action: UndoAction) -> None:
        self.action = action
        self.label.setText(action.label)
        self.setAccessibleName(tr("%1. Undo with Ctrl+Z").replace("%1", action.label))
        self.button.setAccessibleName(tr("Undo: %1").replace("%1", action.label))
        self.button.setEnabled(True)
        self.show()
        self._announce(action.label)
        self.timer.start(TOAST_MS)

    def _still_undoable(self) -> None:
        if self.action is not None and self.action not in self.stack.actions:  # undone by Ctrl+Z meanwhile
            self.dismiss()

    def dismiss(self) -> None:
        self.timer.stop()
        self.action = None
        self.hide()

    def _undo(self) -> None:
        action, self.action = self.action, None
        self.dismiss()
        if action is not None:
            self.stack.undo(action)

    def _announce(self, text: str) -> None:
        """Screen readers: announce the toast (Qt 6.8+ has announcements; older Qt reads the name on focus)."""
        try:
            from PySide6.QtGui import QAccessible, QAccessibleAnnouncementEvent
        except ImportError:
            return
        if QAccessible.isActive():
            event = QAccessibleAnnouncementEvent(self, text + ". " + tr("Undo with Ctrl+Z"))
            QAccessible.updateAccessibility(event)
