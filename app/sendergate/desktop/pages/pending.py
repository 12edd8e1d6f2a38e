"""Pending as a screener (issue 17 item 1): one sender per row, two lines per cell — who (display name
and address), what (subject and their history with us), when (and how often), and a verified /
could-not-verify mark (icon and text); the selected sender in full below. One key each: A allow the
sender, M allow the domain, D deny (Shift+A still allows the domain); several at once; Ctrl+A selects
all. Live additions keep the selection and what is in view."""

from __future__ import annotations

import html
import logging
from collections import OrderedDict
from typing import Any

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import (
    QAction,
    QFont,
    QFontMetrics,
    QIcon,
    QKeySequence,
    QPainter,
    QPalette,
    QPixmap,
    QStaticText,
    QTransform,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionFocusRect,
    QStyleOptionViewItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from .. import undo
from ..api_client import Challenge, Decided
from ..history import install_history
from ..i18n import tr
from ..icons import icon
from ..models import PendingModel
from ..models.base import RecordRole
from ..models.challenges import (
    AUTH_ICONS,
    FilterRole,
    attempts_text,
    auth_label,
    captcha_text,
    first_latest,
    history_text,
)
from ..widgets import debounced, icon_button
from .base import Page, fitter, make_table

log = logging.getLogger("sendergate.desktop.pending")
SENDER, SUBJECT, WHEN, DOMAIN = range(4)
# one key each (issue 17), and the keys of before as aliases
KEYS = {"approve": ("A",), "allow-domain": ("M", "Shift+A"), "deny": ("D",)}
_Index = QModelIndex | QPersistentModelIndex
# Qt enums looked up once: each lookup is a Python enum call, and paint runs for every visible cell
_PANEL = QStyle.PrimitiveElement.PE_PanelItemViewItem
_SELECTED = QStyle.StateFlag.State_Selected
_FOCUS = QStyle.StateFlag.State_HasFocus
_NORMAL = QPalette.ColorGroup.Normal
_TEXT, _HIGHLIGHTED_TEXT = QPalette.ColorRole.Text, QPalette.ColorRole.HighlightedText
LIVE_COALESCE_MS = 40  # stream challenges arriving within this are shown together
LIVE_CHUNK = 250  # at most this many per model change: the GUI thread gets its turn in between
HISTORY_DELAY_MS = 1500  # after the last live arrival: one page read for the newcomers' histories


class SourceSortProxy(QSortFilterProxyModel):
    """Filters here; sorts in the source model (PendingModel.sort: one Python key per row)."""

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        source = self.sourceModel()
        if source is not None:
            source.sort(column, order)


class TwoLineDelegate(QStyledItemDelegate):
    """A cell of two elided lines: the first in the normal (or, for the sender, bold) font, the second
    lighter; the Domain column leads with its mark's icon. Painted from cached, laid-out text (QStaticText
    per text and width): a repaint of the visible rows costs a few ms even while 1,000 rows arrive."""

    CACHE = 4000  # laid-out texts kept; the visible rows need a few dozen

    def __init__(self, parent: QWidget, model: PendingModel) -> None:
        super().__init__(parent)
        self.model = model
        self._icons = {status: icon(name) for status, name in AUTH_ICONS.items()}
        self._pixmaps: dict[tuple[str, int, bool], QPixmap] = {}
        self._fonts = (QFont(parent.font()), QFont(parent.font()))
        self._fonts[1].setBold(True)
        self._metrics = tuple(QFontMetrics(f) for f in self._fonts)
        self._texts: OrderedDict[tuple[str, int, int], QStaticText] = OrderedDict()

    def _static(self, text: str, width: int, bold: int) -> QStaticText:
        key = (text, width, bold)
        found = self._texts.get(key)
        if found is None:
            found = QStaticText(self._metrics[bold].elidedText(text, Qt.TextElideMode.ElideRight, width))
            found.setTextFormat(Qt.TextFormat.PlainText)  # the sender's text is never markup
            found.prepare(QTransform(), self._fonts[bold])
            self._texts[key] = found
            if len(self._texts) > self.CACHE:
                self._texts.popitem(last=False)
        return found

    def _pixmap(self, status: str, size: int, selected: bool) -> QPixmap | None:
        key = (status, size, selected)
        if key not in self._pixmaps:
            ic = self._icons.get(status)
            if ic is None:
                return None
            self._pixmaps[key] = ic.pixmap(size, size, QIcon.Mode.Selected if selected else QIcon.Mode.Normal)
        return self._pixmaps[key]

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        record = index.data(RecordRole)  # one call into the model per cell; no initStyleOption
        if record is None:
            super().paint(painter, option, index)
            return
        column = index.column()
        first, second = self.model.lines(record, column)
        widget = option.widget
        style = widget.style() if widget is not None else None
        if style is not None:
            style.drawPrimitive(_PANEL, option, painter, widget)
        rect = option.rect.adjusted(6, 4, -6, -4)
        selected = bool(option.state & _SELECTED)
        colour = option.palette.color(_NORMAL, _HIGHLIGHTED_TEXT if selected else _TEXT)
        painter.save()
        if column == DOMAIN:
            size = min(rect.height() // 2 + 2, 22)
            pixmap = self._pixmap(record.auth_status, size, selected)
            if pixmap is not None:
                painter.drawPixmap(rect.left(), rect.top(), pixmap)
            rect.setLeft(rect.left() + size + 6)
        half = rect.height() // 2
        bold = 1 if column == SENDER else 0
        line = self._metrics[0].height()
        painter.setPen(colour)
        painter.setFont(self._fonts[bold])
        painter.drawStaticText(rect.left(), rect.top() + (half - line) // 2, self._static(first, rect.width(), bold))
        if second:
            if bold:
                painter.setFont(self._fonts[0])
            if not selected:  # lighter than the first line, still readable (not the disabled grey)
                colour.setAlpha(175)
                painter.setPen(colour)
            painter.drawStaticText(rect.left(), rect.top() + half + (half - line) // 2,
                                   self._static(second, rect.width(), 0))
        if option.state & _FOCUS and style is not None:
            focus = QStyleOptionFocusRect()
            focus.rect = option.rect
            focus.state = option.state
            focus.palette = option.palette
            style.drawPrimitive(QStyle.PrimitiveElement.PE_FrameFocusRect, focus, painter, widget)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: _Index) -> QSize:
        fm = option.fontMetrics
        return QSize(fm.horizontalAdvance("x") * 20, fm.height() * 2 + 12)


def details_html(c: Challenge) -> str:
    """The selected sender in full. Every value is the sender's text or derived from it: escaped."""
    e = html.escape
    name = (f"<b>{e(c.display_name)}</b> &lt;{e(c.sender)}&gt;" if c.display_name else f"<b>{e(c.sender)}</b>")
    if c.display_name_hidden:
        name += f" <i>({e(tr('name hidden: it looked like an address'))})</i>"
    rows = [(tr("Sender"), name),
            (tr("To"), e(c.recipient)),
            (tr("Subject"), e(c.subject or tr("(no subject)"))),
            (tr("When"), e(first_latest(c)) + " · " + e(attempts_text(c))),
            (tr("Domain"), f"<b>{e(auth_label(c.auth_status))}</b>" + (f" — {e(c.auth_detail)}" if c.auth_detail
                                                                        and c.auth_status != "unchecked" else "")),
            (tr("CAPTCHA"), e(captcha_text(c))),
            (tr("History"), e(history_text(c) or tr("not loaded yet")))]
    body = "".join(f"<tr><th align='left' valign='top'>{e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table cellspacing='3'>{body}</table>"


class PendingPage(Page):
    key = "pending"
    icon_name = "pending"

    @staticmethod
    def title() -> str:
        return tr("Pending")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = PendingModel(self)
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.approve_button = icon_button("approve", tr("&Approve"), tr("Allow these senders (A)"))
        self.domain_button = icon_button("domain", tr("Allow do&main"), tr("Allow the senders' whole domains (M)"))
        self.deny_button = icon_button("deny", tr("&Deny"), tr("Block these senders; their links stop working (D)"))
        for b in (self.approve_button, self.domain_button, self.deny_button):
            bar.addWidget(b)
        bar.addStretch(1)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText(tr("Filter"))
        self.filter.setAccessibleName(tr("Filter pending senders"))
        self.filter.setClearButtonEnabled(True)
        bar.addWidget(self.filter)
        layout.addLayout(bar)

        split = QSplitter(Qt.Orientation.Vertical)
        self.table, _ = make_table(self.model, sortable=False, multi=True, name=tr("Pending senders"))
        self.proxy = SourceSortProxy(self.table)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterRole(FilterRole)
        self.proxy.setFilterKeyColumn(SENDER)  # its FilterRole holds every line worth searching
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.delegate = TwoLineDelegate(self.table, self.model)
        self.table.setItemDelegate(self.delegate)
        self.table.setAlternatingRowColors(True)
        fm = self.table.fontMetrics()
        self.table.verticalHeader().setDefaultSectionSize(fm.height() * 2 + 12)  # uniform: no per-row measuring
        # Sender and Subject share what is left after When and Domain, which keep their width: the table fits
        # the window (1,024 px included) instead of scrolling sideways. Through the table's fitter (make_table),
        # which would otherwise give the room to the last column, Domain
        fitter(self.table).configure(stretch=SUBJECT, keep=(WHEN, DOMAIN), min_chars=24)
        for col, sample in ((WHEN, tr("Yesterday %1").replace("%1", "00:00") + "MM"),
                            (DOMAIN, tr("Failed verification") + "MMMM")):
            self.table.setColumnWidth(col, max(fm.horizontalAdvance(sample), 110) + 24)
        self.table.setColumnWidth(SENDER, fm.horizontalAdvance("maria.lopez@startup-example.com") + 24)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.table.sortByColumn(WHEN, Qt.SortOrder.DescendingOrder)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        split.addWidget(self.table)
        self.details = QTextBrowser()
        self.details.setObjectName("pendingDetails")
        self.details.setAccessibleName(tr("The selected sender"))
        self.details.setPlaceholderText(tr("Select a sender to see who they are and what we know of them."))
        split.addWidget(self.details)
        split.setSizes([420, 150])
        layout.addWidget(split, 1)
        self.empty = QLabel()
        layout.addWidget(self.empty)
        self.model.rowsInserted.connect(self._count_changed)
        self.model.rowsRemoved.connect(self._count_changed)
        self.model.modelReset.connect(self._count_changed)
        self.model.dataChanged.connect(lambda *_: self._show_details())
        # rows added above what is in view push it down: scroll by as many so the view stays put
        self.proxy.rowsAboutToBeInserted.connect(self._before_insert)
        self.proxy.rowsInserted.connect(self._after_insert)
        self._keep_scroll: int | None = None
        # the live stream's challenges, coalesced: a burst becomes a few model changes, not one per sender
        self._live: dict[int, Challenge] = {}
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_COALESCE_MS)
        self._live_timer.timeout.connect(self._flush_live)
        self._need_history: set[int] = set()
        self._histories_later = debounced(self, HISTORY_DELAY_MS, self._fetch_histories)

        self.actions_by_decision: dict[str, QAction] = {}
        for button, decision, text in ((self.approve_button, "approve", tr("Approve")),
                                       (self.domain_button, "allow-domain", tr("Allow domain")),
                                       (self.deny_button, "deny", tr("Deny"))):
            button.clicked.connect(lambda _=False, d=decision: self.decide_selected(d))
            action = QAction(text, self)
            action.setShortcuts([QKeySequence(k) for k in KEYS[decision]])
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(lambda _=False, d=decision: self.decide_selected(d))
            self.table.addAction(action)
            self.actions_by_decision[decision] = action
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        self.table.selectionModel().currentChanged.connect(lambda *_: self._show_details())
        self.history_action = install_history(self, self.table, lambda c: c.sender)  # H, context menu
        self._enable()

    # -- live additions keep the view --
    def live(self, challenge: Challenge) -> bool:
        """A challenge from the live stream, shown within LIVE_COALESCE_MS; True when it is a new pending one."""
        new = challenge.status == "pending" and challenge.id not in self._live and self.model.row_of(challenge.id) < 0
        self._live[challenge.id] = challenge  # a later message about it wins
        if not self._live_timer.isActive():
            self._live_timer.start(LIVE_COALESCE_MS)
        return new

    def _flush_live(self) -> None:
        ids = list(self._live)[:LIVE_CHUNK]
        batch = [self._live.pop(i) for i in ids]
        rows = self.table.selectionModel().selectedRows()
        first_row = min((i.row() for i in rows), default=-1)
        self.model.apply_many(batch)
        if first_row >= 0:  # the selected sender was decided elsewhere (or here, answer still on its way):
            self._select_row(first_row)  # the next one is ready for the next key
        # the stream carries no history: fetch the newest page once the burst is over
        self._need_history.update(c.id for c in batch if c.status == "pending" and c.history is None
                                  and (r := self.model.record(self.model.row_of(c.id))) is not None
                                  and r.history is None)
        if self._need_history:
            self._histories_later()
        if self._live:  # the rest after the event loop had its turn
            self._live_timer.start(0)

    def _fetch_histories(self) -> None:
        wanted, self._need_history = self._need_history, set()
        client = self.client
        limit = min(500, len(wanted) + 10)  # the newest challenges: the first page holds them
        # best effort: on failure the rows show no history until the next reload
        self.run(lambda: client.challenges(limit=limit).items, self.model.merge_history,
                 lambda exc: log.info("pending: histories not fetched: %s", exc))

    def _before_insert(self, parent: QModelIndex, first: int, last: int) -> None:
        bar = self.table.verticalScrollBar()
        top = self.table.rowAt(0)
        # at the very top the newest arrivals show (as a screener should); scrolled down, nothing moves
        self._keep_scroll = bar.value() if bar.value() > 0 and top >= 0 and first <= top else None

    def _after_insert(self, parent: QModelIndex, first: int, last: int) -> None:
        if self._keep_scroll is not None:
            bar = self.table.verticalScrollBar()
            step = (last - first + 1) * self.table.verticalHeader().defaultSectionSize()
            per_item = self.table.verticalScrollMode() == self.table.ScrollMode.ScrollPerItem
            bar.setValue(self._keep_scroll + ((last - first + 1) if per_item else step))
            self._keep_scroll = None

    def _context_menu(self, pos: Any) -> None:
        if not self.table.selectionModel().selectedRows():
            return
        menu = QMenu(self)
        for action in self.actions_by_decision.values():
            menu.addAction(action)
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def _selection_changed(self) -> None:
        self._enable()
        self._show_details()

    def _show_details(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        current = self.table.currentIndex()
        chosen = current if current.isValid() and self.table.selectionModel().isRowSelected(current.row()) \
            else (rows[0] if rows else None)
        record = self.proxy.data(chosen, RecordRole) if chosen is not None and chosen.isValid() else None
        self.details.setHtml(details_html(record) if record is not None else "")

    def _enable(self) -> None:
        on = bool(self.table.selectionModel().selectedRows())
        for b in (self.approve_button, self.deny_button, self.domain_button):
            b.setEnabled(on)

    def _count_changed(self, *_: object) -> None:
        n = self.model.rowCount()
        self.empty.setText(tr("Nobody is waiting.") if n == 0 else tr("%n sender(s) waiting", None, n))
        self._enable()

    def refresh(self) -> None:
        client = self.client
        self.run(client.all_pending, self._loaded, lambda exc: self.messages.error(str(exc)))

    def _loaded(self, challenges: list[Challenge]) -> None:
        # a reload (F5, a reconnect) keeps the selection and the row at the top of the view
        chosen = [c.id for c in self.selected()]
        top = self.proxy.index(self.table.rowAt(0), 0).data(RecordRole) if self.table.rowAt(0) >= 0 else None
        self.model.set_records(challenges)
        self.loaded = True
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for n, key in enumerate(chosen):
            index = self._proxy_index(key)
            if index.isValid():
                self.table.selectionModel().setCurrentIndex(index, flags) if n == 0 else \
                    self.table.selectionModel().select(index, flags)
        if top is not None and self._proxy_index(top.id).isValid():
            self.table.scrollTo(self._proxy_index(top.id), self.table.ScrollHint.PositionAtTop)
        self._select_row(0)  # nothing was selected: a keyboard user starts deciding at once

    def _proxy_index(self, key: int) -> QModelIndex:
        row = self.model.row_of(key)
        return self.proxy.mapFromSource(self.model.index(row, 0)) if row >= 0 else QModelIndex()

    def _select_row(self, row: int) -> None:
        """Select `row` (or the last one) when nothing is selected: after a decision the next sender is
        ready for the next key, as in a screener (one key per sender)."""
        if self.table.selectionModel().selectedRows() or self.proxy.rowCount() == 0:
            return
        index = self.proxy.index(min(row, self.proxy.rowCount() - 1), 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)

    def selected(self) -> list[Challenge]:
        return [self.proxy.data(i, RecordRole) for i in self.table.selectionModel().selectedRows()]

    def decide_selected(self, decision: str) -> None:
        chosen = self.selected()
        if not chosen:
            return
        client = self.client
        ids = [c.id for c in chosen]
        first_row = min(i.row() for i in self.table.selectionModel().selectedRows())

        def finished(outcomes: list[Decided]) -> None:
            done = [o.challenge for o in outcomes if o.challenge is not None]
            errors = [o.error for o in outcomes if o.challenge is None]
            for challenge in done:
                self.model.apply(challenge)
            for o in outcomes:
                if o.challenge is None:  # gone for this user (removed, or not theirs): no longer waiting
                    self.model.remove_key(o.id)
            self._select_row(first_row)
            verb = {"approve": tr("Approved %n sender(s)", None, len(done)),
                    "deny": tr("Denied %n sender(s)", None, len(done)),
                    "allow-domain": tr("Allowed the domains of %n sender(s)", None, len(done))}[decision]
            if errors:
                self.messages.error(verb + "; " + tr("%n failed: ", None, len(errors)) + errors[0])
            else:
                self.messages.info(verb)
            if done:  # the toast and Ctrl+Z: the gateway reopens them (issue 17 item 2)
                undo.offer(self, verb, undo.reopen(client, [c.id for c in done]), self.refresh)

        def failed(exc: Exception) -> None:
            self.messages.error(str(exc))
            self._select_row(first_row)  # whatever the stream removed meanwhile, a sender stays selected

        self.run(lambda: client.decide_many(ids, decision), finished, failed)  # one call for all of them
