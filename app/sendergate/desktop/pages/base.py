"""What every page has: the gateway client, the message bar, a refresh."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSortFilterProxyModel, Qt
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
    return view, proxy
