"""Pending as a screener (issue 17 item 1): one sender per row, two lines per cell — who (display name
and address), what (subject and their history with us), when (and how often), and a verified /
could-not-verify mark (icon and text); the selected sender in full below. One key each: A allow the
sender, M allow the domain, D deny (Shift+A still allows the domain); several at once; Ctrl+A selects
all. Live additions keep the selection and what is in view."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QAction, QFont, QKeySequence, QPainter, QPalette
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..api_client import Challenge, Decided
from ..dates import exact
from ..i18n import tr
from ..icons import icon
from ..models import PendingModel
from ..models.base import RecordRole
from ..models.challenges import (
    AUTH_ICONS,
    AuthRole,
    FilterRole,
    SecondLineRole,
    attempts_text,
    auth_label,
    captcha_text,
    history_text,
)
from ..widgets import icon_button
from .base import Page, make_table

SENDER, SUBJECT, WHEN, DOMAIN = range(4)
# one key each (issue 17), and the keys of before as aliases
KEYS = {"approve": ("A",), "allow-domain": ("M", "Shift+A"), "deny": ("D",)}
_Index = QModelIndex | QPersistentModelIndex


class TwoLineDelegate(QStyledItemDelegate):
    """A cell of two elided lines: the first in the normal (or, for the sender, bold) font, the second
    muted; the Domain column leads with its mark's icon. Painted, not laid out: 1,000 rows stay cheap."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._icons = {status: icon(name) for status, name in AUTH_ICONS.items()}

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        first, opt.text = opt.text, ""
        widget = opt.widget
        style = widget.style() if widget is not None else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        second = index.data(SecondLineRole) or ""
        rect = opt.rect.adjusted(6, 4, -6, -4)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        group = QPalette.ColorGroup.Normal
        text_role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        painter.save()
        if index.column() == DOMAIN:
            size = min(rect.height() // 2 + 2, 22)
            ic = self._icons.get(index.data(AuthRole) or "", None)
            if ic is not None:
                ic.paint(painter, QRect(rect.left(), rect.top(), size, size))
            rect.setLeft(rect.left() + size + 6)
        half = rect.height() // 2
        font = QFont(opt.font)
        if index.column() == SENDER:
            font.setBold(True)
        painter.setFont(font)
        painter.setPen(opt.palette.color(group, text_role))
        top = QRect(rect.left(), rect.top(), rect.width(), half)
        painter.drawText(top, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                         painter.fontMetrics().elidedText(str(first), Qt.TextElideMode.ElideRight, top.width()))
        if second:
            painter.setFont(opt.font)
            muted = opt.palette.color(group, text_role)
            if not selected:  # lighter than the first line, still readable (not the disabled grey)
                muted.setAlpha(175)
            painter.setPen(muted)
            bottom = QRect(rect.left(), rect.top() + half, rect.width(), rect.height() - half)
            painter.drawText(bottom, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                             painter.fontMetrics().elidedText(str(second), Qt.TextElideMode.ElideRight,
                                                              bottom.width()))
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
            (tr("When"), e(tr("First %1, latest %2").replace("%1", exact(c.created_at))
                           .replace("%2", exact(c.updated_at))) + " · " + e(attempts_text(c))),
            (tr("Domain"), f"<b>{e(auth_label(c.auth_status))}</b>" + (f" — {e(c.auth_detail)}" if c.auth_detail
                                                                        else "")),
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
        self.table, self.proxy = make_table(self.model, multi=True, name=tr("Pending senders"))
        self.proxy.setFilterRole(FilterRole)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.delegate = TwoLineDelegate(self.table)
        self.table.setItemDelegate(self.delegate)
        self.table.setAlternatingRowColors(True)
        fm = self.table.fontMetrics()
        self.table.verticalHeader().setDefaultSectionSize(fm.height() * 2 + 12)  # uniform: no per-row measuring
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)
        # Sender and Subject share what is left after the fixed When and Domain columns: the table fits
        # the window (1,024 px included) instead of scrolling sideways
        header.setSectionResizeMode(SENDER, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(SUBJECT, QHeaderView.ResizeMode.Stretch)
        for col, sample in ((WHEN, tr("Yesterday %1").replace("%1", "00:00") + "MM"),
                            (DOMAIN, tr("Failed verification") + "MMMM")):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
            self.table.setColumnWidth(col, max(fm.horizontalAdvance(sample), 110) + 24)
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
        self._enable()

    # -- live additions keep the view --
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
        self.model.set_records(challenges)
        self.loaded = True

    def selected(self) -> list[Challenge]:
        return [self.proxy.data(i, RecordRole) for i in self.table.selectionModel().selectedRows()]

    def decide_selected(self, decision: str) -> None:
        chosen = self.selected()
        if not chosen:
            return
        client = self.client
        ids = [c.id for c in chosen]

        def finished(outcomes: list[Decided]) -> None:
            done = [o.challenge for o in outcomes if o.challenge is not None]
            errors = [o.error for o in outcomes if o.challenge is None]
            for challenge in done:
                self.model.apply(challenge)
            for o in outcomes:
                if o.challenge is None:  # gone for this user (removed, or not theirs): no longer waiting
                    self.model.remove_key(o.id)
            verb = {"approve": tr("Approved %n sender(s)", None, len(done)),
                    "deny": tr("Denied %n sender(s)", None, len(done)),
                    "allow-domain": tr("Allowed the domains of %n sender(s)", None, len(done))}[decision]
            if errors:
                self.messages.error(verb + "; " + tr("%n failed: ", None, len(errors)) + errors[0])
            else:
                self.messages.info(verb)

        self.run(lambda: client.decide_many(ids, decision), finished)  # one call for all of them
