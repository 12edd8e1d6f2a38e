"""Activity: the event log, newest first, page by page as the user scrolls; verdict chips, text
search, a details pane, and allow/block from any row."""

from __future__ import annotations

import html
import json
from typing import Any

from PySide6.QtCore import QItemSelection, QPoint, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QGridLayout, QLabel, QLineEdit, QMenu, QSplitter, QTextBrowser, QToolButton, QVBoxLayout

from ..api_client import VERDICTS, Event
from ..history import install_history, open_history
from ..i18n import tr
from ..models import EventsModel
from ..models.base import local_time, verdict_label
from .actions import AddressError, describe, sender_pattern
from .base import Page, make_table


def details_html(e: Event) -> str:
    """The details pane: everything the gateway recorded about one decision."""
    rows = [(tr("Time"), local_time(e.ts)), (tr("Verdict"), verdict_label(e.verdict)), (tr("Reason"), e.reason),
            (tr("Sender"), e.sender or "<>"), (tr("From header"), e.from_header), (tr("Recipient"), e.recipient),
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

        chips = QGridLayout()  # two rows of chips: the window stays usable on a small screen
        chips.setSpacing(4)
        self.chips: dict[str, QToolButton] = {}
        for i, verdict in enumerate(VERDICTS):
            chip = QToolButton()
            chip.setText(verdict_label(verdict))
            chip.setCheckable(True)
            chip.setObjectName(f"chip-{verdict}")
            chip.setAccessibleName(tr("Show %1").replace("%1", verdict_label(verdict)))
            chip.setToolTip(tr("Show only these verdicts (several can be on)"))
            chip.toggled.connect(self._filter_changed)
            chips.addWidget(chip, i // 5, i % 5)
            self.chips[verdict] = chip
        chips.setColumnStretch(5, 1)
        layout.addLayout(chips)

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
        for col, width in enumerate((140, 110, 220, 180, 260)):
            self.table.setColumnWidth(col, width)
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
        # the sender's history: H, Enter (or a double click), the context menu
        self.history_action = install_history(self, self.table, lambda e: e.sender)
        self.table.activated.connect(lambda index: self._open_history(index.row()))

    def _open_history(self, row: int) -> None:
        event = self.model.event_at(row)
        if event is not None and open_history(self, self.client, event.sender) is None:
            self.history_action.trigger()  # says why there is none

    def refresh(self) -> None:
        self.model.reload()

    def _first_page(self) -> None:
        self.loaded = True
        self.status.setText(tr("%n decision(s) shown", None, self.model.rowCount()))

    def selected_verdicts(self) -> tuple[str, ...]:
        return tuple(v for v, chip in self.chips.items() if chip.isChecked())

    def _filter_changed(self) -> None:
        self.details.clear()
        self.model.set_filter(self.selected_verdicts(), self.search.text())

    def current_event(self) -> Event | None:
        index = self.table.currentIndex()
        rows = self.table.selectionModel().selectedRows()
        if rows:
            index = rows[0]
        return self.model.event_at(index.row()) if index.isValid() else None

    def _selection_changed(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        event = self.current_event()
        self.details.setHtml(details_html(event) if event else "")

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
        self.run(lambda: client.add_entry(action, pattern, note=tr("from the activity log")),
                 lambda entry: self.messages.info(describe(action, entry.entry)))
