"""Failures: the world's (a clear, non-modal message) and the program's (a report dialog, app alive)."""

from __future__ import annotations

from sendergate.desktop import crash, operations
from sendergate.desktop.api_client import ApiError, GatewayClient, Unreachable
from sendergate.desktop.widgets import MessageBar
from tests.support.common import free_loopback_port


def test_api_errors_go_to_the_message_bar(qtbot):
    from PySide6.QtWidgets import QVBoxLayout, QWidget
    window = QWidget()
    bar = MessageBar()
    QVBoxLayout(window).addWidget(bar)
    qtbot.addWidget(window)
    window.show()
    operations.set_handlers(bar.error, crash.show_crash)
    client = GatewayClient(f"http://127.0.0.1:{free_loopback_port()}", "t", timeout=2)
    with qtbot.waitSignal(bar.shown, timeout=10_000) as shown:
        operations.Operation(bar, client.me, lambda me: None).run()
    level, text = shown.args
    assert level == "error" and text.startswith("cannot reach the gateway at http://127.0.0.1:")
    assert bar.isVisible() and bar.isWindow() is False  # inside the window, not a modal box
    client.close()


def test_an_unexpected_exception_opens_the_report_dialog_and_the_app_lives_on(qtbot, crashes):
    crashes.expected = 1
    bar = MessageBar()
    qtbot.addWidget(bar)
    operations.set_handlers(bar.error, crash.show_crash)

    def buggy() -> int:
        return {}["no such key"]  # type: ignore[index]

    results: list[int] = []
    operations.Operation(bar, buggy, results.append).run()
    qtbot.waitUntil(lambda: bool(crash.open_dialogs()), timeout=10_000)
    dialog = crash.open_dialogs()[0]
    assert "KeyError: 'no such key'" in dialog.report.toPlainText()
    assert "SenderGate Desktop 0.1.0" in dialog.report.toPlainText()
    assert not dialog.isModal()
    # the app carries on: the next operation works
    operations.Operation(bar, lambda: 42, results.append).run()
    qtbot.waitUntil(lambda: results == [42], timeout=10_000)
    assert isinstance(crashes.seen[0][0], KeyError)


def test_callbacks_of_a_closed_page_are_dropped(qtbot):
    from PySide6.QtWidgets import QWidget
    page = QWidget()
    seen: list[int] = []
    import threading
    gate = threading.Event()

    def slow() -> int:
        gate.wait(5)
        return 1

    operations.Operation(page, slow, seen.append).run()
    page.deleteLater()
    qtbot.waitUntil(lambda: True)
    qtbot.wait(50)
    gate.set()
    qtbot.waitUntil(lambda: operations.running() == 0, timeout=10_000)
    assert seen == []


def test_error_messages_are_one_line():
    assert issubclass(Unreachable, ApiError)
    client = GatewayClient(f"http://127.0.0.1:{free_loopback_port()}", "t", timeout=2)
    try:
        client.stats()
    except Unreachable as exc:
        assert "\n" not in str(exc)
    else:
        raise AssertionError("a closed port answered")
    finally:
        client.close()
