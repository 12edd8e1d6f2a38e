"""The first-run checklist on the Overview (issue 16 item 6), against a real gateway: each step ticks from
what the gateway says as a newcomer does it, the buttons go where they say, dismissing persists across a
restart, and a gateway that refuses leaves the list on screen with the reason."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from sendergate.desktop.checklist import DONE_MARK, OPEN_MARK
from sendergate.desktop.settings import Settings
from tests.desktop.conftest import OFFSCREEN_NOISE, open_main_window

TIMEOUT = 10_000


def marks(w) -> dict[str, str]:
    return {step: label.text() for step, label in w.checklist.marks.items()}


def close(qtbot, w) -> None:
    from sendergate.desktop import operations
    w.stream.stop()
    w.close()
    qtbot.waitUntil(lambda: operations.running() == 0, timeout=TIMEOUT)


# an open combo box popup on the offscreen platform, which has no window raising or keyboard grab
@pytest.mark.qt_log_ignore(*OFFSCREEN_NOISE, r"This plugin does not support raise\(\)",
                           r"This plugin does not support grabbing")
def test_steps_tick_as_a_newcomer_does_them(qtbot, fresh_gateway, settings):
    g, _ = fresh_gateway
    user, token = g.store.add_user("newcomer@example.org", name="New Comer")  # no allow entries, no choices
    w = open_main_window(qtbot, g.http_url, token, settings)
    try:
        page = w.show_page("overview")
        assert w.checklist.isVisible()
        qtbot.waitUntil(lambda: marks(w)["connect"] == DONE_MARK, timeout=TIMEOUT)
        qtbot.waitUntil(lambda: w.checklist.buttons["digest"].isEnabled(), timeout=TIMEOUT)
        assert marks(w) == {"connect": DONE_MARK, "import": OPEN_MARK, "mode": OPEN_MARK, "digest": OPEN_MARK}

        qtbot.mouseClick(w.checklist.buttons["import"], Qt.MouseButton.LeftButton)
        assert w.current_page().key == "import"
        w.client.add_entry("allow", "anna.schmidt@posteo.de")  # what an import does, through the API
        w.show_page("overview")
        page.refresh()
        qtbot.waitUntil(lambda: marks(w)["import"] == DONE_MARK, timeout=TIMEOUT)

        qtbot.waitUntil(page.mode_choice.isEnabled, timeout=TIMEOUT)
        qtbot.mouseClick(w.checklist.buttons["mode"], Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: page.mode_choice.view().isVisible(), timeout=TIMEOUT)  # the mode box, open
        page.mode_choice.hidePopup()
        assert marks(w)["mode"] == OPEN_MARK  # looking is not choosing
        page.mode_choice.setCurrentIndex(page.mode_choice.findData("observe"))
        page.mode_choice.activated.emit(page.mode_choice.currentIndex())  # what a user's choice sends
        qtbot.waitUntil(lambda: marks(w)["mode"] == DONE_MARK, timeout=TIMEOUT)
        assert g.store.get_user(user.id).mode == "observe"
        assert w.checklist.isVisible() and not settings.checklist_closed  # one step left

        qtbot.mouseClick(w.checklist.buttons["digest"], Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: g.store.digest_setting(user.id)[0] == "daily", timeout=TIMEOUT)
        qtbot.waitUntil(lambda: not w.checklist.isVisible(), timeout=TIMEOUT)  # all done: gone
        assert settings.checklist_closed
    finally:
        close(qtbot, w)


def test_choosing_enforce_explicitly_ticks_the_mode_step(qtbot, fresh_gateway, settings):
    g, _ = fresh_gateway
    _, token = g.store.add_user("decided@example.org")
    w = open_main_window(qtbot, g.http_url, token, settings)
    try:
        page = w.show_page("overview")
        qtbot.waitUntil(page.mode_choice.isEnabled, timeout=TIMEOUT)
        assert marks(w)["mode"] == OPEN_MARK
        w.client.set_mode("enforce")  # the same mode as the default, but chosen
        page.refresh()
        qtbot.waitUntil(lambda: marks(w)["mode"] == DONE_MARK, timeout=TIMEOUT)
    finally:
        close(qtbot, w)


def test_dismiss_persists_across_a_restart(qtbot, fresh_gateway, tmp_path):
    g, seeded = fresh_gateway
    path = str(tmp_path / "app.ini")
    w = open_main_window(qtbot, g.http_url, seeded.token, Settings.at_path(path))
    try:
        w.show_page("overview")
        assert w.checklist.isVisible()
        # the seeded user has allow entries: the import step is ticked without an import
        qtbot.waitUntil(lambda: marks(w)["import"] == DONE_MARK, timeout=TIMEOUT)
        qtbot.mouseClick(w.checklist.dismiss_button, Qt.MouseButton.LeftButton)
        assert not w.checklist.isVisible()
    finally:
        close(qtbot, w)
    again = open_main_window(qtbot, g.http_url, seeded.token, Settings.at_path(path))  # the app started anew
    try:
        again.show_page("overview")
        assert not again.checklist.isVisible()
        assert not again.checklist.active
    finally:
        close(qtbot, again)


def test_a_gateway_error_leaves_the_checklist_visible(qtbot, fresh_gateway, settings):
    g, _ = fresh_gateway
    w = open_main_window(qtbot, g.http_url, "sg_not-a-token-the-gateway-knows", settings)
    try:
        w.show_page("overview")
        qtbot.waitUntil(w.checklist.problem.isVisible, timeout=TIMEOUT)
        assert w.checklist.isVisible()
        assert marks(w)["connect"] == OPEN_MARK
        assert not settings.checklist_closed
    finally:
        close(qtbot, w)
