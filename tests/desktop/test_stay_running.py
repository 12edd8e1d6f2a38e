"""The app stays running (issue 17 item 5): close-to-tray, start at login from the menu, and a notification
that opens the right row on Pending — pytest-qt against a real gateway.

These run on the offscreen platform, which has no tray: closing quits as before there, and a click on a
notification is its messageClicked signal. The same behaviour with a real tray — trayer under Xvfb,
isSystemTrayAvailable() true, the balloon and the tray icon clicked with the mouse — is
tray_host/real_tray_cases.py, run by test_with_a_real_tray_host below in a process of its own (one
process has one Qt platform).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sendergate.desktop.autostart import launch_command, parse_desktop_exec
from sendergate.desktop.pages.pending import PendingPage
from sendergate.desktop.stream import ONLINE
from sendergate.desktop.tray import Tray
from tests.desktop.test_live import send_from_stranger
from tests.support import trayhost

TIMEOUT = 15_000
ROOT = Path(__file__).resolve().parents[2]


def visible_rows(page: PendingPage) -> set[str]:
    """Senders whose row the table shows inside its viewport."""
    view = page.table.viewport().rect()
    out = set()
    for row in range(page.proxy.rowCount()):
        index = page.proxy.index(row, 0)
        if view.intersects(page.table.visualRect(index)):
            out.add(page.proxy.data(index))
    return out


def test_without_a_tray_closing_the_window_quits_as_before(qtbot, seeded_gateway, window_for):
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    assert not Tray.available()  # offscreen: no tray host
    assert not w.keep_running_action.isEnabled() and not w.keep_running_action.isChecked()
    assert w.settings.keep_running is True  # the user's choice stays for a desktop that has a tray
    assert w.close()
    assert not w.isVisible() and w.stream._stop.is_set()  # really closed: the live stream stopped


def test_start_at_login_from_the_menu_registers_the_installed_app_and_off_removes_it(
        qtbot, seeded_gateway, window_for, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    entry = tmp_path / "config" / "autostart" / "sendergate-desktop.desktop"
    assert not w.start_at_login_action.isChecked() and not entry.exists()  # off by default
    w.start_at_login_action.trigger()
    assert entry.is_file() and w.start_at_login_action.isChecked()
    exec_line = next(ln for ln in entry.read_text().splitlines() if ln.startswith("Exec="))
    assert parse_desktop_exec(exec_line[5:]) == launch_command()
    assert "start when you log in" in w.messages.text()
    w.start_at_login_action.trigger()
    assert not entry.exists() and not w.start_at_login_action.isChecked()


def test_a_registration_that_fails_is_reported_and_the_menu_shows_what_the_system_holds(
        qtbot, seeded_gateway, window_for, tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker))
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    w.start_at_login_action.trigger()
    assert not w.start_at_login_action.isChecked()
    assert "Could not change start at login" in w.messages.text() and str(blocker) in w.messages.text()


def test_a_notification_of_several_new_senders_opens_pending_with_the_newest_selected_and_all_in_view(
        qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    pending = w.pages["pending"]
    assert isinstance(pending, PendingPage)
    qtbot.waitUntil(lambda: pending.loaded and w.connection_state == ONLINE, timeout=TIMEOUT)
    w.show_page("overview")
    pending.filter.setText("nobody-matches-this")  # a filter that would hide them
    senders = [f"stranger{i}@far.example" for i in range(3)]
    for i, sender in enumerate(senders):
        send_from_stranger(g, sender, f"Hello {i}")
        qtbot.waitUntil(lambda s=sender: pending.model.row_of_sender(s) >= 0, timeout=TIMEOUT)
    assert w.tray.notified[-1][0].startswith("3 new pending sender")  # the plural comes with the .qm (polish)
    assert w.tray.notified[-1][1].splitlines()[0] == senders[-1]  # newest first
    newest = pending.model.record(pending.model.row_of_sender(senders[-1])).id

    w.tray.icon.messageClicked.emit()  # what a click on the notification raises (no tray to click here)
    assert w.current_page() is pending and w.isVisible()
    assert pending.filter.text() == ""
    assert [c.id for c in pending.selected()] == [newest]
    assert set(senders) <= visible_rows(pending)
    assert w.tray.batch == []  # the next notification starts a batch of its own


def test_a_notification_whose_challenge_was_decided_meanwhile_just_shows_pending(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    pending = w.pages["pending"]
    qtbot.waitUntil(lambda: pending.loaded and w.connection_state == ONLINE, timeout=TIMEOUT)
    w.show_page("overview")
    before = [c.id for c in pending.selected()]  # the screener keeps a sender selected (the top one on load)
    w.show_challenges([10_000_000])  # no such row any more
    assert w.current_page() is pending
    assert [c.id for c in pending.selected()] == before  # nothing was picked for the decided challenge


def test_with_a_real_tray_host():
    """tray_host/real_tray_cases.py (named so that a plain run does not collect it) under Xvfb with trayer:
    close hides to a real tray, the balloon and the
    icon are clicked with the mouse, Quit from the tray menu quits."""
    assert not trayhost.missing(), f"no tray host: {trayhost.missing()}"  # the test command installs it
    with trayhost.tray_desktop() as env:
        env["SENDERGATE_TRAY_HOST"] = "1"
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                              "tests/desktop/tray_host/real_tray_cases.py"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]


def test_a_senders_subject_cannot_put_markup_lines_or_reordering_into_the_notification(qtbot, fresh_gateway,
                                                                                      window_for):
    """Freedesktop notification servers may render the body as markup (a link, an image): a stranger's
    subject must not become a link in a notification of the app the user trusts, add a line that looks
    like ours, or reverse the text shown."""
    import smtplib

    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    pending = w.pages["pending"]
    qtbot.waitUntil(lambda: pending.loaded and w.connection_state == ONLINE, timeout=TIMEOUT)
    # RFC 2047 decodes to: <a href="https://evil.example/">Confirm here</a>, CR LF, a fake line, U+202E
    subject = ("=?utf-8?q?=3Ca_href=3D=22https=3A//evil.example/=22=3EConfirm_here=3C/a=3E"
               "=0D=0AApproved_by_IT=E2=80=AE?=")
    raw = (f"From: mallory@evil.example\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
           "Message-ID: <markup@evil.example>\r\n\r\nhello\r\n")
    with g.smtp() as s, pytest.raises(smtplib.SMTPDataError):
        s.sendmail("mallory@evil.example", ["alice@example.org"], raw)
    qtbot.waitUntil(lambda: pending.model.row_of_sender("mallory@evil.example") >= 0, timeout=TIMEOUT)
    title, text = w.tray.notified[-1]
    assert text.splitlines()[0] == "mallory@evil.example" and len(text.splitlines()) == 2  # sender, subject
    assert "<" not in text and ">" not in text and "\u202e" not in text
    assert "Confirm here" in text and "Approved by IT" in text  # shown, as text
