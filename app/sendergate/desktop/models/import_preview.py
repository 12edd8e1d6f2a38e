"""The Import page's preview: one row per address read, a check box to choose it, and whether the
gateway already allows it. The rows never change from the view; only the check state does."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, Signal

from ..importing import INVALID, NEW, PRESENT, PreviewRow
from .base import Column, local_time, tr
from .records import RecordsModel

_Index = QModelIndex | QPersistentModelIndex
_CHECKED, _UNCHECKED = Qt.CheckState.Checked, Qt.CheckState.Unchecked


def source_label(source: str) -> str:
    """'vcard' -> 'vCard', 'csv:outlook' -> 'CSV (Outlook)' (the importers name the flavour they detected)."""
    kind, _, flavour = source.partition(":")
    name = {"vcard": "vCard", "csv": "CSV", "ldif": "LDIF", "thunderbird": "Thunderbird",
            "imap": tr("IMAP (your mail)")}.get(kind, kind)
    flavours = {"outlook": "Outlook", "google": "Google", "thunderbird": "Thunderbird"}
    return f"{name} ({flavours[flavour]})" if flavour in flavours else name


def _wanted(row: PreviewRow) -> bool:
    """Checked at first and by 'Select all new': what the gateway does not let in yet."""
    return row.status == NEW and not row.covered_by


def status_label(row: PreviewRow) -> str:
    if row.status == PRESENT:
        return tr("yes")
    if row.covered_by:
        return tr("yes, by %1").replace("%1", row.covered_by)
    if row.status == INVALID:
        return tr("invalid")
    return tr("no")


class ImportPreviewModel(RecordsModel[PreviewRow]):
    """Column 0 holds the check box. New addresses start checked; allowed ones (also those an @domain
    entry covers) and invalid ones unchecked."""

    selection_changed = Signal(int)  # how many rows are checked

    columns = (
        Column(lambda: tr("Address"), lambda r: r.address, lambda r: r.address, lambda r: r.error),
        Column(lambda: tr("Name"), lambda r: r.name, lambda r: r.name.lower(), lambda r: r.name),
        Column(lambda: tr("Source"), lambda r: source_label(r.source), lambda r: r.source),
        Column(lambda: tr("Written to"), lambda r: r.count if r.source == "imap" else "",
               lambda r: r.count if r.source == "imap" else 0,
               lambda r: tr("Messages you sent to or answered: %1").replace("%1", str(r.count))
               if r.source == "imap" else ""),
        Column(lambda: tr("Last message"), lambda r: local_time(r.last_seen),
               lambda r: r.last_seen.timestamp() if r.last_seen else 0.0),
        Column(lambda: tr("Already allowed"), status_label, lambda r: (r.status, r.covered_by),
               lambda r: r.error or (tr("Your allowlist entry %1 already lets this address in; importing it "
                                        "keeps it allowed should that entry go.").replace("%1", r.covered_by)
                                     if r.covered_by else "")),
    )

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent, key=lambda r: r.address)
        self._checked: list[bool] = []

    # -- contents --
    def set_rows(self, rows: Iterable[PreviewRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._checked = [_wanted(r) for r in self._rows]
        self.endResetModel()
        self.selection_changed.emit(self.checked_count())

    def rows(self) -> list[PreviewRow]:
        return list(self._rows)

    def row(self, n: int) -> PreviewRow | None:
        return self._rows[n] if 0 <= n < len(self._rows) else None

    def checked_rows(self) -> list[PreviewRow]:
        return [r for r, on in zip(self._rows, self._checked, strict=True) if on]

    def is_checked(self, n: int) -> bool:
        return 0 <= n < len(self._checked) and self._checked[n]

    def checked_count(self) -> int:
        return sum(self._checked)

    def count(self, status: str) -> int:
        return sum(1 for r in self._rows if r.status == status)

    def count_covered(self) -> int:
        """New addresses an @domain allow entry already lets in."""
        return sum(1 for r in self._rows if r.status == NEW and r.covered_by)

    def set_checked(self, n: int, on: bool) -> None:
        if not (0 <= n < len(self._rows)) or self._rows[n].status == INVALID or self._checked[n] == on:
            return
        self._checked[n] = on
        self.dataChanged.emit(self.index(n, 0), self.index(n, 0), [Qt.ItemDataRole.CheckStateRole])
        self.selection_changed.emit(self.checked_count())

    def select_new(self) -> None:
        """Check exactly the addresses the gateway does not allow yet."""
        self._set_all(_wanted)

    def select_none(self) -> None:
        self._set_all(lambda r: False)

    def _set_all(self, want: Any) -> None:
        self._checked = [bool(want(r)) for r in self._rows]
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, 0),
                                  [Qt.ItemDataRole.CheckStateRole])
        self.selection_changed.emit(self.checked_count())

    def mark_allowed(self, addresses: Iterable[str]) -> None:
        """After an import: these are on the allowlist now (and no longer checked)."""
        done = set(addresses)
        changed = False
        for i, r in enumerate(self._rows):
            if r.address in done and r.status != INVALID:
                r.status, r.covered_by = PRESENT, ""
                self._checked[i] = False
                changed = True
        if changed:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(self.columns) - 1))
            self.selection_changed.emit(self.checked_count())

    # -- Qt: RecordsModel's table plus the check box in column 0 --
    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.CheckStateRole:
            if index.isValid() and index.column() == 0 and 0 <= index.row() < len(self._rows):
                return _CHECKED if self._checked[index.row()] else _UNCHECKED
            return None
        return super().data(index, role)

    def setData(self, index: _Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.CheckStateRole or not index.isValid() or index.column() != 0 \
                or not (0 <= index.row() < len(self._rows)) or self._rows[index.row()].status == INVALID:
            return False
        state = value.value if isinstance(value, Qt.CheckState) else int(value)
        self.set_checked(index.row(), state == _CHECKED.value)
        return True

    def flags(self, index: _Index) -> Qt.ItemFlag:
        flags = super().flags(index)
        if (index.isValid() and index.column() == 0 and 0 <= index.row() < len(self._rows)
                and self._rows[index.row()].status != INVALID):
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        return flags
