"""First-run setup: the gateway's address and token (tested before saving), optionally an IMAP account.

Secrets go to the keychain through secrets.py. Where there is none, the
dialog says so plainly and offers to keep them for this session only. A
plain-http address that is not this machine gets a warning, and the token is
not sent over it until the user agrees.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..contacts import ContactsError
from .api_client import ApiError, GatewayClient, Me, normalise_url, sends_token_in_clear
from .i18n import tr
from .icons import app_icon
from .importing import ImapAccount, ImportProblem
from .operations import Operation
from .secrets import IMAP_PASSWORD, TOKEN, NoKeychain, Placement, SecretStore
from .settings import Settings


@dataclass(frozen=True)
class Connection:
    url: str
    token: str
    me: Me
    token_placement: Placement


class SetupDialog(QDialog):
    tested = Signal(int, str)  # ok (1/0: see models/events.py on bool signals), message shown
    imap_tested = Signal(int, str)  # the IMAP account's test: ok (1/0), message shown

    def __init__(self, settings: Settings, secrets: SecretStore, parent: QWidget | None = None, *,
                 url: str = "", token: str = "") -> None:
        super().__init__(parent)
        self.settings = settings
        self.secrets = secrets
        self.connection: Connection | None = None
        self._tested_for: tuple[str, str] | None = None
        self._me: Me | None = None
        self.setWindowTitle(tr("Connect to your SenderGate"))
        self.setWindowIcon(app_icon())
        self.setObjectName("setupDialog")
        layout = QVBoxLayout(self)
        intro = QLabel(tr("Enter the address of your SenderGate gateway and the API token your administrator "
                          "gave you (sendergate users add … prints it)."))
        intro.setWordWrap(True)
        layout.addWidget(intro)

        form = QFormLayout()
        self.url_edit = QLineEdit(url or settings.gateway_url)
        self.url_edit.setPlaceholderText("https://mx.example.org")
        self.url_edit.setAccessibleName(tr("Gateway address"))
        form.addRow(tr("&Gateway address:"), self.url_edit)
        self.token_edit = QLineEdit(token)
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setAccessibleName(tr("API token"))
        form.addRow(tr("API &token:"), self.token_edit)
        layout.addLayout(form)

        self.insecure_label = QLabel(tr("<b>Warning:</b> this address uses plain http and is not this computer. "
                                        "Your token would travel over the network unencrypted, readable by anyone "
                                        "on the way. Use https:// unless you know this network is private."))
        self.insecure_label.setWordWrap(True)
        self.insecure_label.setObjectName("insecureWarning")
        self.insecure_ok = QCheckBox(tr("Send my token over this unencrypted connection anyway"))
        self.insecure_ok.setAccessibleName(tr("Accept the unencrypted connection"))
        layout.addWidget(self.insecure_label)
        layout.addWidget(self.insecure_ok)

        self.test_button = QPushButton(tr("Test &connection"))
        self.test_button.setAccessibleName(tr("Test connection"))
        self.test_button.clicked.connect(self.test_connection)
        layout.addWidget(self.test_button)
        self.status = QLabel()
        self.status.setObjectName("setupStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)

        self.imap_box = QGroupBox(tr("IMAP account (optional, for importing the people you write to)"))
        self.imap_box.setCheckable(True)
        self.imap_box.setChecked(bool(settings.imap_host))
        imap = QFormLayout(self.imap_box)
        self.imap_host = QLineEdit(settings.imap_host)
        self.imap_host.setAccessibleName(tr("IMAP server"))
        imap.addRow(tr("&Server:"), self.imap_host)
        self.imap_port = QSpinBox()
        self.imap_port.setRange(1, 65535)
        self.imap_port.setValue(settings.imap_port)
        self.imap_port.setAccessibleName(tr("IMAP port"))
        imap.addRow(tr("&Port:"), self.imap_port)
        self.imap_security = QComboBox()
        self.imap_security.setAccessibleName(tr("IMAP connection security"))
        for label, value in ((tr("TLS (port 993)"), "tls"), (tr("STARTTLS (port 143)"), "starttls"),
                             (tr("None (only for a server on this computer)"), "none")):
            self.imap_security.addItem(label, value)
        self.imap_security.setCurrentIndex(max(0, self.imap_security.findData(settings.imap_security)))
        self.imap_security.activated.connect(
            lambda _i: self.imap_port.setValue(993 if self.imap_security.currentData() == "tls" else 143))
        imap.addRow(tr("Securit&y:"), self.imap_security)
        self.imap_user = QLineEdit(settings.imap_user)
        self.imap_user.setAccessibleName(tr("IMAP user name"))
        imap.addRow(tr("&User:"), self.imap_user)
        self.imap_password = QLineEdit()
        self.imap_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.imap_password.setAccessibleName(tr("IMAP password or app password"))
        self.imap_password.setPlaceholderText(tr("saved in the keychain") if secrets.where(IMAP_PASSWORD)
                                              else tr("password or app password"))
        imap.addRow(tr("Pass&word:"), self.imap_password)
        self.imap_test_button = QPushButton(tr("Test &mail account"))
        self.imap_test_button.setAccessibleName(tr("Test the IMAP account"))
        self.imap_test_button.clicked.connect(self.test_imap)
        imap.addRow("", self.imap_test_button)
        self.imap_status = QLabel()
        self.imap_status.setObjectName("imapStatus")
        self.imap_status.setWordWrap(True)
        self.imap_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        imap.addRow("", self.imap_status)
        layout.addWidget(self.imap_box)

        keychain = secrets.keychain()
        self.keychain_label = QLabel()
        self.keychain_label.setWordWrap(True)
        self.keychain_label.setObjectName("keychainStatus")
        self.session_only = QCheckBox(tr("Keep the token and password for this session only (you will be asked "
                                         "again next time)"))
        self.session_only.setAccessibleName(tr("Keep secrets for this session only"))
        if keychain:
            self.keychain_label.setText(tr("The token and password will be kept in %1.").replace("%1", keychain))
            self.session_only.hide()
        else:
            self.keychain_label.setText(tr("<b>This computer has no keychain SenderGate can use</b>, so the token "
                                           "and password cannot be saved safely. SenderGate never writes them to a "
                                           "settings file."))
        layout.addWidget(self.keychain_label)
        layout.addWidget(self.session_only)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setEnabled(False)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        self.url_edit.textChanged.connect(self._changed)
        self.token_edit.textChanged.connect(self._changed)
        self.insecure_ok.toggled.connect(self._changed)
        self.session_only.toggled.connect(self._changed)
        self._changed()
        self.resize(520, self.sizeHint().height())

    # -- state --
    def _values(self) -> tuple[str, str]:
        return self.url_edit.text().strip(), self.token_edit.text().strip()

    def _url_or_none(self) -> str | None:
        try:
            return normalise_url(self.url_edit.text())
        except ValueError:
            return None

    def _changed(self) -> None:
        url = self._url_or_none()
        insecure = url is not None and sends_token_in_clear(url)
        self.insecure_label.setVisible(insecure)
        self.insecure_ok.setVisible(insecure)
        ok_to_send = url is not None and bool(self._values()[1]) and (not insecure or self.insecure_ok.isChecked())
        self.test_button.setEnabled(ok_to_send)
        tested = self._tested_for == self._values() and self._me is not None
        can_store = self.secrets.keychain() is not None or self.session_only.isChecked()
        self.save_button.setEnabled(tested and can_store)

    # -- actions --
    def test_connection(self) -> None:
        try:
            url = normalise_url(self.url_edit.text())
        except ValueError as exc:
            self._show_result(False, str(exc))
            return
        token = self.token_edit.text().strip()
        if not token:
            self._show_result(False, tr("Enter the API token."))
            return
        if sends_token_in_clear(url) and not self.insecure_ok.isChecked():
            self._show_result(False, tr("Confirm the unencrypted connection first, or use https://."))
            return
        values = self._values()
        self.test_button.setEnabled(False)
        self.status.setText(tr("Connecting…"))
        client = GatewayClient(url, token, timeout=10)

        def ok(me: Me) -> None:
            self._tested_for, self._me = values, me
            who = ", ".join(me.addresses) or me.name
            self._show_result(True, tr("Connected. This token belongs to %1.").replace("%1", who))

        def failed(exc: ApiError) -> None:
            self._tested_for, self._me = None, None
            self._show_result(False, str(exc))

        def done() -> None:
            client.close()
            self._changed()

        Operation(self, client.me, ok).failure(failed).finally_(done).run()

    def imap_account(self) -> ImapAccount:
        return ImapAccount(self.imap_host.text().strip(), self.imap_port.value(),
                           str(self.imap_security.currentData()), self.imap_user.text().strip())

    def test_imap(self) -> None:
        """Log in to the IMAP account (the password typed here, else the saved one) and find its Sent folder."""
        account = self.imap_account()
        try:
            account.check()
        except ImportProblem as exc:
            self._show_imap_result(False, str(exc))
            return
        typed, secrets = self.imap_password.text(), self.secrets

        def job() -> str:
            password = typed or secrets.get(IMAP_PASSWORD)
            if not password:
                raise ImportProblem(tr("Enter the password (or app password) of the mail account."))
            try:
                return account.harvester(password).sent_folder_name()
            except ContactsError as exc:
                raise ImportProblem(str(exc)) from None

        def ok(sent: str) -> None:
            self._show_imap_result(True, tr("Logged in. Sent mail is read from the folder %1.").replace("%1", sent))

        def failed(exc: ApiError) -> None:
            self._show_imap_result(False, str(exc))

        self.imap_test_button.setEnabled(False)
        self.imap_status.setText(tr("Connecting…"))
        Operation(self, job, ok).failure(failed).finally_(lambda: self.imap_test_button.setEnabled(True)).run()

    def _show_imap_result(self, ok: bool, message: str) -> None:
        self.imap_status.setText(("✓ " if ok else "✗ ") + message)
        self.imap_tested.emit(int(ok), message)

    def _show_result(self, ok: bool, message: str) -> None:
        self.status.setText(("✓ " if ok else "✗ ") + message)
        self.status.setProperty("ok", ok)
        self._changed()
        self.tested.emit(int(ok), message)

    def save(self) -> None:
        if self._me is None or self._tested_for != self._values():
            self._show_result(False, tr("Test the connection before saving."))
            return
        url = normalise_url(self.url_edit.text())
        token = self.token_edit.text().strip()
        session_only = self.secrets.keychain() is None and self.session_only.isChecked()
        try:
            stored = self.secrets.put(TOKEN, token, session_only=session_only)
            if self.imap_box.isChecked() and self.imap_password.text():
                self.secrets.put(IMAP_PASSWORD, self.imap_password.text(), session_only=session_only)
            elif not self.imap_box.isChecked():
                self.secrets.forget(IMAP_PASSWORD)  # no account: no password kept for it
        except NoKeychain as exc:
            self._show_result(False, str(exc))
            return
        self.settings.gateway_url = url
        self.settings.insecure_http_accepted = url if sends_token_in_clear(url) else ""
        if self.imap_box.isChecked():
            self.settings.imap_host = self.imap_host.text().strip()
            self.settings.imap_port = self.imap_port.value()
            self.settings.imap_security = str(self.imap_security.currentData())
            self.settings.imap_user = self.imap_user.text().strip()
        else:
            self.settings.imap_host = ""
        self.settings.sync()
        self.connection = Connection(url, token, self._me, stored.placement)
        self.accept()
