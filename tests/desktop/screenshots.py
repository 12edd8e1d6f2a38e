"""Screenshots of every page of the desktop app, for the docs: light and dark, English and German, 100 % and
200 % scale.

    xvfb-run -a -s "-screen 0 2560x1600x24" .venv/bin/python tests/desktop/screenshots.py    # all of them
    xvfb-run -a .venv/bin/python tests/desktop/screenshots.py import setup      # only these pages, every variant
    xvfb-run -a .venv/bin/python tests/desktop/screenshots.py --variant dark    # one variant, every page

Each variant runs in a process of its own (the scale factor is fixed when Qt starts): it starts a gateway
with a seeded store on loopback, opens the app under the X server (real fonts, the xcb platform), and
writes resources/docs/screenshots/desktop-<page><suffix>.png: no suffix for light English at 100 %,
"-dark", "-de", "-dark-de", "-200". Dark mode is a dark palette, as a dark desktop gives the app (Xvfb has
no desktop theme to ask).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "resources" / "docs" / "screenshots"

# name -> (theme, language, scale, file name suffix)
VARIANTS = {"light": ("light", "en", 1, ""), "dark": ("dark", "en", 1, "-dark"), "de": ("light", "de", 1, "-de"),
            "dark-de": ("dark", "de", 1, "-dark-de"), "200": ("light", "en", 2, "-200")}
PAGES = ("overview", "activity", "pending", "screened", "allowlist", "blocklist", "import", "devices", "tags")
EXTRA_SHOTS = ("history", "undo", "staff", "overview-mode", "checklist", "setup")
HISTORY_OF = "pharma@cheap-pills.example"  # seeded spam from a domain the user blocked: events and an entry


def dark_palette() -> Any:
    """What a dark desktop theme hands a Qt app (Breeze Dark, Windows' dark mode): a dark window, light text."""
    from PySide6.QtGui import QColor, QPalette
    p = QPalette()
    roles = QPalette.ColorRole
    for role, colour in ((roles.Window, "#2d2d2d"), (roles.WindowText, "#e8e8e8"), (roles.Base, "#1f1f1f"),
                         (roles.AlternateBase, "#282828"), (roles.Text, "#e8e8e8"), (roles.Button, "#363636"),
                         (roles.ButtonText, "#e8e8e8"), (roles.BrightText, "#ffffff"), (roles.Highlight, "#2f6fb5"),
                         (roles.HighlightedText, "#ffffff"), (roles.ToolTipBase, "#3a3a3a"),
                         (roles.ToolTipText, "#e8e8e8"), (roles.PlaceholderText, "#9c9c9c"), (roles.Link, "#6cb4ff"),
                         (roles.Light, "#4a4a4a"), (roles.Midlight, "#3e3e3e"), (roles.Mid, "#2a2a2a"),
                         (roles.Dark, "#1a1a1a"), (roles.Shadow, "#000000")):
        p.setColor(role, QColor(colour))
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7c7c7c"))
    return p


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


def seed_tags(g: object, client: object, address: str) -> None:
    """The Sign-up addresses page's rows: live ones (one with mail from two senders), a dated one, a revoked one."""
    from tests.desktop.test_tags import send
    acme = client.add_tag(address, "acme-shop", expires="365d")  # type: ignore[attr-defined]
    client.add_tag(address, "bookshop", folder="tag")  # type: ignore[attr-defined]
    client.add_tag(address, "travel", expires="90d", dated=True)  # type: ignore[attr-defined]
    old = client.add_tag(address, "old-forum")  # type: ignore[attr-defined]
    for sender, subject in (("orders@acme-shop.example", "Your order 4711"), ("news@acme-shop.example", "Spring sale"),
                            ("orders@acme-shop.example", "Shipped"), ("offers@partner-ads.example", "Hello")):
        send(g, sender, acme.address, subject)
    send(g, "admin@old-forum.example", old.address, "Weekly digest")
    client.revoke_tag(old.id)  # type: ignore[attr-defined]


def staff_shot(app: object, g: object, tmp: str, suffix: str) -> Path:
    """An admin's Staff page: the office's people, one selected with their devices."""
    from sendergate.desktop.api_client import GatewayClient
    from sendergate.desktop.main_window import MainWindow
    from sendergate.desktop.settings import Settings

    store = g.store  # type: ignore[attr-defined]
    _, token = store.add_user("office@example.org", name="Olga Office", admin=True)
    for address, name in (("ben@example.org", "Ben Becker"), ("carla@example.org", "Carla Rossi")):
        store.add_user(address, name=name)
    client = GatewayClient(g.http_url, token)  # type: ignore[attr-defined]
    settings = Settings.at_path(os.path.join(tmp, "staff.ini"))
    settings.checklist_closed = True
    window = MainWindow(client, settings, me=client.me())
    window.resize(1180, 740)
    window.show()
    window.start()
    page = window.show_page("staff")
    wait(app, lambda: page.loaded and page.table.rowCount() >= 3, "the staff page")
    row = next(r for r in range(page.table.rowCount()) if page.table.item(r, 1).text() == "ben@example.org")
    page.table.selectRow(row)
    page.new_code()  # what the owner passes on: the pairing code box, as after "Add a person…"
    wait(app, lambda: page.pairing.isVisible() and page.pairing.code.text(), "the pairing code")
    settle(app, 0.6)
    path = OUT / f"desktop-staff{suffix}.png"
    window.grab().save(str(path))
    window.stream.stop()
    window.close()
    client.close()
    return path


def checklist_shot(app: object, g: object, tmp: str, suffix: str = "") -> Path:
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
    path = OUT / f"desktop-checklist{suffix}.png"
    window.grab().save(str(path))
    window.stream.stop()
    window.close()
    client.close()
    return path


def main(argv: list[str]) -> int:
    if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        raise SystemExit("screenshots: no X display; run under xvfb-run -a")
    variants = [argv[i + 1] for i, a in enumerate(argv) if a == "--variant" and i + 1 < len(argv)]
    pages = [a for i, a in enumerate(argv) if a != "--variant" and (i == 0 or argv[i - 1] != "--variant")]
    unknown = [v for v in variants if v not in VARIANTS] + [p for p in pages if p not in PAGES + EXTRA_SHOTS]
    if unknown:
        raise SystemExit(f"screenshots: unknown {unknown}; variants: {list(VARIANTS)}, pages: "
                         f"{list(PAGES + EXTRA_SHOTS)}")
    if len(variants) == 1:
        return shoot(variants[0], set(pages))
    failed = 0
    for name in variants or list(VARIANTS):  # one process each: Qt reads the scale factor once, at start
        env = dict(os.environ, QT_SCALE_FACTOR=str(VARIANTS[name][2]))
        done = subprocess.run([sys.executable, __file__, "--variant", name, *pages], env=env, check=False)
        failed += done.returncode != 0
    return 1 if failed else 0


def shoot(variant: str, wanted: set[str]) -> int:
    theme, language, _scale, suffix = VARIANTS[variant]
    from PySide6.QtCore import QLocale
    QLocale.setDefault(QLocale("en_GB" if language == "en" else "de_DE"))
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
    app.setStyle("Fusion")  # the same look on every machine that runs this
    if theme == "dark":
        app.setPalette(dark_palette())
    i18n.install(app, language)
    with tempfile.TemporaryDirectory(prefix="sendergate-shots-") as tmp:
        settings = Settings.at_path(os.path.join(tmp, "settings.ini"))
        settings.imap_host, settings.imap_user = "imap.example.org", "alice@example.org"  # the Import page's re-sync
        settings.checklist_closed = True  # the page shots show the pages; the checklist has its own shot
        client = GatewayClient(g.http_url, seeded.token)
        try:
            if not wanted or "tags" in wanted:
                seed_tags(g, client, seeded.address)
            window = MainWindow(client, settings, me=client.me())
            window.resize(1180, 740)
            window.show()
            window.start()
            wait(app, lambda: window.connection_state == "online", "the live stream")
            written = []
            for key in PAGES:
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
                if key == "pending":  # a sender selected: the details pane says who they are
                    page.table.selectRow(0)
                    page.table.setFocus()
                    wait(app, lambda: page.details.toPlainText().strip(), "the pending details")
                if key == "tags":
                    acme = next(r for r in range(page.proxy.rowCount())  # the one with mail, its mail below
                                if page.proxy.index(r, 0).data() == "acme-shop")
                    page.table.selectRow(acme)
                    wait(app, lambda: page.recent_model.rowCount() > 0, "the tag's recent mail")
                    page.name_edit.setText("Bücher.de")  # the preview shows the name it becomes
                settle(app, 0.6)
                path = OUT / f"desktop-{key}{suffix}.png"
                window.grab().save(str(path))
                written.append(path)

            if not wanted or "history" in wanted:  # the sender history panel, over Activity
                from sendergate.desktop.history import open_history
                page = window.show_page("activity")
                panel = open_history(page, client, HISTORY_OF)
                assert panel is not None
                panel.resize(900, 560)
                wait(app, lambda: not panel.model.loading and panel.model.rowCount() and panel.entries.count()
                     and panel.status.text() not in ("", i18n.tr("Loading…")), "the sender history")
                panel.entries.setCurrentRow(0)
                settle(app, 0.6)
                path = OUT / f"desktop-history{suffix}.png"
                panel.grab().save(str(path))
                written.append(path)
                panel.close()

            if not wanted or "undo" in wanted:  # an approval just made on Pending: the toast offers its undo
                page = window.show_page("pending")
                wait(app, lambda: page.loaded and page.model.rowCount(), "the pending page")
                page.table.selectRow(1)
                page.decide_selected("approve")
                wait(app, lambda: window.undo_toast.text(), "the undo toast")
                settle(app, 0.6)
                path = OUT / f"desktop-undo{suffix}.png"
                window.grab().save(str(path))
                written.append(path)

            if not wanted or "overview-mode" in wanted:
                page = window.show_page("overview")
                path = OUT / f"desktop-overview-mode{suffix}.png"
                page.mode_choice.parentWidget().grab().save(str(path))  # the mode box alone
                written.append(path)

            window.show_page("overview")
            window.stream.stop()
            window.close()

            if not wanted or "staff" in wanted:
                written.append(staff_shot(app, g, tmp, suffix))

            if not wanted or "checklist" in wanted:
                written.append(checklist_shot(app, g, tmp, suffix))

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
                path = OUT / f"desktop-setup{suffix}.png"
                dialog.grab().save(str(path))
                written.append(path)
                dialog.close()

            for p in written:
                print(p.relative_to(ROOT))
        finally:
            client.close()
            g.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
