"""Staff (admins only, issue 16 item 2): the office's people, their addresses and aliases, their devices
and mailbox mode; add a person (the answer shows their pairing code to pass on), a new code, revoke."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..api_client import PairingCode, StaffUser
from ..i18n import tr
from ..widgets import EmptyState
from .base import ColumnFitter, Page
from .devices import confirm_revoke, device_table, fill_devices, revoke, selected_device, show_empty, when
from .overview import mode_texts


class PairingCodeBox(QWidget):
    """A pairing code and its link, each copyable: what the owner passes on to the person."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pairingCodeBox")
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.code = QLineEdit()
        self.code.setReadOnly(True)
        self.code.setObjectName("pairingCodeText")
        self.code.setAccessibleName(tr("Pairing code"))
        font = self.code.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.code.setFont(font)
        self.link = QLineEdit()
        self.link.setReadOnly(True)
        self.link.setAccessibleName(tr("Pairing link"))
        self.copy_code = QPushButton(tr("Copy &code"))
        self.copy_code.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.code.text()))
        self.copy_link = QPushButton(tr("Copy &link"))
        self.copy_link.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.link.text()))
        row1 = QHBoxLayout()
        row1.addWidget(self.code, 1)
        row1.addWidget(self.copy_code)
        row2 = QHBoxLayout()
        row2.addWidget(self.link, 1)
        row2.addWidget(self.copy_link)
        form.addRow(tr("Pairing code:"), row1)
        form.addRow(tr("Link:"), row2)
        self.expires = QLabel()
        self.expires.setWordWrap(True)
        form.addRow("", self.expires)

    def show_code(self, who: str, code: PairingCode) -> None:
        self.code.setText(code.code)
        self.link.setText(code.link)
        self.expires.setText(tr("For %1: works once, until %2. In the app's setup they type the code or paste "
                                "the link.").replace("%1", who).replace("%2", when(code.expires_at)))


class AddPersonDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("Add a person"))
        form = QFormLayout(self)
        self.address = QLineEdit()
        self.address.setAccessibleName(tr("Address"))
        self.address.setPlaceholderText("bob@example.org")
        self.name = QLineEdit()
        self.name.setAccessibleName(tr("Name"))
        form.addRow(tr("&Address:"), self.address)
        form.addRow(tr("&Name:"), self.name)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


class StaffPage(Page):
    key = "staff"
    icon_name = "staff"
    confirm = staticmethod(confirm_revoke)  # tests replace it: no modal box in a test
    ask_person = None  # tests set a function returning (address, name) or None instead of the dialog

    @staticmethod
    def title() -> str:
        return tr("Staff")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.add_button = QPushButton(tr("&Add a person…"))
        self.add_button.clicked.connect(self.add_person)
        self.code_button = QPushButton(tr("New pairing &code"))
        self.code_button.setToolTip(tr("A one-time code for the selected person's next computer"))
        self.code_button.clicked.connect(self.new_code)
        bar.addWidget(self.add_button)
        bar.addWidget(self.code_button)
        bar.addStretch(1)
        layout.addLayout(bar)
        self.pairing = PairingCodeBox()
        self.pairing.hide()
        layout.addWidget(self.pairing)

        split = QSplitter(Qt.Orientation.Vertical)
        self.table = QTableWidget(0, 5)
        self.table.setObjectName("staffTable")
        self.table.setAccessibleName(tr("People"))
        self.table.setHorizontalHeaderLabels([tr("Name"), tr("Address"), tr("Also receives"), tr("Devices"),
                                              tr("Mode")])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        for col, width in enumerate((160, 220, 240, 70, 90)):
            self.table.setColumnWidth(col, width)
        self.table.setProperty("fitter", ColumnFitter(self.table, stretch=2, keep=(3,)))  # aliases take the rest
        self.empty = EmptyState(self.table)
        split.addWidget(self.table)
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        self.devices_label = QLabel()
        lower_layout.addWidget(self.devices_label)
        self.devices = device_table(tr("The person's devices"))
        lower_layout.addWidget(self.devices, 1)
        self.revoke_button = QPushButton(tr("&Revoke device"))
        self.revoke_button.clicked.connect(self.revoke_selected)
        row = QHBoxLayout()
        row.addWidget(self.revoke_button)
        row.addStretch(1)
        lower_layout.addLayout(row)
        split.addWidget(lower)
        layout.addWidget(split, 1)
        self.table.itemSelectionChanged.connect(self._user_chosen)
        self.devices.itemSelectionChanged.connect(self._enable)
        self.users: list[StaffUser] = []
        self._enable()

    def refresh(self) -> None:
        self.run(self.client.users, self._loaded, lambda exc: self.messages.error(str(exc)))

    def _loaded(self, users: list[StaffUser]) -> None:
        chosen = self.selected_user()
        self.users = users
        has_mode = any(u.mode is not None for u in users)
        self.table.setColumnHidden(4, not has_mode)  # mailbox modes: shown where the gateway has them
        self.table.setRowCount(len(users))
        for r, u in enumerate(users):
            name = QTableWidgetItem(u.name + (tr(" (admin)") if u.role == "admin" else ""))
            name.setData(Qt.ItemDataRole.UserRole, u.id)
            self.table.setItem(r, 0, name)
            self.table.setItem(r, 1, QTableWidgetItem(u.addresses[0] if u.addresses else ""))
            self.table.setItem(r, 2, QTableWidgetItem(", ".join(u.addresses[1:])))
            self.table.setItem(r, 3, QTableWidgetItem(str(len(u.devices))))
            self.table.setItem(r, 4, QTableWidgetItem(mode_texts().get(u.mode, (u.mode or "",))[0] if u.mode else ""))
            if chosen is not None and u.id == chosen.id:
                self.table.selectRow(r)
        self.loaded = True
        self.empty.show_if(not users, tr("Nobody here yet. Add the people of your office with “Add a person…”."))
        self._user_chosen()

    def selected_user(self) -> StaffUser | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        uid = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return next((u for u in self.users if u.id == uid), None)

    def _user_chosen(self) -> None:
        u = self.selected_user()
        fill_devices(self.devices, u.devices if u else ())
        show_empty(self.devices, tr("No devices yet. Give them a pairing code with “New pairing code”.") if u
                   else tr("Choose a person above to see their devices."))
        self.devices_label.setText(tr("Devices of %1:").replace("%1", u.addresses[0]) if u and u.addresses
                                   else tr("Choose a person to see their devices."))
        self._enable()

    def _enable(self) -> None:
        self.code_button.setEnabled(self.selected_user() is not None)
        self.revoke_button.setEnabled(selected_device(self.devices) is not None)

    def add_person(self) -> None:
        if self.ask_person is not None:
            answer = self.ask_person()
        else:
            dialog = AddPersonDialog(self)
            answer = (dialog.address.text(), dialog.name.text()) if dialog.exec() else None
        if not answer:
            return
        address, name = answer
        client = self.client

        def done(result: tuple[StaffUser, PairingCode]) -> None:
            user, code = result
            self.pairing.show_code(user.addresses[0], code)
            self.pairing.show()
            self.messages.info(tr("Added %1. Pass the pairing code on to them.").replace("%1", user.addresses[0]))
            self.refresh()

        self.run(lambda: client.add_user(address, name), done, lambda exc: self.messages.error(str(exc)))

    def new_code(self) -> None:
        u = self.selected_user()
        if u is None:
            return
        client = self.client

        def done(code: PairingCode) -> None:
            self.pairing.show_code(u.addresses[0] if u.addresses else u.name, code)
            self.pairing.show()

        self.run(lambda: client.pairing_code(u.id), done, lambda exc: self.messages.error(str(exc)))

    def revoke_selected(self) -> None:
        d = selected_device(self.devices)
        if d is not None:
            revoke(self, d)
