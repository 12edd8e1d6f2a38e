"""The Import page and the IMAP part of the setup, against a real gateway and a real Dovecot.

Address books from tests/data/contacts and generated ones; mail from tests/support/mailgen in a
private Dovecot. What the page did is checked through the gateway's API (the allowlist) and its
SMTP side (a reply to a harvested Message-ID is delivered).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer

from sendergate.contacts import read_file
from sendergate.desktop.api_client import GatewayClient
from sendergate.desktop.importing import IMPORT_CHUNK, INVALID, NEW, PRESENT, ImportItem, preview_rows
from sendergate.desktop.models.import_preview import ImportPreviewModel
from sendergate.desktop.pages.import_page import ImportPage
from sendergate.desktop.secrets import IMAP_PASSWORD, SERVICE, SecretStore
from sendergate.desktop.setup import SetupDialog
from sendergate.store import hash_message_id
from tests.desktop.seed import seed
from tests.support.cutting_proxy import CuttingProxy
from tests.support.dovecot import DovecotServer
from tests.support.gateway import GatewayProcess
from tests.support.mailgen import append, expected_contacts, inbox_messages, sent_messages

CORPUS = Path(__file__).resolve().parents[1] / "data" / "contacts"
IMAP_PASSWORD_RIGHT = "right horse battery"
_numbers = itertools.count(1)


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayProcess]:
    """One gateway for the module; every test imports for a user of its own (tokens work at once)."""
    g = GatewayProcess()
    seed(g.store, events=40, pending=1)
    g.start()
    try:
        yield g
    finally:
        g.close()


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    with DovecotServer() as server:
        yield server


@pytest.fixture
def user(gateway: GatewayProcess) -> SimpleNamespace:
    n = next(_numbers)
    address = f"importer{n}@example.org"
    u, token = gateway.store.add_user(address, name=f"Importer {n}")
    return SimpleNamespace(address=address, token=token, id=u.id)


@pytest.fixture
def api(gateway: GatewayProcess, user: SimpleNamespace) -> Iterator[GatewayClient]:
    client = GatewayClient(gateway.http_url, user.token, timeout=10)
    yield client
    client.close()


@pytest.fixture
def import_page(qtbot, window_for, gateway: GatewayProcess, user: SimpleNamespace) -> ImportPage:
    window = window_for(gateway, SimpleNamespace(token=user.token))
    page = window.show_page("import")
    assert isinstance(page, ImportPage)
    return page


class MailAccount(SimpleNamespace):
    pass


@pytest.fixture
def mail_account(dovecot: DovecotServer, settings) -> MailAccount:
    """A Dovecot user with generated Sent and INBOX, set up in the app's settings (no password yet)."""
    from imapclient import IMAPClient
    n = next(_numbers)
    user = f"imap{n}@example.test"
    dovecot.add_user(user, IMAP_PASSWORD_RIGHT)
    pool = f"friend{n}x"
    sent = list(sent_messages(1500, pool=pool))
    inbox = list(inbox_messages(200, pool=f"fan{n}x"))
    with IMAPClient("127.0.0.1", dovecot.imap_port, ssl=False, timeout=30) as c:
        c.login(user, IMAP_PASSWORD_RIGHT)
        append(c, "Sent", sent)
        append(c, "INBOX", inbox)
    settings.imap_host = "127.0.0.1"
    settings.imap_port = dovecot.imap_port
    settings.imap_security = "none"
    settings.imap_user = user
    settings.sync()
    return MailAccount(user=user, pool=pool, sent=sent, inbox=inbox,
                       expected=expected_contacts(sent) | expected_contacts(inbox))


def allowed(api: GatewayClient) -> dict[str, str]:
    """The allowlist as the API shows it: entry -> source."""
    return {e.entry: e.source for e in api.all_entries("allow")}


def read_and_wait(qtbot, page: ImportPage, start) -> str:
    with qtbot.waitSignal(page.read_finished, timeout=60_000) as done:
        start()
    return done.args[0]


def import_and_wait(qtbot, page: ImportPage) -> str:
    with qtbot.waitSignal(page.import_finished, timeout=60_000) as done:
        qtbot.mouseClick(page.import_button, Qt.MouseButton.LeftButton)
    return done.args[0]


def write_vcards(path: Path, addresses: list[str]) -> Path:
    cards = [f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Person {i}\r\nEMAIL;TYPE=INTERNET:{a}\r\nEND:VCARD\r\n"
             for i, a in enumerate(addresses)]
    path.write_text("".join(cards), encoding="utf-8")
    return path


# -- the preview model ----------------------------------------------------------------------------
def test_preview_model_passes_qtmodeltester_and_checks_only_new(qtmodeltester) -> None:
    from datetime import datetime, timezone

    from sendergate.contacts import Contact
    contacts = [Contact("ann@x.example", "Ann", "vcard"), Contact("bob@x.example", "", "imap", 12,
                                                                   datetime(2026, 1, 2, tzinfo=timezone.utc)),
                Contact("carol@x.example", "Carol", "csv:outlook"), Contact("bad@", "", "csv")]
    items = [ImportItem("ann@x.example", "added", ""), ImportItem("bob@x.example", "present", ""),
             ImportItem("carol@x.example", "added", ""), ImportItem("bad@", "invalid", "no domain")]
    rows = preview_rows(contacts, items)
    assert [r.status for r in rows] == [NEW, PRESENT, NEW, INVALID]
    model = ImportPreviewModel()
    model.set_rows(rows)
    qtmodeltester.check(model, force_py=True)
    assert [r.address for r in model.checked_rows()] == ["ann@x.example", "carol@x.example"]
    assert model.data(model.index(1, 3)) == 12 and model.data(model.index(0, 3)) == ""  # only mail counts
    assert model.data(model.index(2, 2)) == "CSV (Outlook)"
    assert not model.flags(model.index(3, 0)) & Qt.ItemFlag.ItemIsUserCheckable  # invalid: cannot be chosen
    assert not model.setData(model.index(3, 0), Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert model.setData(model.index(1, 0), Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert model.checked_count() == 3
    model.select_new()
    assert model.checked_count() == 2
    model.mark_allowed(["ann@x.example"])
    assert model.row(0).status == PRESENT and [r.address for r in model.checked_rows()] == ["carol@x.example"]
    qtmodeltester.check(model, force_py=True)
    with pytest.raises(ValueError):
        preview_rows(contacts, items[:2])


def test_preview_says_when_an_allowed_domain_already_covers_an_address(qtbot, api) -> None:
    from sendergate.contacts import Contact
    from sendergate.desktop.importing import dry_run
    api.add_entry("allow", "@covered.example")
    contacts = [Contact("ann@covered.example", "Ann", "vcard"), Contact("bob@team.covered.example", "Bob", "vcard"),
                Contact("cat@elsewhere.example", "Cat", "vcard")]
    rows = dry_run(api, contacts)  # the gateway's answer, through the real API
    assert [(r.status, r.covered_by) for r in rows] == [(NEW, "@covered.example"), (NEW, "@covered.example"),
                                                        (NEW, "")]
    model = ImportPreviewModel()
    model.set_rows(rows)
    assert [r.address for r in model.checked_rows()] == ["cat@elsewhere.example"]  # covered: not checked
    assert model.data(model.index(0, 5)) == "yes, by @covered.example" and model.data(model.index(2, 5)) == "no"
    assert "@covered.example" in model.data(model.index(1, 5), Qt.ItemDataRole.ToolTipRole)
    assert model.count_covered() == 2
    model.select_new()
    assert model.checked_count() == 1
    model.mark_allowed(["ann@covered.example"])  # imported anyway: now listed itself
    assert model.data(model.index(0, 5)) == "yes" and model.row(0).covered_by == ""


# -- address books ----------------------------------------------------------------------------------
def test_file_import_marks_allowed_and_changes_the_allowlist(qtbot, import_page, api) -> None:
    page = import_page
    corpus = CORPUS / "macos_contacts.vcf"
    expected = read_file(corpus).contacts
    already = expected[1].address
    api.add_entry("allow", already, note="by hand")
    before = allowed(api)

    summary = read_and_wait(qtbot, page, lambda: page.read_file(str(corpus)))
    assert summary.startswith(f"macos_contacts.vcf — addresses: {len(expected)} ({len(expected) - 1} new, "
                              "1 already allowed)"), summary
    rows = page.model.rows()
    assert [r.address for r in rows] == [c.address for c in expected]
    status = {r.address: r.status for r in rows}
    assert status[already] == PRESENT and page.model.data(page.model.index(1, 5)) == "yes"
    assert all(s == NEW for a, s in status.items() if a != already)
    assert {r.address for r in page.model.checked_rows()} == {c.address for c in expected} - {already}
    assert page.import_button.text().replace("&", "") == f"Import selected ({len(expected) - 1})"

    summary = import_and_wait(qtbot, page)
    assert summary == f"Import finished: {len(expected) - 1} added, 0 were already allowed, 0 invalid.", summary
    after = allowed(api)
    assert set(after) - set(before) == {c.address for c in expected} - {already}
    assert after[already] == "manual" and all(after[c.address] == "import" for c in expected if c.address != already)
    assert all(r.status == PRESENT for r in page.model.rows()) and not page.import_button.isEnabled()

    # the same file again: nothing new, nothing changes
    summary = read_and_wait(qtbot, page, lambda: page.read_file(str(corpus)))
    assert f"(0 new, {len(expected)} already allowed)" in summary
    assert page.model.checked_count() == 0 and not page.select_new_button.isEnabled()
    assert allowed(api) == after


def test_csv_ldif_and_thunderbird_sources_preview_like_the_importers_read_them(qtbot, import_page,
                                                                               tmp_path) -> None:
    from tests.test_contacts import make_abook
    page = import_page
    make_abook(tmp_path / "abook.sqlite")
    for path in (CORPUS / "outlook.csv", CORPUS / "google.csv", tmp_path / "abook.sqlite",
                 CORPUS / "thunderbird.ldif"):
        expected = read_file(path).contacts
        summary = read_and_wait(qtbot, page, lambda: page.read_file(str(path)))
        assert summary and [r.address for r in page.model.rows()] == [c.address for c in expected], path
        assert {page.model.data(page.model.index(i, 2)) for i in range(page.model.rowCount())} <= \
            {"CSV (Outlook)", "CSV (Google)", "Thunderbird", "LDIF"}
    assert "not UTF-8" not in summary  # LDIF is UTF-8: no warning carried over from the CSV before
    page.read_file(str(CORPUS / "outlook.csv"))
    qtbot.waitUntil(lambda: not page.busy(), timeout=30_000)
    assert "is not UTF-8; read as windows-1252" in page.source_label.text()


def test_corrupt_and_missing_files_are_a_clear_non_modal_message(qtbot, import_page, tmp_path) -> None:
    page = import_page
    window = page.window()
    bad = tmp_path / "photo.vcf"
    bad.write_bytes(bytes(range(256)) * 40)
    for path, words in ((bad, "is not an address book"), (tmp_path / "gone.vcf", "cannot read"),
                        (CORPUS / "only_begin.vcf", "no vCard could be read")):
        assert read_and_wait(qtbot, page, lambda: page.read_file(str(path))) == ""
        text = window.messages.text()
        assert words in text and "\n" not in text and "Traceback" not in text, text
        assert window.messages.isVisible() and not window.messages.isWindow()
        assert page.state == "idle" and page.file_button.isEnabled()


def test_cancel_mid_import_leaves_a_consistent_allowlist(qtbot, import_page, api, tmp_path) -> None:
    page = import_page
    addresses = [f"contact{i:05d}@bulk.example" for i in range(IMPORT_CHUNK * 8)]
    book = write_vcards(tmp_path / "big.vcf", addresses)
    read_and_wait(qtbot, page, lambda: page.read_file(str(book)))
    assert page.model.checked_count() == len(addresses)

    # Cancel as soon as the first chunk is in: the chunk in flight completes, nothing after it starts.
    def cancel_once(value: int) -> None:
        if value >= IMPORT_CHUNK and page.state == "importing" and not page._cancel.is_set():
            page.cancel()

    page.progress.valueChanged.connect(cancel_once)
    summary = import_and_wait(qtbot, page)
    page.progress.valueChanged.disconnect(cancel_once)
    assert summary.startswith("Import cancelled after"), summary
    tally = page._tally
    assert tally is not None and IMPORT_CHUNK <= tally.done < len(addresses) and tally.done % IMPORT_CHUNK == 0
    now = allowed(api)
    imported = [a for a in addresses if a in now]
    # what the gateway has is exactly what the page says it imported: a prefix of the selection
    assert imported == addresses[:tally.done] == tally.imported
    assert {r.address for r in page.model.rows() if r.status == PRESENT} == set(imported)
    # the rest stay checked: Import again carries on where the cancel stopped
    assert page.state == "idle" and page.import_button.isEnabled()
    assert {r.address for r in page.model.checked_rows()} == set(addresses[tally.done:])
    page.select_none_button.click()
    page.select_new_button.click()
    assert page.model.checked_count() == len(addresses) - tally.done
    summary = import_and_wait(qtbot, page)
    assert summary.startswith(f"Import finished: {len(addresses) - tally.done} added"), summary
    assert set(addresses) <= set(allowed(api))


def test_role_like_address_saved_in_an_address_book_is_imported(qtbot, import_page, api, tmp_path) -> None:
    """bookings@ looks like a machine role, but the user saved it: it is offered and imported (issue 18)."""
    page = import_page
    book = write_vcards(tmp_path / "vet.vcf", ["Bookings@Riverside-Vet.example", "dr.hale@riverside-vet.example"])
    read_and_wait(qtbot, page, lambda: page.read_file(str(book)))
    assert {r.address: r.status for r in page.model.rows()} == {
        "bookings@riverside-vet.example": NEW, "dr.hale@riverside-vet.example": NEW}
    assert page.model.checked_count() == 2
    summary = import_and_wait(qtbot, page)
    assert summary == "Import finished: 2 added, 0 were already allowed, 0 invalid.", summary
    assert {"bookings@riverside-vet.example", "dr.hale@riverside-vet.example"} <= set(allowed(api))


def test_55000_addresses_import_with_progress_and_a_consistent_cancel(qtbot, import_page, api, tmp_path) -> None:
    """An address book the size issue 18 names: the bar moves chunk by chunk, Cancel stops mid-way, and the
    gateway then holds exactly what the page says it imported; Import again finishes the rest."""
    page = import_page
    addresses = [f"c{i:05d}@big{i % 37}.example" for i in range(55_000)]
    book = write_vcards(tmp_path / "55k.vcf", addresses)
    with qtbot.waitSignal(page.read_finished, timeout=120_000):
        page.read_file(str(book))
    assert page.model.checked_count() == len(addresses)
    seen: list[int] = []

    def watch(value: int) -> None:
        seen.append(value)
        if value >= len(addresses) // 2 and page.state == "importing" and not page._cancel.is_set():
            page.cancel()

    page.progress.valueChanged.connect(watch)
    with qtbot.waitSignal(page.import_finished, timeout=120_000) as done:
        qtbot.mouseClick(page.import_button, Qt.MouseButton.LeftButton)
    page.progress.valueChanged.disconnect(watch)
    assert done.args[0].startswith("Import cancelled after"), done.args[0]
    assert page.progress.maximum() == len(addresses)
    steps = [v for v in seen if v > 0]
    assert len(steps) >= len(addresses) // 2 // IMPORT_CHUNK and steps == sorted(steps)  # it moved, forwards
    tally = page._tally
    assert tally is not None and len(addresses) // 2 <= tally.done < len(addresses)
    now = set(allowed(api))
    assert [a for a in addresses if a in now] == addresses[:tally.done] == tally.imported
    with qtbot.waitSignal(page.import_finished, timeout=120_000) as done:
        qtbot.mouseClick(page.import_button, Qt.MouseButton.LeftButton)
    assert done.args[0].startswith(f"Import finished: {len(addresses) - tally.done} added"), done.args[0]
    assert set(addresses) <= set(allowed(api))


# -- the IMAP account -------------------------------------------------------------------------------
def send_reply(gateway: GatewayProcess, sender: str, recipient: str, in_reply_to: str) -> tuple[int, str]:
    with gateway.smtp() as s:
        s.mail(sender)
        s.rcpt(recipient)
        code, text = s.data(f"From: {sender}\r\nTo: {recipient}\r\nSubject: Re: your mail\r\n"
                            f"In-Reply-To: {in_reply_to}\r\nMessage-ID: <r{time.time_ns()}@never-seen.example>\r\n"
                            "\r\nThanks!\r\n".encode())
    return code, text.decode(errors="replace")


def test_imap_wrong_then_right_password_uploads_sent_ids_and_replies_get_through(
        qtbot, import_page, api, gateway, user, mail_account, settings, memory_keyring) -> None:
    # A reply counts only when it passes authentication for its own domain (SPEC §4.5 item 2):
    # the stranger's SPF passes (published before the gateway first asks, or it caches the absence).
    from tests.support.gateway import loopback_dns
    loopback_dns().add_txt("never-seen.example", "v=spf1 ip4:127.0.0.1 -all")
    page = import_page
    window = page.window()
    reply_to = mail_account.sent[5].message_id
    code, text = send_reply(gateway, "stranger@never-seen.example", user.address, reply_to)
    assert code == 550 and "known senders" in text  # before the upload the gateway does not know the thread

    memory_keyring.set_password(SERVICE, IMAP_PASSWORD, "wrong password")
    assert read_and_wait(qtbot, page, page.imap_button.click) == ""
    assert "refused the login of " + mail_account.user in window.messages.text()

    # the user corrects the password in the setup and tests the mail account there
    dialog = SetupDialog(settings, SecretStore(), url=gateway.http_url, token=user.token)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.imap_box.isChecked() and dialog.imap_security.currentData() == "none"
    with qtbot.waitSignal(dialog.imap_tested, timeout=20_000) as tested:
        dialog.imap_test_button.click()
    assert tested.args[0] == 0 and "refused the login" in tested.args[1]  # the saved, wrong one
    dialog.imap_password.setText(IMAP_PASSWORD_RIGHT)
    with qtbot.waitSignal(dialog.imap_tested, timeout=20_000) as tested:
        dialog.imap_test_button.click()
    assert tuple(tested.args) == (1, "Logged in. Sent mail is read from the folder Sent.")
    with qtbot.waitSignal(dialog.tested, timeout=20_000):
        dialog.test_button.click()
    dialog.save_button.click()
    assert memory_keyring.secrets[(SERVICE, IMAP_PASSWORD)] == IMAP_PASSWORD_RIGHT
    assert IMAP_PASSWORD_RIGHT not in Path(settings._s.fileName()).read_text()

    # the window stays responsive while the mailbox is read: measure the GUI thread's longest stall
    ticks: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: ticks.append(clock.elapsed()))
    heartbeat.start(10)
    summary = read_and_wait(qtbot, page, page.imap_button.click)
    heartbeat.stop()
    stall = max(b - a for a, b in itertools.pairwise(ticks))
    assert stall < 500, f"the GUI thread stalled {stall} ms while reading IMAP"
    n_messages = len(mail_account.sent) + sum(1 for m in mail_account.inbox if b"\\Answered" in m.flags)
    assert f"New messages read: {n_messages}. Sent Message-IDs newly registered (replies to them reach you): " \
        f"{len(mail_account.sent)}." in summary, summary
    assert {r.address for r in page.model.rows()} == mail_account.expected
    counts = {r.address: r.count for r in page.model.rows()}
    assert counts[f"{mail_account.pool}0@example.net"] == 5  # one friend in 300 messages: 5 of 1,500

    # a reply from an address never seen before, to one of the harvested Message-IDs, is delivered
    code, text = send_reply(gateway, "stranger@never-seen.example", user.address, reply_to)
    assert code == 250, text
    assert gateway.events()[-1].verdict == "delivered"
    code, _ = send_reply(gateway, "other@never-seen.example", user.address, "<not-ours@x.example>")
    assert code == 550  # only replies to the user's own mail
    assert hash_message_id(reply_to) in {hash_message_id(m.message_id) for m in mail_account.sent}

    # the preview imports; the IMAP state is saved per account only now
    assert settings.imap_harvest_state(f"{mail_account.user}@127.0.0.1") is None
    summary = import_and_wait(qtbot, page)
    assert summary.startswith(f"Import finished: {len(mail_account.expected)} added"), summary
    assert mail_account.expected <= set(allowed(api))
    state = settings.imap_harvest_state(f"{mail_account.user}@127.0.0.1")
    assert state is not None and state["folders"]["Sent"]["last_uid"] == len(mail_account.sent)


def test_resync_is_on_by_default_and_reads_only_new_mail(qtbot, mail_account, import_page, api, settings,
                                                         memory_keyring, dovecot) -> None:
    """On once a mail account is set up, every 15 minutes: bounces and replies are recognised only by
    the uploaded sent Message-IDs (SPEC §4.2 items 5 and 8)."""
    from imapclient import IMAPClient
    page = import_page
    memory_keyring.set_password(SERVICE, IMAP_PASSWORD, IMAP_PASSWORD_RIGHT)
    assert settings.imap_resync_minutes == 15 and page.resync_timer.isActive()
    assert page.resync_timer.interval() == 15 * 60_000
    assert page.resync_check.isChecked() and page.resync_check.isEnabled()

    read_and_wait(qtbot, page, page.read_imap)
    import_and_wait(qtbot, page)
    first = set(allowed(api))

    new_sent = list(sent_messages(40, pool="latecomer", pool_size=40))
    with IMAPClient("127.0.0.1", dovecot.imap_port, ssl=False, timeout=30) as c:
        c.login(mail_account.user, IMAP_PASSWORD_RIGHT)
        append(c, "Sent", new_sent)

    page.resync_check.setChecked(False)
    assert settings.imap_resync_minutes == 0 and not page.resync_timer.isActive()
    page.resync_minutes.setValue(30)
    page.resync_check.setChecked(True)
    assert settings.imap_resync_minutes == 30 and page.resync_timer.isActive()
    assert page.resync_timer.interval() == 30 * 60_000
    page.resync_timer.setInterval(50)  # the timer itself, not a direct call, starts the re-sync
    with qtbot.waitSignal(page.resync_finished, timeout=30_000) as done:
        pass
    page.resync_check.setChecked(False)
    assert settings.imap_resync_minutes == 0 and not page.resync_timer.isActive()
    fresh = expected_contacts(new_sent) - first  # colleagues on Cc were allowed by the first import already
    assert len([a for a in fresh if a.startswith("latecomer")]) == 39  # message 5 goes to undisclosed-recipients
    assert done.args[0] == f"Mail account re-synced. New messages read: 40; newly allowed: {len(fresh)}.", \
        done.args[0]
    now = allowed(api)
    assert set(now) - first == fresh and expected_contacts(new_sent) <= set(now)
    state = settings.imap_harvest_state(f"{mail_account.user}@127.0.0.1")
    assert state["folders"]["Sent"]["last_uid"] == len(mail_account.sent) + len(new_sent)

    # nothing new: a re-sync reads nothing
    with qtbot.waitSignal(page.resync_finished, timeout=30_000) as done:
        page.resync_now()
    assert done.args[0] == "Mail account re-synced. New messages read: 0; newly allowed: 0."


def test_dropped_imap_connection_keeps_what_was_read(qtbot, mail_account, import_page, settings,
                                                     memory_keyring, dovecot) -> None:
    page = import_page
    memory_keyring.set_password(SERVICE, IMAP_PASSWORD, IMAP_PASSWORD_RIGHT)
    # ~200 bytes of headers per message: cut the stream partway through the Sent folder
    with CuttingProxy(dovecot.imap_port, cut_after=320_000) as proxy:
        settings.imap_port = proxy.port
        read_and_wait(qtbot, page, page.read_imap)
    message = page.window().messages.text()
    assert "connection to 127.0.0.1 was lost after" in message and "addresses read until then" in message, message
    got = {r.address for r in page.model.rows()}
    assert got and got < mail_account.expected


def test_unreachable_imap_server_and_unencrypted_remote_server(qtbot, import_page, settings, memory_keyring,
                                                               gateway, user) -> None:
    from tests.support.common import free_loopback_port
    page = import_page
    memory_keyring.set_password(SERVICE, IMAP_PASSWORD, "x")
    settings.imap_host, settings.imap_user, settings.imap_security = "127.0.0.1", "someone", "none"
    settings.imap_port = free_loopback_port()
    assert read_and_wait(qtbot, page, page.read_imap) == ""
    assert "cannot connect to IMAP server 127.0.0.1:" in page.window().messages.text()

    dialog = SetupDialog(settings, SecretStore(), url=gateway.http_url, token=user.token)
    qtbot.addWidget(dialog)
    dialog.imap_host.setText("imap.example.net")
    with qtbot.waitSignal(dialog.imap_tested, timeout=5_000) as tested:
        dialog.imap_test_button.click()
    assert tested.args[0] == 0 and "is not this computer: use TLS or STARTTLS" in tested.args[1]
    dialog.imap_security.setCurrentIndex(dialog.imap_security.findData("tls"))
    dialog.imap_security.activated.emit(dialog.imap_security.currentIndex())
    assert dialog.imap_port.value() == 993


def test_imap_account_over_starttls(qtbot, settings, memory_keyring, monkeypatch, gateway, user) -> None:
    """STARTTLS with a verified certificate: the test's own CA file stands in for the system's."""
    with DovecotServer(tls=True) as server:
        server.add_user("tls@example.test", IMAP_PASSWORD_RIGHT)
        monkeypatch.setenv("SSL_CERT_FILE", str(server.cert_path))
        dialog = SetupDialog(settings, SecretStore(), url=gateway.http_url, token=user.token)
        qtbot.addWidget(dialog)
        dialog.imap_box.setChecked(True)
        dialog.imap_host.setText("localhost")
        dialog.imap_security.setCurrentIndex(dialog.imap_security.findData("starttls"))
        dialog.imap_port.setValue(server.imap_port)
        dialog.imap_user.setText("tls@example.test")
        dialog.imap_password.setText(IMAP_PASSWORD_RIGHT)
        with qtbot.waitSignal(dialog.imap_tested, timeout=20_000) as tested:
            dialog.imap_test_button.click()
        assert tested.args[0] == 1, tested.args[1]
        monkeypatch.delenv("SSL_CERT_FILE")
        with qtbot.waitSignal(dialog.imap_tested, timeout=20_000) as tested:
            dialog.imap_test_button.click()
        assert tested.args[0] == 0 and "STARTTLS with IMAP server localhost" in tested.args[1], tested.args[1]


def test_cancelled_mail_read_shows_what_was_read_and_the_next_read_carries_on(
        qtbot, mail_account, import_page, api, settings, memory_keyring) -> None:
    page = import_page
    memory_keyring.set_password(SERVICE, IMAP_PASSWORD, IMAP_PASSWORD_RIGHT)

    # Cancel the moment the first batch of 1,000 headers is in, from the worker thread itself (a direct
    # connection), so the harvest surely sees it before its next batch.
    def cancel_after_first_batch(done: int, total: int) -> None:
        if done:
            page._cancel.set()

    page._progress.advanced.connect(cancel_after_first_batch, Qt.ConnectionType.DirectConnection)
    summary = read_and_wait(qtbot, page, page.read_imap)
    page._progress.advanced.disconnect(cancel_after_first_batch)
    assert "New messages read: 1000." in summary and "Reading was cancelled" in summary, summary
    first = {r.address for r in page.model.rows()}
    assert first and first < mail_account.expected
    summary = import_and_wait(qtbot, page)
    assert summary.startswith(f"Import finished: {len(first)} added"), summary
    assert settings.imap_harvest_state(f"{mail_account.user}@127.0.0.1")["folders"]["Sent"]["last_uid"] == 1000

    summary = read_and_wait(qtbot, page, page.read_imap)
    n_rest = len(mail_account.sent) - 1000 + sum(1 for m in mail_account.inbox if b"\\Answered" in m.flags)
    assert f"New messages read: {n_rest}." in summary, summary
    rest = {r.address for r in page.model.rows()}
    assert first | rest == mail_account.expected
    new = {r.address for r in page.model.rows() if r.status == NEW}
    assert new == mail_account.expected - first  # read again but already allowed: not offered as new


def test_resync_interval_setting_keeps_an_earlier_versions_choice(tmp_path) -> None:
    from sendergate.desktop.settings import Settings
    fresh = Settings.at_path(str(tmp_path / "fresh.ini"))
    assert fresh.imap_resync_minutes == 15  # on by default
    for hours, minutes in ((0, 0), (2, 120)):  # switched off, or set to 2 h, by the user before
        s = Settings.at_path(str(tmp_path / f"old-{hours}.ini"))
        s._s.setValue("imap/resync_hours", hours)
        assert s.imap_resync_minutes == minutes
        s.imap_resync_minutes = 45
        assert s.imap_resync_minutes == 45 and not s._s.contains("imap/resync_hours")
