"""The Activity log: any number of events, newest first, fetched page by page as the view scrolls.

Memory stays bounded however deep the user scrolls: each page remembers the
cursor that fetched it and its row count; only the most recently used pages
keep their records. A page scrolled back into view is fetched again from its
cursor (the API's cursors are stable under inserts).

A text search reads a bounded window of events per request, so its pages
can be short or empty while a cursor remains: each fetch goes on by itself,
one background request after another, until it has brought a screenful of
rows or the history ends (the view only asks again when scrolled to the end).

The GUI thread must not stall while pages arrive (the view asks `data()`
~1,500 times per frame, each call taking the GIL): records are kept as
compact EventRows built in C on the worker thread, shown times are formatted
once and cached, and pages are a few hundred rows so no single JSON decode
holds the GIL for long. `Event` objects are made only when one is asked for.
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QLocale, QModelIndex, QPersistentModelIndex, Qt, Signal

from ..api_client import (
    EVENT_FIELDS,
    ROW_ID,
    ROW_REASON,
    ROW_RECIPIENT,
    ROW_SENDER,
    ROW_SUBJECT,
    ROW_TS,
    ROW_VERDICT,
    Event,
    EventRow,
    GatewayClient,
    Page,
)
from ..api_client import parse_time as _ts
from ..dates import exact
from ..operations import Operation
from ..verdicts import icon as verdict_icon
from .base import Column, IdRole, RecordRole, SortRole, local_time, plain_tooltip, tr, verdict_label

PAGE_SIZE = 250  # measured: 500-row pages decode in one ~2 ms GIL hold on the worker, 250 in half that
KEEP_PAGES = 80  # pages of records kept in memory (20,000 events); the rest are fetched again when shown
TIME_CACHE = 4096  # formatted times kept (a screenful is ~40)
SCREENFUL = 60  # a text search goes on to older windows by itself until a fetch has brought this many rows

_Index = QModelIndex | QPersistentModelIndex
_DISPLAY = Qt.ItemDataRole.DisplayRole
_TOOLTIP = Qt.ItemDataRole.ToolTipRole
_DECORATION = Qt.ItemDataRole.DecorationRole
_SERVED = frozenset({_DISPLAY, _TOOLTIP, _DECORATION, RecordRole, IdRole, SortRole})
VERDICT_COLUMN = 1
_ROW_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren


_times: dict[str, str] = {}
_times_valid_until = [0.0]  # the next local midnight: "Today 08:10" reads "Yesterday 08:10" after it
_times_locale = [""]  # the language the texts are in: a switch to German (i18n.install) makes them again


def _next_midnight() -> float:
    tomorrow = datetime.combine(date.today() + timedelta(days=1), datetime.min.time())
    return tomorrow.timestamp()  # naive: local time, as the texts are


def _time_text(iso: str) -> str:
    locale = QLocale().name()
    if time.time() >= _times_valid_until[0] or locale != _times_locale[0]:  # the view asks often: cheap checks
        _times.clear()
        _times_valid_until[0] = _next_midnight()
        _times_locale[0] = locale
    text = _times.get(iso)
    if text is None:
        if len(_times) >= TIME_CACHE:
            _times.clear()
        text = _times[iso] = local_time(_ts(iso))
    return text


def _ts_key(r: EventRow) -> float:
    ts = _ts(r[ROW_TS])
    return ts.timestamp() if ts else 0.0


ROW_TAG = EVENT_FIELDS.index("tag")  # the sign-up address's name the message came in by (issue 19)

# columns over EventRows
COLUMNS: tuple[Column, ...] = (
    Column(lambda: tr("Time"), lambda r: _time_text(r[ROW_TS]), _ts_key, lambda r: exact(_ts(r[ROW_TS]))),
    Column(lambda: tr("Verdict"), lambda r: verdict_label(r[ROW_VERDICT]), lambda r: r[ROW_VERDICT],
           lambda r: verdict_label(r[ROW_VERDICT])),
    Column(lambda: tr("Sender"), lambda r: r[ROW_SENDER] or "<>", lambda r: r[ROW_SENDER], lambda r: r[ROW_SENDER]),
    Column(lambda: tr("Recipient"), lambda r: r[ROW_RECIPIENT], lambda r: r[ROW_RECIPIENT],
           lambda r: r[ROW_RECIPIENT]),
    Column(lambda: tr("Subject"), lambda r: r[ROW_SUBJECT], lambda r: r[ROW_SUBJECT], lambda r: r[ROW_SUBJECT]),
    Column(lambda: tr("Reason"), lambda r: r[ROW_REASON], lambda r: r[ROW_REASON], lambda r: r[ROW_REASON]),
    Column(lambda: tr("Sign-up address"), lambda r: r[ROW_TAG] or "", lambda r: r[ROW_TAG] or ""),
)


class EventsModel(QAbstractTableModel):
    # int, not bool: PySide6 6.12.0 drops a reference to True/False on every emit of a Python bool
    # through a Python-declared signal (bool or object), and the interpreter aborts once it reaches 0
    loading_changed = Signal(int)
    first_page_loaded = Signal()
    failed = Signal(str)

    def __init__(self, client: GatewayClient | None = None, parent: Any = None, *,
                 page_size: int = PAGE_SIZE, keep_pages: int = KEEP_PAGES) -> None:
        super().__init__(parent)
        self._client = client
        self._page_size = page_size
        self._keep_pages = keep_pages
        self.verdicts: tuple[str, ...] = ()
        self.query = ""
        self._head: list[EventRow] = []  # live events that arrived after the first page, newest first
        self._page_cursor: list[str | None] = []  # cursor that fetched page i (None: the first)
        self._page_start: list[int] = []  # first row of page i, below the head
        self._page_count: list[int] = []
        self._pages: OrderedDict[int, tuple[EventRow, ...]] = OrderedDict()  # page -> records, LRU
        self._refetching: set[int] = set()
        self._next_cursor: str | None = None
        self._at_end = True
        self._loading = False
        self._started = False  # the first answer for this filter has arrived (it may have held no rows)
        self._gathered = 0  # rows the current fetch (over however many short pages) has brought so far
        self._generation = 0  # a filter change makes answers to older requests stale
        self._ids: set[int] = set()  # ids in the head (live duplicates are dropped)

    # -- setup --
    def set_client(self, client: GatewayClient) -> None:
        self._client = client

    def set_filter(self, verdicts: tuple[str, ...], query: str) -> None:
        self.verdicts, self.query = tuple(verdicts), query.strip()
        self.reload()

    def reload(self) -> None:
        self._generation += 1
        self.beginResetModel()
        self._head.clear()
        self._ids.clear()
        self._page_cursor.clear()
        self._page_start.clear()
        self._page_count.clear()
        self._pages.clear()
        self._refetching.clear()
        self._next_cursor = None
        self._at_end = False
        self._loading = False
        self._started = False
        self._gathered = 0
        self.endResetModel()
        if self._client is not None and self.has_subject():
            self._fetch(None)

    def has_subject(self) -> bool:
        """Whether there is anything to ask for (a model of one sender's or one tag's events: once chosen);
        without it a reload is an empty table and no call."""
        return True

    @property
    def loading(self) -> bool:
        return self._loading

    def loaded_pages(self) -> int:
        return len(self._pages)

    # -- fetching --
    def _fetch(self, cursor: str | None) -> None:
        assert self._client is not None
        client, gen = self._client, self._generation
        load = self.page_loader()
        self._set_loading(True)
        Operation(self, lambda: load(client, cursor),
                  lambda page: self._append(gen, cursor, page)).failure(lambda exc: self._failed(gen, str(exc))).run()

    def page_loader(self) -> Callable[[GatewayClient, str | None], Page]:
        """What fetches a page for the current filter, on a worker thread (a subclass shows other events)."""
        verdicts, query, size = self.verdicts, self.query, self._page_size
        return lambda client, cursor: client.event_rows(verdicts=verdicts, q=query, cursor=cursor, limit=size)

    def _set_loading(self, on: bool) -> None:
        if on != self._loading:
            self._loading = on
            self.loading_changed.emit(int(on))

    def _failed(self, gen: int, message: str) -> None:
        if gen != self._generation:
            return
        self._set_loading(False)
        self.failed.emit(message)

    def _append(self, gen: int, cursor: str | None, page: Page) -> None:
        if gen != self._generation:
            return
        first = not self._started
        self._started = True
        self._gathered += len(page.items)
        self._next_cursor = page.next_cursor
        self._at_end = page.next_cursor is None
        if page.items:
            start = (self._page_start[-1] + self._page_count[-1]) if self._page_start else 0
            index = len(self._page_cursor)
            row0 = len(self._head) + start
            self.beginInsertRows(QModelIndex(), row0, row0 + len(page.items) - 1)
            self._page_cursor.append(cursor)
            self._page_start.append(start)
            self._page_count.append(len(page.items))
            self._remember(index, page.items)
            self.endInsertRows()
        more = page.next_cursor is not None and self._gathered < min(SCREENFUL, self._page_size)
        if not more:
            self._set_loading(False)
        if first:
            self.first_page_loaded.emit()
        if more:  # a short search page: the next window, still off the GUI thread
            self._fetch(page.next_cursor)

    def _remember(self, index: int, items: tuple[EventRow, ...]) -> None:
        self._pages[index] = items
        self._pages.move_to_end(index)
        while len(self._pages) > self._keep_pages:
            self._pages.popitem(last=False)

    def _refetch(self, index: int) -> None:
        """A page that was dropped from memory is shown again: fetch it from its cursor."""
        if index in self._refetching or self._client is None:
            return
        self._refetching.add(index)
        client, gen, cursor = self._client, self._generation, self._page_cursor[index]
        load = self.page_loader()

        def done(page: Page) -> None:
            if gen != self._generation:
                return
            self._refetching.discard(index)
            items = page.items[: self._page_count[index]]
            self._remember(index, items)
            top = len(self._head) + self._page_start[index]
            self.dataChanged.emit(self.index(top, 0), self.index(top + self._page_count[index] - 1,
                                                                  len(COLUMNS) - 1))

        def failed(exc: Exception) -> None:
            self._refetching.discard(index)
            self.failed.emit(str(exc))

        Operation(self, lambda: load(client, cursor), done).failure(failed).run()

    def canFetchMore(self, parent: _Index = QModelIndex()) -> bool:
        if parent.isValid():
            return False
        return not self._at_end and not self._loading and self._started

    def fetchMore(self, parent: _Index = QModelIndex()) -> None:
        if self.canFetchMore(parent):
            self._gathered = 0
            self._fetch(self._next_cursor)

    # -- live --
    def matches(self, event: Event) -> bool:
        if self.verdicts and event.verdict not in self.verdicts:
            return False
        if self.query:
            q = self.query.lower()
            return any(q in field.lower() for field in (event.sender, event.recipient, event.subject))
        return True

    def add_live(self, event: Event) -> bool:
        """A new event from the live stream goes on top, if it passes the filter and is not shown yet."""
        if not self._started or not self.matches(event) or event.id in self._ids:
            return False
        newest = self._newest_id()
        if newest is not None and event.id <= newest:
            return False
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._head.insert(0, event.to_row())
        self._ids.add(event.id)
        self.endInsertRows()
        return True

    def _newest_id(self) -> int | None:
        if self._head:
            return self._head[0][ROW_ID]
        first = self._pages.get(0)
        return first[0][ROW_ID] if first else None

    # -- reading --
    def event_at(self, row: int) -> Event | None:
        record = self.row_at(row)
        return Event.from_row(record) if record is not None else None

    def row_at(self, row: int) -> EventRow | None:
        if row < 0:
            return None
        if row < len(self._head):
            return self._head[row]
        row -= len(self._head)
        index = bisect.bisect_right(self._page_start, row) - 1
        if index < 0 or index >= len(self._page_start) or row >= self._page_start[index] + self._page_count[index]:
            return None
        items = self._pages.get(index)
        if items is None:
            self._refetch(index)
            return None
        self._pages.move_to_end(index)
        offset = row - self._page_start[index]
        return items[offset] if offset < len(items) else None

    def rowCount(self, parent: _Index = QModelIndex()) -> int:
        if parent.isValid() or not self._page_start:
            return 0 if parent.isValid() else len(self._head)
        return len(self._head) + self._page_start[-1] + self._page_count[-1]

    def columnCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(COLUMNS):
            return COLUMNS[section].title()
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # the view asks ~7 roles per cell per frame; answer the ones we do not serve before any lookup
        if role not in _SERVED or not index.isValid():
            return None
        column_no = index.column()
        if column_no >= len(COLUMNS) or (role == _DECORATION and column_no != VERDICT_COLUMN):
            return None
        record = self.row_at(index.row())
        column = COLUMNS[column_no]
        if record is None:
            return tr("Loading…") if role == _DISPLAY and column_no == 0 else None
        if role == _DISPLAY:
            return column.display(record)
        if role == _TOOLTIP:
            return plain_tooltip(column.tooltip(record)) if column.tooltip is not None else None
        if role == _DECORATION:
            return verdict_icon(record[ROW_VERDICT]) if column_no == VERDICT_COLUMN else None
        if role == RecordRole:
            return Event.from_row(record)
        if role == IdRole:
            return record[ROW_ID]
        if role == SortRole and column.sort is not None:
            return column.sort(record)
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        return _ROW_FLAGS if index.isValid() else Qt.ItemFlag.NoItemFlags
