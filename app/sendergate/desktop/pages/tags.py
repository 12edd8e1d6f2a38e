"""Sign-up addresses (issue 19): an address of its own for each shop or newsletter the user signs up at.
Mail to a live one comes in without a challenge (still virus- and spam-scanned); the table shows what
each one received and from whom, so a site that passed it on shows itself; one click revokes it."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from PySide6.QtCore import QItemSelectionModel, Qt
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
    QVBoxLayout,
    QWidget,
)

from ..api_client import ApiError, GatewayClient, Me, Tag, Unauthorized, Unreachable
from ..i18n import tr
from ..models.base import RecordRole
from ..models.tags import TagsModel, folder_label
from ..widgets import icon_button
from .base import Page, fitter, make_table, text_width

NAME_MAX = 32  # the gateway's limit on a tag name
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
        fitter(self.table).configure(stretch=1, keep=(2, 5), min_chars=34)
        late = tr("Yesterday %1").replace("%1", "23:59")
        widths = (90, 0, text_width(self.table, tr("Expired")), 60, 150, text_width(self.table, late), 110,
                  text_width(self.table, "30 Sept 2027 23:59"))
        for col, width in enumerate(widths):
            if width:
                self.table.setColumnWidth(col, width)
        layout.addWidget(self.table, 1)
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
        self.model.modelReset.connect(self._show_empty)
        self.model.rowsInserted.connect(self._show_empty)
        self._creating = False
        self._show_empty()
        self._enable()

    # -- state --
    def _show_empty(self, *_: object) -> None:
        none = self.model.rowCount() == 0
        self.empty.setVisible(none)
        self.table.setVisible(not none)

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
        self.model.set_records(tags)
        self.loaded = True
        self._enable()

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
