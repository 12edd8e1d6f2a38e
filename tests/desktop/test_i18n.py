"""The German translation is complete, compiled from its .ts, and shows in the window."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QItemSelectionModel, QLocale

from sendergate.desktop import i18n

I18N = Path(__file__).resolve().parents[2] / "resources" / "i18n"
APP = Path(__file__).resolve().parents[2] / "app" / "sendergate" / "desktop"


def test_every_string_in_the_code_is_translated(tmp_path):
    fresh = tmp_path / "fresh.ts"
    lupdate = Path(sys.executable).parent / "pyside6-lupdate"
    shutil.copy(I18N / "sendergate_de.ts", fresh)
    subprocess.run([str(lupdate), *sorted(map(str, APP.rglob("*.py"))), "-ts", str(fresh), "-no-obsolete",
                    "-locations", "none"], check=True, capture_output=True, timeout=120)
    root = ET.parse(fresh).getroot()
    unfinished = [m.findtext("source") for m in root.iter("message")
                  if m.find("translation").get("type") in ("unfinished", "vanished", "obsolete")]
    assert unfinished == [], "run pyside6-lupdate and translate: " + repr(unfinished[:5])


def test_the_shipped_qm_is_built_from_the_ts(tmp_path):
    lrelease = Path(sys.executable).parent / "pyside6-lrelease"
    out = tmp_path / "de.qm"
    subprocess.run([str(lrelease), str(I18N / "sendergate_de.ts"), "-qm", str(out)], check=True,
                   capture_output=True, timeout=120)
    assert out.read_bytes() == (I18N / "sendergate_de.qm").read_bytes(), "run pyside6-lrelease (see the docs)"


def test_german_window(qtbot, seeded_gateway, window_for):
    app = QCoreApplication.instance()
    try:
        assert i18n.install(app, "de") == "de"
        g, seeded = seeded_gateway
        w = window_for(g, seeded)
        assert [w.nav.item(i).text().split(" (")[0] for i in range(w.nav.count())] == [
            "Übersicht", "Aktivität", "Wartend", "Vorsortiert", "Erlaubt-Liste", "Sperrliste", "Import", "Geräte",
            "Anmeldeadressen"]
        assert w.menuBar().actions()[0].text() == "&Datei"
        qtbot.waitUntil(lambda: w.tray.pending == len(seeded.pending), timeout=10_000)
        assert w.tray.icon.toolTip() == f"SenderGate: {len(seeded.pending)} wartende Absender"
    finally:
        i18n.install(app, "en")
        QLocale.setDefault(QLocale("en_US"))


def test_english_qm_is_built_from_its_ts_and_has_every_plural(tmp_path):
    """sendergate_en.ts holds exactly the strings with a count, each with both forms; the .qm is fresh."""
    fresh = tmp_path / "en.ts"
    shutil.copy(I18N / "sendergate_en.ts", fresh)
    lupdate = Path(sys.executable).parent / "pyside6-lupdate"
    subprocess.run([str(lupdate), *sorted(map(str, APP.rglob("*.py"))), "-ts", str(fresh), "-no-obsolete",
                    "-locations", "none", "-pluralonly"], check=True, capture_output=True, timeout=120)
    messages = list(ET.parse(fresh).getroot().iter("message"))
    assert messages and all(m.get("numerus") == "yes" for m in messages)
    unfinished = [m.findtext("source") for m in messages if m.find("translation").get("type")]
    assert unfinished == [], "run sh installer/dev/update-translations.sh: " + repr(unfinished[:5])
    for m in messages:
        singular, plural = (f.text for f in m.find("translation").iter("numerusform"))
        assert "(s)" not in singular + plural and singular != plural or "(s)" not in m.findtext("source"), m
    lrelease = Path(sys.executable).parent / "pyside6-lrelease"
    out = tmp_path / "en.qm"
    subprocess.run([str(lrelease), str(I18N / "sendergate_en.ts"), "-qm", str(out)], check=True,
                   capture_output=True, timeout=120)
    assert out.read_bytes() == (I18N / "sendergate_en.qm").read_bytes(), "run sh installer/dev/update-translations.sh"


def test_counts_read_right_in_english_and_german(qapp):
    try:
        assert i18n.install(qapp, "en") == "en"
        assert i18n.tr("%n sender(s) waiting", None, 1) == "1 sender waiting"
        assert i18n.tr("%n sender(s) waiting", None, 7) == "7 senders waiting"
        assert i18n.tr("Removed %n entry(s).", None, 1) == "Removed 1 entry."
        assert i18n.tr("Removed %n entry(s).", None, 3) == "Removed 3 entries."
        assert i18n.tr("Approved %n sender(s)", None, 1) == "Approved 1 sender"
        assert i18n.tr("Allow sender") == "Allow sender"  # strings without a count: the source, as before
        assert i18n.install(qapp, "de") == "de"
        assert i18n.tr("%n sender(s) waiting", None, 1) == "1 Absender wartet"
        assert i18n.tr("%n sender(s) waiting", None, 7) == "7 Absender warten"
        assert i18n.tr("Removed %n entry(s).", None, 3) == "3 Einträge entfernt."
        assert i18n.tr("SenderGate: %n pending sender(s)", None, 1) == "SenderGate: 1 wartender Absender"
    finally:
        i18n.install(qapp, "en")
        QLocale.setDefault(QLocale("en_US"))


def test_english_window_counts_in_words(qtbot, fresh_gateway, window_for):
    """The real window, English: the tray and Activity's status say "senders"/"decisions", never "(s)";
    one approval says "Approved 1 sender"."""
    app = QCoreApplication.instance()
    g, seeded = fresh_gateway
    try:
        i18n.install(app, "en")
        w = window_for(g, seeded)
        qtbot.waitUntil(lambda: w.tray.pending == len(seeded.pending), timeout=10_000)
        assert w.tray.icon.toolTip() == f"SenderGate: {len(seeded.pending)} pending senders"
        activity = w.show_page("activity")
        qtbot.waitUntil(lambda: activity.loaded and not activity.model.loading, timeout=10_000)
        assert activity.status.text() == f"{activity.model.rowCount()} decisions shown"
        pending = w.show_page("pending")
        qtbot.waitUntil(lambda: pending.loaded and pending.model.rowCount() == len(seeded.pending), timeout=10_000)
        told: list[str] = []  # every message shown: one may be replaced or hide before a poll sees it
        w.messages.shown.connect(lambda _level, text: told.append(text))
        # exactly the top row, whatever keyboard modifiers an earlier test's key clicks left Qt believing are
        # held (selectRow under a "held" Ctrl toggles the row the page had already selected off)
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        pending.table.selectionModel().select(pending.proxy.index(0, 0), flags)
        assert len(pending.selected()) == 1
        pending.decide_selected("approve")
        qtbot.waitUntil(lambda: any("Approved" in t for t in told), timeout=20_000)
        assert "Approved 1 sender" in told, told
    finally:
        i18n.install(app, "en")
