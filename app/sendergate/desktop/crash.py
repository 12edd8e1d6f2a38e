"""An unexpected exception opens a report dialog instead of killing the app."""

from __future__ import annotations

import logging
import platform
import sys
import traceback
from types import TracebackType

from PySide6.QtCore import Qt, qVersion
from PySide6.QtWidgets import QApplication, QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from .. import __version__ as sendergate_version
from .i18n import tr

log = logging.getLogger("sendergate.desktop.crash")



def report_text(exc: BaseException, tb: str) -> str:
    return (f"SenderGate Desktop {sendergate_version}, Qt {qVersion()}, Python {platform.python_version()}, "
            f"{platform.platform()}\n\n{tb or ''.join(traceback.format_exception(exc))}")


class CrashDialog(QDialog):
    def __init__(self, exc: BaseException, tb: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("SenderGate: something went wrong"))
        self.setObjectName("crashDialog")
        layout = QVBoxLayout(self)
        intro = QLabel(tr("SenderGate ran into a problem it did not expect. You can keep working; "
                          "if it happens again, please send this report to whoever looks after your gateway."))
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.report = QPlainTextEdit(report_text(exc, tb))
        self.report.setReadOnly(True)
        self.report.setAccessibleName(tr("Error report"))
        layout.addWidget(self.report)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = buttons.addButton(tr("Copy report"), QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QApplication.clipboard().setText(self.report.toPlainText()))
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(640, 420)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)


_open: list[CrashDialog] = []


def show_crash(exc: BaseException, tb: str) -> None:
    """Non-blocking: the dialog opens and the event loop goes on."""
    log.error("unexpected error:\n%s", tb)
    if QApplication.instance() is None:
        return
    if len(_open) >= 3:  # a bug in a loop must not bury the screen in dialogs
        return
    dialog = CrashDialog(exc, tb, QApplication.activeWindow())
    _open.append(dialog)
    dialog.finished.connect(lambda _=0: _open.remove(dialog) if dialog in _open else None)
    dialog.setModal(False)  # the user may keep working with the window behind it
    dialog.show()


def open_dialogs() -> list[CrashDialog]:
    return list(_open)


def install_excepthook() -> None:
    """Exceptions escaping a slot land here (PySide prints and carries on otherwise)."""
    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        show_crash(exc, "".join(traceback.format_exception(kind, exc, tb)))

    sys.excepthook = hook
