"""Small widgets the pages share: the non-modal message bar, a tool button with an icon, a debounce."""

from __future__ import annotations

from collections.abc import Callable

import shiboken6
from PySide6.QtCore import QEvent, QObject, QPoint, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLayoutItem,
    QToolButton,
    QWidget,
)

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
    button.setProperty("iconName", name)  # which icon it shows, for the test that icons mean what they do
    button.setText(text)
    button.setToolTip(tooltip or text)
    button.setAccessibleName(text)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    return button


def debounced(parent: QWidget, ms: int, fn: Callable[[], None]) -> Callable[[], None]:
    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(ms)
    timer.timeout.connect(fn)
    return timer.start


class EmptyState(QLabel):
    """A sentence in the middle of an empty table saying what to do; tests read `text()` when shown."""

    def __init__(self, view: QAbstractItemView) -> None:
        super().__init__(view.viewport())
        self.setObjectName("emptyState")
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._view = view
        view.viewport().installEventFilter(self)
        self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and shiboken6.isValid(self._view):
            self._place()
        return False

    def _place(self) -> None:
        area = self._view.viewport().rect()
        margin = self.fontMetrics().averageCharWidth() * 4
        self.setGeometry(area.adjusted(margin, margin, -margin, -margin))

    def shown_text(self) -> str:
        return self.text() if self.isVisibleTo(self._view) else ""

    def show_if(self, empty: bool, text: str) -> None:
        self.setText(text)
        self.setAccessibleName(text)
        self._place()
        self.setVisible(empty)


class FlowLayout(QLayout):
    """Items left to right, wrapping to the next row when the width runs out (the verdict buttons): the page
    stays usable on a small screen however many verdicts there are."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 4) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._gap = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:
        return self.minimumSize()

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        return size

    def _arrange(self, rect: QRect, move: bool) -> int:
        x, y, row_height = rect.x(), rect.y(), 0
        for item in self._items:
            if item.isEmpty():  # a hidden widget takes no place (nor a gap)
                continue
            hint = item.sizeHint()
            if x + hint.width() > rect.right() + 1 and row_height:
                x, y, row_height = rect.x(), y + row_height + self._gap, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self._gap
            row_height = max(row_height, hint.height())
        return y + row_height - rect.y()
