"""One colour and one icon per verdict, for the Overview chart, the Activity chips and Verdict column.

The colours are Paul Tol's (https://personal.sron.nl/~pault/, the bright, vibrant, muted, light and
high-contrast schemes): they are designed to stay apart for the common colour-vision deficiencies, and
together they have the fourteen colours we need, where Okabe–Ito has eight (one of them black, which
vanishes in dark mode). From those sets we took the fourteen that stay furthest apart (CIEDE2000) in
normal, deuteranopic and protanopic vision (Machado et al. 2009) and that stand out against both a
white and a dark window; tests/desktop/test_verdict_palette.py checks it. Colour is never the only
cue: every verdict also has its own glyph, drawn on a disc of its colour.
"""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtSvg import QSvgRenderer

from .api_client import VERDICTS
from .i18n import tr
from .icons import svg_source

# grouped by meaning: greens/teals = reached the person, blues = sorted aside, warm = refused
PALETTE: dict[str, str] = {
    "delivered": "#228833",  # Tol bright green
    "approved": "#44BB99",  # Tol light mint
    "confirmed": "#009988",  # Tol vibrant teal
    "screened": "#0077BB",  # Tol vibrant blue
    "observed": "#33BBEE",  # Tol vibrant cyan
    "unknown_recipient": "#99DDFF",  # Tol light cyan
    "challenged": "#DDAA33",  # Tol high-contrast yellow
    "bulk": "#DDCC77",  # Tol muted sand
    "relay_denied": "#999933",  # Tol muted olive
    "spam": "#EE8866",  # Tol light orange
    "tempfail": "#FFAABB",  # Tol light pink
    "denied": "#BB5566",  # Tol high-contrast red
    "blocked": "#CC3311",  # Tol vibrant red
    "virus": "#AA4499",  # Tol muted purple
}
UNKNOWN_COLOUR = "#BBBBBB"  # Tol bright grey: a verdict from a newer gateway than this app

# the events SPEC §4.3 adds (confirmations and approvals in Activity), after the decisions
EXTRA = ("confirmed", "approved", "denied")
ALL: tuple[str, ...] = tuple(VERDICTS) + tuple(v for v in EXTRA if v not in VERDICTS)

# decisions about mail addressed to no user (relaying, an unknown recipient): their events have no user, so
# only an admin sees them. tempfail is not one: a user's own message deferred (max_pending, a scanner down)
# is recorded with their id, and their log and chart show it.
ADMIN_ONLY = frozenset({"relay_denied", "unknown_recipient"})


def label(verdict: str) -> str:
    from .models.base import verdict_label
    text = verdict_label(verdict)
    if text != verdict:
        return text
    return {"confirmed": tr("Confirmed"), "approved": tr("Approved"), "denied": tr("Denied")}.get(verdict, verdict)


def visible_to(role: str, verdicts: tuple[str, ...] = ALL) -> tuple[str, ...]:
    """The verdicts a person with `role` can have: admin-only ones for admins."""
    return verdicts if role == "admin" else tuple(v for v in verdicts if v not in ADMIN_ONLY)


def colour_hex(verdict: str) -> str:
    return PALETTE.get(verdict, UNKNOWN_COLOUR)


def colour(verdict: str) -> QColor:
    return QColor(colour_hex(verdict))


def _luminance(hex_colour: str) -> float:
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def ink(verdict: str) -> str:
    """The glyph's colour on the verdict's disc: black or white, whichever contrasts more."""
    fill = colour_hex(verdict)
    return "#000000" if contrast(fill, "#000000") >= contrast(fill, "#ffffff") else "#ffffff"


def render(verdict: str, size: int) -> QPixmap:
    """The verdict's disc with its glyph; a thin darker rim keeps light colours apart from a white window."""
    pixmap = QPixmap(QSize(size, size))
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    fill = colour(verdict)
    rim = max(1.0, size / 24)
    painter.setPen(QPen(fill.darker(135), rim))
    painter.setBrush(fill)
    painter.drawEllipse(QRectF(rim / 2, rim / 2, size - rim, size - rim))
    name = f"verdict-{verdict}" if verdict in PALETTE else "verdict-unknown"
    source = svg_source(name).replace("currentColor", ink(verdict)).replace('stroke-width="2"',
                                                                             'stroke-width="2.4"')
    QSvgRenderer(QByteArray(source.encode("utf-8"))).render(painter, QRectF(0, 0, size, size))
    painter.end()
    return pixmap


@cache
def icon(verdict: str) -> QIcon:
    """The verdict's icon (the same in light and dark mode: the disc carries its own contrast)."""
    result = QIcon()
    for size in (16, 20, 24, 32, 48, 64):
        pixmap = render(verdict, size)
        result.addPixmap(pixmap, QIcon.Mode.Normal)
        result.addPixmap(pixmap, QIcon.Mode.Selected)
    return result


__all__ = ["PALETTE", "ALL", "ADMIN_ONLY", "EXTRA", "label", "visible_to", "colour", "colour_hex", "ink", "icon",
           "render", "contrast"]
