"""Pending: challenges waiting for a decision. Approve, deny, allow the whole domain; several at once;
keyboard: A approve, D deny, Shift+A allow domain, Ctrl+A select all."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QVBoxLayout

from ..api_client import Challenge, Decided
from ..history import install_history
from ..i18n import tr
from ..models import PendingModel
from ..models.base import RecordRole
from ..widgets import icon_button
from .base import Page, make_table


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
        self.deny_button = icon_button("deny", tr("&Deny"), tr("Block these senders; their links stop working (D)"))
        self.domain_button = icon_button("domain", tr("Allow do&main"),
                                         tr("Allow the senders' whole domains (Shift+A)"))
        for b in (self.approve_button, self.deny_button, self.domain_button):
            bar.addWidget(b)
        bar.addStretch(1)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText(tr("Filter"))
        self.filter.setAccessibleName(tr("Filter pending senders"))
        self.filter.setClearButtonEnabled(True)
        bar.addWidget(self.filter)
        layout.addLayout(bar)
        self.table, self.proxy = make_table(self.model, multi=True, name=tr("Pending senders"))
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        for col, width in enumerate((240, 300, 180, 140)):
            self.table.setColumnWidth(col, width)
        self.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)
        layout.addWidget(self.table, 1)
        self.empty = QLabel()
        layout.addWidget(self.empty)
        self.model.rowsInserted.connect(self._count_changed)
        self.model.rowsRemoved.connect(self._count_changed)
        self.model.modelReset.connect(self._count_changed)

        for button, decision, key in ((self.approve_button, "approve", "A"), (self.deny_button, "deny", "D"),
                                      (self.domain_button, "allow-domain", "Shift+A")):
            button.clicked.connect(lambda _=False, d=decision: self.decide_selected(d))
            action = QAction(self)
            action.setShortcut(QKeySequence(key))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(lambda _=False, d=decision: self.decide_selected(d))
            self.table.addAction(action)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._enable())
        self.history_action = install_history(self, self.table, lambda c: c.sender)  # H, context menu
        self._enable()

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
