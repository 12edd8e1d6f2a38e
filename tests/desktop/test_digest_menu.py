"""File > Digest mail: the app reads and sets the signed-in user's digest frequency through the API
(GET/PUT /api/v1/digest) of a real gateway."""

from __future__ import annotations


def test_digest_menu_shows_and_changes_the_frequency(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    assert not w.digest_actions["off"].isEnabled()  # nothing shown before the gateway answered
    w._load_digest()
    qtbot.waitUntil(lambda: w.digest_actions["off"].isEnabled() and w.digest_actions["off"].isChecked(),
                    timeout=10_000)
    w.digest_actions["weekly"].trigger()
    qtbot.waitUntil(lambda: g.store.digest_setting(seeded.user_id)[0] == "weekly", timeout=10_000)
    qtbot.waitUntil(lambda: w.digest_actions["weekly"].isChecked(), timeout=10_000)
    assert not w.digest_actions["off"].isChecked()
