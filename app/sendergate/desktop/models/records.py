"""A read-only table over a list of records: the shape the Pending, Screened and list models share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from .base import Column, IdRole, RecordRole, SortRole, plain_tooltip

R = TypeVar("R")
_Index = QModelIndex | QPersistentModelIndex


class RecordsModel(QAbstractTableModel, Generic[R]):
    columns: Sequence[Column] = ()

    def __init__(self, parent: Any = None, key: Callable[[R], Any] = attrgetter("id")) -> None:
        super().__init__(parent)
        self._rows: list[R] = []
        self._key = key

    def records(self) -> list[R]:
        return list(self._rows)

    def record(self, row: int) -> R | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def set_records(self, records: Iterable[R]) -> None:
        self.beginResetModel()
        self._rows = list(records)
        self.endResetModel()

    def row_of(self, key: Any) -> int:
        for i, r in enumerate(self._rows):
            if self._key(r) == key:
                return i
        return -1

    def upsert(self, record: R, *, at_top: bool = True) -> None:
        row = self.row_of(self._key(record))
        if row >= 0:
            self._rows[row] = record
            self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))
            return
        row = 0 if at_top else len(self._rows)
        self.beginInsertRows(QModelIndex(), row, row)
        self._rows.insert(row, record)
        self.endInsertRows()

    def replace_many(self, records: Iterable[R]) -> list[R]:
        """Put each record in place of the shown one with its key, a row's change at a time (a sorting proxy
        moves just that row, where a reset sorts them all); returns the records no row has."""
        where = {self._key(r): i for i, r in enumerate(self._rows)}
        last, missing = self.columnCount() - 1, []
        for record in records:
            row = where.get(self._key(record), -1)
            if row < 0:
                missing.append(record)
            elif self._rows[row] != record:
                self._rows[row] = record
                self.dataChanged.emit(self.index(row, 0), self.index(row, last))
        return missing

    def remove_key(self, key: Any) -> bool:
        row = self.row_of(key)
        if row < 0:
            return False
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._rows[row]
        self.endRemoveRows()
        return True

    def rowCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(self.columns):
            return self.columns[section].title()
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not (0 <= index.row() < len(self._rows)) or index.column() >= len(self.columns):
            return None
        record = self._rows[index.row()]
        column = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.display(record)
        if role == Qt.ItemDataRole.ToolTipRole:  # every cell: a column too narrow elides, the tooltip has it all
            return plain_tooltip(column.tooltip(record) if column.tooltip is not None else column.display(record))
        if role == SortRole:
            return column.sort(record) if column.sort is not None else column.display(record)
        if role == RecordRole:
            return record
        if role == IdRole:
            return self._key(record)
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren
