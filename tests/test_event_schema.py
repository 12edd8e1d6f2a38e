"""The event is declared once, as policy.decide.EventRecord (issue 14 item 4). The store writes its
fields (the events table and the row the store builds are derived from it), and everything that spells
the fields out again is checked against it here: the events table, the API's Event model, and the
desktop client's Event, EVENT_FIELDS and _EVENT_DEFAULTS. A field added to or dropped from any of them
fails a test here."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime, timezone
from typing import Any

from sendergate.desktop import api_client
from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import Store, schema
from sendergate.store.events import event_row
from sendergate.web import models

RECORD = {f.name for f in dataclasses.fields(EventRecord)}
STORED = {"id", *RECORD}  # what the store keeps and the API gives: the record and the event's id
RECORD_TYPES = typing.get_type_hints(EventRecord)


def admits_none(annotation: Any) -> bool:
    return isinstance(annotation, types.UnionType) and type(None) in annotation.__args__ \
        or typing.get_origin(annotation) is typing.Union and type(None) in typing.get_args(annotation)


def nullable_fields() -> set[str]:
    return {name for name in RECORD if admits_none(RECORD_TYPES[name])}


def test_the_events_table_stores_the_record() -> None:
    columns = schema.events.c
    assert set(columns.keys()) == STORED
    assert set(schema.EVENT_COLUMNS) == RECORD and len(schema.EVENT_COLUMNS) == len(RECORD)
    assert {c.name for c in columns if c.nullable and not c.primary_key} == nullable_fields()


def test_the_row_the_store_writes_is_the_record() -> None:
    record = EventRecord(ts=datetime(2026, 3, 10, tzinfo=timezone.utc), verdict=Verdict.SPAM, reason="r",
                         sender="s" * 400, details={"spf": "pass"})
    row = event_row(record)
    assert set(row) == RECORD
    assert row["verdict"] == "spam" and row["details"] == '{"spf":"pass"}' and len(row["sender"]) == 320


def test_the_api_gives_what_the_store_keeps(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path}/state.db")
    store.migrate()
    try:
        store.add_events([EventRecord(ts=datetime.now(timezone.utc), verdict=Verdict.DELIVERED, reason="r")])
        [item], _ = store.events_page(None)
    finally:
        store.close()
    assert set(item) == STORED
    model = models.Event.model_validate({**item, "ts": datetime.now(timezone.utc)})
    assert set(model.model_dump()) == STORED


def test_the_api_model_is_the_record() -> None:
    fields = models.Event.model_fields
    assert set(fields) == STORED
    assert {name for name, f in fields.items() if name != "id" and admits_none(f.annotation)} == nullable_fields()


def test_the_desktop_client_is_the_record() -> None:
    # the app shows a user's own events (an admin's are everyone's): whose they are it does not keep
    kept = STORED - set(api_client.EVENT_NOT_KEPT)
    assert set(api_client.EVENT_NOT_KEPT) <= STORED
    desktop = typing.get_type_hints(api_client.Event)
    assert set(desktop) == kept
    assert set(api_client.EVENT_FIELDS) == kept and len(api_client.EVENT_FIELDS) == len(kept)
    # every field the API may leave out has a default; id, ts and verdict it always gives
    assert set(api_client._EVENT_DEFAULTS) == kept - {"id", "ts", "verdict"}
    assert {n for n in kept if n != "id" and admits_none(desktop[n])} == nullable_fields() & kept
    # the full record and back: a field to_row or from_row leaves out shifts the tuple
    row = api_client.event_rows([{"id": 1, "ts": "2026-03-10T00:00:00Z", "verdict": "spam", "size": 7,
                                  "challenge_id": 3, "details": {"spf": "pass"}}])[0]
    assert api_client.Event.from_row(row).to_row() == row
    event = api_client.Event.from_json({"id": 1, "ts": "2026-03-10T00:00:00Z", "verdict": "spam", "helo": "h"})
    assert (event.helo, event.sender, event.size, event.details) == ("h", "", None, {})


def test_every_verdict_is_known_to_the_app() -> None:
    """A verdict the policy adds (SPEC §4.3, e.g. `observed`) is shown, filtered, counted and coloured by the app."""
    import os
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from sendergate.desktop.models.base import verdict_label
    from sendergate.desktop.pages.overview import COLOURS
    from sendergate.policy.decide import VERDICTS

    assert sorted(api_client.VERDICTS) == sorted(VERDICTS)
    assert set(VERDICTS) <= set(COLOURS)  # the palette also colours events that are not decisions (confirmed…)
    assert all(verdict_label(v) != v for v in VERDICTS), "each verdict needs a label (and a German translation)"
