"""SVG icons from sendergate.resources, drawn in the palette's text colour (light and dark themes)
and rendered sharp at any device pixel ratio."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

SIZES = (16, 20, 24, 32, 48, 64, 128, 256)


@cache
def svg_source(name: str) -> str:
    return (files("sendergate.resources") / "icons" / f"{name}.svg").read_text(encoding="utf-8")


def _text_colour() -> str:
    app = QGuiApplication.instance()
    if app is None:
        return "#202020"
    return QGuiApplication.palette().color(QPalette.ColorRole.WindowText).name()


def render(name: str, size: int, colour: str | None = None) -> QPixmap:
    source = svg_source(name).replace("currentColor", colour or _text_colour())
    renderer = QSvgRenderer(QByteArray(source.encode("utf-8")))
    pixmap = QPixmap(QSize(size, size))
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return pixmap


def icon(name: str) -> QIcon:
    """An icon for buttons and navigation. Call again after a palette change (dark mode)."""
    result = QIcon()
    disabled = QGuiApplication.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText).name() \
        if QGuiApplication.instance() else "#909090"
    for size in SIZES:
        result.addPixmap(render(name, size), QIcon.Mode.Normal)
        result.addPixmap(render(name, size, disabled), QIcon.Mode.Disabled)
    return result


def app_icon() -> QIcon:
    result = QIcon()
    for size in SIZES:
        result.addPixmap(render("app", size))
    return result


def badge_icon(count: int, offline: bool = False) -> QIcon:
    """The tray icon: the app's shield with the pending count in a red badge (grey when offline)."""
    result = QIcon()
    for size in (16, 22, 24, 32, 48, 64):
        pixmap = render("app", size)
        if count > 0 or offline:
            painter = QPainter(pixmap)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            d = size * 0.62
            rect = QRectF(size - d, size - d, d, d)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#808080" if offline else "#d32f2f"))
            painter.drawEllipse(rect)
            painter.setPen(QColor("white"))
            font = QFont()
            font.setBold(True)
            font.setPixelSize(max(6, int(d * 0.62)))
            painter.setFont(font)
            text = "!" if offline else (str(count) if count < 100 else "99+")
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
            painter.end()
        result.addPixmap(pixmap)
    return result
