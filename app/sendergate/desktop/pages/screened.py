"""Screened: automated senders (receipts, newsletters) that were screened or refused as bulk,
grouped by sender. A allows (future mail goes to the inbox), B blocks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QVBoxLayout

from .. import undo
from ..api_client import ApiError, Event, GatewayClient, ListEntry
from ..history import install_history
from ..i18n import tr
from ..models import ScreenedModel, SenderGroup, group_by_sender
from ..models.base import RecordRole
from ..widgets import EmptyState, icon_button
from .actions import describe, undone_label
from .base import Page, fitter, make_table

LOOK_BACK_DAYS = 90  # the default event retention
MAX_EVENTS = 20_000  # gateways without /screened: the app groups at most this many recent events


def fetch_groups(client: GatewayClient) -> list[SenderGroup]:
    """Automated senders of the last 90 days, grouped by the gateway, without those a list entry (for the
    address or its domain) already decides for."""
    try:
        senders = client.all_screened(LOOK_BACK_DAYS)
    except ApiError as exc:
        if exc.status != 404:
            raise
        return group_locally(client)  # a gateway from before GET /screened
    return [SenderGroup(g.sender, g.count, g.screened, g.bulk, g.latest_subject, g.last_seen)
            for g in senders if not g.listed_action]


def group_locally(client: GatewayClient) -> list[SenderGroup]:
    """Recent screened/bulk events grouped by sender here, without senders already on a list."""
    since = datetime.now(timezone.utc) - timedelta(days=LOOK_BACK_DAYS)
    events: list[Event] = []
    cursor: str | None = None
    while len(events) < MAX_EVENTS:
        page = client.events(verdicts=("screened", "bulk"), since=since, cursor=cursor, limit=500)
        events += page.items
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    decided = {e.entry.lower() for action in ("allow", "block") for e in client.all_entries(action)}
    return group_by_sender(events, decided)


class ScreenedPage(Page):
    key = "screened"
    icon_name = "screened"

    @staticmethod
    def title() -> str:
        return tr("Screened")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = ScreenedModel(self)
        layout = QVBoxLayout(self)
        intro = QLabel(tr("Automated mail from senders you have not chosen yet: receipts, newsletters, "
                          "notifications. Allow a sender to get their mail in your inbox, or block them."))
        intro.setWordWrap(True)
        layout.addWidget(intro)
        bar = QHBoxLayout()
        self.allow_button = icon_button("allowlist", tr("&Allow"), tr("Allow this sender (A)"))
        self.block_button = icon_button("blocklist", tr("&Block"), tr("Block this sender (B)"))
        bar.addWidget(self.allow_button)
        bar.addWidget(self.block_button)
        bar.addStretch(1)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText(tr("Filter"))
        self.filter.setAccessibleName(tr("Filter screened senders"))
        self.filter.setClearButtonEnabled(True)
        bar.addWidget(self.filter)
        layout.addLayout(bar)
        self.table, self.proxy = make_table(self.model, multi=True, name=tr("Screened senders"))
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)
        fitter(self.table).configure(stretch=2, keep=(1, 3))  # the latest subject says what they send
        for col, width in enumerate((260, 90, 320, 140, 200)):
            self.table.setColumnWidth(col, width)
        layout.addWidget(self.table, 1)
        self.empty = EmptyState(self.table)
        self.model.modelReset.connect(self._show_empty)
        self.model.rowsRemoved.connect(self._show_empty)
        self.model.rowsInserted.connect(self._show_empty)
        self.filter.textChanged.connect(self._show_empty)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._enable())
        for button, verb, key in ((self.allow_button, "allow", "A"), (self.block_button, "block", "B")):
            button.clicked.connect(lambda _=False, v=verb: self.decide_selected(v))
            action = QAction(self)
            action.setShortcut(QKeySequence(key))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(lambda _=False, v=verb: self.decide_selected(v))
            self.table.addAction(action)
        self.history_action = install_history(self, self.table, lambda g: g.sender)  # H, context menu
        self._enable()

    def _enable(self) -> None:
        on = bool(self.table.selectionModel().selectedRows())
        for b in (self.allow_button, self.block_button):
            b.setEnabled(on)

    def _show_empty(self, *_: object) -> None:
        if self.model.rowCount() and self.filter.text():
            text = tr("No sender matches “%1”.").replace("%1", self.filter.text())
        else:
            text = tr("No automated senders are waiting for a choice. Receipts and newsletters the gateway "
                      "screens for you will show up here.")
        self.empty.show_if(self.loaded and self.proxy.rowCount() == 0, text)
        self._enable()

    def refresh(self) -> None:
        client = self.client
        self.run(lambda: fetch_groups(client), self._loaded, lambda exc: self.messages.error(str(exc)))

    def _loaded(self, groups: list[SenderGroup]) -> None:
        self.loaded = True
        self.model.set_records(groups)

    def selected(self) -> list[SenderGroup]:
        return [self.proxy.data(i, RecordRole) for i in self.table.selectionModel().selectedRows()]

    def decide_selected(self, action: str) -> None:
        groups = self.selected()
        if not groups:
            return
        client = self.client
        senders = [g.sender for g in groups]
        note = tr("from the Screened page")

        def done(results: list[tuple[ListEntry, bool]]) -> None:
            for sender in senders:
                self.model.remove_key(sender)
            self.messages.info(describe(action, ", ".join(senders)))
            made = [e.id for e, created in results if created]
            if made:  # the toast and Ctrl+Z: the gateway withdraws them and the senders come back here
                undo.offer(self, undone_label(action, ", ".join(senders)), undo.withdraw(client, action, made),
                           self.refresh)

        self.run(lambda: [client.add_entry_created(action, s, note=note) for s in senders], done)
