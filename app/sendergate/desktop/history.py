"""A sender's history (issue 17 item 3): a non-modal panel opened from any row (Activity, Pending, Screened,
Allowlist, Blocklist) with every event from the sender or their domain, what we have seen of them, the list
entries that match them, and actions (allow the sender, allow the domain, block, remove an entry).

One panel per window, reused: opening another sender's history shows theirs. The events table is the
Activity log's model (models/events.py) fed from GET /api/v1/senders/history, so columns added there appear
here too. Every call runs off the GUI thread (operations.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import shiboken6
from PySide6.QtCore import QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..policy.address import AddressError, parse
from .api_client import ApiError, GatewayClient, HistoryEntry, HistorySummary, Page, SenderHistory
from .dates import exact, when
from .i18n import tr
from .models.base import RecordRole, verdict_label
from .models.events import EventsModel
from .operations import Operation
from .pages.actions import undone_label
from .pages.base import fitter, hide_until_used, make_table
from .undo import UndoAction, UndoStack, UndoToast, restore, stack_of, withdraw
from .widgets import icon_button

PANEL_ATTR = "_sender_history_panel"  # the window's one panel
LIVE_COALESCE_MS = 40  # the sender's events arriving within this are shown together (as on Pending)
LIVE_RELOAD_MS = 1500  # a sender's event of unknown owner in a "Whose" view: one reload for a burst of them


def history_subject(raw: str | None) -> str | None:
    """What a row's sender or entry asks the history for: an address or `@domain`; None for what has no
    history (the null sender <>, a `list:` entry, something that does not parse)."""
    s = (raw or "").strip()
    if not s or s == "<>" or s.startswith("list:"):
        return None
    if s.startswith("@"):
        return s.lower() if len(s) > 1 else None
    try:
        parse(s, unwrap=True)
    except AddressError:
        return None
    return s


class HistoryEventsModel(EventsModel):
    """The Activity model, reading one sender's (or domain's) events instead of the whole log."""

    history_loaded = Signal(object)  # the first page's SenderHistory: summaries and entries

    def __init__(self, client: GatewayClient | None = None, parent: Any = None) -> None:
        super().__init__(client, parent)
        self.subject = ""
        self.whole_domain = False

    def show_subject(self, subject: str, whole_domain: bool) -> None:
        self.subject, self.whole_domain = subject, whole_domain
        self.reload()

    def has_subject(self) -> bool:
        return bool(self.subject)  # nothing asked yet: an empty table, no call

    def matches(self, event: Any) -> bool:
        """A live event belongs here: from the sender shown (any case), or from their domain when it is shown."""
        if not self.subject:
            return False
        sender = (event.sender or "").lower()
        if self.whole_domain or self.subject.startswith("@"):
            domain = self.subject.rpartition("@")[2].lower()
            return "@" in sender and sender.rpartition("@")[2] == domain
        return sender == self.subject.lower()

    def page_loader(self) -> Callable[[GatewayClient, str | None], Page]:
        subject, whole, size = self.subject, self.whole_domain, self._page_size
        return lambda client, cursor: client.sender_history(subject, domain=whole, cursor=cursor, limit=size)

    def _append(self, gen: int, cursor: str | None, page: Page) -> None:
        current = gen == self._generation
        super()._append(gen, cursor, page)
        if current and cursor is None and isinstance(page, SenderHistory):
            self.history_loaded.emit(page)


def _plus(summary: HistorySummary | None, event: Any) -> HistorySummary:
    """`summary` with one more event (its verdict, and when it was)."""
    if summary is None:
        return HistorySummary({event.verdict: 1}, 1, event.ts, event.ts)
    counts = dict(summary.counts)
    counts[event.verdict] = counts.get(event.verdict, 0) + 1
    first = event.ts if summary.first_seen is None or event.ts < summary.first_seen else summary.first_seen
    last = event.ts if summary.last_seen is None or event.ts > summary.last_seen else summary.last_seen
    return dataclasses.replace(summary, counts=counts, total=summary.total + 1, first_seen=first, last_seen=last)


def summary_text(summary: HistorySummary | None, what: str) -> str:
    """"This sender: 7 events (Challenged 5, Spam 2), first seen …, last seen …"."""
    if summary is None or not summary.total:
        return tr("%1: nothing seen yet.").replace("%1", what)
    counts = ", ".join(f"{verdict_label(v)} {n}" for v, n in sorted(summary.counts.items(), key=lambda kv: -kv[1]))
    if not summary.complete:  # a big domain: the newest events were counted
        return (tr("%1: more than %n event(s) (the newest: %2), first seen %3, last seen %4", None, summary.total)
                .replace("%1", what).replace("%2", counts)
                .replace("%3", when(summary.first_seen)).replace("%4", when(summary.last_seen)))
    return (tr("%1: %n event(s) (%2), first seen %3, last seen %4", None, summary.total)
            .replace("%1", what).replace("%2", counts)
            .replace("%3", when(summary.first_seen)).replace("%4", when(summary.last_seen)))


def entry_text(h: HistoryEntry, mine: str | None) -> str:
    e = h.entry
    verb = tr("Allowed") if e.action == "allow" else tr("Blocked")
    whose = tr("everyone (global)") if e.owner is None else (tr("you") if e.owner == mine else e.owner)
    text = f"{verb}: {e.entry} — {whose}"
    if h.deciding:
        text += " — " + tr("decides today")
    return text


class HistoryPanel(QDialog):
    """Non-modal: the window behind stays usable. Esc closes; F5 reloads; Tab reaches every part."""

    def __init__(self, client: GatewayClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.setObjectName("senderHistory")
        self.setModal(False)
        self.setWindowTitle(tr("Sender history"))
        self.resize(820, 560)
        self.subject = ""  # the address or @domain shown
        self.domain = ""
        self.mine: str | None = None  # the user's primary address (entries they own say "you"), asked once
        self._asked_me = False
        self._history: SenderHistory | None = None
        self.busy = 0  # actions in flight (tests wait for 0)
        self.notice = ""  # the last action's outcome, shown before the count
        layout = QVBoxLayout(self)

        top = QHBoxLayout()
        self.heading = QLabel()
        self.heading.setObjectName("historyHeading")
        font = self.heading.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.heading.setFont(font)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top.addWidget(self.heading, 1)
        self.scope = QComboBox()
        self.scope.setObjectName("historyScope")
        self.scope.setAccessibleName(tr("Show events from"))
        self.scope.activated.connect(lambda _: self.reload())
        top.addWidget(self.scope)
        layout.addLayout(top)

        self.summary = QLabel()
        self.summary.setObjectName("historySummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.summary)

        split = QSplitter(Qt.Orientation.Vertical)
        self.model = HistoryEventsModel(client, self)
        self.model.history_loaded.connect(self._loaded)
        self.model.failed.connect(self._failed)
        self.model.loading_changed.connect(lambda on: self._status_for_rows() if not on else None)
        self.table: QTableView
        self.table, _ = make_table(self.model, sortable=False, name=tr("Events from this sender"))
        self.table.setObjectName("historyEvents")
        for col, width in enumerate((140, 110, 220, 180, 220)):
            self.table.setColumnWidth(col, width)
        fitter(self.table).configure(stretch=5, keep=(0, 1), min_chars=30)  # Reason, as on Activity
        hide_until_used(self.table, self.model, 6, lambda e: bool(e.tag))
        split.addWidget(self.table)

        entries_box = QWidget()
        entries_layout = QVBoxLayout(entries_box)
        entries_layout.setContentsMargins(0, 0, 0, 0)
        entries_label = QLabel(tr("List entries that match"))
        entries_layout.addWidget(entries_label)
        self.entries = QListWidget()
        self.entries.setObjectName("historyEntries")
        self.entries.setAccessibleName(tr("List entries that match this sender"))
        self.entries.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.entries.currentItemChanged.connect(lambda *_: self._enable())
        entries_label.setBuddy(self.entries)
        entries_layout.addWidget(self.entries)
        split.addWidget(entries_box)
        split.setSizes([360, 120])
        layout.addWidget(split, 1)

        self.status = QLabel()
        self.status.setObjectName("historyStatus")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        bar = QHBoxLayout()
        self.allow_sender = icon_button("approve", tr("Allow &sender"), tr("Allow this sender"))
        self.allow_domain = icon_button("domain", tr("Allow do&main"), tr("Allow everyone at this domain"))
        self.block_sender = icon_button("deny", tr("&Block"), tr("Block this sender (or the domain shown)"))
        self.remove_entry = icon_button("blocklist", tr("&Remove entry"), tr("Remove the selected list entry"))
        self.reload_button = icon_button("refresh", tr("Re&load"), tr("Load the history again (F5)"))
        for name, button in (("historyAllowSender", self.allow_sender), ("historyAllowDomain", self.allow_domain),
                             ("historyBlock", self.block_sender), ("historyRemoveEntry", self.remove_entry),
                             ("historyReload", self.reload_button)):
            button.setObjectName(name)
            bar.addWidget(button)
        bar.addStretch(1)
        self.allow_sender.clicked.connect(lambda: self.add("allow", self.sender_pattern()))
        self.allow_domain.clicked.connect(lambda: self.add("allow", "@" + self.domain))
        self.block_sender.clicked.connect(lambda: self.add("block", self.sender_pattern() or "@" + self.domain))
        self.remove_entry.clicked.connect(self.remove_selected)
        self.reload_button.clicked.connect(self.reload)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        bar.addWidget(buttons)
        layout.addLayout(bar)
        # undo: the window's stack, so Ctrl+Z here and there undo the same actions; the panel is a window of
        # its own (it may hide the main window's toast), so it shows the toast too
        self.undo_stack: UndoStack | None = stack_of(parent) if parent is not None else None
        self.undo_toast: UndoToast | None = None
        if self.undo_stack is not None:
            self.undo_toast = UndoToast(self.undo_stack, self)
            self.undo_toast.setObjectName("historyUndoToast")
            layout.insertWidget(layout.indexOf(self.status) + 1, self.undo_toast)
            self.undo_action = QAction(tr("&Undo"), self)
            self.undo_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))  # Ctrl+Z; Cmd+Z on macOS
            self.undo_action.triggered.connect(lambda: self.undo_stack.undo() if self.undo_stack else None)
            self.addAction(self.undo_action)
            self.undo_stack.finished.connect(self._undone)
        # the live stream: a new event from the sender shown appears on top, as on Activity; in every view
        # (an admin's "Whose" takes in its person's only). Coalesced: a burst is one status update, and an
        # event the panel cannot place (a gateway that does not say whose it is) one reload for the burst
        self._live_events: list[Any] = []
        self._counted: set[int] = set()  # live events already in the summary lines since the last load
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_COALESCE_MS)
        self._live_timer.timeout.connect(self._flush_live)
        self._reload_timer = QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.setInterval(LIVE_RELOAD_MS)
        self._reload_timer.timeout.connect(self._reload_live)
        self.live_reloads = 0  # reloads the stream asked for (tests count them)
        stream = getattr(parent, "stream", None) if parent is not None else None
        if stream is not None and hasattr(stream, "message"):
            stream.message.connect(self._live)
        reload = QAction(self)
        reload.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        reload.triggered.connect(self.reload)
        self.addAction(reload)
        self._enable()

    # -- what is shown --
    def show_sender(self, subject: str) -> None:
        """Show `subject`'s history (an address or @domain), replacing whatever was shown."""
        self.subject = subject
        self.domain = subject[1:] if subject.startswith("@") else subject.rpartition("@")[2].lower()
        self.heading.setText(tr("History of %1").replace("%1", subject))
        self.setWindowTitle(tr("History of %1").replace("%1", subject))
        self.scope.clear()
        if not subject.startswith("@"):
            self.scope.addItem(tr("This sender"), False)
        self.scope.addItem(tr("Everyone at %1").replace("%1", "@" + self.domain), True)
        self.scope.setCurrentIndex(0)
        if not self._asked_me:
            self._asked_me = True
            client = self.client
            Operation(self, client.me, self._got_me).failure(lambda _exc: None).run()  # the load says what failed
        self.reload()

    def _got_me(self, me: Any) -> None:
        self.mine = me.addresses[0] if me.addresses else None
        if self._history is not None:
            self._show_entries(self._history)

    def sender_pattern(self) -> str:
        return "" if self.subject.startswith("@") else self.subject

    def whole_domain(self) -> bool:
        return bool(self.scope.currentData())

    def reload(self) -> None:
        if not self.subject:
            return
        self.summary.setText("")
        self.entries.clear()
        self._history = None
        self.notice = ""
        self.status.setProperty("error", False)
        self.status.setText(tr("Loading…"))
        self.model.show_subject(self.subject, self.whole_domain())
        self._enable()

    def _loaded(self, history: SenderHistory) -> None:
        self._counted.clear()
        self._show_summary(history)
        self._history = history
        self._show_entries(history)
        self._status_for_rows()
        self._enable()

    def _show_summary(self, history: SenderHistory) -> None:
        parts = []
        if history.sender is not None:
            parts.append(summary_text(history.sender_summary, tr("This sender")))
        parts.append(summary_text(history.domain_summary, "@" + history.domain))
        self.summary.setText("\n".join(parts))
        tips = [exact(s.first_seen) + " – " + exact(s.last_seen)
                for s in (history.sender_summary, history.domain_summary) if s is not None and s.total]
        self.summary.setToolTip("\n".join(tips))

    def _count_live(self, events: Iterable[Any]) -> None:
        """The summary lines follow the stream too: each new event of the domain shown adds to the domain's
        counts, and to the sender's when it is theirs (as the gateway counts: the envelope sender, and the
        part after its first "@", without regard to case). Exact again on the next reload."""
        history = self._history
        if history is None:  # still loading: the load's counts will hold it, or the next reload's
            return
        sender, domain = (history.sender or "").lower(), history.domain.lower()
        sender_summary, domain_summary = history.sender_summary, history.domain_summary
        for event in events:
            address = (event.sender or "").lower()
            if event.id in self._counted or address.partition("@")[2] != domain:
                continue
            self._counted.add(event.id)
            domain_summary = _plus(domain_summary, event)
            if sender and address == sender and sender_summary is not None:
                sender_summary = _plus(sender_summary, event)
        if (sender_summary, domain_summary) != (history.sender_summary, history.domain_summary):
            self._history = dataclasses.replace(history, sender_summary=sender_summary,
                                                domain_summary=domain_summary)
            self._show_summary(self._history)

    def _show_entries(self, history: SenderHistory) -> None:
        row = self.entries.currentRow()
        self.entries.clear()
        for h in history.entries:
            item = QListWidgetItem(entry_text(h, self.mine))
            item.setData(RecordRole, h.entry)
            self.entries.addItem(item)
        if not history.entries:
            empty = QListWidgetItem(tr("No allow or block entry matches this sender."))
            empty.setFlags(Qt.ItemFlag.NoItemFlags)
            self.entries.addItem(empty)
        elif 0 <= row < self.entries.count():
            self.entries.setCurrentRow(row)
        self._enable()

    def _status_for_rows(self) -> None:
        if self.model.loading:
            return
        if self.model.rowCount() == 0 and self.status.property("error") is not True:
            empty = (tr("Nothing from this sender yet.") if not self.whole_domain()
                     else tr("Nothing from this domain yet."))
            self.status.setText(f"{self.notice} {empty}" if self.notice else empty)
        elif self.status.property("error") is not True:
            shown = tr("%n event(s) shown, newest first", None, self.model.rowCount())
            self.status.setText(f"{self.notice} {shown}" if self.notice else shown)

    def _live(self, msg: Any) -> None:
        """A stream message: the shown sender's events are taken in, in every view (the domain's too, for its
        summary line, when only the sender's rows are shown); others cost one match."""
        if getattr(msg, "kind", "") != "event" or not self.isVisible():
            return
        if not self.model.matches(msg.record) and not (
                self.domain and (msg.record.sender or "").lower().partition("@")[2] == self.domain.lower()):
            return
        mine = msg.is_for(self.client.whose) if hasattr(msg, "is_for") else True
        if mine is None:  # the gateway did not say whose: ask it again, once for a burst
            if not self._reload_timer.isActive():
                self._reload_timer.start()
        elif mine:
            self._live_events.append(msg.record)
            if not self._live_timer.isActive():
                self._live_timer.start()

    def _flush_live(self) -> None:
        events, self._live_events = self._live_events, []
        self._count_live(events)
        added = [e for e in events if self.model.add_live(e)]  # add_live matches again: the subject may be new
        if added:
            self._status_for_rows()

    def _reload_live(self) -> None:
        if self.subject and self.isVisible():
            self.live_reloads += 1
            notice = self.notice
            self.reload()
            self.notice = notice  # an action's outcome stays with the reloaded count

    def _failed(self, message: str) -> None:
        self.show_error(tr("The history could not be loaded: %1").replace("%1", message))

    def show_error(self, message: str) -> None:
        self.status.setProperty("error", True)
        self.status.setText(message)
        self._enable()

    def _enable(self) -> None:
        has = bool(self.subject)
        self.allow_sender.setEnabled(has and bool(self.sender_pattern()))
        self.allow_domain.setEnabled(has and bool(self.domain))
        self.block_sender.setEnabled(has)
        item = self.entries.currentItem()
        self.remove_entry.setEnabled(item is not None and item.data(RecordRole) is not None)

    def selected_entry(self) -> Any:
        item = self.entries.currentItem()
        return item.data(RecordRole) if item is not None else None

    # -- actions (through the API; each reloads the panel) --
    def _run(self, fn: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self.busy += 1
        self.status.setProperty("error", False)

        def failed(exc: ApiError) -> None:
            self.show_error(tr("That did not work: %1").replace("%1", str(exc)))

        def finished() -> None:
            self.busy -= 1

        Operation(self, fn, done).failure(failed).finally_(finished).run()

    def add(self, action: str, pattern: str) -> None:
        if not pattern:
            return
        client, note = self.client, tr("from the sender history")

        def done(result: tuple[Any, bool]) -> None:
            entry, created = result
            verb = tr("Allowed %1.") if action == "allow" else tr("Blocked %1.")
            self.reload()
            self.notice = verb.replace("%1", entry.entry)  # stays with the reloaded count
            if created:  # an entry that was there already is not this action's to undo
                self._offer(undone_label(action, entry.entry), withdraw(client, action, [entry.id]))

        self._run(lambda: client.add_entry_created(action, pattern, note=note), done)

    def remove_selected(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            return
        client = self.client

        def done(_: object) -> None:
            self.reload()
            self.notice = tr("Removed %1.").replace("%1", entry.entry)
            self._offer(tr("Removed %1").replace("%1", entry.entry), restore(client, entry.action, [entry.id]))

        self._run(lambda: client.remove_entry(entry.action, entry.id), done)

    def _offer(self, label: str, reverse: Callable[[], list[str]]) -> None:
        """Offer an action's undo on the window's stack (the panel reloads when any undo comes back)."""
        if self.undo_stack is not None:
            self.undo_stack.push(UndoAction(label, reverse))

    def _undone(self, level: str, message: str) -> None:
        """An undo came back (from here, a page, the toast or Ctrl+Z): the entries shown may have changed."""
        if not self.subject or not self.isVisible():
            return
        self.reload()
        if level == "error":
            self.show_error(message)
        else:
            self.notice = message  # stays with the reloaded count

    def set_client(self, client: GatewayClient) -> None:
        self.client = client
        self._asked_me, self.mine = False, None
        self.model.set_client(client)


def panel_for(widget: QWidget, client: GatewayClient) -> HistoryPanel:
    """The window's panel (made on first use), using `client`."""
    window = widget.window()
    panel = getattr(window, PANEL_ATTR, None)
    if panel is None or not shiboken6.isValid(panel):
        panel = HistoryPanel(client, window)
        setattr(window, PANEL_ATTR, panel)
    elif panel.client is not client:
        panel.set_client(client)
    return panel


def open_history(widget: QWidget, client: GatewayClient, raw: str | None) -> HistoryPanel | None:
    """Show the history of `raw` (a row's sender or entry) in the window's panel; None when it has none."""
    subject = history_subject(raw)
    if subject is None:
        return None
    panel = panel_for(widget, client)
    panel.show_sender(subject)
    panel.show()
    panel.raise_()
    panel.activateWindow()
    return panel


def row_record(table: QTableView, index: QModelIndex | None = None) -> Any:
    """The record (Event, Challenge, SenderGroup, ListEntry) of `index`, or of the table's current row."""
    if index is None or not index.isValid():
        rows = table.selectionModel().selectedRows()
        index = rows[0] if rows else table.currentIndex()
    return table.model().data(index, RecordRole) if index.isValid() else None


def install_history(page: Any, table: QTableView, sender_of: Callable[[Any], str | None]) -> QAction:
    """The "History of this sender…" action on `page`'s `table`: key H, and the table's context menu (one
    is made when the table has none; a page with its own menu adds the returned action to it)."""
    action = QAction(tr("History of this sender…"), page)
    action.setObjectName("historyAction")
    action.setShortcut(QKeySequence("H"))
    action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

    def triggered() -> None:
        record = row_record(table)
        if record is None:
            return
        if open_history(page, page.client, sender_of(record)) is None:
            page.messages.info(tr("This row has no sender history (the null sender <>, or a mailing-list entry)."))

    action.triggered.connect(triggered)
    table.addAction(action)
    if table.contextMenuPolicy() == Qt.ContextMenuPolicy.DefaultContextMenu:
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

        def menu_at(pos: QPoint) -> None:
            index = table.indexAt(pos)
            if not index.isValid():
                return
            table.selectRow(index.row())
            menu = QMenu(table)
            menu.addAction(action)
            menu.popup(table.viewport().mapToGlobal(pos))

        table.customContextMenuRequested.connect(menu_at)
    return action
