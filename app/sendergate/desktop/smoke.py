"""`sendergate-desktop --smoke-test`: start as usual, wait until the gateway answered an API call and the live
stream is up, check the keychain, write a short report and quit (0: all well, 1: not).

Installers run it on the bundle they built (tests/test_packaging.py, .ci/desktop-release.yml), so a bundle
that lost a Qt plugin, a resource, a translation or keyring's backends fails before anyone ships it. The
keychain check stores and removes one throwaway entry ("smoke-test") under the app's service name.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from PySide6.QtCore import QCoreApplication, QTimer

from .. import __version__
from .i18n import tr
from .secrets import SERVICE, SecretStore

if TYPE_CHECKING:  # imported lazily by app.py
    from .api_client import Me
    from .main_window import MainWindow

SMOKE_ENTRY = "smoke-test"
TIMEOUT_MS = 60_000


def keyring_report() -> list[str]:
    """Which backend keyring resolved to and which backends its entry points name (a bundle without
    keyring's metadata has none and falls back to the fail backend)."""
    from importlib.metadata import entry_points

    import keyring
    backend = keyring.get_keyring()
    names = sorted(ep.name for ep in entry_points(group="keyring.backends"))
    return [f"keyring backend: {type(backend).__module__}.{type(backend).__qualname__}",
            f"keyring entry points: {', '.join(names) or 'none'}"]


def keychain_round_trip(secrets: SecretStore) -> tuple[bool, str]:
    """Store, read back and remove a throwaway secret. No keychain at all is reported, not failed: a bare
    Linux session has none, and the app then offers to keep secrets for the session only."""
    where = secrets.keychain()
    if where is None:
        return True, "keychain: none usable (secrets would be kept for the session only)"
    import keyring
    from keyring.errors import KeyringError
    token = f"smoke {__version__}"
    try:
        keyring.set_password(SERVICE, SMOKE_ENTRY, token)
        back = keyring.get_password(SERVICE, SMOKE_ENTRY)
        keyring.delete_password(SERVICE, SMOKE_ENTRY)
    except KeyringError as exc:
        return False, f"keychain: {where}: round trip failed: {exc}"
    if back != token:
        return False, f"keychain: {where}: read back {back!r}, stored {token!r}"
    return True, f"keychain: {where}, round trip ok"


@dataclass
class SmokeTest:
    """Watches a freshly opened main window; quits the app with the outcome."""

    window: MainWindow
    language: str
    report_to: str = "-"  # "-": stdout; else a file (a windowed Windows build has no stdout)
    lines: list[str] = field(default_factory=list)
    me_ok: bool = False
    stream_ok: bool = False
    done: bool = False

    def start(self) -> None:
        from .api_client import ApiError
        from .operations import Operation
        from .stream import ONLINE

        w = self.window
        self.lines.append(f"sendergate-desktop {__version__} smoke test")
        self.lines += keyring_report()
        ok, line = keychain_round_trip(SecretStore())  # a few local D-Bus/OS calls: quick enough for a check run
        self.lines.append(line)
        if not ok:
            self.finish(False, "the keychain did not keep a secret")
            return
        if self.language != "en":
            quit_text = tr("&Quit")  # the menu entry: translated when the .qm loaded
            if quit_text == "&Quit":
                self.finish(False, f"no {self.language} translation loaded")
                return
            self.lines.append(f"translation: {self.language} ({quit_text.replace('&', '')})")

        def me(who: Me) -> None:
            self.me_ok = True
            addresses = getattr(who, "addresses", ()) or ("?",)
            self.lines.append(f"gateway: {w.client.base_url} as {addresses[0]}")
            self.check()

        def refused(exc: ApiError) -> None:
            self.finish(False, f"the gateway refused: {exc}")

        def stream_state(state: str, reason: str) -> None:
            if state == ONLINE and not self.stream_ok:
                self.stream_ok = True
                self.lines.append("live stream: online")
                self.check()

        # connect first, then look: the stream's thread sets .state before it emits, so nothing slips between
        w.stream.state_changed.connect(stream_state)
        if w.stream.state == ONLINE:
            stream_state(ONLINE, "")
        Operation(w, w.client.me, me).failure(refused).run()
        QTimer.singleShot(TIMEOUT_MS, lambda: self.finish(
            False, f"no answer within {TIMEOUT_MS // 1000} s (api: {self.me_ok}, stream: {self.stream_ok})"))

    def check(self) -> None:
        if self.me_ok and self.stream_ok:
            self.finish(True, "")

    def finish(self, ok: bool, why: str) -> None:
        if self.done:
            return
        self.done = True
        self.lines.append("smoke test passed" if ok else f"smoke test FAILED: {why}")
        text = "\n".join(self.lines) + "\n"
        if self.report_to == "-":
            out: TextIO | None = sys.stdout
            if out is not None:
                out.write(text)
                out.flush()
        else:
            with open(self.report_to, "w", encoding="utf-8") as report:
                report.write(text)
        code = 0 if ok else 1
        QTimer.singleShot(0, lambda: QCoreApplication.exit(code))  # also when the event loop has not started yet
