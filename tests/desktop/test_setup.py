"""First-run setup against a real gateway: wrong then right token, keychain and no-keychain paths,
the plain-http warning, the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PySide6.QtCore import Qt

from sendergate.desktop.api_client import sends_token_in_clear
from sendergate.desktop.secrets import SERVICE, TOKEN, NoKeychain, Placement, SecretStore
from sendergate.desktop.setup import SetupDialog


def _dialog(qtbot, settings, url: str = "", token: str = "") -> SetupDialog:
    d = SetupDialog(settings, SecretStore(), url=url, token=token)
    qtbot.addWidget(d)
    d.show()
    return d


def _test_and_wait(qtbot, d: SetupDialog) -> tuple[bool, str]:
    with qtbot.waitSignal(d.tested, timeout=10_000) as blocker:
        qtbot.mouseClick(d.test_button, Qt.MouseButton.LeftButton)
    return tuple(blocker.args)  # type: ignore[return-value]


def test_wrong_then_right_token_then_saved_to_keychain(qtbot, seeded_gateway, settings, memory_keyring):
    g, seeded = seeded_gateway
    d = _dialog(qtbot, settings, url=g.http_url)
    assert not d.save_button.isEnabled()
    qtbot.keyClicks(d.token_edit, "not-the-token")
    ok, message = _test_and_wait(qtbot, d)
    assert not ok and "does not accept this token" in message
    assert not d.save_button.isEnabled()

    d.token_edit.setText(seeded.token)
    ok, message = _test_and_wait(qtbot, d)
    assert ok and "alice@example.org" in message, message
    assert d.save_button.isEnabled()
    assert "MemoryKeyring" in d.keychain_label.text()  # the dialog names where the token goes
    qtbot.mouseClick(d.save_button, Qt.MouseButton.LeftButton)
    assert d.result() == SetupDialog.DialogCode.Accepted
    assert d.connection is not None and d.connection.token_placement is Placement.KEYCHAIN
    assert memory_keyring.secrets[(SERVICE, TOKEN)] == seeded.token
    assert settings.gateway_url == g.http_url
    # the token is nowhere in the settings file
    settings.sync()
    assert seeded.token not in open(settings._s.fileName()).read()


def test_changing_the_token_after_a_test_needs_a_new_test(qtbot, seeded_gateway, settings):
    g, seeded = seeded_gateway
    d = _dialog(qtbot, settings, url=g.http_url, token=seeded.token)
    assert _test_and_wait(qtbot, d)[0]
    assert d.save_button.isEnabled()
    qtbot.keyClicks(d.token_edit, "x")
    assert not d.save_button.isEnabled()


def test_unreachable_gateway_is_one_clear_line(qtbot, settings):
    from tests.support.common import free_loopback_port
    d = _dialog(qtbot, settings, url=f"http://127.0.0.1:{free_loopback_port()}", token="t")
    ok, message = _test_and_wait(qtbot, d)
    assert not ok and "cannot reach the gateway" in message and "\n" not in message


def test_no_keychain_says_so_and_offers_the_session(qtbot, seeded_gateway, settings, no_keychain):
    g, seeded = seeded_gateway
    secrets = SecretStore()
    assert secrets.keychain() is None
    with pytest.raises(NoKeychain):
        secrets.put(TOKEN, "x")
    d = SetupDialog(settings, secrets, url=g.http_url, token=seeded.token)
    qtbot.addWidget(d)
    d.show()
    assert "no keychain" in d.keychain_label.text()
    assert d.session_only.isVisible()
    assert _test_and_wait(qtbot, d)[0]
    assert not d.save_button.isEnabled()  # nowhere to keep the token yet
    d.session_only.setChecked(True)
    assert d.save_button.isEnabled()
    qtbot.mouseClick(d.save_button, Qt.MouseButton.LeftButton)
    assert d.connection is not None and d.connection.token_placement is Placement.SESSION
    assert secrets.get(TOKEN) == seeded.token
    assert SecretStore().get(TOKEN) is None  # a new session (app start) does not have it


def test_plain_http_to_another_machine_warns_before_sending_the_token(qtbot, settings):
    assert sends_token_in_clear("http://192.0.2.7:8025")
    assert sends_token_in_clear("http://mx.example.org")
    assert not sends_token_in_clear("http://127.0.0.1:8025")
    assert not sends_token_in_clear("http://[::1]:8025")
    assert not sends_token_in_clear("http://localhost:8025")
    assert not sends_token_in_clear("https://mx.example.org")
    d = _dialog(qtbot, settings, url="http://192.0.2.7:8025", token="secret")
    assert d.insecure_label.isVisible() and d.insecure_ok.isVisible()
    assert not d.test_button.isEnabled()  # the token is not sent until the user agrees
    d.insecure_ok.setChecked(True)
    assert d.test_button.isEnabled()
    d.url_edit.setText("https://192.0.2.7:8025")
    assert not d.insecure_label.isVisible()


def test_command_line_version_and_bad_gateway():
    out = subprocess.run([sys.executable, "-m", "sendergate.desktop.app", "--version"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "sendergate-desktop 0.1.0" in out.stdout
    out = subprocess.run([sys.executable, "-m", "sendergate.desktop.app", "--gateway", "ftp://x"],
                         capture_output=True, text=True, timeout=60, env={**__import__("os").environ,
                                                                          "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 2 and "must start with https://" in out.stderr and "Traceback" not in out.stderr


def test_settings_round_trip_typed(settings):
    settings.imap_port = 143
    settings.imap_tls = False
    settings.notifications_enabled = False
    settings.sync()
    from sendergate.desktop.settings import Settings
    again = Settings.at_path(settings._s.fileName())
    assert again.imap_port == 143 and again.imap_tls is False and again.notifications_enabled is False
    assert again.imap_user == "" and again.last_page == "overview"


def test_run_connected_leaves_keychain_and_settings_alone(qtbot, seeded_gateway, memory_keyring, tmp_path,
                                                          monkeypatch):
    """What `sendergate demo` calls: the app opens on the demo gateway; nothing is saved anywhere."""
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from sendergate.desktop.app import run_connected
    from sendergate.desktop.main_window import MainWindow

    g, seeded = seeded_gateway
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "user-config"))
    seen: list[str] = []

    def close_when_live() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if windows and windows[0].connection_state == "online" and windows[0].pages["pending"].loaded:
            seen.append(windows[0].windowTitle())
            seen.append(str(windows[0].pages["pending"].model.rowCount()))
            windows[0].close()
        else:
            QTimer.singleShot(50, close_when_live)

    QTimer.singleShot(50, close_when_live)
    assert run_connected(g.http_url, seeded.token) == 0
    assert seen[1] == str(len(seeded.pending))
    assert memory_keyring.secrets == {}
    assert not (tmp_path / "user-config").exists()  # the user's own settings were never written
