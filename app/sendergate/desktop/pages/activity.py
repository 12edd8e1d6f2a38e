"""Activity: the event log, newest first, page by page as the user scrolls; verdict chips, text
search, a details pane, and allow/block from any row."""

from __future__ import annotations

import html
import json
from typing import Any

from PySide6.QtCore import QItemSelection, QPoint, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QLineEdit, QMenu, QSplitter, QTextBrowser, QToolButton, QVBoxLayout, QWidget

from .. import undo
from ..api_client import VERDICTS, Event, ListEntry, Me
from ..history import install_history, open_history
from ..i18n import tr
from ..models import EventsModel
from ..models.base import exact_time, verdict_label
from ..verdicts import icon as verdict_icon
from ..verdicts import visible_to
from ..widgets import EmptyState, FlowLayout
from .actions import AddressError, describe, sender_pattern, undone_label
from .base import Page, fitter, hide_until_used, make_table, text_width


def details_html(e: Event) -> str:
    """The details pane: everything the gateway recorded about one decision."""
    rows = [(tr("Time"), exact_time(e.ts)), (tr("Verdict"), verdict_label(e.verdict)), (tr("Reason"), e.reason),
            (tr("Sender"), e.sender or "<>"), (tr("From header"), e.from_header), (tr("Recipient"), e.recipient),
            (tr("Sign-up address"), e.tag or ""),
            (tr("Subject"), e.subject), (tr("Client"), f"{e.client_ip} ({e.helo})" if e.helo else e.client_ip),
            (tr("Message-ID"), e.message_id),
            (tr("Size"), f"{e.size:,} B" if e.size is not None else ""),
            (tr("Spam score"), f"{e.spam_score:.1f}" if e.spam_score is not None else ""),
            (tr("Virus"), e.virus)]
    for key in ("spf", "dkim", "dmarc"):
        if key in e.details:
            rows.append((key.upper(), json.dumps(e.details[key]) if not isinstance(e.details[key], str)
                         else e.details[key]))
    extra = {k: v for k, v in e.details.items() if k not in ("spf", "dkim", "dmarc")}
    if extra:
        rows.append((tr("Details"), json.dumps(extra, indent=1, ensure_ascii=False)))
    body = "".join(f"<tr><th align='left' valign='top'>{html.escape(k)}</th>"
                   f"<td style='white-space: pre-wrap'>{html.escape(str(v))}</td></tr>" for k, v in rows if v != "")
    return f"<table cellspacing='4'>{body}</table>"


class ActivityPage(Page):
    key = "activity"
    icon_name = "activity"

    @staticmethod
    def title() -> str:
        return tr("Activity")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = EventsModel(self.client, self)
        self.model.first_page_loaded.connect(self._first_page)
        self.model.failed.connect(self.messages.error)
        layout = QVBoxLayout(self)

        chip_box = QWidget()
        chips = FlowLayout(chip_box)  # rows of chips as wide as the page: the window fits a small screen
        self.chips: dict[str, QToolButton] = {}
        for verdict in VERDICTS:
            chip = QToolButton()
            chip.setText(verdict_label(verdict))
            chip.setIcon(verdict_icon(verdict))
            chip.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            chip.setCheckable(True)
            chip.setObjectName(f"chip-{verdict}")
            chip.setAccessibleName(tr("Show %1").replace("%1", verdict_label(verdict)))
            chip.setToolTip(tr("Show only these verdicts (several can be on)"))
            chip.toggled.connect(self._filter_changed)
            chips.addWidget(chip)
            self.chips[verdict] = chip
        self.role = ""  # from /me: the admin-only verdicts' chips show for an admin only
        self._show_chips()
        layout.addWidget(chip_box)

        self.search = QLineEdit()
        self.search.setPlaceholderText(tr("Search sender, recipient or subject"))
        self.search.setAccessibleName(tr("Search the activity"))
        self.search.setClearButtonEnabled(True)
        self.search.returnPressed.connect(self._filter_changed)
        from ..widgets import debounced
        self._search_later = debounced(self, 350, self._filter_changed)
        self.search.textEdited.connect(lambda _: self._search_later())
        layout.addWidget(self.search)

        split = QSplitter(Qt.Orientation.Vertical)
        self.table, _ = make_table(self.model, sortable=False, name=tr("Activity log"))
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        # time and verdict as wide as their longest text; the others shrink so Reason stays in view at 1,024 px
        longest_verdict = max((verdict_label(v) for v in VERDICTS), key=self.table.fontMetrics().horizontalAdvance)
        for col, width in enumerate((text_width(self.table, tr("Yesterday %1").replace("%1", "23:59")),
                                     text_width(self.table, longest_verdict, icon=True), 220, 150, 220)):
            self.table.setColumnWidth(col, width)
        # Reason: why the gateway decided, the column people come here for (not the last one: it takes the room)
        fitter(self.table).configure(stretch=5, keep=(0, 1), min_chars=36)
        self.table.setColumnWidth(6, text_width(self.table, tr("Sign-up address")))  # kept now it does not stretch
        hide_until_used(self.table, self.model, 6, lambda e: bool(e.tag))
        self.empty = EmptyState(self.table)
        self.model.loading_changed.connect(lambda _: self._show_empty())
        self.model.first_page_loaded.connect(self._show_empty)
        split.addWidget(self.table)
        self.details = QTextBrowser()
        self.details.setObjectName("eventDetails")
        self.details.setAccessibleName(tr("Details of the selected decision"))
        self.details.setPlaceholderText(tr("Select a row to see everything recorded about it."))
        split.addWidget(self.details)
        split.setSizes([400, 160])
        layout.addWidget(split, 1)
        self.status = QLabel()
        layout.addWidget(self.status)
        self.model.loading_changed.connect(lambda on: self.status.setText(
            tr("Loading…") if on else tr("%n decision(s) shown", None, self.model.rowCount())))

        self.allow_sender = QAction(tr("Allow sender"), self)
        self.allow_sender.setShortcut(QKeySequence("A"))
        self.allow_domain = QAction(tr("Allow sender's domain"), self)
        self.allow_domain.setShortcut(QKeySequence("Shift+A"))
        self.block_sender = QAction(tr("Block sender"), self)
        self.block_sender.setShortcut(QKeySequence("B"))
        for action, (verb, scope) in ((self.allow_sender, ("allow", "sender")),
                                      (self.allow_domain, ("allow", "domain")),
                                      (self.block_sender, ("block", "sender"))):
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(lambda _=False, v=verb, s=scope: self.decide_selected(v, s))
            self.table.addAction(action)
        self._enable()
        # the sender's history: H, Enter (or a double click), the context menu
        self.history_action = install_history(self, self.table, lambda e: e.sender)
        self.table.activated.connect(lambda index: self._open_history(index.row()))

    def _open_history(self, row: int) -> None:
        event = self.model.event_at(row)
        if event is not None and open_history(self, self.client, event.sender) is None:
            self.history_action.trigger()  # says why there is none

    def refresh(self) -> None:
        self.model.reload()
        if not self.role:  # the window's /me if it came already, else asked once here
            me = getattr(self.window(), "me", None)
            if isinstance(me, Me):
                self.set_me(me)
            else:
                client = self.client
                self.run(client.me, self.set_me, lambda _exc: None)  # the log's own load says what failed

    def set_me(self, me: Me) -> None:
        self.role = me.role
        self._show_chips()

    def _show_chips(self) -> None:
        """Only the verdicts this person can have: relay_denied and unknown_recipient are about mail addressed
        to nobody here, and only an admin sees those events (verdicts.ADMIN_ONLY)."""
        shown = set(visible_to(self.role or "user", tuple(self.chips)))
        changed = False
        for verdict, chip in self.chips.items():
            chip.setVisible(verdict in shown)
            if verdict not in shown and chip.isChecked():
                chip.blockSignals(True)
                chip.setChecked(False)
                chip.blockSignals(False)
                changed = True
        if changed:
            self._filter_changed()

    def _show_empty(self) -> None:
        empty = self.model.rowCount() == 0 and not self.model.loading
        if self.selected_verdicts() or self.model.query:
            text = tr("No decisions match this filter. Turn off a verdict button or clear the search to see more.")
        else:
            text = tr("No decisions yet. Every message the gateway accepts or refuses for you will show up here.")
        self.empty.show_if(empty, text)

    def _enable(self) -> None:
        event = self.current_event()
        on = event is not None  # the null sender <> stays enabled: the message says why it cannot be listed
        for action in (self.allow_sender, self.allow_domain, self.block_sender):
            action.setEnabled(on)

    def _first_page(self) -> None:
        self.loaded = True
        self.status.setText(tr("%n decision(s) shown", None, self.model.rowCount()))

    def selected_verdicts(self) -> tuple[str, ...]:
        return tuple(v for v, chip in self.chips.items() if chip.isChecked() and not chip.isHidden())

    def _filter_changed(self) -> None:
        self.details.clear()
        self.empty.hide()
        self.model.set_filter(self.selected_verdicts(), self.search.text())
        self._enable()

    def current_event(self) -> Event | None:
        index = self.table.currentIndex()
        rows = self.table.selectionModel().selectedRows()
        if rows:
            index = rows[0]
        return self.model.event_at(index.row()) if index.isValid() else None

    def _selection_changed(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        event = self.current_event()
        self.details.setHtml(details_html(event) if event else "")
        self._enable()

    def _context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        self.table.selectRow(index.row())
        event = self.model.event_at(index.row())
        if event is None or not event.sender:
            return
        menu = QMenu(self)
        menu.addAction(self.allow_sender)
        menu.addAction(self.allow_domain)
        menu.addSeparator()
        menu.addAction(self.block_sender)
        menu.addSeparator()
        menu.addAction(self.history_action)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def decide_selected(self, action: str, scope: str) -> None:
        event = self.current_event()
        if event is None:
            return
        if not event.sender:
            self.messages.error(tr("The null sender <> (bounces) cannot be put on a list."))
            return
        try:
            pattern = sender_pattern(event.sender, scope)
        except AddressError as exc:
            self.messages.error(tr("Cannot use the sender %1: %2").replace("%1", event.sender).replace("%2", str(exc)))
            return
        client = self.client

        def added(result: tuple[ListEntry, bool]) -> None:
            entry, created = result
            self.messages.info(describe(action, entry.entry))
            if created:  # an entry that was there already is not this action's to undo
                undo.offer(self, undone_label(action, entry.entry), undo.withdraw(client, action, [entry.id]))

        self.run(lambda: client.add_entry_created(action, pattern, note=tr("from the activity log")), added)
