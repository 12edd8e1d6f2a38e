"""Sign-up addresses (issue 19): an address of its own for each shop or newsletter the user signs up at.
Mail to a live one comes in without a challenge (still virus- and spam-scanned); the table shows what
each one received and from whom, so a site that passed it on shows itself; one click revokes it."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..api_client import ApiError, GatewayClient, Me, Tag, Unauthorized, Unreachable
from ..api_client import Page as ApiPage
from ..i18n import tr
from ..models.base import RecordRole
from ..models.events import EventsModel
from ..models.tags import TagsModel, folder_label
from ..widgets import icon_button
from .base import Page, fitter, hide_until_used, make_table, text_width

log = logging.getLogger("sendergate.desktop.tags")
NAME_MAX = 32  # the gateway's limit on a tag name
LIVE_DELAY_MS = 300  # a tag's events arriving within this are one refresh of its row
# more rows than this changed at once (or a tag not shown yet): one read of the list instead. Measured with
# 1,000 tags (tests/bench/bench_tags_live.py): GET /tags 179 ms, GET /tags/{id} 2.5 ms
LIVE_ROWS_MAX = 32
APPLY_CHUNK = 100  # rows a live reload changes per turn of the event loop: the GUI thread gets its turn between
RECENT_PAGE = 50  # a tag's recent mail: the first page (more as the list scrolls)
EXPIRY_CHOICES = (("", None), ("30d", "30d"), ("90d", "90d"), ("365d", "365d"))  # (key, API value)


def joiner(delimiter: str) -> str:
    """What joins the words of a name: '-', or '_' where '-' is the gateway's delimiter (a name cannot hold it)."""
    return "_" if delimiter == "-" else "-"


def tag_name(site: str, delimiter: str = "+") -> str:
    """What a person types ("ACME Shop", "Bücher.de") -> a name the gateway takes ("acme-shop", "bucher-de"):
    lower-case ASCII letters and digits with a single joiner between (see joiner()). The gateway checks it again."""
    join = joiner(delimiter)
    ascii_only = unicodedata.normalize("NFKD", site).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", join, ascii_only.lower()).strip(join)[:NAME_MAX].rstrip(join)


FOLDER_CHOICES = ("", "inbox", "tag", "screened")  # "": the gateway's default ([tags] folder)


def folder_choice(key: str) -> str:
    return folder_label(key) if key else tr("Where sign-up mail usually goes")


def expiry_label(key: str) -> str:
    return {"": tr("Never"), "30d": tr("In 30 days"), "90d": tr("In 90 days"), "365d": tr("In a year")}[key]


def confirm_revoke(parent: QWidget, tag: Tag) -> bool:
    answer = QMessageBox.question(
        parent, tr("Revoke sign-up address"),
        tr("Revoke %1 (%2)? Mail to it will be refused from now on.").replace("%1", tag.address)
        .replace("%2", tag.name),
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def load(client: GatewayClient, me: Me | None) -> tuple[Me, list[Tag]]:
    """Who this is (their addresses, asked once) and their sign-up addresses; runs off the GUI thread."""
    return me or client.me(), client.tags()


def fetch_tags(client: GatewayClient, ids: list[int]) -> list[Tag | int]:
    """The sign-up addresses `ids` as they are now; an id the gateway no longer has for the caller comes back
    as itself (its row goes). Off the GUI thread: one call per id."""
    out: list[Tag | int] = []
    for tag_id in ids:
        try:
            out.append(client.tag(tag_id))
        except ApiError as exc:
            if exc.status != 404 or isinstance(exc, (Unreachable, Unauthorized)):
                raise
            out.append(tag_id)
    return out


class TagEventsModel(EventsModel):
    """The Activity model, reading the mail that came in by one sign-up address (GET /events?tag=)."""

    def __init__(self, client: GatewayClient | None = None, parent: Any = None) -> None:
        super().__init__(client, parent, page_size=RECENT_PAGE)
        self.tag: Tag | None = None
        self.user: int | None = None  # an admin's: whose tag it is (a user's own are theirs without asking)

    def show_tag(self, tag: Tag | None, user: int | None) -> None:
        self.tag, self.user = tag, user
        self.reload()

    def has_subject(self) -> bool:
        return self.tag is not None  # nothing selected: an empty table, no call

    def matches(self, event: Any) -> bool:
        return self.tag is not None and event.tag == self.tag.name

    def page_loader(self) -> Callable[[GatewayClient, str | None], ApiPage]:
        assert self.tag is not None
        name, user, size = self.tag.name, self.user, self._page_size
        return lambda client, cursor: client.tag_event_rows(name, user=user, cursor=cursor, limit=size)


def problem(exc: Exception) -> str:
    """A failed call as one line: a gateway without the tags API says so instead of "Not Found"."""
    if isinstance(exc, ApiError) and exc.status in (404, 405) and not isinstance(exc, (Unreachable, Unauthorized)) \
            and str(exc).strip().lower() in ("not found", "method not allowed"):
        return tr("This gateway does not offer sign-up addresses yet; it needs an update.")
    return str(exc)


class TagsPage(Page):
    key = "tags"
    icon_name = "tags"
    confirm = staticmethod(confirm_revoke)  # tests replace it: no modal box in a test

    @staticmethod
    def title() -> str:
        return tr("Sign-up addresses")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.me: Me | None = None
        self.model = TagsModel(self)
        layout = QVBoxLayout(self)

        form = QFormLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("tagName")
        self.name_edit.setPlaceholderText(tr("e.g. the shop's or newsletter's name"))
        self.name_edit.setAccessibleName(tr("Site name for the new sign-up address"))
        self.name_edit.setMaxLength(100)
        self.name_edit.returnPressed.connect(self.create_tag)
        form.addRow(tr("&Site:"), self.name_edit)
        self.preview = QLabel()
        self.preview.setObjectName("tagPreview")
        self.preview.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("", self.preview)
        self.name_edit.textChanged.connect(self._preview)
        self.address_box = QComboBox()
        self.address_box.setObjectName("tagOwnerAddress")
        self.address_box.setAccessibleName(tr("Your address the sign-up address belongs to"))
        form.addRow(tr("&For:"), self.address_box)
        self.address_box.currentIndexChanged.connect(self._preview)
        ends = QHBoxLayout()
        self.expiry_box = QComboBox()
        self.expiry_box.setObjectName("tagExpiry")
        self.expiry_box.setAccessibleName(tr("When the sign-up address stops working"))
        for key, _value in EXPIRY_CHOICES:
            self.expiry_box.addItem(expiry_label(key), key)
        self.dated_check = QCheckBox(tr("&Dated: the end date is written into the address"))
        self.dated_check.setObjectName("tagDated")
        self.dated_check.setToolTip(tr("Nobody can change the date, not even by editing the address"))
        ends.addWidget(self.expiry_box)
        ends.addWidget(self.dated_check)
        ends.addStretch(1)
        ends_label = QLabel(tr("&Ends:"))  # a row of a layout gets no buddy: without one the & shows
        ends_label.setBuddy(self.expiry_box)
        form.addRow(ends_label, ends)
        self.folder_box = QComboBox()
        self.folder_box.setObjectName("tagFolder")
        self.folder_box.setAccessibleName(tr("Where mail to the sign-up address goes"))
        for key in FOLDER_CHOICES:
            self.folder_box.addItem(folder_choice(key), key)
        form.addRow(tr("&Mail goes to:"), self.folder_box)
        self.expiry_box.currentIndexChanged.connect(self._enable)
        self.create_button = QPushButton(tr("&Create and copy"))
        self.create_button.setObjectName("createTag")
        self.create_button.setToolTip(tr("Make the address and copy it, ready to paste into the sign-up form"))
        self.create_button.clicked.connect(self.create_tag)
        form.addRow("", self.create_button)
        layout.addLayout(form)

        self.empty = QLabel(tr("A sign-up address is a separate address for one shop or newsletter: give it out "
                               "when you sign up, its mail comes straight in, and you can switch it off if it "
                               "ever starts sending unwanted mail."))
        self.empty.setObjectName("tagsEmpty")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.empty, 1)
        self.table, self.proxy = make_table(self.model, name=tr("Your sign-up addresses"))
        self.table.sortByColumn(2, Qt.SortOrder.AscendingOrder)  # live ones first
        # the address is what the page hands out (set first: a width given to the stretching column is not kept)
        fitter(self.table).configure(stretch=1, keep=(2, 6), min_chars=34)
        late = tr("Yesterday %1").replace("%1", "23:59")
        widths = (90, 0, text_width(self.table, tr("Expired")), 60, 60, 150, text_width(self.table, late), 110,
                  text_width(self.table, "30 Sept 2027 23:59"))
        for col, width in enumerate(widths):
            if width:
                self.table.setColumnWidth(col, width)
        # the selected address's recent mail (GET /events?tag=), newest first, live
        self.split = QSplitter(Qt.Orientation.Vertical)
        self.split.addWidget(self.table)
        recent_box = QWidget()
        recent_layout = QVBoxLayout(recent_box)
        recent_layout.setContentsMargins(0, 0, 0, 0)
        self.recent_label = QLabel(tr("Select a sign-up address to see the mail it brought."))
        self.recent_label.setObjectName("tagRecentLabel")
        recent_layout.addWidget(self.recent_label)
        self.recent_model = TagEventsModel(self.client, self)
        self.recent_model.failed.connect(
            lambda message: self.recent_label.setText(tr("Its mail could not be loaded: %1").replace("%1", message)))
        self.recent, _ = make_table(self.recent_model, sortable=False, name=tr("Mail that came in by this address"))
        self.recent.setObjectName("tagRecent")
        for col, width in enumerate((140, 110, 220, 180, 220)):
            self.recent.setColumnWidth(col, width)
        fitter(self.recent).configure(stretch=5, keep=(0, 1), min_chars=30)  # Reason, as on Activity
        self.recent.setColumnHidden(6, True)  # the Sign-up address column: it is the one selected
        hide_until_used(self.recent, self.recent_model, 6, lambda e: False)
        self.recent_label.setBuddy(self.recent)
        recent_layout.addWidget(self.recent)
        self.split.addWidget(recent_box)
        self.split.setSizes([300, 200])
        layout.addWidget(self.split, 1)
        bar = QHBoxLayout()
        self.revoke_button = icon_button("deny", tr("&Revoke"), tr("Revoke the selected sign-up address (Delete)"))
        self.revoke_button.clicked.connect(self.revoke_selected)
        self.copy_button = icon_button("export", tr("Co&py address"), tr("Copy the selected address (Ctrl+C)"))
        self.copy_button.clicked.connect(self.copy_selected)
        bar.addWidget(self.copy_button)
        bar.addWidget(self.revoke_button)
        bar.addStretch(1)
        layout.addLayout(bar)
        self.shortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.revoke_selected, self.table)
        self.shortcut(QKeySequence(QKeySequence.StandardKey.Copy), self.copy_selected, self.table)
        self.table.selectionModel().selectionChanged.connect(self._enable)
        self.table.selectionModel().selectionChanged.connect(self._show_recent)
        self.model.modelReset.connect(self._show_empty)
        self.model.rowsInserted.connect(self._show_empty)
        self.model.rowsRemoved.connect(self._show_empty)
        self._creating = False
        # the live stream: an event that came in by a tag refreshes that tag's row, off the GUI thread and
        # coalesced (a burst is one refresh per tag); many at once, or a tag made elsewhere, one reload
        self._live_ids: set[int] = set()
        self._generation = 0  # F5s: a live reload's rows still being applied stop at a newer list
        self._by_name: dict[str, list[Tag]] | None = None  # the rows by tag name: a burst costs a lookup per event
        for signal in (self.model.modelReset, self.model.rowsInserted, self.model.rowsRemoved):
            signal.connect(self._forget_names)
        self._live_reload = False
        self._live_busy = False
        self.live_rows = 0  # rows refreshed from the stream, and whole reloads (tests and the benchmark count)
        self.live_reloads = 0
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_DELAY_MS)
        self._live_timer.timeout.connect(self._flush_live)
        self._show_empty()
        self._enable()

    # -- state --
    def _show_empty(self, *_: object) -> None:
        none = self.model.rowCount() == 0
        self.empty.setVisible(none)
        self.split.setVisible(not none)
        self.table.setVisible(not none)

    def _show_recent(self, *_: object) -> None:
        """The selected address's recent mail; the same address again (its row refreshed) is not reloaded."""
        tag = self.selected()
        shown = self.recent_model.tag
        if tag is not None and shown is not None and tag.id == shown.id:
            return
        if tag is None:
            self.recent_label.setText(tr("Select a sign-up address to see the mail it brought."))
        else:
            self.recent_label.setText(tr("Mail that came in by %1, newest first").replace("%1", tag.address))
        self.recent_model.show_tag(tag, tag.user_id if tag is not None and self._admin() else None)

    def _admin(self) -> bool:
        return self.me is not None and self.me.role == "admin"

    def _preview(self, *_: object) -> None:
        """The name as it will go into the address (the gateway's delimiter and a dated tag's date may differ)."""
        name = tag_name(self.name_edit.text(), self.delimiter())
        self.preview.setText(tr("Name in the address: %1").replace("%1", name) if name else "")

    def _enable(self, *_: object) -> None:
        self.dated_check.setEnabled(bool(self.expiry_box.currentData()))  # a dated address needs an end
        if not self.expiry_box.currentData():
            self.dated_check.setChecked(False)
        self.create_button.setEnabled(not self._creating and self.address_box.count() > 0)
        tag = self.selected()
        self.revoke_button.setEnabled(tag is not None and tag.status == "live")
        self.copy_button.setEnabled(tag is not None)

    def selected(self) -> Tag | None:
        rows = self.table.selectionModel().selectedRows()
        tag = self.proxy.data(rows[0], RecordRole) if rows else None
        return tag if isinstance(tag, Tag) else None

    # -- loading --
    def refresh(self) -> None:
        self._generation += 1
        client, me = self.client, self.me
        self.run(lambda: load(client, me), self._loaded, lambda exc: self.messages.error(problem(exc)))

    def _loaded(self, result: tuple[Me, list[Tag]]) -> None:
        me, tags = result
        if self.me is None or self.me.addresses != me.addresses:
            chosen = self.address_box.currentText()
            self.address_box.clear()
            self.address_box.addItems(list(me.addresses))
            self.address_box.setCurrentIndex(max(0, self.address_box.findText(chosen)))
        self.me = me
        self._preview()  # the delimiter may have changed the name
        was = self.selected()
        self.model.set_records(tags)
        if was is not None:  # a reload (F5, or the stream's) keeps the selected address selected
            self._select(was.id)
        self.loaded = True
        self._enable()

    # -- live --
    def live(self, msg: Any) -> None:
        """A stream message: mail by a sign-up address updates its row (soon, coalesced) and its recent mail."""
        event = msg.record
        if msg.kind != "event" or not getattr(event, "tag", None) or not self.loaded:
            return
        # an admin's stream carries everyone's: a tag of this name on another person's address is not it
        owner = msg.user_id if self._admin() and msg.owner_known else None
        if self._by_name is None:
            self._by_name = {}
            for t in self.model.records():
                self._by_name.setdefault(t.name, []).append(t)
        ids = [t.id for t in self._by_name.get(event.tag, ())
               if owner is None or t.user_id is None or t.user_id == owner]
        if ids:
            self._live_ids.update(ids)
        else:  # made elsewhere (another device, the command line): the list does not have it yet
            self._live_reload = True
        if not self._live_timer.isActive() and not self._live_busy:
            self._live_timer.start()
        shown = self.recent_model.tag
        if shown is not None and shown.id in ids:
            self.recent_model.add_live(event)

    def _forget_names(self, *_: object) -> None:
        self._by_name = None  # rows came or went (a row refreshed keeps its name and id)

    def _flush_live(self) -> None:
        if self._live_busy or not (self._live_ids or self._live_reload):
            return
        ids, whole = sorted(self._live_ids), self._live_reload
        self._live_ids, self._live_reload = set(), False
        self._live_busy = True
        client, me = self.client, self.me
        if whole or len(ids) > LIVE_ROWS_MAX:
            self.live_reloads += 1
            generation = self._generation
            self.run(lambda: load(client, me), lambda result: self._apply_list(result, generation),
                     self._live_failed)
        else:
            self.live_rows += len(ids)
            self.run(lambda: fetch_tags(client, ids), lambda got: self._live_done(self._rows_fetched, got),
                     self._live_failed)

    def _apply_list(self, result: tuple[Me, list[Tag]], generation: int) -> None:
        """The stream's reload: rows changed in place, APPLY_CHUNK per turn (a reset re-sorts 1,000 rows in
        one go: ~100 ms of the GUI thread); a list that changed shape (addresses, many rows) as F5 does."""
        me, tags = result
        if generation != self._generation:  # F5 brought a newer list meanwhile
            self._live_done(lambda _: None, None)
            return
        have = {t.id for t in self.model.records()}
        now = {t.id for t in tags}
        if self.me is None or me.addresses != self.me.addresses or len(have ^ now) > APPLY_CHUNK:
            self._live_done(self._loaded, result)
            return
        for gone in have - now:
            self.model.remove_key(gone)
        self._apply_chunks(list(tags), generation)

    def _apply_chunks(self, rest: list[Tag], generation: int) -> None:
        if generation != self._generation:  # F5 brought a newer list meanwhile: these rows are older
            self._live_done(lambda _: None, None)
            return
        chunk, rest = rest[:APPLY_CHUNK], rest[APPLY_CHUNK:]
        for new in self.model.replace_many(chunk):  # made elsewhere: on top, as one made here
            self.model.upsert(new)
        if rest:
            QTimer.singleShot(0, self, lambda: self._apply_chunks(rest, generation))
        else:
            self._live_done(lambda _: self._enable(), None)

    def _rows_fetched(self, got: list[Tag | int]) -> None:
        for item in got:
            if isinstance(item, int):
                self.model.remove_key(item)
        for new in self.model.replace_many([t for t in got if isinstance(t, Tag)]):
            self.model.upsert(new)
        self._enable()

    def _live_done(self, apply: Callable[[Any], None], result: Any) -> None:
        self._live_busy = False
        apply(result)
        if self._live_ids or self._live_reload:  # more came while this was on its way
            self._live_timer.start()

    def _live_failed(self, exc: Exception) -> None:
        # the stream says when the gateway is gone; the rows stay as they were until the next event or F5
        log.info("sign-up addresses: live refresh failed: %s", exc)
        self._live_busy = False

    # -- actions --
    def delimiter(self) -> str:
        """The gateway's recipient delimiter (from /me; "+" until it is known)."""
        return self.me.recipient_delimiter if self.me is not None else "+"

    def create_tag(self) -> None:
        name = tag_name(self.name_edit.text(), self.delimiter())
        if not name:
            self.messages.error(tr("Enter the name of the site you sign up at (letters or digits); it becomes part "
                                   "of the address."))
            self.name_edit.setFocus()
            return
        owner = self.address_box.currentText()
        if not owner or self._creating:
            return
        expires = self.expiry_box.currentData() or None
        dated = self.dated_check.isChecked() and expires is not None
        folder = self.folder_box.currentData() or None
        client = self.client
        self._creating = True
        self._enable()

        def done(tag: Tag) -> None:
            self._creating = False
            QGuiApplication.clipboard().setText(tag.address)
            self.model.upsert(tag)
            self.name_edit.clear()
            self._select(tag.id)
            self._enable()
            self.messages.info(tr("%1 is copied to the clipboard: paste it where %2 asks for your email address.")
                               .replace("%1", tag.address).replace("%2", tag.name))

        def failed(exc: Exception) -> None:
            self._creating = False
            self._enable()
            self.messages.error(tr("Could not create the sign-up address: %1").replace("%1", problem(exc)))

        self.run(lambda: client.add_tag(owner, name, expires=expires, dated=dated, folder=folder), done, failed)

    def _select(self, tag_id: int) -> None:
        row = self.model.row_of(tag_id)
        if row >= 0:
            index = self.proxy.mapFromSource(self.model.index(row, 0))
            self.table.selectionModel().select(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                               | QItemSelectionModel.SelectionFlag.Rows)
            self.table.scrollTo(index)

    def copy_selected(self) -> None:
        tag = self.selected()
        if tag is not None:
            QGuiApplication.clipboard().setText(tag.address)
            self.messages.info(tr("%1 is copied to the clipboard.").replace("%1", tag.address))

    def revoke_selected(self) -> None:
        tag = self.selected()
        if tag is None or tag.status != "live" or not self.confirm(self, tag):
            return
        client = self.client

        def done(revoked: Tag) -> None:
            self.model.upsert(revoked)
            self._enable()
            self.messages.info(tr("Revoked %1: mail to it is refused from now on.").replace("%1", revoked.address))

        self.run(lambda: client.revoke_tag(tag.id), done,
                 lambda exc: self.messages.error(tr("Could not revoke %1: %2").replace("%1", tag.address)
                                                 .replace("%2", problem(exc))))
