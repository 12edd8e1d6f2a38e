"""Import: the people the user already knows into the allowlist, from an address book (vCard, CSV,
LDIF, Thunderbird abook.sqlite) or the IMAP account (whom they wrote to and answered).

Choose a source -> a preview (address, name, source, how often written to, already allowed?) with
check boxes -> import in chunks with a progress bar and Cancel -> a summary. Reading the IMAP
account also uploads the hashed Message-IDs of sent mail, so replies to them reach the inbox. Its
state (how far each folder was read) is saved per account once the import is done, so the next
read, and the optional periodic re-sync, read only new mail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..api_client import ApiError
from ..i18n import tr
from ..importing import (
    IMPORT_CHUNK,
    NEW,
    PRESENT,
    Credential,
    ImapAccount,
    ImportProblem,
    ImportTally,
    Resynced,
    SourceRead,
    chunked,
    file_filter,
    read_address_book,
    read_imap,
    resync,
)
from ..models.import_preview import ImportPreviewModel
from ..oauth import KeychainTokens, SignInRequired, Tokens, TokenSource, client_for
from ..operations import Operation
from ..secrets import IMAP_PASSWORD, SecretStore
from ..settings import RESYNC_MINUTES, Settings
from ..signin import SignInPanel
from .base import Page, make_table

MINUTE_MS = 60_000


class _Progress(QObject):
    """Lives on the GUI thread; the worker's progress calls cross over as queued signals."""

    advanced = Signal(int, int)  # done, total


class ImportPage(Page):
    key = "import"
    icon_name = "import"

    read_finished = Signal(str)  # the summary shown ("" when the read failed)
    import_finished = Signal(str)  # the summary shown
    resync_finished = Signal(str)  # the message shown

    @staticmethod
    def title() -> str:
        return tr("Import")

    def __init__(self, *args: Any, settings: Settings | None = None, secrets: SecretStore | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.secrets = secrets or SecretStore()
        self.source: SourceRead | None = None
        self.state = "idle"  # 'reading', 'importing', 'resyncing'
        self._cancel = threading.Event()
        self._tally: ImportTally | None = None
        self._queue: list[list[str]] = []
        self._note = ""
        self._progress = _Progress(self)
        self._progress.advanced.connect(self._advanced)
        self.model = ImportPreviewModel(self)
        self.model.selection_changed.connect(self._selection_changed)

        layout = QVBoxLayout(self)
        intro = QLabel(tr("Allow the people you already know: read an address book or your mail account, "
                          "check who to allow, and import."))
        intro.setWordWrap(True)
        layout.addWidget(intro)

        sources = QHBoxLayout()
        self.file_button = QPushButton(tr("Open &address book…"))
        self.file_button.setToolTip(tr("vCard (.vcf), CSV from Outlook, Google or Thunderbird, LDIF, or "
                                       "Thunderbird's abook.sqlite"))
        self.file_button.setAccessibleName(tr("Open an address book file"))
        self.file_button.clicked.connect(self.choose_file)
        self.imap_button = QPushButton(tr("Read my &mail account"))
        self.imap_button.setToolTip(tr("Whom you wrote to (the Sent folder) and whose mail you answered"))
        self.imap_button.setAccessibleName(tr("Read the IMAP account"))
        self.imap_button.clicked.connect(self.read_imap)
        sources.addWidget(self.file_button)
        sources.addWidget(self.imap_button)
        sources.addStretch(1)
        layout.addLayout(sources)
        self.source_label = QLabel(tr("No source read yet."))
        self.source_label.setObjectName("importSource")
        self.source_label.setWordWrap(True)
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.source_label)
        layout.addWidget(self._sign_in_box())

        tools = QHBoxLayout()
        self.search = QLineEdit()
        self.search.setPlaceholderText(tr("Filter the preview"))
        self.search.setAccessibleName(tr("Filter the preview"))
        self.search.setClearButtonEnabled(True)
        tools.addWidget(self.search, 1)
        self.select_new_button = QPushButton(tr("Select all &new"))
        self.select_new_button.clicked.connect(self.model.select_new)
        self.select_none_button = QPushButton(tr("Select n&one"))
        self.select_none_button.clicked.connect(self.model.select_none)
        tools.addWidget(self.select_new_button)
        tools.addWidget(self.select_none_button)
        layout.addLayout(tools)

        self.table, self.proxy = make_table(self.model, multi=True, name=tr("Import preview"))
        self.search.textChanged.connect(self.proxy.setFilterFixedString)
        for col, width in enumerate((260, 180, 110, 90, 140)):
            self.table.setColumnWidth(col, width)
        self.shortcut("Space", self._toggle_selected, self.table)
        layout.addWidget(self.table, 1)

        run = QHBoxLayout()
        self.import_button = QPushButton()
        self.import_button.setObjectName("importButton")
        self.import_button.clicked.connect(self.import_checked)
        self.progress = QProgressBar()
        self.progress.setAccessibleName(tr("Import progress"))
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton(tr("Cancel"))
        self.cancel_button.setAccessibleName(tr("Cancel the import"))
        self.cancel_button.clicked.connect(self.cancel)
        run.addWidget(self.import_button)
        run.addWidget(self.progress, 1)
        run.addWidget(self.cancel_button)
        layout.addLayout(run)
        self.summary = QLabel()
        self.summary.setObjectName("importSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.summary)

        layout.addWidget(self._resync_box())
        self.resync_timer = QTimer(self)
        self.resync_timer.timeout.connect(self.resync_now)
        self._apply_resync_setting()
        self._update_controls()
        self.loaded = True

    def _sign_in_box(self) -> QWidget:
        """Shown when the provider withdrew the sign-in: sign in again here, nothing else changes."""
        self.sign_in_box = QGroupBox(tr("Sign in to the mail account again"))
        box = QVBoxLayout(self.sign_in_box)
        self.sign_in = SignInPanel(lambda: client_for(self._settings()), lambda: self._settings().imap_user, self)
        self.sign_in.signed_in.connect(self._signed_in_again)
        box.addWidget(self.sign_in)
        self.sign_in_box.hide()
        return self.sign_in_box

    def _settings(self) -> Settings:
        assert self.settings is not None, "the Import page's sign-in needs the app's settings"
        return self.settings

    def _signed_in_again(self, tokens: Tokens) -> None:
        try:
            KeychainTokens(self.secrets).save(tokens)
        except ApiError as exc:
            self.messages.error(str(exc))
            return
        self.sign_in_box.hide()
        self.messages.info(tr("Signed in again. Reading the mail account carries on where it stopped."))

    def _sign_in_required(self, exc: Exception) -> bool:
        """The provider withdrew the sign-in: say so and offer to sign in again; True if that was it."""
        if not isinstance(exc, SignInRequired):
            return False
        self.sign_in_box.show()
        return True

    def _resync_box(self) -> QWidget:
        box = QGroupBox(tr("Keep up with your mail"))
        row = QHBoxLayout(box)
        self.resync_check = QCheckBox(tr("Re-sync the mail account every"))
        self.resync_check.setAccessibleName(tr("Re-sync the mail account periodically"))
        self.resync_check.setToolTip(tr("Reads only mail that is new since the last import, allows the people "
                                        "you wrote to, and lets replies to your mail through."))
        self.resync_minutes = QSpinBox()
        self.resync_minutes.setRange(5, 7 * 24 * 60)
        self.resync_minutes.setSingleStep(5)
        self.resync_minutes.setSuffix(tr(" min"))
        self.resync_minutes.setAccessibleName(tr("Minutes between re-syncs"))
        minutes = self.settings.imap_resync_minutes if self.settings is not None else 0
        self.resync_minutes.setValue(minutes or RESYNC_MINUTES)
        self.resync_check.setChecked(minutes > 0)
        self.resync_check.toggled.connect(self._resync_changed)
        self.resync_minutes.valueChanged.connect(self._resync_changed)
        self.resync_status = QLabel()
        self.resync_status.setObjectName("resyncStatus")
        self.resync_status.setWordWrap(True)
        row.addWidget(self.resync_check)
        row.addWidget(self.resync_minutes)
        row.addWidget(self.resync_status, 1)
        return box

    def refresh(self) -> None:
        """Nothing to fetch until a source is chosen; the mail account may have been set up meanwhile."""
        self._apply_resync_setting()
        self._update_controls()

    # -- state --
    def account(self) -> ImapAccount | None:
        s = self.settings
        if s is None or not s.imap_host:
            return None
        return ImapAccount(s.imap_host, s.imap_port, s.imap_security, s.imap_user)

    def busy(self) -> bool:
        return self.state != "idle"

    def _set_state(self, state: str) -> None:
        self.state = state
        self._update_controls()

    def _update_controls(self) -> None:
        idle = self.state == "idle"
        checked = self.model.checked_count()
        self.file_button.setEnabled(idle)
        self.imap_button.setEnabled(idle)
        self.select_new_button.setEnabled(idle and self.model.count(NEW) > 0)
        self.select_none_button.setEnabled(idle and checked > 0)
        self.import_button.setText(tr("&Import selected (%1)").replace("%1", str(checked)))
        self.import_button.setEnabled(idle and checked > 0)
        self.cancel_button.setEnabled(self.state in ("reading", "importing"))
        self.progress.setVisible(self.state in ("reading", "importing"))
        self.cancel_button.setVisible(self.state in ("reading", "importing"))
        has_account = self.account() is not None
        self.resync_check.setEnabled(has_account)
        self.resync_minutes.setEnabled(has_account)
        if not has_account:
            self.resync_status.setText(tr("Set up a mail account (File → Connection…) to use this."))

    def _selection_changed(self, _count: int) -> None:
        self._update_controls()

    def _toggle_selected(self) -> None:
        rows = {self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()}
        if not rows or self.busy():
            return
        on = not all(self.model.is_checked(r) for r in rows)
        for r in sorted(rows):
            self.model.set_checked(r, on)

    # -- reading a source --
    def choose_file(self) -> None:
        dialog = QFileDialog(self, tr("Open an address book"))
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilters([tr("Address books (%1)").replace("%1", file_filter()), tr("All files (*)")])
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(self.read_file)
        dialog.open()  # window-modal at most: the app keeps running

    def read_file(self, path: str) -> None:
        if self.busy():
            return
        client = self.client
        self._start_reading(tr("Reading %1…").replace("%1", path), lambda: read_address_book(client, path))

    def read_imap(self) -> None:
        if self.busy():
            return
        account = self.account()
        if account is None:
            self.messages.error(tr("No mail account is set up: add one in File → Connection…"))
            return
        client, secrets, progress = self.client, self.secrets, self._progress
        cancel = self._cancel
        state = self.settings.imap_harvest_state(account.key) if self.settings is not None else None

        settings = self.settings

        def job() -> SourceRead:
            return read_imap(client, account, _credential(settings, secrets), state, progress.advanced.emit,
                             cancel.is_set)

        self._start_reading(tr("Reading the mail account %1…").replace("%1", account.key), job)

    def _start_reading(self, what: str, job: Callable[[], SourceRead]) -> None:
        self._cancel.clear()
        self._set_state("reading")
        self.progress.setRange(0, 0)  # busy until the first progress report
        self.source_label.setText(what)
        self.summary.clear()
        Operation(self, job, self._read).failure(self._read_failed).finally_(self._read_over).run()

    def _read(self, source: SourceRead) -> None:
        self.source = source
        self.model.set_rows(source.rows)
        from_mail = bool(source.account)
        for column in (3, 4):  # how often and when: only mail says that
            self.table.setColumnHidden(column, not from_mail)
        if from_mail:  # the people written to most first
            self.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)
        else:  # the address book's own order
            self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
            self.proxy.sort(-1)
        covered = self.model.count_covered()  # allowed through their @domain: counted as allowed
        new, present = self.model.count(NEW) - covered, self.model.count(PRESENT) + covered
        text = tr("%1 — addresses: %2 (%3 new, %4 already allowed); skipped: %5") \
            .replace("%1", source.label).replace("%2", str(len(source.rows))).replace("%3", str(new)) \
            .replace("%4", str(present)).replace("%5", str(source.skipped))
        if source.account:
            text += "\n" + tr("New messages read: %1. Sent Message-IDs newly registered (replies to them reach "
                              "you): %2.").replace("%1", str(source.messages_read)) \
                .replace("%2", str(source.sent_ids_added))
        if source.cancelled:
            text += "\n" + tr("Reading was cancelled: this is what was read until then.")
        if source.warnings:
            text += "\n" + "\n".join(source.warnings[:5])
        self.source_label.setText(text)
        if source.problem:
            self.messages.error(tr("%1 — the addresses read until then are shown.").replace("%1", source.problem))
        if source.account and new == 0:
            self._save_imap_state()  # nothing left to import: the next read starts after this mail
        self.read_finished.emit(text)

    def _read_failed(self, exc: Exception) -> None:
        self._sign_in_required(exc)
        self.source_label.setText(tr("Could not read the source."))
        self.messages.error(str(exc))
        self.read_finished.emit("")

    def _read_over(self) -> None:
        self._set_state("idle")

    def _advanced(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    # -- importing --
    def import_checked(self) -> None:
        if self.busy() or self.source is None:
            return
        entries = [r.address for r in self.model.checked_rows()]
        if not entries:
            return
        self._cancel.clear()
        self._tally = ImportTally(len(entries))
        self._queue = [list(c) for c in chunked(entries, IMPORT_CHUNK)]
        self._note = tr("imported from %1").replace("%1", self.source.label)
        self._set_state("importing")
        self.progress.setRange(0, len(entries))
        self.progress.setValue(0)
        self.summary.setText(tr("Importing…"))
        self._import_next()

    def _import_next(self) -> None:
        tally = self._tally
        assert tally is not None
        if not self._queue or self._cancel.is_set():
            self._import_over(cancelled=bool(self._queue))
            return
        chunk = self._queue.pop(0)
        client, note = self.client, self._note
        Operation(self, lambda: client.import_allow(chunk, note=note), self._chunk_done) \
            .failure(self._chunk_failed).run()

    def _chunk_done(self, outcome: Any) -> None:
        tally = self._tally
        assert tally is not None
        tally.add(outcome.items)
        self.model.mark_allowed(item.entry for item in outcome.items if item.status in ("added", "present"))
        self.progress.setValue(tally.done)
        self._import_next()

    def _chunk_failed(self, exc: Exception) -> None:
        tally = self._tally
        assert tally is not None
        self._queue = []
        self._set_state("idle")
        text = tr("The import stopped after %1 of %2 addresses (%3 added). Importing again is safe.") \
            .replace("%1", str(tally.done)).replace("%2", str(tally.total)).replace("%3", str(tally.added))
        self.summary.setText(text)
        self.messages.error(str(exc) + " — " + text)
        self.import_finished.emit(text)

    def _import_over(self, cancelled: bool) -> None:
        tally = self._tally
        assert tally is not None
        self._queue = []
        self._set_state("idle")
        counts = tr("%1 added, %2 were already allowed, %3 invalid").replace("%1", str(tally.added)) \
            .replace("%2", str(tally.present)).replace("%3", str(tally.invalid))
        if cancelled:
            text = tr("Import cancelled after %1 of %2 addresses: %3. The others were not imported; "
                      "importing again is safe.").replace("%1", str(tally.done)).replace("%2", str(tally.total)) \
                .replace("%3", counts)
        else:
            text = tr("Import finished: %1.").replace("%1", counts)
            if self.source is not None and self.source.account:
                self._save_imap_state()
        self.summary.setText(text)
        self.messages.info(text)
        self.import_finished.emit(text)

    def _save_imap_state(self) -> None:
        source = self.source
        if self.settings is None or source is None or not source.account or source.imap_state is None:
            return
        self.settings.set_imap_harvest_state(source.account, source.imap_state)
        self.settings.sync()

    def cancel(self) -> None:
        """Reading stops after the current batch of mail, importing after the current chunk."""
        self._cancel.set()
        self.cancel_button.setEnabled(False)
        self.summary.setText(tr("Cancelling…"))

    # -- periodic re-sync --
    def _resync_changed(self, *_: object) -> None:
        if self.settings is not None:
            self.settings.imap_resync_minutes = self.resync_minutes.value() if self.resync_check.isChecked() else 0
            self.settings.sync()
        self._apply_resync_setting()

    def _apply_resync_setting(self) -> None:
        minutes = self.settings.imap_resync_minutes if self.settings is not None else 0
        if minutes > 0 and self.account() is not None:
            self.resync_timer.start(minutes * MINUTE_MS)
            self.resync_status.setText(tr("On, while SenderGate runs."))
        else:
            self.resync_timer.stop()
            self.resync_status.setText(tr("Off."))

    def resync_now(self) -> None:
        """One re-sync: the mail account's new mail since the saved state, imported without a preview."""
        account = self.account()
        if account is None or self.busy():
            return  # the next tick tries again
        client, secrets, cancel, settings = self.client, self.secrets, self._cancel, self.settings
        state = self.settings.imap_harvest_state(account.key) if self.settings is not None else None
        note = tr("imported from %1").replace("%1", f"IMAP {account.key}") + " " + tr("(re-sync)")
        self._cancel.clear()
        self._set_state("resyncing")
        self.resync_status.setText(tr("Re-syncing…"))

        def job() -> Resynced:
            return resync(client, account, _credential(settings, secrets), state, note, cancel.is_set)

        Operation(self, job, self._resynced).failure(self._resync_failed).finally_(self._resync_over).run()

    def _resynced(self, r: Resynced) -> None:
        if self.settings is not None:
            self.settings.set_imap_harvest_state(r.account, r.imap_state)
            self.settings.sync()
        text = tr("Mail account re-synced. New messages read: %1; newly allowed: %2.") \
            .replace("%1", str(r.messages_read)).replace("%2", str(r.added))
        self.resync_status.setText(text)
        if r.problem:
            self.messages.error(r.problem)
        elif r.added:
            self.messages.info(text)
        self.resync_finished.emit(text)

    def _resync_failed(self, exc: Exception) -> None:
        self._sign_in_required(exc)
        text = tr("The mail account re-sync failed: %1").replace("%1", str(exc))
        self.resync_status.setText(text)
        self.messages.error(text)
        self.resync_finished.emit(text)

    def _resync_over(self) -> None:
        self._set_state("idle")

    def shutdown(self) -> None:
        """The window closes: stop the timer; running work stops at its next batch or chunk."""
        self.resync_timer.stop()
        self._cancel.set()
        self.sign_in.shutdown()


def _credential(settings: Settings | None, secrets: SecretStore) -> Credential:
    """How to log in to the mail account: OAuth2 tokens (refreshed as needed) or the saved password."""
    if settings is not None and settings.imap_auth == "oauth2":
        return TokenSource(client_for(settings), KeychainTokens(secrets))
    return _password(secrets)


def _password(secrets: SecretStore) -> str:
    """The IMAP password from the keychain (read on the worker thread: a keychain may take a moment)."""
    password = secrets.get(IMAP_PASSWORD)
    if not password:
        raise ImportProblem(tr("No password for the mail account is saved: enter it in File → Connection…"))
    return password
