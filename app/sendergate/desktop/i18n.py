"""Translations: Qt's own (buttons of standard dialogs) and ours (resources/i18n/sendergate_<lang>.qm).

English is the source language, but its .qm is loaded too: it carries the singular and plural forms of the
strings with a count ("%n sender(s) waiting" -> "1 sender waiting", "7 senders waiting")."""

from __future__ import annotations

import logging
from importlib.resources import as_file, files

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

log = logging.getLogger("sendergate.desktop.i18n")
LANGUAGES = ("en", "de")  # English is the source language; every other one ships a .qm

_installed: list[QTranslator] = []


def pick_language(preferred: str = "") -> str:
    if preferred in LANGUAGES:
        return preferred
    for name in QLocale().uiLanguages():
        code = name.replace("_", "-").split("-")[0].lower()
        if code in LANGUAGES:
            return code
    return "en"


def install(app: QCoreApplication, language: str) -> str:
    """Load the translators for `language`; returns the language in use."""
    for old in _installed:
        app.removeTranslator(old)
    _installed.clear()
    ours = QTranslator(app)
    resource = files("sendergate.resources") / "i18n" / f"sendergate_{language}.qm"
    with as_file(resource) as path:
        if not ours.load(str(path)):
            log.warning("no translation for %s at %s; showing English", language, path)
            if language != "en":
                install(app, "en")  # English, with its plural forms
            return "en"
    app.installTranslator(ours)
    _installed.append(ours)
    if language == "en":  # English's .qm holds only the singular and plural forms of the strings with a count
        return "en"
    qt_own = QTranslator(app)
    if qt_own.load(f"qtbase_{language}", QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)):
        app.installTranslator(qt_own)
        _installed.append(qt_own)
    QLocale.setDefault(QLocale(language))
    return language


def tr(text: str, disambiguation: str | None = None, n: int = -1) -> str:
    """Every user-visible string goes through here (one context: the app is small). `%n` strings pass n
    as the third argument so lupdate records their plural forms."""
    return QCoreApplication.translate("", text, disambiguation, n)
