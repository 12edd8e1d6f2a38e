"""The sign-in panel: "Sign in with …" opens the system browser, a progress bar and Cancel while the
app waits for it, and a field to paste the address the browser ended on when it cannot come back.

Used by the setup dialog (a new account) and the Import page (sign in again after the provider
withdrew the sign-in). The wait runs on a worker thread (operations.Operation); Cancel answers
within a fraction of a second and closes the loopback listener.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .api_client import ApiError
from .i18n import tr
from .oauth import OAuthClient, SignIn, SignInCancelled, Tokens
from .operations import Operation


class SignInPanel(QWidget):
    signed_in = Signal(object)  # Tokens
    finished = Signal(int, str)  # ok (1/0), the message shown
    url_opened = Signal(str)  # the authorization URL handed to the browser

    def __init__(self, client_for: Callable[[], OAuthClient], login_hint: Callable[[], str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._client_for = client_for
        self._login_hint = login_hint
        self._cancel = threading.Event()
        self.sign_in: SignIn | None = None
        self.tokens: Tokens | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.sign_in_button = QPushButton(tr("Sig&n in…"))
        self.sign_in_button.setAccessibleName(tr("Sign in to the mail account in the browser"))
        self.sign_in_button.clicked.connect(self.start)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: the wait has no measure
        self.progress.setAccessibleName(tr("Waiting for the browser"))
        self.cancel_button = QPushButton(tr("Cancel"))
        self.cancel_button.setAccessibleName(tr("Stop waiting for the browser"))
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.sign_in_button)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hint.setObjectName("signInHint")
        layout.addWidget(self.hint)
        self.url_edit = QLineEdit()  # one long word: a label would neither wrap nor show it whole
        self.url_edit.setReadOnly(True)
        self.url_edit.setMinimumWidth(160)
        self.url_edit.setAccessibleName(tr("The sign-in address, to open by hand"))
        url_row = QHBoxLayout()
        url_row.setContentsMargins(0, 0, 0, 0)
        url_row.addWidget(QLabel(tr("No browser? Open:")))
        url_row.addWidget(self.url_edit, 1)
        self.url_box = QWidget()
        self.url_box.setLayout(url_row)
        layout.addWidget(self.url_box)
        paste_row = QHBoxLayout()
        paste_row.addWidget(QLabel(tr("Or paste where it ended:")))
        self.paste_edit = QLineEdit()
        self.paste_edit.setMinimumWidth(160)
        self.paste_edit.setPlaceholderText("http://127.0.0.1:…/?code=…")  # an address: nothing to translate
        self.paste_edit.setAccessibleName(tr("The address the browser ended on, or the code"))
        self.paste_button = QPushButton(tr("Us&e"))
        self.paste_button.clicked.connect(self.use_pasted)
        self.paste_edit.returnPressed.connect(self.use_pasted)
        paste_row.addWidget(self.paste_edit, 1)
        paste_row.addWidget(self.paste_button)
        self.paste_box = QWidget()
        self.paste_box.setLayout(paste_row)
        paste_row.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.paste_box)
        self.status = QLabel()
        self.status.setObjectName("signInStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)
        self._waiting(False)

    def waiting(self) -> bool:
        return self.sign_in is not None

    def _waiting(self, on: bool) -> None:
        self.sign_in_button.setEnabled(not on)
        for w in (self.progress, self.cancel_button, self.hint, self.url_box, self.paste_box):
            w.setVisible(on)
        self.cancel_button.setEnabled(on)

    def start(self) -> None:
        if self.sign_in is not None:
            return
        try:
            sign_in = SignIn(self._client_for(), self._login_hint())
        except ApiError as exc:
            self._show(False, str(exc))
            return
        except OSError as exc:  # no loopback port to listen on
            self._show(False, tr("Cannot wait for the browser's answer: %1").replace("%1", str(exc)))
            return
        self.sign_in = sign_in
        self._cancel.clear()
        self.status.clear()
        self.paste_edit.clear()
        self._waiting(True)
        url = sign_in.authorization_url
        self.hint.setText(tr("Waiting for you to sign in with %1 in your browser…")
                          .replace("%1", sign_in.client.provider.label))
        self.url_edit.setText(url)
        self.url_edit.setCursorPosition(0)
        cancel = self._cancel
        Operation(self, lambda: sign_in.run(cancel.is_set), self._done).failure(self._failed) \
            .finally_(self._over).run()
        self.url_opened.emit(url)
        QDesktopServices.openUrl(QUrl(url, QUrl.ParsingMode.StrictMode))

    def use_pasted(self) -> None:
        if self.sign_in is not None and self.paste_edit.text().strip():
            self.sign_in.paste(self.paste_edit.text())

    def cancel(self) -> None:
        self._cancel.set()
        self.cancel_button.setEnabled(False)

    def _done(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self.signed_in.emit(tokens)
        self._show(True, tr("Signed in."))

    def _failed(self, exc: ApiError) -> None:
        self._show(False, str(exc) if not isinstance(exc, SignInCancelled) else tr("Sign-in cancelled."))

    def _over(self) -> None:
        if self.sign_in is not None:
            self.sign_in.close()
        self.sign_in = None
        self._waiting(False)

    def _show(self, ok: bool, message: str) -> None:
        self.status.setText(("✓ " if ok else "✗ ") + message)
        self.finished.emit(int(ok), message)

    def shutdown(self) -> None:
        """The window closes: stop waiting (the worker sees it within 0.2 s)."""
        self._cancel.set()
