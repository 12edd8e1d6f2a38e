"""Every page loads and shows what the seeded gateway holds; qtmodeltester checks every model."""

from __future__ import annotations

from PySide6.QtCore import Qt

from sendergate.desktop.api_client import GatewayClient
from sendergate.desktop.models import EntriesModel, EventsModel, PendingModel, ScreenedModel
from sendergate.desktop.models.base import RecordRole, verdict_label
from sendergate.desktop.models.events import PAGE_SIZE
from tests.desktop.seed import AUTOMATED, PEOPLE

TIMEOUT = 10_000


def loaded(qtbot, window, key):
    page = window.show_page(key)
    qtbot.waitUntil(lambda: page.loaded, timeout=TIMEOUT)
    return page


def test_overview_shows_today_chart_and_pending(qtbot, seeded_gateway, window_for):
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    page = loaded(qtbot, w, "overview")
    for verdict, label in page.today_labels.items():
        assert label.text() == str(seeded.today.get(verdict, 0)), verdict
    assert page.pending_label.text() == str(len(seeded.pending))
    series = page.chart.series()
    assert len(series) == 1
    sets = {s.label(): s for s in series[0].barSets()}
    assert verdict_label("delivered") in sets and verdict_label("spam") in sets
    total = sum(int(sum(s.at(i) for i in range(s.count()))) for s in sets.values())
    assert total == sum(seeded.per_verdict.values())  # every seeded decision of alice's is in the chart
    assert series[0].barSets()[0].count() == 30


def test_activity_lists_every_event_newest_first_and_filters(qtbot, seeded_gateway, window_for):
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    page = loaded(qtbot, w, "activity")
    model = page.model
    assert model.rowCount() == min(PAGE_SIZE, sum(seeded.per_verdict.values()))
    while model.canFetchMore():  # what the view does when scrolled to the end
        model.fetchMore()
        qtbot.waitUntil(lambda: not model.loading, timeout=TIMEOUT)
    assert model.rowCount() == sum(seeded.per_verdict.values())
    ids = [model.event_at(r).id for r in range(model.rowCount())]
    assert ids == sorted(ids, reverse=True)

    page.chips["spam"].setChecked(True)
    qtbot.waitUntil(lambda: not model.loading and model.rowCount() == seeded.per_verdict["spam"], timeout=TIMEOUT)
    assert {model.event_at(r).verdict for r in range(model.rowCount())} == {"spam"}
    page.chips["virus"].setChecked(True)
    want = seeded.per_verdict["spam"] + seeded.per_verdict["virus"]
    qtbot.waitUntil(lambda: not model.loading and model.rowCount() == want, timeout=TIMEOUT)
    page.chips["spam"].setChecked(False)
    page.chips["virus"].setChecked(False)

    qtbot.keyClicks(page.search, "parcel-tracker")
    qtbot.waitUntil(lambda: not model.loading and model.query == "parcel-tracker" and model.rowCount() > 0,
                    timeout=TIMEOUT)
    assert all("parcel-tracker" in model.event_at(r).sender for r in range(model.rowCount()))

    page.table.selectRow(0)
    details = page.details.toPlainText()
    event = model.event_at(0)
    assert event.reason in details and event.subject in details


def test_activity_context_menu_has_the_row_actions(qtbot, seeded_gateway, window_for):
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    page = loaded(qtbot, w, "activity")
    texts = [a.text() for a in page.table.actions()]
    assert texts == ["Allow sender", "Allow sender's domain", "Block sender", "History of this sender…"]


def test_pending_screened_and_lists_show_the_seeded_data(qtbot, seeded_gateway, window_for):
    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    pending = loaded(qtbot, w, "pending")
    assert {(c.id, c.sender, c.subject) for c in pending.model.records()} == set(seeded.pending)
    assert "(6)" in w.nav.item(2).text()
    assert w.tray.pending == len(seeded.pending)

    screened = loaded(qtbot, w, "screened")
    groups = {grp.sender: grp for grp in screened.model.records()}
    automated = {s for s, _ in AUTOMATED}
    assert set(groups) <= automated and len(groups) >= 4
    for grp in groups.values():
        assert grp.count == grp.screened + grp.bulk > 0 and grp.latest_subject

    allow = loaded(qtbot, w, "allowlist")
    assert {e.entry for e in allow.model.records()} == set(PEOPLE[:5]) | {"@harbour-studio.co.uk"}
    allow.search.setText("harbour")
    assert allow.proxy.rowCount() == 2
    block = loaded(qtbot, w, "blocklist")
    assert {e.entry for e in block.model.records()} == set(seeded.block)
    imp = w.show_page("import")
    assert imp.key == "import" and w.nav.item(6).text() == "Import"


def test_activity_model_pages_through_everything_with_bounded_memory(qtbot, qtmodeltester, seeded_gateway):
    g, seeded = seeded_gateway
    client = GatewayClient(g.http_url, seeded.token)
    model = EventsModel(client, page_size=37, keep_pages=2)
    model.reload()
    qtbot.waitUntil(lambda: model.rowCount() == 37 and not model.loading, timeout=TIMEOUT)
    while model.canFetchMore():
        model.fetchMore()
        qtbot.waitUntil(lambda: not model.loading, timeout=TIMEOUT)
    total = sum(seeded.per_verdict.values())
    assert model.rowCount() == total
    assert model.loaded_pages() == 2  # older pages were let go
    # an old page comes back when shown: first a placeholder, then the rows
    assert model.data(model.index(0, 0)) == "Loading…"
    qtbot.waitUntil(lambda: model.event_at(0) is not None, timeout=TIMEOUT)
    assert model.event_at(0).id == max(model.event_at(0).id, model.event_at(1).id)
    qtmodeltester.check(model, force_py=True)
    client.close()


def test_qtmodeltester_on_every_model(request, qtbot, seeded_gateway, window_for):
    from pytestqt.modeltest import ModelTester

    def check(model):  # one tester per model: a tester keeps per-model state between signals
        tester = ModelTester(request.config)
        tester.check(model, force_py=True)
        return tester

    g, seeded = seeded_gateway
    w = window_for(g, seeded)
    testers = []
    for key in ("activity", "pending", "screened", "allowlist", "blocklist"):
        page = loaded(qtbot, w, key)
        assert page.model.rowCount() > 0, key
        testers.append(check(page.model))
        if getattr(page, "proxy", None) is not None:
            testers.append(check(page.proxy))
    for empty in (EventsModel(), PendingModel(), ScreenedModel(), EntriesModel()):
        testers.append(check(empty))
    # the testers stay connected while the models change: a refresh of each page is checked too
    for key in ("activity", "pending", "screened", "allowlist", "blocklist"):
        w.pages[key].loaded = False
        w.pages[key].refresh()
        qtbot.waitUntil(lambda: w.pages[key].loaded or w.pages[key].model.rowCount() > 0, timeout=TIMEOUT)
    record = w.pages["pending"].model.index(0, 0).data(RecordRole)
    assert record.status == "pending"
    assert w.pages["pending"].model.headerData(0, Qt.Orientation.Horizontal) == "Sender"


def test_geometry_and_page_remembered_and_keyboard_navigation(qtbot, seeded_gateway, settings):
    from tests.desktop.conftest import open_main_window
    g, seeded = seeded_gateway
    w = open_main_window(qtbot, g.http_url, seeded.token, settings)
    qtbot.keyClick(w, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)  # Cmd+3 on macOS
    assert w.current_page().key == "pending"
    w.resize(760, 540)  # the offscreen screen is 800 x 600; restoreGeometry keeps windows on screen
    qtbot.waitUntil(lambda: (w.width(), w.height()) == (760, 540))  # the pages fit a small screen
    size = (w.width(), w.height())
    w.stream.stop()
    w.close()
    again = open_main_window(qtbot, g.http_url, seeded.token, settings)
    assert (again.width(), again.height()) == size
    assert again.current_page().key == "pending"
    for widget in (again.nav, again.pages["pending"].table, again.pages["activity"].search,
                   again.pages["allowlist"].entry_edit):
        assert widget.accessibleName(), widget
    again.stream.stop()
    again.close()


def test_activity_search_goes_on_through_short_windows_without_freezing(qtbot, qtmodeltester):
    """A rare word only in old events: the gateway answers empty search pages with a cursor, and the
    model keeps fetching (in the background) until it has the matches, then stops at the end."""
    import time as _time

    from sendergate.store import SEARCH_WINDOW
    from sendergate.store import schema as store_schema
    from tests.support.gateway import GatewayProcess

    g = GatewayProcess()
    user, token = g.store.add_user("searcher@example.org")
    now = _time.time()
    with g.store.engine.begin() as conn:
        rows = [{"ts": now, "user_id": user.id, "verdict": "spam", "reason": "test", "sender": f"o{i}@old.test",
                 "recipient": "searcher@example.org", "subject": f"zebra {i}"} for i in range(3)]
        rows += [{"ts": now, "user_id": user.id, "verdict": "delivered", "reason": "test",
                  "sender": f"f{i}@filler.test", "recipient": "searcher@example.org", "subject": f"filler {i}"}
                 for i in range(2 * SEARCH_WINDOW + 10)]
        conn.execute(store_schema.events.insert(), rows)
    g.start()
    client = GatewayClient(g.http_url, token)
    try:
        model = EventsModel(client)
        first_pages = []
        model.first_page_loaded.connect(lambda: first_pages.append(model.rowCount()))
        model.set_filter((), "zebra")
        qtbot.waitUntil(lambda: model.rowCount() == 3 and not model.loading, timeout=TIMEOUT)
        assert [model.event_at(r).subject for r in range(3)] == ["zebra 2", "zebra 1", "zebra 0"]
        assert first_pages == [0]  # the first (empty) window was announced once, then the model went on
        assert not model.canFetchMore()  # the whole history was read: no endless loop of empty pages
        qtmodeltester.check(model, force_py=True)
    finally:
        client.close()
        g.close()
