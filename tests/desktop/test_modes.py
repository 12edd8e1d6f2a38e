"""The mailbox mode on the Overview (SPEC §4.6, §7): shown, explained, changed through the real gateway's
API; the `observed` verdict labelled, coloured and counted."""

from __future__ import annotations

from sendergate.desktop.models.base import verdict_label
from sendergate.desktop.pages.overview import COLOURS

TIMEOUT = 10_000


def test_overview_shows_and_changes_the_mode(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    page = w.show_page("overview")
    qtbot.waitUntil(lambda: page.mode_choice.isEnabled(), timeout=TIMEOUT)
    assert page.mode_choice.currentData() == "enforce"
    assert "Observe for a week" in page.mode_text.text()  # the default: observe first is suggested
    page.mode_choice.setCurrentIndex(page.mode_choice.findData("observe"))
    page.mode_choice.activated.emit(page.mode_choice.currentIndex())  # what a user's choice sends
    qtbot.waitUntil(lambda: g.store.get_user(seeded.user_id).mode == "observe", timeout=TIMEOUT)
    qtbot.waitUntil(lambda: page.mode_choice.isEnabled(), timeout=TIMEOUT)
    assert "Observed" in page.mode_text.text()
    assert page.today_labels["observed"].text() == str(seeded.today.get("observed", 0))


def test_observed_has_a_label_and_a_colour():
    assert verdict_label("observed") == "Observed" and COLOURS["observed"] not in (
        c for v, c in COLOURS.items() if v != "observed")
