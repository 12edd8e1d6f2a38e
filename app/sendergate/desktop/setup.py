"""First-run setup: the gateway's address and a pairing code (or link) that gets this computer its own token,
or a token (tested before saving); optionally an IMAP account.

Secrets go to the keychain through secrets.py. Where there is none, the
dialog says so plainly and offers to keep them for this session only. A
plain-http address that is not this machine gets a warning, and the token is
not sent over it until the user agrees.
"""

from __future__ import annotations

import socket
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
from .api_client import ApiError, Device, GatewayClient, Me, normalise_url, sends_token_in_clear
from .api_client import pair as pair_device
from .i18n import tr
from .icons import app_icon
from .importing import Credential, ImapAccount, ImportProblem
from .oauth import (
    PRESETS,
    TOKENS,
    HeldTokens,
    KeychainTokens,
    OAuthClient,
    SignInProblem,
    Tokens,
    TokenSource,
    client_for,
    custom_provider,
    revoke,
)
from .operations import Operation
from .pairing_link import parse_pair_input
from .secrets import IMAP_PASSWORD, TOKEN, NoKeychain, Placement, SecretStore
from .settings import Settings
from .signin import SignInPanel


def default_device_name() -> str:
    """The computer's host name, short: what a person recognises in the Devices list."""
    return (socket.gethostname().split(".")[0] or "desktop")[:100]


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
        intro = QLabel(tr("Enter the pairing code or link your administrator gave you (sendergate users invite … "
                          "or the Staff page makes one): this computer gets its own key. An API token works too."))
        intro.setWordWrap(True)
        layout.addWidget(intro)

        form = QFormLayout()
        self.url_edit = QLineEdit(url or settings.gateway_url)
        self.url_edit.setPlaceholderText("https://mx.example.org")
        self.url_edit.setAccessibleName(tr("Gateway address"))
        form.addRow(tr("&Gateway address:"), self.url_edit)
        self.pair_edit = QLineEdit()
        self.pair_edit.setObjectName("pairingCode")
        self.pair_edit.setPlaceholderText(tr("ABCDE-23456, or the link"))
        self.pair_edit.setAccessibleName(tr("Pairing code or link"))
        form.addRow(tr("Pairing &code or link:"), self.pair_edit)
        self.device_edit = QLineEdit(default_device_name())
        self.device_edit.setAccessibleName(tr("This computer's name"))
        self.device_edit.setMaxLength(100)
        form.addRow(tr("This computer's &name:"), self.device_edit)
        self.pair_button = QPushButton(tr("&Pair this computer"))
        self.pair_button.setAccessibleName(tr("Pair this computer"))
        self.pair_button.clicked.connect(self.pair)
        form.addRow("", self.pair_button)
        self.token_edit = QLineEdit(token)
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setAccessibleName(tr("API token"))
        form.addRow(tr("or an API &token:"), self.token_edit)
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
        self.imap_auth = QComboBox()
        self.imap_auth.setAccessibleName(tr("How SenderGate logs in to the mail account"))
        for label, value in ((tr("Password"), "password"), (tr("Sign in with Microsoft 365"), "microsoft"),
                             (tr("Sign in with Google"), "google"),
                             (tr("Sign in with another provider (custom endpoints)"), "custom")):
            self.imap_auth.addItem(label, value)
        auth = settings.oauth_provider if settings.imap_auth == "oauth2" else "password"
        self.imap_auth.setCurrentIndex(max(0, self.imap_auth.findData(auth)))
        self.imap_auth.activated.connect(self._auth_chosen)
        imap.addRow(tr("&Log in with:"), self.imap_auth)
        self.imap_password = QLineEdit()
        self.imap_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.imap_password.setAccessibleName(tr("IMAP password or app password"))
        self.imap_password.setPlaceholderText(tr("saved in the keychain") if secrets.where(IMAP_PASSWORD)
                                              else tr("password or app password"))
        imap.addRow(tr("Pass&word:"), self.imap_password)
        self._imap_form = imap
        self._oauth_rows = self._oauth_fields(imap)
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
        self.pair_edit.textChanged.connect(self._pair_text_changed)
        self.device_edit.textChanged.connect(self._changed)
        self.token_edit.textChanged.connect(self._changed)
        self.insecure_ok.toggled.connect(self._changed)
        self.session_only.toggled.connect(self._changed)
        self._changed()
        self._show_auth()
        self.resize(520, self.sizeHint().height())

    def _oauth_fields(self, form: QFormLayout) -> dict[str, QWidget]:
        """Client id (and secret) per provider, the custom endpoints, and the sign-in panel."""
        s = self.settings
        self.oauth_client_id = QLineEdit()
        self.oauth_client_id.setAccessibleName(tr("OAuth client ID"))
        self.oauth_client_id.setPlaceholderText(tr("registered by your administrator"))
        self.oauth_client_secret = QLineEdit()
        self.oauth_client_secret.setAccessibleName(tr("OAuth client secret (if the provider issued one)"))
        self.oauth_client_secret.setPlaceholderText(tr("only if the provider issued one"))
        authorization_url, token_url, scopes = s.oauth_custom_endpoints
        self.oauth_authorization_url = QLineEdit(authorization_url)
        self.oauth_authorization_url.setAccessibleName(tr("Authorization address"))
        self.oauth_authorization_url.setPlaceholderText("https://login.example.net/oauth2/authorize")
        self.oauth_token_url = QLineEdit(token_url)
        self.oauth_token_url.setAccessibleName(tr("Token address"))
        self.oauth_token_url.setPlaceholderText("https://login.example.net/oauth2/token")
        self.oauth_scopes = QLineEdit(scopes)
        self.oauth_scopes.setAccessibleName(tr("Scopes"))
        self.oauth_scopes.setPlaceholderText(tr("IMAP access and offline access, space-separated"))
        self.oauth_revocation_url = QLineEdit(s.oauth_custom_revocation_url)
        self.oauth_revocation_url.setAccessibleName(tr("Revocation address (optional)"))
        self.oauth_revocation_url.setPlaceholderText(tr("optional: where a sign-in is withdrawn (RFC 7009)"))
        self.sign_in = SignInPanel(self.oauth_client, lambda: self.imap_user.text().strip(), self)
        self.sign_in.signed_in.connect(self._signed_in)
        self._held = HeldTokens()  # a sign-in done here is saved with the rest, on Save
        self._client_values: dict[str, tuple[str, str]] = {
            key: (s.oauth_client_id(key), s.oauth_client_secret(key)) for key in ("microsoft", "google", "custom")}
        self._shown_provider = ""
        rows: dict[str, QWidget] = {}
        for key, label, widget in (("client_id", tr("Client I&D:"), self.oauth_client_id),
                                   ("client_secret", tr("Client sec&ret:"), self.oauth_client_secret),
                                   ("authorization_url", tr("Authori&zation address:"), self.oauth_authorization_url),
                                   ("token_url", tr("To&ken address:"), self.oauth_token_url),
                                   ("scopes", tr("Sc&opes:"), self.oauth_scopes),
                                   ("revocation_url", tr("Re&vocation address:"), self.oauth_revocation_url),
                                   ("sign_in", "", self.sign_in)):
            form.addRow(label, widget)
            rows[key] = widget
        return rows

    def auth_choice(self) -> str:
        """'password', or the OAuth2 provider: 'microsoft', 'google', 'custom'."""
        return str(self.imap_auth.currentData())

    def _auth_chosen(self, _index: int) -> None:
        preset = PRESETS.get(self.auth_choice())
        presets_hosts = {p.imap_host for p in PRESETS.values()}
        if preset is not None and (not self.imap_host.text().strip() or self.imap_host.text().strip() in presets_hosts):
            self.imap_host.setText(preset.imap_host)  # the provider's own server, TLS on 993
            self.imap_security.setCurrentIndex(self.imap_security.findData("tls"))
            self.imap_port.setValue(993)
        self._show_auth()

    def _show_auth(self) -> None:
        choice = self.auth_choice()
        if self._shown_provider:  # keep what was typed for the provider shown until now
            self._client_values[self._shown_provider] = (self.oauth_client_id.text(), self.oauth_client_secret.text())
        oauth = choice != "password"
        if oauth:
            self.oauth_client_id.setText(self._client_values[choice][0])
            self.oauth_client_secret.setText(self._client_values[choice][1])
        self._shown_provider = choice if oauth else ""
        self._imap_form.setRowVisible(self.imap_password, not oauth)
        for key, widget in self._oauth_rows.items():
            custom_only = key in ("authorization_url", "token_url", "scopes", "revocation_url")
            self._imap_form.setRowVisible(widget, oauth and (choice == "custom" or not custom_only))
        if oauth:
            signed_in = self._held.tokens is not None or self.secrets.where(TOKENS) is not None
            label = self.oauth_client().provider.label
            self.sign_in.sign_in_button.setText(tr("Sig&n in with %1…").replace("%1", label) if choice != "custom"
                                                else tr("Sig&n in…"))
            if not self.sign_in.status.text():
                self.sign_in.status.setText(tr("Signed in (the tokens are in the keychain).") if signed_in
                                            else tr("Not signed in yet."))

    def oauth_client(self) -> OAuthClient:
        choice = self.auth_choice()
        provider = PRESETS.get(choice) or custom_provider(self.oauth_authorization_url.text(),
                                                          self.oauth_token_url.text(), self.oauth_scopes.text(),
                                                          self.oauth_revocation_url.text())
        return OAuthClient(provider, self.oauth_client_id.text().strip(), self.oauth_client_secret.text().strip())

    def _signed_in(self, tokens: Tokens) -> None:
        self._held.save(tokens)

    def credential(self) -> Credential:
        """What `Test mail account` logs in with: the typed or saved password, or the OAuth2 tokens."""
        if self.auth_choice() == "password":
            typed = self.imap_password.text() or self.secrets.get(IMAP_PASSWORD)
            if not typed:
                raise ImportProblem(tr("Enter the password (or app password) of the mail account."))
            return typed
        if self._held.tokens is not None:
            return TokenSource(self.oauth_client(), self._held)
        return TokenSource(self.oauth_client(), KeychainTokens(self.secrets))

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
        self.pair_button.setEnabled(url is not None and bool(self.pair_edit.text().strip())
                                    and bool(self.device_edit.text().strip())
                                    and (not insecure or self.insecure_ok.isChecked()))
        tested = self._tested_for == self._values() and self._me is not None
        can_store = self.secrets.keychain() is not None or self.session_only.isChecked()
        self.save_button.setEnabled(tested and can_store)

    def _pair_text_changed(self) -> None:
        """A pasted link names the gateway too: fill in its address."""
        try:
            found = parse_pair_input(self.pair_edit.text())
        except ValueError:
            found = None
        if found is not None and found.gateway and self.url_edit.text().strip() != found.gateway:
            self.url_edit.setText(found.gateway)
        self._changed()

    # -- actions --
    def pair(self) -> None:
        """Trade the pairing code for this computer's own token; it is then tested and ready to save."""
        try:
            url = normalise_url(self.url_edit.text())
            code = parse_pair_input(self.pair_edit.text()).code
        except ValueError as exc:
            self._show_result(False, tr("Not a pairing code or link: %1").replace("%1", str(exc)))
            return
        if sends_token_in_clear(url) and not self.insecure_ok.isChecked():
            self._show_result(False, tr("Confirm the unencrypted connection first, or use https://."))
            return
        device = self.device_edit.text().strip()
        self.pair_button.setEnabled(False)
        self.status.setText(tr("Pairing…"))

        def ok(result: tuple[str, Me, Device]) -> None:
            token, me, dev = result
            self.token_edit.setText(token)
            self.pair_edit.clear()  # used: it cannot pair again
            self._tested_for, self._me = self._values(), me
            who = ", ".join(me.addresses) or me.name
            self._show_result(True, tr("Paired: this computer is the device “%1” of %2. Save to finish.")
                              .replace("%1", dev.name).replace("%2", who))

        def failed(exc: ApiError) -> None:
            self._show_result(False, str(exc))

        Operation(self, lambda: pair_device(url, code, device, timeout=10), ok).failure(failed) \
            .finally_(self._changed).run()

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
        try:
            credential = self.credential()
        except ApiError as exc:
            self._show_imap_result(False, str(exc))
            return

        def job() -> str:
            try:
                return account.with_login(credential, lambda h: h.sent_folder_name())
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
        oauth = self.imap_box.isChecked() and self.auth_choice() != "password"
        # the sign-in this Save replaces or turns off, to withdraw at the provider once saved
        old_tokens = KeychainTokens(self.secrets).load()
        old_client = client_for(self.settings) if self.settings.imap_auth == "oauth2" else None
        try:
            stored = self.secrets.put(TOKEN, token, session_only=session_only)
            if self.imap_box.isChecked() and not oauth and self.imap_password.text():
                self.secrets.put(IMAP_PASSWORD, self.imap_password.text(), session_only=session_only)
            if oauth and self._held.tokens is not None:
                KeychainTokens(self.secrets).save(self._held.tokens, session_only=session_only)
            if not self.imap_box.isChecked() or oauth:
                self.secrets.forget(IMAP_PASSWORD)  # no password kept for an account that does not use one
            if not self.imap_box.isChecked() or not oauth:
                KeychainTokens(self.secrets).forget()  # nor tokens
        except (NoKeychain, SignInProblem) as exc:
            self._show_result(False, str(exc))
            return
        self.settings.gateway_url = url
        self.settings.insecure_http_accepted = url if sends_token_in_clear(url) else ""
        if self.imap_box.isChecked():
            self.settings.imap_host = self.imap_host.text().strip()
            self.settings.imap_port = self.imap_port.value()
            self.settings.imap_security = str(self.imap_security.currentData())
            self.settings.imap_user = self.imap_user.text().strip()
            self.settings.imap_auth = "oauth2" if oauth else "password"
            if oauth:
                choice = self.auth_choice()
                self.settings.oauth_provider = choice
                self.settings.set_oauth_client_id(choice, self.oauth_client_id.text())
                self.settings.set_oauth_client_secret(choice, self.oauth_client_secret.text())
                if choice == "custom":
                    self.settings.oauth_custom_endpoints = (self.oauth_authorization_url.text(),
                                                            self.oauth_token_url.text(), self.oauth_scopes.text())
                    self.settings.oauth_custom_revocation_url = self.oauth_revocation_url.text()
        else:
            self.settings.imap_host = ""
        self.settings.sync()
        self.connection = Connection(url, token, self._me, stored.placement)
        self.sign_in.shutdown()
        if old_tokens is not None and old_client is not None and (not oauth or self._held.tokens is not None):
            _withdraw(old_client, old_tokens)
        self._held.forget()
        self.accept()

    def reject(self) -> None:
        self.sign_in.shutdown()  # a sign-in still waiting for the browser stops
        if self._held.tokens is not None:  # signed in, then not saved: nothing may keep that grant
            _withdraw(self.oauth_client(), self._held.tokens)
            self._held.forget()
        super().reject()


def _withdraw(client: OAuthClient, tokens: Tokens) -> None:
    """Revoke a sign-in the app no longer keeps, in the background (the dialog is closing)."""
    Operation(None, lambda: revoke(client, tokens)).run()
