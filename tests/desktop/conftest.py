"""Fixtures for the desktop app's tests: real gateway processes with seeded stores, an in-memory
keyring, settings in a temporary INI file, and the main window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from tests.desktop.seed import Seeded, seed
from tests.support.gateway import GatewayProcess

# Harmless noise of the offscreen platform, understood before silencing it:
# - it has no native interface for a tray, so QSystemTrayIcon's connect to
#   systemTrayWindowChanged fails (no tray host here; see ENVIRONMENT.md);
# - it does not implement propagateSizeHints, which Qt calls on every top-level window;
# - nor raise(), which bringing the window to the front calls (a tray notification clicked).
OFFSCREEN_NOISE = (r"No such signal QPlatformNativeInterface::systemTrayWindowChanged",
                   r"This plugin does not support propagateSizeHints",
                   r"This plugin does not support raise\(\)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.qt_log_ignore(*OFFSCREEN_NOISE))


class MemoryKeyring(KeyringBackend):
    """An in-memory keychain. It stands in for the Windows Credential Manager and the macOS Keychain,
    which cannot run on this Linux machine; the app talks to it through the same keyring API."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.secrets.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@pytest.fixture(scope="session", autouse=True)
def english_as_the_app_starts(qapp: object) -> None:
    """The app installs its English translator at start (plural forms: "1 sender", "2 senders"); the tests
    see the same words whichever test runs first."""
    from sendergate.desktop import i18n
    i18n.install(qapp, "en")  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_key_held(qapp: object) -> Iterator[None]:
    """Each test starts with no modifier key Qt believes held. A key click whose press closes or hides its
    window (Ctrl+Z on the history panel) sends its release nowhere, and Qt then takes Ctrl as held for
    every later test: selectRow toggles rows off, D arrives as Ctrl+D."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QWidget
    if QGuiApplication.keyboardModifiers() != Qt.KeyboardModifier.NoModifier:
        probe = QWidget()
        probe.show()  # a window of its own, so the release goes through the window system as a real one would
        for key in (Qt.Key.Key_Control, Qt.Key.Key_Shift, Qt.Key.Key_Alt, Qt.Key.Key_Meta):
            QTest.keyRelease(probe, key)
        probe.close()
        probe.deleteLater()
    assert QGuiApplication.keyboardModifiers() == Qt.KeyboardModifier.NoModifier
    yield


@pytest.fixture(autouse=True)
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def no_keychain() -> Iterator[None]:
    """What a bare Linux session has: keyring's fail backend, set_password raises NoKeyringError."""
    from keyring.backends import fail
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(scope="session")
def seeded_gateway() -> Iterator[tuple[GatewayProcess, Seeded]]:
    """One gateway with ~400 seeded decisions for the read-only page tests (do not change its state)."""
    g = GatewayProcess()
    seeded = seed(g.store)
    g.start()
    try:
        yield g, seeded
    finally:
        g.close()


@pytest.fixture
def fresh_gateway() -> Iterator[tuple[GatewayProcess, Seeded]]:
    """A gateway of its own, for tests that change its state."""
    g = GatewayProcess()
    seeded = seed(g.store, events=120, pending=4)
    g.start()
    try:
        yield g, seeded
    finally:
        g.close()


@pytest.fixture
def settings(tmp_path: Path) -> object:
    from sendergate.desktop.settings import Settings
    return Settings.at_path(str(tmp_path / "settings.ini"))


def open_main_window(qtbot: object, url: str, token: str, settings: object, **stream_kwargs: object) -> object:
    """The main window as the app opens it, with live updates; closed by qtbot at the end."""
    from sendergate.desktop.api_client import GatewayClient
    from sendergate.desktop.main_window import MainWindow
    from sendergate.desktop.stream import StreamFollower

    client = GatewayClient(url, token, timeout=5)
    stream = StreamFollower(client, first_delay=0.2, max_delay=1.0, heartbeat=1, **stream_kwargs)  # type: ignore[arg-type]
    window = MainWindow(client, settings, stream=stream)  # type: ignore[arg-type]
    qtbot.addWidget(window)  # type: ignore[attr-defined]
    window.show()
    window.activateWindow()  # shortcuts go to the active window only
    qtbot.waitUntil(window.isActiveWindow)  # type: ignore[attr-defined]
    window.start()
    return window


@pytest.fixture
def window_for(qtbot: object, settings: object) -> Iterator[object]:
    opened: list[object] = []

    def make(g: GatewayProcess, s: Seeded) -> object:
        w = open_main_window(qtbot, g.http_url, s.token, settings)
        opened.append(w)
        return w

    yield make
    from shiboken6 import isValid

    from sendergate.desktop import operations
    for w in opened:
        if not isValid(w):  # pytest-qt's own teardown closed it first, and a window closed for good is deleted
            continue
        w.stream.stop()  # type: ignore[attr-defined]
        w.close()  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: operations.running() == 0, timeout=10_000)  # type: ignore[attr-defined]


class Crashes:
    def __init__(self) -> None:
        self.seen: list[tuple[BaseException, str]] = []
        self.expected = 0


@pytest.fixture(autouse=True)
def crashes() -> Iterator[Crashes]:
    """Any crash report a test did not ask for fails it: a bug must not hide behind the dialog."""
    from sendergate.desktop import crash, operations
    box = Crashes()
    seen = box.seen
    original = crash.show_crash

    def record(exc: BaseException, tb: str) -> None:
        seen.append((exc, tb))
        original(exc, tb)

    crash.show_crash = record  # type: ignore[assignment]
    operations._show_crash = record
    try:
        yield box
    finally:
        crash.show_crash = original  # type: ignore[assignment]
        for dialog in crash.open_dialogs():
            dialog.close()
    assert len(seen) == box.expected, "unexpected errors:\n" + "\n".join(tb for _, tb in seen)
