"""sendergate-desktop: the entry point (gui script), argument parsing, first run, and `run_connected`
for `sendergate demo`.

    sendergate-desktop                                  # saved settings and keychain; setup on first run
    SENDERGATE_TOKEN=... sendergate-desktop --gateway https://mx.example.org   # automation, tests
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .. import __version__
from .i18n import tr

if TYPE_CHECKING:  # Qt and the window are imported when needed: --help and --version start without them
    from PySide6.QtWidgets import QApplication

    from .api_client import GatewayClient, Me
    from .main_window import MainWindow
    from .secrets import SecretStore
    from .settings import Settings

log = logging.getLogger("sendergate.desktop")
_started = time.perf_counter()  # module import: close to process start; the startup log line measures from here

DEFAULT_TOKEN_ENV = "SENDERGATE_TOKEN"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sendergate-desktop",
                                description="SenderGate desktop app: see who was refused, approve or deny senders.")
    p.add_argument("--gateway", metavar="URL", help="the gateway's address (skips the saved settings)")
    p.add_argument("--token-env", metavar="NAME", default=DEFAULT_TOKEN_ENV,
                   help=f"environment variable holding the API token (default: {DEFAULT_TOKEN_ENV})")
    p.add_argument("--allow-insecure-http", action="store_true",
                   help="send the token over plain http to a gateway that is not this machine without asking")
    p.add_argument("--settings-file", metavar="FILE", help="keep settings in this INI file instead of the system's")
    p.add_argument("--language", choices=("en", "de"), help="user-interface language (default: the system's)")
    p.add_argument("--setup", action="store_true", help="show the connection setup even if one is saved")
    p.add_argument("--autostart", action="store_true",
                   help="started at login (Start at login registers this): open in the tray, window hidden, "
                        "where the desktop has a tray and the app keeps running in it")
    p.add_argument("--version", action="version", version=f"sendergate-desktop {__version__}")
    p.add_argument("--smoke-test", nargs="?", const="-", metavar="REPORT",
                   help="with --gateway: wait until the gateway answered and the live stream is up, check the "
                        "keychain, report to REPORT (default: stdout) and quit; for installer checks")
    return p.parse_args(argv)


def make_application(argv: Sequence[str] | None = None) -> QApplication:
    from PySide6.QtWidgets import QApplication

    from .icons import app_icon
    from .settings import APPLICATION, ORGANIZATION

    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        app = existing
    else:  # none yet (a bare QCoreApplication would make this fail loudly, as it should)
        app = QApplication([sys.argv[0] if sys.argv else "sendergate-desktop", *(argv or [])])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("sendergate-desktop")
    app.setWindowIcon(app_icon())
    return app


@contextlib.contextmanager
def quit_on_signals(app: QApplication) -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP close the app the way its Quit item does (and so let the caller clean up).

    Python runs a signal handler only when it next runs Python code, and Qt's event loop runs none by
    itself: a Ctrl-C would wait for the next mouse movement. So the C-level handler's wake-up byte goes
    to a socket that Qt watches; reading it runs Python, which runs the handler, which asks Qt to quit.
    """
    wanted = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    from PySide6.QtCore import QSocketNotifier

    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read)
    notifier.activated.connect(lambda *_: _drain(reader))
    old_fd = signal.set_wakeup_fd(writer.fileno())
    old = {number: signal.signal(number, lambda *_: app.quit()) for number in wanted}
    try:
        yield
    finally:
        for number, handler in old.items():
            signal.signal(number, handler)
        signal.set_wakeup_fd(old_fd)
        notifier.setEnabled(False)
        reader.close()
        writer.close()


def _drain(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while sock.recv(512):
            pass


def confirm_insecure(url: str) -> bool:
    """Plain http to another machine: the token would travel readable. Ask before sending it."""
    from PySide6.QtWidgets import QMessageBox


    answer = QMessageBox.warning(
        None, tr("Unencrypted connection"),
        tr("%1 uses plain http and is not this computer. Your API token would travel over the network "
           "unencrypted, readable by anyone on the way.\n\nSend it anyway?").replace("%1", url),
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


TRAY_WAIT = 30.0  # seconds a login start waits for the desktop's tray (its panel may start after the app)


def start_at_login(window: MainWindow, *, wait: float = TRAY_WAIT, every: float = 0.5) -> None:
    """Started at login (`--autostart`), the window not shown: the tray icon and notifications, no window in
    the way, when the user keeps SenderGate running in the tray. A desktop's panel (its tray) may come up
    after the apps it starts: wait for it up to `wait` seconds, then show the window after all (with no tray
    it would be the only way in). Someone who does not keep it running gets the window at once."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .tray import Tray

    if window.tray is None or not window.settings.keep_running:
        window.show()
        return
    # the window is not shown, but a dialog closing meanwhile must not end the app as "the last window closed"
    QApplication.setQuitOnLastWindowClosed(False)
    deadline = time.monotonic() + wait

    def check() -> None:
        if window.isVisible():  # the user asked for it meanwhile (the tray's Show, another start)
            return
        if Tray.available():
            log.info("tray ready %.1f s after a login start", wait - (deadline - time.monotonic()))
            window.hide_to_tray(tell=False)
        elif time.monotonic() >= deadline:
            log.info("no tray %.0f s after a login start: showing the window", wait)
            window.bring_to_front()
        else:
            QTimer.singleShot(int(every * 1000), check)

    check()


def open_window(client: GatewayClient, settings: Settings, secrets: SecretStore | None = None, *,
                show: bool = True) -> MainWindow:
    """The main window for a client, shown (unless `show` is False: started at login, see start_at_login),
    with the first data and the live stream on their way."""

    from .api_client import ApiError, Unauthorized
    from .main_window import MainWindow
    from .operations import Operation

    window = MainWindow(client, settings, secrets=secrets)  # the setup's store: it may hold session-only secrets
    if show:
        window.show()
    window.start()
    log.info("main window %s %.3f s after start", "shown" if show else "made", time.perf_counter() - _started)

    def who(me: Me) -> None:
        window.set_me(me)  # an admin gets the Staff page and the Whose selector

    def refused(exc: ApiError) -> None:
        if isinstance(exc, Unauthorized):
            window.messages.error(str(exc) + " — " + tr(
                "set up the connection again (File → Connection…) or ask for a new token."))
        else:
            window.messages.error(str(exc))

    Operation(window, client.me, who).failure(refused).run()
    return window


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=os.environ.get("SENDERGATE_LOG", "WARNING").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from . import crash, i18n
    from .api_client import GatewayClient, normalise_url, sends_token_in_clear
    from .secrets import TOKEN, SecretStore
    from .settings import Settings
    from .setup import SetupDialog

    app = make_application()
    settings = Settings.at_path(args.settings_file) if args.settings_file else Settings()
    language = i18n.pick_language(args.language or settings.language)
    i18n.install(app, language)
    crash.install_excepthook()
    secrets = SecretStore()

    url, token = "", ""
    if args.gateway:
        try:
            url = normalise_url(args.gateway)
        except ValueError as exc:
            print(f"sendergate-desktop: --gateway: {exc}", file=sys.stderr)
            return 2
        token = os.environ.get(args.token_env, "").strip()
    elif settings.gateway_url and not args.setup:
        url = settings.gateway_url
        token = secrets.get(TOKEN) or ""

    if args.smoke_test and (not args.gateway or not token):
        print(f"sendergate-desktop: --smoke-test needs --gateway and a token in ${args.token_env}", file=sys.stderr)
        return 2
    if not url or not token or args.setup:
        dialog = SetupDialog(settings, secrets, url=url, token=token)
        if dialog.exec() != SetupDialog.DialogCode.Accepted or dialog.connection is None:
            return 0
        url, token = dialog.connection.url, dialog.connection.token
    elif sends_token_in_clear(url) and not args.allow_insecure_http and settings.insecure_http_accepted != url:
        if not confirm_insecure(url):
            return 1

    state: dict[str, Any] = {"client": GatewayClient(url, token)}  # the live client and window
    state["window"] = open_window(state["client"], settings, secrets, show=not args.autostart)
    if args.autostart:
        start_at_login(state["window"])
    if args.smoke_test:
        from .smoke import SmokeTest
        SmokeTest(state["window"], language, args.smoke_test).start()

    def reconnect() -> None:
        """File → Connection…: a new setup; on success a new window replaces the old one."""
        dialog = SetupDialog(settings, secrets, parent=state["window"], url=settings.gateway_url or url)

        def accepted() -> None:
            conn = dialog.connection
            if conn is None:
                return
            old_window, old_client = state["window"], state["client"]
            state["client"] = GatewayClient(conn.url, conn.token)
            state["window"] = open_window(state["client"], settings, secrets)
            state["window"].connection_requested.connect(reconnect)
            old_window.close_for_good()  # not to the tray: the new window replaces it
            old_client.close()

        dialog.accepted.connect(accepted)
        dialog.open()

    state["window"].connection_requested.connect(reconnect)
    with quit_on_signals(app):
        code = app.exec()
    state["window"].stream.stop()
    state["client"].close()
    return code


def run_connected(gateway_url: str, token: str, on_running: Callable[[], None] | None = None) -> int:
    """Open the app connected to this gateway (the demo), leaving the user's keychain and settings alone.

    `on_running` is called once the window is shown and the event loop runs."""
    from . import crash, i18n
    from .api_client import GatewayClient
    from .settings import Settings

    app = make_application()
    i18n.install(app, i18n.pick_language())
    crash.install_excepthook()
    with tempfile.TemporaryDirectory(prefix="sendergate-demo-ui-") as tmp:
        settings = Settings.at_path(os.path.join(tmp, "settings.ini"))  # the token is never written anywhere
        settings.keep_running = False  # the demo ends when its window is closed, tray or not
        client = GatewayClient(gateway_url, token)
        window = open_window(client, settings)
        window.connection_action.setEnabled(False)  # the demo's gateway is the only one
        if on_running is not None:
            from PySide6.QtCore import QTimer
            QTimer.singleShot(0, on_running)
        with quit_on_signals(app):
            code = app.exec()
        window.stream.stop()
        client.close()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
