"""Allowlist and Blocklist: search, add (validated), edit note and expiry, remove, export CSV."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from typing import Any

from PySide6.QtCore import QDateTime, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from ...policy.address import AddressError, parse_pattern
from .. import undo
from ..api_client import ListEntry
from ..history import install_history
from ..i18n import tr
from ..models import EntriesModel
from ..models.base import RecordRole
from ..widgets import EmptyState, icon_button
from .base import Page, fitter, make_table


def validate_entry(text: str) -> str:
    """What the user typed -> the normalised entry. Raises AddressError with a reason fit to show."""
    return str(parse_pattern(text))


def write_csv(path: str, entries: list[ListEntry]) -> int:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["entry", "kind", "note", "source", "created_at", "expires_at"])
        for e in entries:
            w.writerow([e.entry, e.kind, e.note, e.source, e.created_at.isoformat(),
                        e.expires_at.isoformat() if e.expires_at else ""])
    return len(entries)


class EntryDialog(QDialog):
    """Edit an entry's note and expiry."""

    def __init__(self, entry: ListEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("Edit %1").replace("%1", entry.entry))
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        form = QFormLayout(self)
        self.note = QLineEdit(entry.note)
        self.note.setAccessibleName(tr("Note"))
        form.addRow(tr("&Note:"), self.note)
        self.expires = QCheckBox(tr("&Expires"))
        self.expires.setChecked(entry.expires_at is not None)
        self.when = QDateTimeEdit()
        self.when.setCalendarPopup(True)
        self.when.setAccessibleName(tr("Expiry"))
        start = entry.expires_at or (datetime.now(timezone.utc) + timedelta(days=2))
        self.when.setDateTime(QDateTime.fromSecsSinceEpoch(int(start.timestamp())))
        self.when.setEnabled(self.expires.isChecked())
        self.expires.toggled.connect(self.when.setEnabled)
        form.addRow(self.expires, self.when)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def expiry(self) -> datetime | None:
        if not self.expires.isChecked():
            return None
        return datetime.fromtimestamp(self.when.dateTime().toSecsSinceEpoch(), timezone.utc)


class ListPage(Page):
    action = "allow"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = EntriesModel(self)
        layout = QVBoxLayout(self)
        add = QHBoxLayout()
        self.entry_edit = QLineEdit()
        self.entry_edit.setPlaceholderText(tr("bob@example.com, @example.com or list:dev.lists.example.org"))
        self.entry_edit.setAccessibleName(tr("New entry"))
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText(tr("Note (optional)"))
        self.note_edit.setAccessibleName(tr("Note for the new entry"))
        self.add_expiry = QCheckBox(tr("for 48 h"))
        self.add_expiry.setAccessibleName(tr("The new entry expires in 48 hours"))
        self.add_button = icon_button("add", tr("A&dd"), tr("Add the entry"))
        add.addWidget(self.entry_edit, 2)
        add.addWidget(self.note_edit, 2)
        add.addWidget(self.add_expiry)
        add.addWidget(self.add_button)
        layout.addLayout(add)
        self.validation = QLabel()
        self.validation.setObjectName("entryValidation")
        layout.addWidget(self.validation)

        bar = QHBoxLayout()
        self.search = QLineEdit()
        self.search.setPlaceholderText(tr("Search"))
        self.search.setAccessibleName(tr("Search entries"))
        self.search.setClearButtonEnabled(True)
        bar.addWidget(self.search, 1)
        self.edit_button = icon_button("edit", tr("&Edit…"), tr("Edit the note and expiry (Enter)"))
        self.remove_button = icon_button("remove", tr("&Remove"), tr("Remove the selected entries (Delete)"))
        self.export_button = icon_button("export", tr("E&xport CSV…"), tr("Save the list as a CSV file"))
        for b in (self.edit_button, self.remove_button, self.export_button):
            bar.addWidget(b)
        layout.addLayout(bar)
        self.table, self.proxy = make_table(self.model, multi=True, name=self.title())
        self.search.textChanged.connect(self.proxy.setFilterFixedString)
        fitter(self.table).configure(stretch=1, keep=(3, 4))  # the note takes the room; dates keep theirs
        for col, width in enumerate((260, 260, 160, 140, 140)):
            self.table.setColumnWidth(col, width)
        self.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)
        layout.addWidget(self.table, 1)
        self.empty = EmptyState(self.table)
        self.model.modelReset.connect(self._show_empty)
        self.model.rowsRemoved.connect(self._show_empty)
        self.model.rowsInserted.connect(self._show_empty)
        self.search.textChanged.connect(self._show_empty)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._enable())

        self.entry_edit.textChanged.connect(self._validate)
        self.entry_edit.returnPressed.connect(self.add_entry)
        self.note_edit.returnPressed.connect(self.add_entry)
        self.add_button.clicked.connect(self.add_entry)
        self.edit_button.clicked.connect(self.edit_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        self.export_button.clicked.connect(self.export_csv)
        self.table.doubleClicked.connect(lambda _: self.edit_selected())
        for key, slot in ((QKeySequence.StandardKey.Delete, self.remove_selected),
                          (QKeySequence("Return"), self.edit_selected)):
            act = QAction(self)
            act.setShortcut(QKeySequence(key))
            act.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            act.triggered.connect(slot)
            self.table.addAction(act)
        self.history_action = install_history(self, self.table, lambda e: e.entry)  # H, context menu
        self._validate()
        self._enable()

    def _enable(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        self.edit_button.setEnabled(len(rows) == 1)  # the dialog edits one entry
        self.remove_button.setEnabled(bool(rows))
        self.export_button.setEnabled(self.model.rowCount() > 0)

    def empty_text(self) -> str:
        return tr("Your allowlist is empty. Add an address or an @domain above, or bring in your contacts on the "
                  "Import page.")

    def _show_empty(self, *_: object) -> None:
        if self.model.rowCount() and self.search.text():
            text = tr("No entry matches “%1”.").replace("%1", self.search.text())
        else:
            text = self.empty_text()
        self.empty.show_if(self.loaded and self.proxy.rowCount() == 0, text)
        self._enable()

    def _validate(self) -> bool:
        text = self.entry_edit.text()
        if not text.strip():
            self.validation.setText("")
            self.add_button.setEnabled(False)
            return False
        try:
            normal = validate_entry(text)
        except AddressError as exc:
            self.validation.setText("✗ " + str(exc))
            self.add_button.setEnabled(False)
            return False
        self.validation.setText("✓ " + normal)
        self.add_button.setEnabled(True)
        return True

    def refresh(self) -> None:
        client, action = self.client, self.action
        self.run(lambda: client.all_entries(action), self._loaded, lambda exc: self.messages.error(str(exc)))

    def _loaded(self, entries: list[ListEntry]) -> None:
        self.loaded = True
        self.model.set_records(entries)

    def selected(self) -> list[ListEntry]:
        return [self.proxy.data(i, RecordRole) for i in self.table.selectionModel().selectedRows()]

    def add_entry(self) -> None:
        if not self._validate():
            return
        entry, note = validate_entry(self.entry_edit.text()), self.note_edit.text().strip()
        expires = datetime.now(timezone.utc) + timedelta(hours=48) if self.add_expiry.isChecked() else None
        client, action = self.client, self.action

        def added(result: tuple[ListEntry, bool]) -> None:
            e, created = result
            self.model.upsert(e)
            self.entry_edit.clear()
            self.note_edit.clear()
            self.messages.info(tr("Added %1.").replace("%1", e.entry))
            if created:
                undo.offer(self, tr("Added %1").replace("%1", e.entry), undo.withdraw(client, action, [e.id]),
                           self.refresh)

        self.run(lambda: client.add_entry_created(action, entry, note=note, expires_at=expires), added)

    def edit_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) != 1:
            return
        entry = chosen[0]
        dialog = EntryDialog(entry, self)
        client, action = self.client, self.action

        def accepted() -> None:
            expiry, note = dialog.expiry(), dialog.note.text()
            self.run(lambda: client.update_entry(action, entry.id, note=note, expires_at=expiry,
                                                 clear_expiry=expiry is None), self.model.upsert)

        dialog.accepted.connect(accepted)
        dialog.open()

    def remove_selected(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        client, action = self.client, self.action
        ids = [e.id for e in chosen]

        def removed(_: object) -> None:
            for i in ids:
                self.model.remove_key(i)
            self.messages.info(tr("Removed %n entry(s).", None, len(ids)))
            undo.offer(self, tr("Removed %n entry(s)", None, len(ids)), undo.restore(client, action, ids), self.refresh)

        def remove() -> None:
            for i in ids:
                client.remove_entry(action, i)

        self.run(remove, removed)

    def export_csv(self, path: str = "") -> None:
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, tr("Export as CSV"), f"sendergate-{self.key}.csv",
                                                  tr("CSV files (*.csv)"))
        if not path:
            return
        entries = self.model.records()
        self.run(lambda: write_csv(path, entries),
                 lambda n: self.messages.info(tr("Saved %n entry(s) to ", None, n) + path))


class AllowlistPage(ListPage):
    key = "allowlist"
    icon_name = "allowlist"
    action = "allow"

    @staticmethod
    def title() -> str:
        return tr("Allowlist")


class BlocklistPage(ListPage):
    key = "blocklist"
    icon_name = "blocklist"
    action = "block"

    @staticmethod
    def title() -> str:
        return tr("Blocklist")

    def empty_text(self) -> str:
        return tr("Your blocklist is empty. Block a sender from Activity, Pending or Screened, or add one above.")
