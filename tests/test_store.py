"""The store against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import inspect, select

from sendergate.policy.address import parse
from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import NotFound, Store, StoreError, hash_message_id, hash_secret, queries, schema


@pytest.fixture
def store(store_url: str):
    s = Store(store_url)
    s.migrate()
    yield s
    s.close()


def test_migrations_create_every_table_and_are_idempotent(store: Store) -> None:
    store.migrate()  # a second start does nothing
    names = set(inspect(store.engine).get_table_names())
    assert {t.name for t in schema.metadata.sorted_tables} <= names
    assert "alembic_version" in names


def test_users_tokens_are_hashed(store: Store) -> None:
    user, token = store.add_user("Alice@Example.org", name="Alice", admin=True)
    assert user.addresses == ("alice@example.org",) and user.is_admin
    with store.engine.connect() as conn:
        stored = conn.execute(select(schema.api_tokens.c.token_hash)).scalars().all()
    assert stored == [hash_secret(token)] and token not in stored
    assert store.user_for_token(token).id == user.id
    assert store.user_for_token("wrong") is None
    new = store.rotate_token("alice@example.org")
    assert store.user_for_token(token) is None and store.user_for_token(new).id == user.id
    with pytest.raises(StoreError):
        store.add_user("alice@example.org")
    with pytest.raises(StoreError):
        store.add_user("not-an-address")


def test_recipient_lookup_with_alias_tag_and_catch_all(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    store.add_alias("alice@example.org", "ali@example.org")
    assert store.recipient_user(parse("ALI+news@example.org")) == alice.id
    assert store.recipient_user(parse("nobody@example.org")) is None
    catch, _ = store.add_user("@example.org")
    assert store.recipient_user(parse("nobody@example.org")) == catch.id
    assert store.recipient_user(parse("alice@example.org")) == alice.id


def test_entries_are_idempotent_and_allow_replaces_block(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    e1, created = store.add_entry(alice.id, "block", "bob@friend.example")
    assert created
    e2, created = store.add_entry(alice.id, "allow", "Bob@Friend.example")
    assert created and store.entries(alice.id, "block") == []
    _, created = store.add_entry(alice.id, "allow", "bob+x@friend.example")
    assert not created
    got = store.entries_for_sender(alice.id, parse("bob@friend.example"))
    assert [e.id for e in got] == [e2.id]
    store.add_entry(None, "block", "@friend.example")
    assert {e.action for e in store.entries_for_sender(alice.id, parse("bob@friend.example"))} == {"allow", "block"}
    assert store.remove_entry(e2.id, user_id=alice.id)
    assert not store.remove_entry(e2.id, user_id=alice.id)


def test_import_counts(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    r = store.import_entries(alice.id, ["a@x.example", "A@X.example", "@y.example", "broken", "b@x.example"])
    assert (r["added"], r["present"], r["invalid"]) == (3, 1, 1)
    r = store.import_entries(alice.id, ["a@x.example", "@y.example"])
    assert (r["added"], r["present"], r["invalid"]) == (0, 2, 0)


def test_challenge_is_reused_and_every_link_works(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    c1, t1 = store.open_challenge(alice.id, "alice@example.org", "eve@x.example", ttl=3600, subject="one")
    c2, t2 = store.open_challenge(alice.id, "alice@example.org", "eve@x.example", ttl=3600, subject="two")
    assert c1 == c2 and t1 != t2 and len(t1) == 22
    row1, row2 = store.challenge_by_token(t1), store.challenge_by_token(t2)
    assert row1.id == row2.id == c1 and row2.attempts == 2 and row2.subject == "two"
    assert store.challenge_by_token("x" * 22) is None
    with store.engine.connect() as conn:
        hashes = conn.execute(select(schema.challenge_tokens.c.token_hash)).scalars().all()
    assert t1 not in hashes and hash_secret(t1) in hashes
    c3, _ = store.open_challenge(alice.id, "alice@example.org", "other@x.example", ttl=3600)
    assert c3 != c1
    assert store.expire_challenges(now=10**11) == 2


def test_sent_ids(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    h = hash_message_id("<abc@mail.example>")
    assert h == hash_message_id("abc@mail.example")
    assert store.add_sent_ids(alice.id, [h, h.upper()]) == 1
    assert store.add_sent_ids(alice.id, [h]) == 0
    assert store.has_sent_id(alice.id, [hash_message_id("<nope@x>"), h])
    assert not store.has_sent_id(alice.id, [hash_message_id("<nope@x>")])


def test_events_and_pruning(store: Store) -> None:
    old = EventRecord(ts=datetime(2020, 1, 1, tzinfo=timezone.utc), verdict=Verdict.CHALLENGED, reason="old")
    new = EventRecord(ts=datetime.now(timezone.utc), verdict=Verdict.DELIVERED, reason="new", subject="é" * 2000)
    ids = store.add_events([old, new])
    assert len(ids) == 2 and ids[0] < ids[1]
    assert store.prune_events(datetime(2021, 1, 1, tzinfo=timezone.utc).timestamp()) == 1
    with store.engine.connect() as conn:
        rows = conn.execute(select(schema.events)).all()
    assert [r.reason for r in rows] == ["new"]


def test_concurrent_writers_lose_nothing(store: Store) -> None:
    errors: list[Exception] = []

    def writer(n: int) -> None:
        try:
            for i in range(50):
                store.add_events([EventRecord(ts=datetime.now(timezone.utc), verdict=Verdict.BULK, reason=f"{n}-{i}")])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with store.engine.connect() as conn:
        assert conn.execute(select(schema.events.c.id)).all().__len__() == 200


def test_user_removal_takes_their_data(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    store.add_entry(alice.id, "allow", "bob@x.example")
    store.open_challenge(alice.id, "alice@example.org", "eve@x.example", ttl=60)
    store.remove_user("alice@example.org")
    with pytest.raises(NotFound):
        store.user_by_address("alice@example.org")
    with store.engine.connect() as conn:
        assert conn.execute(select(schema.list_entries)).all() == []
        assert conn.execute(select(schema.challenge_tokens)).all() == []


def test_settings_are_created_once(store: Store) -> None:
    a = store.get_setting("secret", lambda: "first")
    b = store.get_setting("secret", lambda: "second")
    assert a == b == "first"


def test_text_search_finds_only_the_callers_matches_newest_first(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    bob, _ = store.add_user("bob@example.org")
    now = datetime.now(timezone.utc)
    records = [EventRecord(ts=now, verdict=Verdict.DELIVERED, reason="t", user_id=(alice.id, bob.id)[i % 2],
                           sender=f"s{i}@example.net", subject=("Zebra news " if i % 3 == 0 else "other ") + str(i))
               for i in range(60)]
    ids = store.add_events(records)
    for user in (alice, bob):
        want = [i for i, r in sorted(zip(ids, records), reverse=True) if r.user_id == user.id and "Zebra" in r.subject]
        rows, cursor = queries.events_page(store, user.id, q="zEBRA", limit=100, window=1000)
        assert [r["id"] for r in rows] == want and cursor is None
        rows, cursor = queries.events_page(store, user.id, q="zebra", limit=3, window=1000)
        assert [r["id"] for r in rows] == want[:3] and cursor == want[2]
        mine = [i for i, r in sorted(zip(ids, records), reverse=True) if r.user_id == user.id]
        # in steps of 4 events: the same answer, whatever the step
        rows, cursor = queries.events_page(store, user.id, q="zebra", limit=100, window=1000, budget=None, step=4)
        assert [r["id"] for r in rows] == want and cursor is None
        # the window caps what one call reads: the matches among the newest 13, then go on below them
        rows, cursor = queries.events_page(store, user.id, q="zebra", limit=100, window=13, budget=None, step=4)
        assert [r["id"] for r in rows] == [i for i in want if i >= mine[12]] and cursor == mine[12]
        # out of time after the first step: its matches, and go on below it
        rows, cursor = queries.events_page(store, user.id, q="zebra", limit=100, budget=0, step=10)
        assert [r["id"] for r in rows] == [i for i in want if i >= mine[9]] and cursor == mine[9]
        rows, cursor = queries.events_page(store, user.id, q="zebra", limit=100, before_id=cursor, budget=0, step=10)
        assert [r["id"] for r in rows] == [i for i in want if mine[19] <= i < mine[9]] and cursor == mine[19]
