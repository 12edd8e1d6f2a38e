"""Small widgets the pages share: the non-modal message bar, a tool button with an icon, a debounce."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from .i18n import tr
from .icons import icon


class MessageBar(QFrame):
    """A message across the top of the window: errors, results. Never modal; tests read `text()`."""

    shown = Signal(str, str)  # level, text

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        self._label = QLabel()
        self._label.setWordWrap(True)
        self._label.setObjectName("messageText")
        layout.addWidget(self._label, 1)
        close = QToolButton()
        close.setText("×")
        close.setAccessibleName(tr("Dismiss message"))
        close.setToolTip(tr("Dismiss message"))
        close.clicked.connect(self.hide)
        layout.addWidget(close)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.level = ""
        self.hide()

    def text(self) -> str:
        parent = self.parentWidget()
        shown = self.isVisibleTo(parent) if parent is not None else self.isVisible()
        return self._label.text() if shown else ""

    def show_message(self, text: str, level: str = "info", timeout_ms: int = 0) -> None:
        self.level = level
        self._label.setText(text)
        self.setAccessibleName(text)
        palette = self.palette()
        base = palette.color(QPalette.ColorRole.Window)
        dark = base.lightness() < 128
        tint = {"error": ("#5c1f1f", "#fde2e2"), "warning": ("#5a4716", "#fff4d6"),
                "info": ("#1d3b57", "#e3f0fd")}[level if level in ("error", "warning") else "info"]
        from PySide6.QtGui import QColor
        palette.setColor(QPalette.ColorRole.Window, QColor(tint[0] if dark else tint[1]))
        self.setPalette(palette)
        self.show()
        self.shown.emit(level, text)
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()

    def error(self, text: str) -> None:
        self.show_message(text, "error")

    def info(self, text: str) -> None:
        self.show_message(text, "info", 6000)


def icon_button(name: str, text: str, tooltip: str = "") -> QToolButton:
    button = QToolButton()
    button.setIcon(icon(name))
    button.setText(text)
    button.setToolTip(tooltip or text)
    button.setAccessibleName(text)
    from PySide6.QtCore import Qt
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    return button


def debounced(parent: QWidget, ms: int, fn: Callable[[], None]) -> Callable[[], None]:
    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(ms)
    timer.timeout.connect(fn)
    return timer.start
