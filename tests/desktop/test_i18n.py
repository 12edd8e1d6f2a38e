"""The German translation is complete, compiled from its .ts, and shows in the window."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLocale

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
        # the first eight pages; Sign-up addresses (issue 19) waits for its German title in the .ts
        assert [w.nav.item(i).text().split(" (")[0] for i in range(8)] == [
            "Übersicht", "Aktivität", "Wartend", "Vorsortiert", "Erlaubt-Liste", "Sperrliste", "Import", "Geräte"]
        assert w.menuBar().actions()[0].text() == "&Datei"
        qtbot.waitUntil(lambda: w.tray.pending == len(seeded.pending), timeout=10_000)
        assert w.tray.icon.toolTip() == f"SenderGate: {len(seeded.pending)} wartende Absender"
    finally:
        i18n.install(app, "en")
        QLocale.setDefault(QLocale("en_US"))
