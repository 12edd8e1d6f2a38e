"""The Sign-up addresses page (issue 19) against a real gateway: create (the address lands on the clipboard),
the counts and senders after real SMTP mail to the tag, revoke (asked first; the gateway then refuses mail
to it), the tag in Activity, and the failures a person must see (refused name, gateway unreachable)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from sendergate.desktop.api_client import ApiError, GatewayClient, Unreachable
from sendergate.desktop.models.events import COLUMNS as ACTIVITY_COLUMNS
from sendergate.desktop.pages.tags import TagsPage, problem, tag_name
from sendergate.desktop.widgets import MessageBar
from tests.desktop.seed import seed
from tests.support.common import free_loopback_port
from tests.support.gateway import GatewayProcess

TIMEOUT = 10_000


def loaded(qtbot, window, key="tags"):
    page = window.show_page(key)
    qtbot.waitUntil(lambda: page.loaded, timeout=TIMEOUT)
    return page


def reload(qtbot, page):
    page.loaded = False
    page.refresh()
    qtbot.waitUntil(lambda: page.loaded, timeout=TIMEOUT)


def cell(page, row, title):
    col = [page.model.headerData(c, Qt.Orientation.Horizontal) for c in range(page.model.columnCount())].index(title)
    return page.model.data(page.model.index(row, col))


def send(g, sender, rcpt, subject="Welcome to ACME"):
    """One message over SMTP as the site's server would send it; returns the end-of-DATA reply code."""
    body = (f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}."
            f"{sender}>\r\n\r\nThanks for signing up.\r\n").encode()
    with g.smtp() as s:
        s.mail(sender)
        code, text = s.rcpt(rcpt)
        if code != 250:
            return code, text.decode()
        code, text = s.data(body)
        return code, text.decode()


def test_create_copies_the_new_address_and_lists_it(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    page = loaded(qtbot, w)
    assert isinstance(page, TagsPage)
    assert page.empty.isVisible() and not page.table.isVisible()  # the empty state says what the page is for
    assert "sign up" in page.empty.text()
    assert page.address_box.currentText() == seeded.address
    QGuiApplication.clipboard().setText("something else")

    qtbot.keyClicks(page.name_edit, "ACME Shop")
    assert page.preview.text().endswith("acme-shop")
    qtbot.mouseClick(page.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=TIMEOUT)

    api = GatewayClient(g.http_url, seeded.token)
    [tag] = api.tags()
    api.close()
    assert tag.name == "acme-shop" and tag.owner_address == seeded.address and tag.status == "live"
    assert tag.address.startswith("alice+acme-shop@") and tag.expires_at is None and not tag.dated
    assert QGuiApplication.clipboard().text() == tag.address
    assert "copied to the clipboard" in w.messages.text() and tag.address in w.messages.text()
    assert page.table.isVisible() and not page.empty.isVisible()
    assert cell(page, 0, "Status") == "Live" and cell(page, 0, "Mail received") == 0
    assert page.name_edit.text() == ""  # ready for the next one
    assert page.selected() is not None and page.selected().id == tag.id and page.revoke_button.isEnabled()
    QGuiApplication.clipboard().setText("something else")
    page.table.setFocus()
    qtbot.keyClick(page.table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)  # copy it again later
    assert QGuiApplication.clipboard().text() == tag.address


def test_a_dated_address_with_an_end(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    page = loaded(qtbot, w)
    assert not page.dated_check.isEnabled()  # no end, nothing to date
    page.expiry_box.setCurrentIndex(page.expiry_box.findData("30d"))
    assert page.dated_check.isEnabled()
    page.dated_check.setChecked(True)
    page.name_edit.setText("conference")
    page.create_tag()
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=TIMEOUT)
    tag = page.model.record(0)
    assert tag.dated and tag.expires_at is not None
    assert QGuiApplication.clipboard().text() == tag.address and tag.address != "alice+conference@example.org"
    assert cell(page, 0, "Ends") not in ("", "Never")


def test_a_folder_of_its_own_is_where_its_mail_lands(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    w = window_for(g, seeded)
    page = loaded(qtbot, w)
    assert page.folder_box.currentData() == ""  # by default the gateway's [tags] folder decides
    page.folder_box.setCurrentIndex(page.folder_box.findData("tag"))
    page.name_edit.setText("Bookshop")
    page.create_tag()
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=TIMEOUT)
    tag = page.model.record(0)
    assert tag.folder == "tag" and cell(page, 0, "Mail goes to") == "A folder of its own"
    assert send(g, "orders@bookshop.example", tag.address, "Your order")[0] == 250
    folder = g.maildir / seeded.address / "Maildir" / ".Sign-ups.bookshop" / "new"
    assert [f for f in folder.iterdir() if b"Your order" in f.read_bytes()]
    assert not list((g.maildir / seeded.address / "Maildir" / "new").glob("*"))  # not in the inbox


def test_what_the_gateway_refuses_is_said_and_nothing_is_copied(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    api = GatewayClient(g.http_url, seeded.token)
    api.add_tag(seeded.address, "acme")
    w = window_for(g, seeded)
    page = loaded(qtbot, w)
    assert page.model.rowCount() == 1
    QGuiApplication.clipboard().setText("untouched")

    page.name_edit.setText("ACME")  # the same name again: the gateway keeps one per user (409)
    page.create_tag()
    qtbot.waitUntil(lambda: w.messages.level == "error" and "Could not create" in w.messages.text(),
                    timeout=TIMEOUT)
    assert QGuiApplication.clipboard().text() == "untouched"  # never an address that does not exist
    assert page.create_button.isEnabled() and page.name_edit.text() == "ACME"  # nothing typed is lost
    assert len(api.tags()) == 1

    w.messages.hide()
    page.name_edit.setText("../@%!")  # nothing of it can be a name: refused here, no call
    page.create_tag()
    assert w.messages.level == "error" and "letters or digits" in w.messages.text()
    assert len(api.tags()) == 1 and QGuiApplication.clipboard().text() == "untouched"
    api.close()


def test_mail_to_a_tag_is_counted_with_its_senders_and_activity_shows_the_tag(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    api = GatewayClient(g.http_url, seeded.token)
    tag = api.add_tag(seeded.address, "acme")
    for sender, subject in (("news@acme.example", "Welcome"), ("news@acme.example", "Offers"),
                            ("partner@resold-list.example", "You may like")):
        code, text = send(g, sender, tag.address, subject)
        assert code == 250, text  # strangers, no challenge: the tag lets them in
    w = window_for(g, seeded)
    page = loaded(qtbot, w)
    assert cell(page, 0, "Mail received") == 3
    assert cell(page, 0, "From").startswith("news@acme.example (2), partner@resold-list.example (1)")
    assert cell(page, 0, "Last mail").startswith("Today")

    activity = loaded(qtbot, w, "activity")
    titles = [c.title() for c in ACTIVITY_COLUMNS]
    col = titles.index("Sign-up address")
    rows = [r for r in range(activity.model.rowCount()) if activity.model.event_at(r).recipient.strip("<>")
            == tag.address]
    assert len(rows) == 3
    assert {activity.model.data(activity.model.index(r, col)) for r in rows} == {"acme"}
    assert not activity.table.isColumnHidden(col)  # hidden while no event has a tag; these have one
    untagged = next(r for r in range(activity.model.rowCount()) if r not in rows)
    assert not activity.model.data(activity.model.index(untagged, col))  # other mail names no tag
    activity.table.selectRow(rows[0])
    assert "acme" in activity.details.toPlainText()
    api.close()


def test_revoke_asks_first_and_then_the_gateway_refuses_mail_to_it(qtbot, fresh_gateway, window_for):
    g, seeded = fresh_gateway
    api = GatewayClient(g.http_url, seeded.token)
    tag = api.add_tag(seeded.address, "acme")
    w = window_for(g, seeded)
    page = loaded(qtbot, w)
    page.table.selectRow(0)
    asked = []
    page.confirm = lambda parent, t: asked.append(t.id) or False  # "No"
    page.table.setFocus()
    qtbot.keyClick(page.table, Qt.Key.Key_Delete)
    assert asked == [tag.id]
    qtbot.wait(300)
    assert api.tags()[0].status == "live" and cell(page, 0, "Status") == "Live"  # "No" revokes nothing

    page.confirm = lambda parent, t: True
    qtbot.mouseClick(page.revoke_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cell(page, 0, "Status") == "Revoked", timeout=TIMEOUT)
    assert api.tags()[0].status == "revoked"
    assert not page.revoke_button.isEnabled()  # nothing more to revoke
    page.confirm = lambda parent, t: asked.append(t.id) or True
    page.table.setFocus()
    qtbot.keyClick(page.table, Qt.Key.Key_Delete)
    assert asked == [tag.id]  # a revoked address is not offered for revoking again
    assert "Revoked" in w.messages.text() and tag.address in w.messages.text()
    code, text = send(g, "news@acme.example", tag.address)
    assert code == 550, text
    api.close()


def test_an_unreachable_gateway_is_said_and_the_page_keeps_what_it_showed(qtbot):
    bar = MessageBar()
    qtbot.addWidget(bar)
    from sendergate.desktop import crash, operations
    operations.set_handlers(bar.error, crash.show_crash)
    client = GatewayClient(f"http://127.0.0.1:{free_loopback_port()}", "t", timeout=2)
    page = TagsPage(client, bar)
    qtbot.addWidget(page)
    with qtbot.waitSignal(bar.shown, timeout=TIMEOUT) as shown:
        page.refresh()
    assert shown.args[0] == "error" and "cannot reach the gateway" in shown.args[1]
    assert not page.create_button.isEnabled()  # no address to make one for until the gateway answered
    page.address_box.addItem("alice@example.org")  # as if loaded before the gateway went away
    page.name_edit.setText("acme")
    with qtbot.waitSignal(bar.shown, timeout=TIMEOUT) as shown:
        page.create_tag()
    assert "Could not create" in shown.args[1] and "cannot reach the gateway" in shown.args[1]
    qtbot.waitUntil(lambda: page.create_button.isEnabled(), timeout=TIMEOUT)  # can try again
    assert page.name_edit.text() == "acme"
    qtbot.waitUntil(lambda: operations.running() == 0, timeout=TIMEOUT)
    client.close()


def test_a_gateway_without_sign_up_addresses_says_so():
    assert "does not offer sign-up addresses" in problem(ApiError("Not Found", 404))
    assert problem(ApiError("no such tag for this user", 404)) == "no such tag for this user"  # a real 404
    assert problem(Unreachable("cannot reach the gateway at x")) == "cannot reach the gateway at x"


def test_a_site_name_becomes_a_name_the_gateway_takes():
    assert tag_name("ACME Shop") == "acme-shop"
    assert tag_name("Bücher.de") == "bucher-de"
    assert tag_name("  ../../etc/passwd ") == "etc-passwd"
    assert tag_name("x%y!z@evil:1") == "x-y-z-evil-1"  # nothing that routes
    assert tag_name("!!!") == ""
    assert len(tag_name("a" * 100)) == 32
    # where the gateway's delimiter is '-', a name cannot hold it: the words are joined with '_'
    assert tag_name("ACME Shop", "-") == "acme_shop" and tag_name("my-shop.example", "-") == "my_shop_example"
    assert tag_name("ACME Shop", "_") == "acme-shop" and tag_name("ACME Shop", "=") == "acme-shop"
    # whatever is typed, under any delimiter the gateway may have, the name is one the gateway takes
    from sendergate.policy.tags import DELIMITERS, check_name
    for delimiter in DELIMITERS:
        for site in ("ACME Shop", "my-shop_example.de", "a+b=c-d_e", "Bücher & Co.", "--x--", "9 Lives", "x" * 40):
            name = tag_name(site, delimiter)
            assert delimiter not in name and check_name(name, delimiter) == name, (site, delimiter, name)


def test_a_sender_that_looks_like_html_is_shown_as_text():
    # what a stranger writes in MAIL FROM ("<img ...>"@x, quoted) must not become markup in the tooltip
    from sendergate.desktop.api_client import Tag
    from sendergate.desktop.models.tags import senders_text, senders_tooltip
    tag = Tag.from_json({"id": 1, "address": "alice+acme@example.org", "name": "acme", "status": "live",
                         "senders": [{"sender": '"<img src=x><b>bank</b>"@evil.example', "count": 3},
                                     {"sender": "news@acme.example", "count": 1}]})
    tip = senders_tooltip(tag)
    assert "<img" not in tip and "<b>" not in tip and "&lt;img src=x&gt;&lt;b&gt;bank&lt;/b&gt;" in tip
    assert tip.startswith("<qt>") and "news@acme.example: 1" in tip
    assert senders_text(tag).startswith('"<img src=x><b>bank</b>"@evil.example (3)')  # a plain-text cell


@pytest.fixture
def dash_gateway():
    """A gateway whose recipient delimiter is '-' (alice-acme@…), as tests/test_tags_cli.py configures it."""
    g = GatewayProcess(extra={"domains": {"recipient_delimiter": "-"}})
    seeded = seed(g.store, events=10, pending=0)
    g.start()
    try:
        yield g, seeded
    finally:
        g.close()


def test_where_the_delimiter_is_a_dash_the_name_is_joined_with_an_underscore(qtbot, dash_gateway, window_for):
    g, seeded = dash_gateway
    api = GatewayClient(g.http_url, seeded.token)
    assert api.me().recipient_delimiter == "-"  # GET /me tells the app
    # what must not happen again: the name the app used to make is one this gateway refuses
    try:
        api.add_tag(seeded.address, "acme-shop")
        raise AssertionError("the gateway took a name holding its delimiter")
    except ApiError as exc:
        assert exc.status == 422 and "delimiter" in str(exc)
    w = window_for(g, seeded)
    page = loaded(qtbot, w)
    qtbot.keyClicks(page.name_edit, "ACME Shop")
    assert page.preview.text().endswith("acme_shop")
    qtbot.mouseClick(page.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=TIMEOUT)
    [tag] = api.tags()
    assert tag.name == "acme_shop" and tag.address == "alice-acme_shop@example.org"
    assert QGuiApplication.clipboard().text() == tag.address
    assert send(g, "news@acme.example", tag.address)[0] == 250  # the address works
    assert g.events()[-1].tag == "acme_shop"
    api.close()


def test_the_default_delimiter_is_told_too(seeded_gateway):
    g, seeded = seeded_gateway
    api = GatewayClient(g.http_url, seeded.token)
    me = api._call("GET", "/me")
    api.close()
    assert me["recipient_delimiter"] == "+"


def row_of(page, name):
    return next(r for r in range(page.model.rowCount()) if page.model.records()[r].name == name)


def select_tag(page, name):
    """Select the row of the tag `name` as a click would (through the sorting proxy)."""
    index = page.proxy.mapFromSource(page.model.index(row_of(page, name), 0))
    page.table.selectRow(index.row())


def test_the_page_follows_mail_to_its_addresses_live(qtbot, fresh_gateway, window_for):
    """Mail by a sign-up address updates that row from the stream (received, refused, senders, status) without
    F5 and without reading the whole list again; the selected address's recent mail (GET /events?tag=) grows
    live; an address made elsewhere appears with its first mail."""
    g, seeded = fresh_gateway
    api = GatewayClient(g.http_url, seeded.token)
    acme, shop = api.add_tag(seeded.address, "acme"), api.add_tag(seeded.address, "shop")
    assert send(g, "deals@shop.example", shop.address, "Old news")[0] == 250
    w = window_for(g, seeded)
    qtbot.waitUntil(lambda: w.connection_state == "online", timeout=TIMEOUT)
    page = loaded(qtbot, w)
    lists, rows = [], []
    tags, tag = page.client.tags, page.client.tag
    page.client.tags = lambda *a, **k: lists.append(a) or tags(*a, **k)
    page.client.tag = lambda tag_id: rows.append(tag_id) or tag(tag_id)
    select_tag(page, "shop")
    qtbot.waitUntil(lambda: page.recent_model.rowCount() == 1, timeout=TIMEOUT)
    assert page.recent_model.event_at(0).subject == "Old news"
    select_tag(page, "acme")
    qtbot.waitUntil(lambda: not page.recent_model.loading, timeout=TIMEOUT)
    assert page.recent_model.rowCount() == 0 and acme.address in page.recent_label.text()

    for sender, subject in (("news@acme.example", "Welcome"), ("news@acme.example", "Offers"),
                            ("partner@resold-list.example", "You may like")):
        assert send(g, sender, acme.address, subject)[0] == 250
    qtbot.waitUntil(lambda: cell(page, row_of(page, "acme"), "Mail received") == 3, timeout=TIMEOUT)
    r = row_of(page, "acme")
    assert cell(page, r, "From").startswith("news@acme.example (2), partner@resold-list.example (1)")
    assert cell(page, r, "Last mail").startswith("Today")
    assert cell(page, row_of(page, "shop"), "Mail received") == 1
    qtbot.waitUntil(lambda: page.recent_model.rowCount() == 3, timeout=TIMEOUT)  # the selected one's, live
    assert [page.recent_model.event_at(i).subject for i in range(3)] == ["You may like", "Offers", "Welcome"]
    assert page.selected() is not None and page.selected().name == "acme"  # the selection stays
    assert lists == [] and set(rows) == {acme.id}  # that row alone was read again, never the whole list
    assert len(rows) <= 3 and page.live_reloads == 0

    # revoked on another device: the next mail to it is refused, and the row says so
    api.revoke_tag(acme.id)
    assert send(g, "news@acme.example", acme.address, "After")[0] == 550
    qtbot.waitUntil(lambda: cell(page, row_of(page, "acme"), "Status") == "Revoked", timeout=TIMEOUT)
    assert cell(page, row_of(page, "acme"), "Refused") == 1
    assert lists == []

    # made on another device: its first mail brings it to the page (one reload)
    fresh = api.add_tag(seeded.address, "fresh")
    assert send(g, "hello@fresh.example", fresh.address, "First")[0] == 250
    qtbot.waitUntil(lambda: any(t.name == "fresh" for t in page.model.records()), timeout=TIMEOUT)
    assert cell(page, row_of(page, "fresh"), "Mail received") == 1
    assert page.live_reloads == 1 and len(lists) == 1
    assert page.selected() is not None and page.selected().name == "acme"
    api.close()


def test_mail_by_many_addresses_at_once_is_one_read_applied_in_place(qtbot, fresh_gateway, window_for):
    """More rows than LIVE_ROWS_MAX changed at once: one read of the whole list, applied row by row (no reset:
    the selection and the view stay, the GUI thread is not held for the whole list at once)."""
    from datetime import datetime, timezone

    from sendergate.desktop.pages.tags import LIVE_ROWS_MAX
    from sendergate.policy.decide import EventRecord, Verdict

    g, seeded = fresh_gateway
    names = [f"site{i:02d}" for i in range(LIVE_ROWS_MAX + 8)]
    for name in names:
        g.store.add_tag(seeded.user_id, seeded.address, name)
    w = window_for(g, seeded)
    qtbot.waitUntil(lambda: w.connection_state == "online", timeout=TIMEOUT)
    page = loaded(qtbot, w)
    assert page.model.rowCount() == len(names)
    select_tag(page, "site03")
    lists, rows, resets = [], [], []
    tags, tag = page.client.tags, page.client.tag
    page.client.tags = lambda *a, **k: lists.append(a) or tags(*a, **k)
    page.client.tag = lambda tag_id: rows.append(tag_id) or tag(tag_id)
    page.model.modelReset.connect(lambda: resets.append(1))
    chosen = names[: LIVE_ROWS_MAX + 4]
    now = datetime.now(timezone.utc)
    g.store.add_events([EventRecord(ts=now, verdict=Verdict.DELIVERED, reason="sign-up address", user_id=seeded.user_id,
                                    sender=f"news@{n}.example", recipient=f"alice+{n}@example.org", tag=n)
                        for n in chosen])
    qtbot.waitUntil(lambda: all(t.received == (1 if t.name in chosen else 0) for t in page.model.records()),
                    timeout=TIMEOUT)
    qtbot.waitUntil(lambda: not page._live_busy, timeout=TIMEOUT)
    assert len(lists) == 1 and rows == [] and page.live_reloads == 1
    assert resets == []  # changed in place
    assert page.selected() is not None and page.selected().name == "site03"
    assert page.recent_model.rowCount() == 1  # the selected one's mail arrived live too


@pytest.fixture
def two_users_gateway():
    """Alice (seeded) and Bob, each with a sign-up address named acme, and an admin (whose token is returned)."""
    g = GatewayProcess()
    seeded = seed(g.store, events=20, pending=1)
    bob, _ = g.store.add_user("bob@example.org", name="Bob Builder")
    _, admin_token = g.store.add_user("owner@example.org", name="Olga Owner", admin=True)
    alices = g.store.add_tag(seeded.user_id, seeded.address, "acme")
    bobs = g.store.add_tag(bob.id, "bob@example.org", "acme")
    g.start()
    try:
        yield g, seeded, admin_token, alices, bobs
    finally:
        g.close()


def test_an_admins_page_follows_each_persons_address_of_the_same_name(qtbot, two_users_gateway, window_for):
    """An admin sees everyone's sign-up addresses: mail to Bob's acme refreshes Bob's row only, and the recent
    mail of Alice's acme is Alice's (GET /events?tag=acme&user=her id), not Bob's."""
    from sendergate.desktop.api_client import Me

    g, seeded, admin_token, alices, bobs = two_users_gateway
    w = window_for(g, replace(seeded, token=admin_token))
    qtbot.waitUntil(lambda: w.connection_state == "online", timeout=TIMEOUT)
    page = loaded(qtbot, w)
    qtbot.waitUntil(lambda: isinstance(page.me, Me) and page.me.role == "admin", timeout=TIMEOUT)
    assert sorted(t.owner_address for t in page.model.records()) == ["alice@example.org", "bob@example.org"]
    rows = []
    tag = page.client.tag
    page.client.tag = lambda tag_id: rows.append(tag_id) or tag(tag_id)
    alice_row = next(r for r in range(page.proxy.rowCount())
                     if page.proxy.index(r, 1).data() == alices["address"])
    page.table.selectRow(alice_row)
    assert page.selected().id == alices["id"]
    qtbot.waitUntil(lambda: not page.recent_model.loading, timeout=TIMEOUT)

    assert send(g, "news@acme.example", bobs["address"], "For Bob")[0] == 250
    qtbot.waitUntil(lambda: next(t.received for t in page.model.records() if t.id == bobs["id"]) == 1,
                    timeout=TIMEOUT)
    qtbot.wait(500)
    assert rows == [bobs["id"]]  # Bob's row alone: the stream says whose the event is
    assert next(t.received for t in page.model.records() if t.id == alices["id"]) == 0
    assert page.recent_model.rowCount() == 0  # Alice's selected: Bob's mail is not hers
    assert send(g, "news@acme.example", alices["address"], "For Alice")[0] == 250
    qtbot.waitUntil(lambda: page.recent_model.rowCount() == 1, timeout=TIMEOUT)
    assert page.recent_model.event_at(0).subject == "For Alice"
    page.table.clearSelection()
    page.table.selectRow(alice_row)  # loaded afresh from the gateway: still hers alone
    qtbot.waitUntil(lambda: not page.recent_model.loading and page.recent_model.rowCount() == 1, timeout=TIMEOUT)
    assert page.recent_model.event_at(0).subject == "For Alice"
