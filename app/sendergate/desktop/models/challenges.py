"""Pending challenges as a screener (issue 17 item 1): per sender, two lines in each column — who (name,
address), what (subject, their history with us), when (and how often), and whether their domain was
verified (and whether they tried the CAPTCHA)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt

from ..api_client import Challenge
from ..dates import exact, when
from .base import Column, tr
from .records import RecordsModel

SecondLineRole = Qt.ItemDataRole.UserRole + 10  # the muted second line of a two-line cell
FilterRole = Qt.ItemDataRole.UserRole + 11  # both lines: what the filter box searches
AuthRole = Qt.ItemDataRole.UserRole + 12  # the auth status word, for the mark's icon
_Index = QModelIndex | QPersistentModelIndex

AUTH_ORDER = {"failed": 0, "unchecked": 1, "unverified": 2, "verified": 3}
AUTH_ICONS = {"verified": "auth-verified", "unverified": "auth-unverified", "unchecked": "auth-unverified",
              "failed": "auth-failed"}


def auth_label(status: str) -> str:
    return {"verified": tr("Verified domain"), "unverified": tr("Could not verify"),
            "failed": tr("Failed verification"), "unchecked": tr("Not checked")}.get(status, status)


def who(c: Challenge) -> str:
    return c.display_name or c.sender


def who_second(c: Challenge) -> str:
    if c.display_name:
        return c.sender
    return tr("name hidden: it looked like an address") if c.display_name_hidden else ""


def captcha_text(c: Challenge) -> str:
    if c.confirm_failures:
        return tr("CAPTCHA: %n wrong answer(s)", None, c.confirm_failures)
    return tr("CAPTCHA not tried")


def history_text(c: Challenge) -> str:
    """One line: earlier refusals and the other recipients this user may see; "" while unknown."""
    h = c.history
    if h is None:
        return ""
    parts = []
    if h.earlier_refusals:
        parts.append(tr("%n earlier refusal(s) since %1", None, h.earlier_refusals)
                     .replace("%1", when(h.first_refused)))
    else:
        parts.append(tr("First contact"))
    if h.other_recipient_count:
        names = ", ".join(h.other_recipients)
        more = h.other_recipient_count - len(h.other_recipients)
        parts.append(tr("also wrote to %1").replace("%1", names + (f" (+{more})" if more > 0 else "")))
    return " · ".join(parts)


def first_latest(c: Challenge) -> str:
    return tr("First %1, latest %2").replace("%1", exact(c.created_at)).replace("%2", exact(c.updated_at))


def attempts_text(c: Challenge) -> str:
    return tr("%n message(s)", None, c.attempts)


class PendingModel(RecordsModel[Challenge]):
    _pos: dict[Any, int] | None = None
    columns = (
        Column(lambda: tr("Sender"), who, lambda c: who(c).casefold(),
               lambda c: f"{who(c)}\n{c.sender} → {c.recipient}"),
        Column(lambda: tr("Subject"), lambda c: c.subject or tr("(no subject)"), lambda c: c.subject,
               lambda c: c.subject),
        Column(lambda: tr("When"), lambda c: when(c.created_at), lambda c: c.created_at.timestamp(),
               lambda c: first_latest(c)),
        Column(lambda: tr("Domain"), lambda c: auth_label(c.auth_status), lambda c: AUTH_ORDER.get(c.auth_status, 1),
               lambda c: c.auth_detail),
    )
    _second = (who_second, history_text, attempts_text, captcha_text)

    def lines(self, record: Challenge, column: int) -> tuple[str, str]:
        """A cell's two lines, straight from the record (the delegate's one call per cell)."""
        return str(self.columns[column].display(record)), self._second[column](record)

    # -- sorting here, in Python (one key per row), not in the proxy (two model calls per comparison:
    # half a second for 1,000 rows on every reload)
    sort_column = 2
    sort_order = Qt.SortOrder.DescendingOrder

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self.columns):
            return
        self.sort_column, self.sort_order = column, order
        self.layoutAboutToBeChanged.emit()
        before = self.persistentIndexList()
        keys = [self._key(self._rows[i.row()]) for i in before]
        self._sort_rows()
        self._pos = None
        after = [self.index(self.row_of(k), i.column()) for k, i in zip(keys, before, strict=True)]
        self.changePersistentIndexList(before, after)
        self.layoutChanged.emit()

    def _sort_rows(self) -> None:
        key = self.columns[self.sort_column].sort or self.columns[self.sort_column].display
        self._rows.sort(key=lambda r: (key(r), r.id), reverse=self.sort_order == Qt.SortOrder.DescendingOrder)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role in (SecondLineRole, FilterRole, AuthRole, Qt.ItemDataRole.AccessibleTextRole) and index.isValid():
            record = self.record(index.row())
            if record is None or index.column() >= len(self.columns):
                return None
            if role == AuthRole:
                return record.auth_status
            second = self._second[index.column()](record)
            if role == SecondLineRole:
                return second
            first = self.columns[index.column()].display(record)
            if role == FilterRole and index.column() == 0:
                return f"{first} {record.sender} {record.recipient} {record.subject}"
            return f"{first}, {second}" if second else str(first)
        return super().data(index, role)

    def apply(self, challenge: Challenge) -> None:
        """A challenge from the live stream: shown while pending, gone once decided or expired. The stream
        carries no history: a known row keeps the one it had."""
        if challenge.status == "pending":
            self.upsert(self._keep_history(challenge))
        else:
            self.remove_key(challenge.id)

    def apply_many(self, challenges: Iterable[Challenge]) -> None:
        """Several stream challenges at once: updates in place under one dataChanged, new ones in one
        insert at the top, decided ones out (1,000 pending arrive without a stall: issue 17's bench)."""
        fresh: dict[int, Challenge] = {}
        gone: list[int] = []
        changed: list[int] = []
        for c in challenges:
            row = self.row_of(c.id)
            if c.status != "pending":
                fresh.pop(c.id, None)
                if row >= 0:
                    gone.append(c.id)
            elif row >= 0:
                self._rows[row] = self._keep_history(c)
                changed.append(row)
            else:
                fresh[c.id] = c
        if changed:
            self.dataChanged.emit(self.index(min(changed), 0), self.index(max(changed), self.columnCount() - 1))
        for key in gone:
            self.remove_key(key)
        if fresh:
            self.beginInsertRows(QModelIndex(), 0, len(fresh) - 1)
            self._rows[0:0] = reversed(fresh.values())  # newest first, as upsert puts them
            self._pos = None
            self.endInsertRows()
        if (fresh or changed) and (self.sort_column, self.sort_order) != (2, Qt.SortOrder.DescendingOrder):
            self.sort(self.sort_column, self.sort_order)

    # row_of by id through an index: the live stream looks every challenge up (O(1), not a scan of 1,000)
    def row_of(self, key: Any) -> int:
        if self._pos is None or len(self._pos) != len(self._rows):
            self._pos = {self._key(r): i for i, r in enumerate(self._rows)}
        return self._pos.get(key, -1)

    def set_records(self, records: Iterable[Challenge]) -> None:
        self.beginResetModel()
        self._rows = list(records)
        self._sort_rows()
        self._pos = None
        self.endResetModel()

    def upsert(self, record: Challenge, *, at_top: bool = True) -> None:
        super().upsert(record, at_top=at_top)
        self._pos = None

    def remove_key(self, key: Any) -> bool:
        removed = super().remove_key(key)
        self._pos = None
        return removed

    def merge_history(self, challenges: Iterable[Challenge]) -> None:
        """Histories fetched after the stream brought their challenges."""
        for c in challenges:
            row = self.row_of(c.id)
            if row >= 0 and c.history is not None:
                self._rows[row] = dataclasses.replace(self._rows[row], history=c.history)
                self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))

    def _keep_history(self, c: Challenge) -> Challenge:
        if c.history is None:
            row = self.row_of(c.id)
            old = self.record(row) if row >= 0 else None
            if old is not None and old.history is not None:
                return dataclasses.replace(c, history=old.history)
        return c

    def row_of_sender(self, sender: str) -> int:
        sender = sender.lower()
        return next((i for i, c in enumerate(self._rows) if c.sender == sender), -1)
