"""Import (issue 7, not built yet): address books and the IMAP Sent folder into the allowlist.

Placeholder page so the navigation has its place. The issue-7 page replaces
this class (keep `key = "import"` so saved settings still find it); it will use
sendergate.contacts and POST /api/v1/allowlist/import (dry_run for the preview).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout

from .base import Page
from ..i18n import tr



class ImportPage(Page):
    key = "import"
    icon_name = "import"

    @staticmethod
    def title() -> str:
        return tr("Import")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        layout = QVBoxLayout(self)
        label = QLabel(tr("Importing from address books (vCard, CSV, Thunderbird) and from your IMAP account "
                          "is coming in a later version."))
        label.setWordWrap(True)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(label)
        self.loaded = True
