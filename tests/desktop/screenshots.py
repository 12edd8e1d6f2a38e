"""Screenshots of every page of the desktop app, for the docs.

    xvfb-run -a .venv/bin/python tests/desktop/screenshots.py            # all of them
    xvfb-run -a .venv/bin/python tests/desktop/screenshots.py import setup   # only these

Starts a gateway with a seeded store on loopback, opens the app under the X
server (real fonts, the xcb platform), and writes
resources/docs/screenshots/desktop-*.png.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "resources" / "docs" / "screenshots"


def wait(app: object, condition: object, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        app.processEvents()  # type: ignore[attr-defined]
        time.sleep(0.02)


def settle(app: object, seconds: float = 0.3) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()  # type: ignore[attr-defined]
        time.sleep(0.02)


# The Import page's preview: some of the seeded allowlist (marked "already allowed") and new people.
IMPORT_BOOK = [("Anna Schmidt", "anna.schmidt@posteo.de"), ("Ben Okafor", "ben@harbour-studio.co.uk"),
               ("Clara Jensen", "clara.jensen@fjord-design.example"), ("Dev Patel", "dev@patel-family.example"),
               ("Elena Petrova", "elena.petrova@uni-hamburg.example"), ("Grace Kim", "grace.kim@outlook.com"),
               ("Hannes Berg", "hannes@bergbau-verein.example"), ("Ines Moreau", "ines.moreau@atelier-ines.example"),
               ("Jonas Weber", "jonas.weber@kanzlei-weber.example"), ("Kofi Mensah", "kofi@mensah-coffee.example"),
               ("Lena Fischer", "lena.fischer@schule-nord.example"), ("Marco Bianchi", "marco@bianchi-bikes.example")]


def write_import_book(path: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for name, address in IMPORT_BOOK:
            f.write(f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nEMAIL;TYPE=INTERNET:{address}\r\nEND:VCARD\r\n")
    return path


def checklist_shot(app: object, g: object, tmp: str) -> Path:
    """A newcomer's first Overview: connected, the people they know imported, mode and digest still open."""
    from sendergate.desktop.api_client import GatewayClient
    from sendergate.desktop.main_window import MainWindow
    from sendergate.desktop.settings import Settings

    _, token = g.store.add_user("newcomer@example.org", name="New Comer")  # type: ignore[attr-defined]
    client = GatewayClient(g.http_url, token)  # type: ignore[attr-defined]
    client.add_entry("allow", "anna.schmidt@posteo.de", note="imported from contacts.vcf")
    window = MainWindow(client, Settings.at_path(os.path.join(tmp, "newcomer.ini")), me=client.me())
    window.resize(1180, 740)
    window.show()
    window.start()
    page = window.show_page("overview")
    wait(app, lambda: page.loaded and window.checklist.done["import"] and window.checklist.done["connect"],
         "the checklist")
    settle(app, 0.6)
    path = OUT / "desktop-checklist.png"
    window.grab().save(str(path))
    window.stream.stop()
    window.close()
    client.close()
    return path


def main(argv: list[str]) -> int:
    wanted = set(argv)
    if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        raise SystemExit("screenshots: no X display; run under xvfb-run -a")
    from PySide6.QtCore import QLocale
    QLocale.setDefault(QLocale("en_GB"))
    from sendergate.desktop import i18n
    from sendergate.desktop.api_client import GatewayClient
    from sendergate.desktop.app import make_application
    from sendergate.desktop.main_window import MainWindow
    from sendergate.desktop.secrets import SecretStore
    from sendergate.desktop.settings import Settings
    from sendergate.desktop.setup import SetupDialog
    from tests.desktop.seed import seed
    from tests.support.gateway import GatewayProcess

    OUT.mkdir(parents=True, exist_ok=True)
    g = GatewayProcess()
    seeded = seed(g.store, events=400, pending=7)
    g.start()
    app = make_application()
    i18n.install(app, "en")
    with tempfile.TemporaryDirectory(prefix="sendergate-shots-") as tmp:
        settings = Settings.at_path(os.path.join(tmp, "settings.ini"))
        settings.imap_host, settings.imap_user = "imap.example.org", "alice@example.org"  # the Import page's re-sync
        settings.checklist_closed = True  # the page shots show the pages; the checklist has its own shot
        client = GatewayClient(g.http_url, seeded.token)
        try:
            window = MainWindow(client, settings, me=client.me())
            window.resize(1180, 740)
            window.show()
            window.start()
            wait(app, lambda: window.connection_state == "online", "the live stream")
            written = []
            for key in ("overview", "activity", "pending", "screened", "allowlist", "blocklist", "import"):
                if wanted and key not in wanted:
                    continue
                page = window.show_page(key)
                wait(app, lambda: page.loaded, f"the {key} page")
                if key == "import":
                    page.read_file(write_import_book(os.path.join(tmp, "contacts.vcf")))
                    wait(app, lambda: page.model.rowCount() and not page.busy(), "the import preview")
                    page.table.selectRow(2)
                if key == "activity":
                    row = next(r for r in range(page.model.rowCount()) if page.model.event_at(r).verdict == "spam")
                    page.table.selectRow(row)
                if key == "pending":
                    page.table.selectRow(0)
                    page.table.setFocus()
                settle(app, 0.6)
                path = OUT / f"desktop-{key}.png"
                window.grab().save(str(path))
                written.append(path)

            if not wanted or "overview-mode" in wanted:
                page = window.show_page("overview")
                path = OUT / "desktop-overview-mode.png"
                page.mode_choice.parentWidget().grab().save(str(path))  # the mode box alone
                written.append(path)

            window.show_page("overview")
            window.stream.stop()
            window.close()

            if not wanted or "checklist" in wanted:
                written.append(checklist_shot(app, g, tmp))

            if not wanted or "setup" in wanted:
                dialog = SetupDialog(Settings.at_path(os.path.join(tmp, "setup.ini")), SecretStore(),
                                     url="https://mx.example.org", token="")
                dialog.url_edit.setText(g.http_url)
                dialog.token_edit.setText(seeded.token)
                dialog.imap_box.setChecked(True)
                dialog.imap_host.setText("imap.example.org")
                dialog.imap_user.setText("alice@example.org")
                dialog.show()
                dialog.test_connection()
                wait(app, lambda: dialog.status.text().startswith("✓"), "the connection test")
                if dialog.session_only.isVisible():  # no keychain under Xvfb: the dialog says so; accept the offer
                    dialog.session_only.setChecked(True)
                settle(app)
                path = OUT / "desktop-setup.png"
                dialog.grab().save(str(path))
                written.append(path)
                dialog.close()

            if wanted and "pending-de" not in wanted:
                for p in written:
                    print(p.relative_to(ROOT))
                return 0
            i18n.install(app, "de")
            window = MainWindow(client, settings, me=client.me())
            window.resize(1180, 740)
            window.show()
            window.start()
            page = window.show_page("pending")
            wait(app, lambda: page.loaded and window.connection_state == "online", "the German window")
            settle(app, 0.6)
            path = OUT / "desktop-pending-de.png"
            window.grab().save(str(path))
            written.append(path)
            window.stream.stop()
            window.close()
            for p in written:
                print(p.relative_to(ROOT))
        finally:
            client.close()
            g.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
