"""What every page has: the gateway client, the message bar, a refresh."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import QEvent, QObject, QSortFilterProxyModel, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from ..api_client import GatewayClient
from ..models.base import SortRole
from ..operations import Operation

if TYPE_CHECKING:
    from ..widgets import MessageBar



class Page(QWidget):
    key = ""  # settings name and object name
    icon_name = ""

    def __init__(self, client: GatewayClient, messages: MessageBar, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.messages = messages
        self.setObjectName(f"page-{self.key}")
        self.loaded = False  # the first refresh has delivered

    @staticmethod
    def title() -> str:
        raise NotImplementedError

    def refresh(self) -> None:
        """Fetch what the page shows (in the background)."""

    def run(self, fn: Callable[[], Any], success: Callable[[Any], Any] | None = None,
            failure: Callable[[Exception], Any] | None = None) -> None:
        op = Operation(self, fn, success)
        if failure is not None:
            op.failure(failure)
        op.run()

    def shortcut(self, keys: QKeySequence | str, slot: Callable[[], Any], widget: QWidget | None = None) -> QShortcut:
        """A key that works while this page (or `widget`) has the focus, not when another page shows."""
        sc = QShortcut(QKeySequence(keys), widget or self)
        sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        sc.activated.connect(slot)
        return sc


class ColumnFitter(QObject):
    """Columns sized to fit the view, so no horizontal scrollbar hides the important one.

    The widths a page (or the user, by dragging) sets are preferences; when they do not fit, the columns
    not in `keep` shrink in proportion (never below their header text) and the important column
    (`stretch`, default the last) takes what is left, at least `min_chars` characters. Cut-off text is
    elided; the models give every cell a tooltip with all of it.
    """

    def __init__(self, view: QTableView, stretch: int = -1, keep: tuple[int, ...] = (), min_chars: int = 22) -> None:
        super().__init__(view)
        self.view, self.keep, self.min_chars = view, keep, min_chars
        self._stretch = stretch
        self.preferred: dict[int, int] = {}
        self._fitting = False
        header = view.horizontalHeader()
        header.setStretchLastSection(False)
        header.sectionResized.connect(self._resized)
        view.setTextElideMode(Qt.TextElideMode.ElideRight)
        view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        view.viewport().installEventFilter(self)
        model = view.model()
        if model is not None:
            model.columnsInserted.connect(lambda *_: self.fit())
            model.modelReset.connect(self.fit)

    def configure(self, *, stretch: int | None = None, keep: tuple[int, ...] | None = None,
                  min_chars: int | None = None) -> None:
        """Which column takes the room left (`stretch`), which keep their width (`keep`), its minimum."""
        if stretch is not None:
            self.view.horizontalHeader().setSectionResizeMode(self.stretch, QHeaderView.ResizeMode.Interactive)
            self._stretch = stretch
        if keep is not None:
            self.keep = keep
        if min_chars is not None:
            self.min_chars = min_chars
        self.fit()

    @property
    def stretch(self) -> int:
        n = self.view.horizontalHeader().count()
        return self._stretch if self._stretch >= 0 else n - 1

    def _resized(self, column: int, _old: int, new: int) -> None:
        if not self._fitting and column != self.stretch:
            self.preferred[column] = new  # the page or the user chose it

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.Resize, QEvent.Type.Show):
            self.fit()
        return False

    def fit(self) -> None:
        if not shiboken6.isValid(self.view):  # a QTableWidget's model resets while the view is destroyed
            return
        header = self.view.horizontalHeader()
        n, stretch = header.count(), self.stretch
        if n == 0:
            return
        fm = self.view.fontMetrics()
        pad = fm.averageCharWidth() * 3
        shown = [c for c in range(n) if c != stretch and not header.isSectionHidden(c)]
        want = {c: self.preferred.get(c, header.sectionSize(c)) for c in shown}
        model = self.view.model()

        def floor(c: int) -> int:
            title = model.headerData(c, Qt.Orientation.Horizontal) if model is not None else ""
            return fm.horizontalAdvance(str(title or "")) + pad

        budget = self.view.viewport().width() - fm.averageCharWidth() * self.min_chars
        fixed = sum(want[c] for c in shown if c in self.keep)
        flexible = sum(want[c] for c in shown if c not in self.keep)
        scale = 1.0 if flexible <= 0 or fixed + flexible <= budget else max(0.0, budget - fixed) / flexible
        self._fitting = True
        try:
            for c in shown:
                width = want[c] if c in self.keep else max(floor(c), int(want[c] * scale))
                header.setSectionResizeMode(c, QHeaderView.ResizeMode.Interactive)
                header.resizeSection(c, width)
            header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
        finally:
            self._fitting = False


def text_width(view: QWidget, sample: str, icon: bool = False) -> int:
    """The width a column needs for `sample` in the view's font (so it scales with the font and DPI)."""
    fm = view.fontMetrics()
    return fm.horizontalAdvance(sample) + fm.averageCharWidth() * 3 + (fm.height() + 4 if icon else 0)


def make_table(model: Any, *, sortable: bool = True, multi: bool = False, name: str = "") -> tuple[QTableView, Any]:
    """A table over a read-only model, behind a sort/filter proxy unless the model pages itself."""
    view = QTableView()
    view.setObjectName(name)
    view.setAccessibleName(name)
    proxy = None
    if sortable:
        proxy = QSortFilterProxyModel(view)
        proxy.setSourceModel(model)
        proxy.setSortRole(SortRole)
        proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        proxy.setFilterKeyColumn(-1)
        view.setModel(proxy)
        view.setSortingEnabled(True)
    else:
        view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection if multi
                          else QAbstractItemView.SelectionMode.SingleSelection)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.verticalHeader().hide()
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 8)
    view.horizontalHeader().setStretchLastSection(True)
    view.horizontalHeader().setHighlightSections(False)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setTabKeyNavigation(False)  # Tab leaves the table: keyboard users reach the buttons
    view.setProperty("fitter", ColumnFitter(view))  # the last column stays in view; pages may fit it again
    return view, proxy


def hide_until_used(view: QTableView, model: Any, column: int, used: Callable[[Any], bool]) -> None:
    """Keep an events table's `column` hidden until a row (an Event from model.event_at) is `used`: the
    Sign-up address column is empty for most people, and Reason needs the room. A reset hides it again."""

    def scan(first: int, last: int) -> None:
        if view.isColumnHidden(column) and any(used(e) for e in (model.event_at(r) for r in range(first, last + 1))
                                               if e is not None):
            view.setColumnHidden(column, False)
            fitter(view).fit()

    def reset() -> None:
        view.setColumnHidden(column, True)
        scan(0, model.rowCount() - 1)
        fitter(view).fit()

    model.modelReset.connect(reset)
    model.rowsInserted.connect(lambda _parent, first, last: scan(first, last))
    reset()


def fitter(view: QTableView) -> ColumnFitter:
    found = view.property("fitter")
    assert isinstance(found, ColumnFitter)
    return found
