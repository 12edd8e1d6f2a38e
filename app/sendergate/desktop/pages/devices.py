"""Devices: the computers (and scripts) that hold a key to this account; this one is marked, others can be
revoked (issue 16). A revoked device's next call is refused and the app there says so."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import dates
from ..api_client import Device
from ..i18n import tr
from ..widgets import EmptyState
from .base import ColumnFitter, Page, text_width


def when(d: Any) -> str:
    return "—" if d is None else dates.when(d)


def time_item(d: Any) -> QTableWidgetItem:
    """A time cell: relative text, the exact time as its tooltip, sorted by the real time."""
    item = QTableWidgetItem(when(d))
    if d is not None:
        item.setToolTip(dates.exact(d))
        item.setData(Qt.ItemDataRole.UserRole + 2, d.timestamp())
    return item


def device_table(name: str) -> QTableWidget:
    table = QTableWidget(0, 3)
    table.setObjectName(name)
    table.setAccessibleName(name)
    table.setHorizontalHeaderLabels([tr("Device"), tr("Paired"), tr("Last used")])
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().hide()
    table.setColumnWidth(0, 260)
    for col in (1, 2):
        table.setColumnWidth(col, text_width(table, tr("Yesterday %1").replace("%1", "23:59")))
    table.setProperty("fitter", ColumnFitter(table, stretch=0, keep=(1, 2)))  # the name takes the room left
    table.setProperty("empty", EmptyState(table))
    return table


def show_empty(table: QTableWidget, text: str) -> None:
    empty = table.property("empty")
    assert isinstance(empty, EmptyState)
    empty.show_if(table.rowCount() == 0, text)


def fill_devices(table: QTableWidget, devices: list[Device] | tuple[Device, ...]) -> None:
    table.setRowCount(len(devices))
    for row, d in enumerate(devices):
        name = QTableWidgetItem(d.name + (tr(" (this computer)") if d.current else ""))
        name.setData(Qt.ItemDataRole.UserRole, d)
        if d.current:
            font = name.font()
            font.setBold(True)
            name.setFont(font)
        table.setItem(row, 0, name)
        table.setItem(row, 1, time_item(d.created_at))
        table.setItem(row, 2, time_item(d.last_used_at))


def selected_device(table: QTableWidget) -> Device | None:
    rows = table.selectionModel().selectedRows()
    if not rows:
        return None
    item = table.item(rows[0].row(), 0)
    d = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
    return d if isinstance(d, Device) else None


def confirm_revoke(parent: QWidget, device: Device) -> bool:
    answer = QMessageBox.question(
        parent, tr("Revoke device"),
        tr("Revoke “%1”? It can no longer see or decide anything until it is paired again.")
        .replace("%1", device.name),
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


class DevicesPage(Page):
    key = "devices"
    icon_name = "devices"
    confirm = staticmethod(confirm_revoke)  # tests replace it: no modal box in a test

    @staticmethod
    def title() -> str:
        return tr("Devices")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        layout = QVBoxLayout(self)
        intro = QLabel(tr("The computers and scripts with a key to your account. Revoke one you lost or no "
                          "longer use; pair a new one with a code from your administrator."))
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.table = device_table(tr("Your devices"))
        layout.addWidget(self.table, 1)
        bar = QHBoxLayout()
        self.revoke_button = QPushButton(tr("&Revoke"))
        self.revoke_button.setAccessibleName(tr("Revoke the selected device"))
        self.revoke_button.clicked.connect(self.revoke_selected)
        bar.addWidget(self.revoke_button)
        bar.addStretch(1)
        layout.addLayout(bar)
        self.table.itemSelectionChanged.connect(self._enable)
        self.devices: list[Device] = []
        self._enable()

    def _enable(self) -> None:
        d = selected_device(self.table)
        self.revoke_button.setEnabled(d is not None and not d.current)  # this computer: File → Connection

    def refresh(self) -> None:
        self.run(self.client.devices, self._loaded, lambda exc: self.messages.error(str(exc)))

    def _loaded(self, devices: list[Device]) -> None:
        self.devices = devices
        fill_devices(self.table, devices)
        show_empty(self.table, tr("No device holds a key to your account. Pair one with a code from your "
                                  "administrator."))
        self.loaded = True
        self._enable()

    def revoke_selected(self) -> None:
        d = selected_device(self.table)
        if d is not None and not d.current:  # this computer is not revoked from here
            revoke(self, d)


def revoke(page: Any, d: Device) -> None:
    """Ask, revoke the device through the API, say so and reload the page (Devices and Staff)."""
    if not page.confirm(page, d):
        return
    client = page.client

    def done(_: object) -> None:
        page.messages.info(tr("Revoked “%1”.").replace("%1", d.name))
        page.refresh()

    page.run(lambda: client.revoke_device(d.id), done, lambda exc: page.messages.error(str(exc)))
