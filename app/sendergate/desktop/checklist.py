"""The first-run checklist on the Overview: connect, import the people you know, choose the mode, turn on
the digest (issue 16). It stays until every step is done or the user dismisses it; both persist."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .api_client import GatewayClient, Me
from .i18n import tr
from .operations import Operation
from .settings import Settings

STEPS = ("connect", "import", "mode", "digest")
DONE_MARK, OPEN_MARK = "✓", "○"


class FirstRunChecklist(QGroupBox):
    """Four steps, each ticked from what the gateway says (never from the app's guess), with a button."""

    import_requested = Signal()  # the Import page
    mode_requested = Signal()  # the Overview's mode box
    closed = Signal()  # done or dismissed: hidden for good

    def __init__(self, client: GatewayClient, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(tr("Getting started"), parent)
        self.setObjectName("firstRunChecklist")
        self.client = client
        self.settings = settings
        self.done: dict[str, bool] = dict.fromkeys(STEPS, False)
        self.marks: dict[str, QLabel] = {}
        self.buttons: dict[str, QPushButton] = {}
        outer = QVBoxLayout(self)
        grid = QGridLayout()
        texts = {
            "connect": tr("Connect this app to your gateway"),
            "import": tr("Import the people you know (address book or mail account)"),
            "mode": tr("Choose the mailbox mode (Observe first is suggested)"),
            "digest": tr("Turn on the digest mail of new pending senders"),
        }
        buttons = {"import": tr("&Import…"), "mode": tr("Choose &mode…"), "digest": tr("Mail me &daily")}
        for row, step in enumerate(STEPS):
            mark = QLabel(OPEN_MARK)
            mark.setObjectName(f"checklist-{step}-mark")
            text = QLabel(texts[step])
            text.setWordWrap(True)
            mark.setAccessibleName(texts[step])
            grid.addWidget(mark, row, 0)
            grid.addWidget(text, row, 1)
            self.marks[step] = mark
            if step in buttons:
                button = QPushButton(buttons[step])
                button.setObjectName(f"checklist-{step}")
                button.setAccessibleName(texts[step])
                grid.addWidget(button, row, 2)
                self.buttons[step] = button
        grid.setColumnStretch(1, 1)
        outer.addLayout(grid)
        self.problem = QLabel("")
        self.problem.setObjectName("checklistProblem")
        self.problem.setWordWrap(True)
        self.problem.hide()
        outer.addWidget(self.problem)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        self.dismiss_button = QPushButton(tr("Hide this list"))
        self.dismiss_button.setObjectName("checklistDismiss")
        bottom.addWidget(self.dismiss_button)
        outer.addLayout(bottom)
        self.buttons["import"].clicked.connect(self.import_requested.emit)
        self.buttons["mode"].clicked.connect(self.mode_requested.emit)
        self.buttons["digest"].clicked.connect(self._digest_daily)
        self.dismiss_button.clicked.connect(self.dismiss)
        self.setVisible(not settings.checklist_closed)

    @property
    def active(self) -> bool:
        return not self.settings.checklist_closed

    def refresh(self) -> None:
        """Ask the gateway what is done, starting with who I am (the Overview's own refresh does that too
        and hands the answer to show_me)."""
        if self.active:
            self._run(self.client.me, self.show_me)

    def _run(self, fn: Any, success: Any) -> None:
        Operation(self, fn, success).failure(self._failed).run()

    def _failed(self, exc: Exception) -> None:
        # stays on screen with the reason: a first run that cannot reach the gateway needs the list most
        self.problem.setText(tr("Could not ask the gateway: %1").replace("%1", str(exc)))
        self.problem.show()

    def show_me(self, me: Me) -> None:
        """The token works: the rest is asked only now, so a refused token is not tried three times more
        (each refusal counts against the gateway's per-client limit)."""
        self.problem.hide()
        self._tick("connect", True)
        self._tick("mode", not me.mode_is_default)
        client = self.client
        if self.active and not self.done["import"]:
            self._run(lambda: len(client.entries("allow", limit=1).items), self.show_allow_count)
        if self.active and not self.done["digest"]:
            self._run(client.digest_frequency, self.show_digest)

    def show_problem(self, exc: Exception) -> None:
        self._failed(exc)

    def show_allow_count(self, count: int) -> None:
        self._tick("import", count > 0)

    def show_digest(self, frequency: str) -> None:
        self._tick("digest", frequency != "off")

    def _tick(self, step: str, done: bool) -> None:
        self.done[step] = done
        self.marks[step].setText(DONE_MARK if done else OPEN_MARK)
        self.marks[step].setToolTip(tr("Done") if done else tr("Not done yet"))
        if step in self.buttons:
            self.buttons[step].setEnabled(not done)
        if all(self.done.values()) and self.active:
            self._close()

    def _digest_daily(self) -> None:
        client = self.client
        self.buttons["digest"].setEnabled(False)

        def failed(exc: Exception) -> None:
            self.buttons["digest"].setEnabled(True)
            self._failed(exc)

        Operation(self, lambda: client.set_digest_frequency("daily"), self.show_digest).failure(failed).run()

    def dismiss(self) -> None:
        self._close()

    def _close(self) -> None:
        self.settings.checklist_closed = True
        self.settings.sync()
        self.hide()
        self.closed.emit()
