"""Tooltips show what strangers wrote as text. Every table cell has a tooltip (a narrow column elides), and
Qt renders a tooltip that merely looks like HTML as HTML: a subject `<img src=…>` would fetch nothing here
but could paint a fake "verified" badge or a picture into the app. A real SMTP challenge's subject and
sender, seen in Activity and Pending, must come back escaped; tooltips our code builds stay rich."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtGui import QTextDocument

from sendergate.desktop.models.base import RichText, plain_tooltip
from tests.desktop.test_live import send_from_stranger

TIMEOUT = 15_000
SUBJECT = '<b style="color:green">✔ Verified sender</b><img src="http://127.0.0.1:9/x.png">'


def rendered(tip: str) -> str:
    """What a person sees: the tooltip as Qt would lay it out, as plain text."""
    doc = QTextDocument()
    if GuiQt.mightBeRichText(tip):
        doc.setHtml(tip)
    else:
        doc.setPlainText(tip)
    return doc.toPlainText()


def test_plain_tooltip_escapes_what_looks_like_html_and_keeps_our_rich_text(qapp):
    tip = plain_tooltip(SUBJECT)
    assert tip is not None and "<img" not in tip and "&lt;img" in tip
    assert rendered(tip) == SUBJECT  # shown literally, every character
    assert plain_tooltip("Invoice 42 < 50 EUR") == "Invoice 42 < 50 EUR"  # plain text stays as it was
    ours = RichText("<qt>a<br>b</qt>")
    assert plain_tooltip(ours) is ours
    assert plain_tooltip("") is None and plain_tooltip(None) is None


def test_a_strangers_html_subject_is_text_in_activity_and_pending(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    send_from_stranger(g, "mallory@stranger.example", SUBJECT)
    activity = w.show_page("activity")
    activity.refresh()
    qtbot.waitUntil(lambda: activity.loaded, timeout=TIMEOUT)

    def subject_tip() -> str | None:
        model = activity.model
        for row in range(model.rowCount()):
            for col in range(model.columnCount()):
                if model.data(model.index(row, col)) == SUBJECT:
                    return model.data(model.index(row, col), Qt.ItemDataRole.ToolTipRole)
        return None

    qtbot.waitUntil(lambda: subject_tip() is not None, timeout=TIMEOUT)
    tip = subject_tip()
    assert tip is not None and "<img" not in tip and rendered(tip) == SUBJECT

    pending = w.show_page("pending")
    qtbot.waitUntil(lambda: pending.model.row_of_sender("mallory@stranger.example") >= 0, timeout=TIMEOUT)
    row = pending.model.row_of_sender("mallory@stranger.example")
    tips = [pending.model.data(pending.model.index(row, c), Qt.ItemDataRole.ToolTipRole)
            for c in range(pending.model.columnCount())]
    assert any(t and "Verified sender" in t for t in tips)
    assert not any(t and "<img" in t for t in tips)
