"""Live: a challenge made by a real SMTP transaction appears without refresh; the gateway killed and
restarted shows 'offline — retrying' and then recovers, keeping what was shown meanwhile."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest

from sendergate.desktop import operations
from sendergate.desktop.stream import OFFLINE, ONLINE

TIMEOUT = 15_000


def send_from_stranger(g, sender: str, subject: str) -> None:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "alice@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{abs(hash(subject))}@stranger.example>"
    msg.set_content("Hello Alice, we met at the conference.")
    with g.smtp() as s:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            s.send_message(msg)
    assert refused.value.smtp_code == 550 and b"/c/" in refused.value.smtp_error  # challenged, with a link


def test_challenge_from_a_real_smtp_transaction_appears_live(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    activity = w.show_page("activity")
    qtbot.waitUntil(lambda: activity.loaded, timeout=TIMEOUT)
    pending = w.show_page("pending")
    qtbot.waitUntil(lambda: pending.loaded and w.connection_state == ONLINE, timeout=TIMEOUT)
    before = pending.model.rowCount()
    send_from_stranger(g, "walter.new@stranger.example", "Hello from the live test")
    qtbot.waitUntil(lambda: pending.model.row_of_sender("walter.new@stranger.example") >= 0, timeout=TIMEOUT)
    assert pending.model.rowCount() == before + 1
    # told alone, or in the batch of a notification still up (the stream also brings challenges made in the
    # last seconds before the window connected, such as the fixture's seeded ones)
    assert any("walter.new@stranger.example" in text for _, text in w.tray.notified), w.tray.notified
    assert w.tray.pending == before + 1
    assert w.pages["overview"].pending_label.text() == str(before + 1)
    # the decision itself is in the activity log, on top
    qtbot.waitUntil(lambda: activity.model.event_at(0).sender == "walter.new@stranger.example", timeout=TIMEOUT)
    assert activity.model.event_at(0).verdict == "challenged"

    w.notify_action.setChecked(False)  # notifications can be turned off
    send_from_stranger(g, "quiet@stranger.example", "No bell please")
    qtbot.waitUntil(lambda: pending.model.row_of_sender("quiet@stranger.example") >= 0, timeout=TIMEOUT)
    assert not any("quiet@" in text for _, text in w.tray.notified)
    assert w.settings.notifications_enabled is False


def test_gateway_killed_and_restarted_offline_then_recovery(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    pending = w.show_page("pending")
    qtbot.waitUntil(lambda: pending.loaded and w.connection_state == ONLINE, timeout=TIMEOUT)
    shown = pending.model.rowCount()

    g.kill()
    qtbot.waitUntil(lambda: w.connection_state == OFFLINE, timeout=TIMEOUT)
    assert w.connection.text() == "offline — retrying"
    assert w.tray.offline
    assert pending.model.rowCount() == shown  # keeps showing what it has
    # a call while offline fails with a clear message, and nothing hangs
    errors: list[str] = []
    operations.Operation(w, w.client.stats, lambda s: None).failure(lambda exc: errors.append(str(exc))).run()
    qtbot.waitUntil(lambda: bool(errors), timeout=TIMEOUT)
    assert "cannot reach the gateway" in errors[0]

    # while it is down, a stranger's challenge is opened in the store (as another node would)
    cid, _ = g.store.open_challenge(seeded.user_id, "alice@example.org", "while.away@stranger.example",
                                    ttl=86400, subject="sent while you were offline")
    g.start()
    qtbot.waitUntil(lambda: w.connection_state == ONLINE, timeout=TIMEOUT)
    assert not w.tray.offline and w.connection.text() == "● live"
    qtbot.waitUntil(lambda: pending.model.row_of(cid) >= 0, timeout=TIMEOUT)  # refreshed on reconnect
