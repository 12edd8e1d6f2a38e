"""The store against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from sendergate.policy.address import parse
from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import NotFound, Store, StoreError, hash_message_id, hash_secret, schema


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
    assert store.user_id_for_token(token) == user.id
    assert store.user_id_for_token("wrong") is None
    new = store.rotate_token("alice@example.org")
    assert store.user_id_for_token(token) is None and store.user_id_for_token(new) == user.id
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
    with pytest.raises(NotFound):  # not alice's to remove
        store.remove_entry(alice.id, "block", e2.id)
    store.remove_entry(alice.id, "allow", e2.id)
    with pytest.raises(NotFound):
        store.remove_entry(alice.id, "allow", e2.id)


def test_import_counts(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    r = store.import_entries(alice.id, ["a@x.example", "A@X.example", "@y.example", "broken", "b@x.example"])
    assert (r["added"], r["present"], r["invalid"]) == (3, 1, 1)
    r = store.import_entries(alice.id, ["a@x.example", "@y.example"])
    assert (r["added"], r["present"], r["invalid"]) == (0, 2, 0)


def test_bulk_import_keeps_what_one_by_one_adding_does(store: Store) -> None:
    """import_entries works in batches (issue 18); per entry it must still do what add_entry does: lift the
    same exact block, make a temporary allow permanent, keep other users' and global entries apart, and
    report each input in order (a repeat is present, an invalid one says why)."""
    from sendergate.store.lists import IMPORT_BATCH
    alice, _ = store.add_user("alice@example.org")
    bob, _ = store.add_user("bob@example.org")
    n = IMPORT_BATCH * 2 + 7  # three batches
    many = [f"p{i:04d}@bulk.example" for i in range(n)]
    store.add_entry(alice.id, "block", many[IMPORT_BATCH + 3])
    temp, _ = store.add_entry(alice.id, "allow", many[-1], expires_at=time.time() + 3600)
    store.add_entry(bob.id, "allow", many[0])
    store.add_entry(None, "allow", many[1])
    store.add_entry(alice.id, "block", "@blocked.example")
    r = store.import_entries(alice.id, [*many, "P0000@Bulk.example", "nope", "@blocked.example"], note="n")
    assert (r["added"], r["present"], r["invalid"]) == (n, 2, 1)
    assert [x["status"] for x in r["results"]] == ["added"] * (n - 1) + ["present", "present", "invalid", "added"]
    assert r["results"][-2] == {"entry": "nope", "status": "invalid", "error": r["results"][-2]["error"]}
    assert r["results"][-2]["error"]
    allowed = {str(e.pattern): e for e in store.entries(alice.id, "allow")}
    assert set(allowed) == {*many, "@blocked.example"}
    assert allowed[many[-1]].id == temp.id and allowed[many[-1]].expires_at is None  # made permanent
    assert store.entries(alice.id, "block") == []  # both blocks lifted
    assert [str(e.pattern) for e in store.entries(bob.id, "allow")] == [many[0]]
    assert store.import_entries(alice.id, many)["added"] == 0


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
        want = [i for i, r in sorted(zip(ids, records, strict=True), reverse=True)
                if r.user_id == user.id and "Zebra" in r.subject]
        rows, cursor = store.events_page(user.id, q="zEBRA", limit=100, window=1000)
        assert [r["id"] for r in rows] == want and cursor is None
        rows, cursor = store.events_page(user.id, q="zebra", limit=3, window=1000)
        assert [r["id"] for r in rows] == want[:3] and cursor == want[2]
        mine = [i for i, r in sorted(zip(ids, records, strict=True), reverse=True) if r.user_id == user.id]
        # in steps of 4 events: the same answer, whatever the step
        rows, cursor = store.events_page(user.id, q="zebra", limit=100, window=1000, budget=None, step=4)
        assert [r["id"] for r in rows] == want and cursor is None
        # the window caps what one call reads: the matches among the newest 13, then go on below them
        rows, cursor = store.events_page(user.id, q="zebra", limit=100, window=13, budget=None, step=4)
        assert [r["id"] for r in rows] == [i for i in want if i >= mine[12]] and cursor == mine[12]
        # out of time after the first step: its matches, and go on below it
        rows, cursor = store.events_page(user.id, q="zebra", limit=100, budget=0, step=10)
        assert [r["id"] for r in rows] == [i for i in want if i >= mine[9]] and cursor == mine[9]
        rows, cursor = store.events_page(user.id, q="zebra", limit=100, before_id=cursor, budget=0, step=10)
        assert [r["id"] for r in rows] == [i for i in want if mine[19] <= i < mine[9]] and cursor == mine[19]


# -- closing the doors around the gate (SPEC §4.5; issue 12) ---------------------------------------------------
def _challenge_row(store: Store, cid: int):  # type: ignore[no-untyped-def]
    with store.engine.connect() as conn:
        return conn.execute(select(schema.challenges).where(schema.challenges.c.id == cid)).first()


def test_a_block_ends_the_pending_challenges_it_covers(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    bob, _ = store.add_user("bob@example.org")
    open_ = lambda u, sender: store.open_challenge(u.id, "x@example.org", sender, ttl=3600)[0]  # noqa: E731
    by_address, same_domain = open_(alice, "eve@spam.example"), open_(alice, "mallory@spam.example")
    sub_domain, other = open_(alice, "x@mail.spam.example"), open_(alice, "eve@notspam.example")
    bobs = open_(bob, "eve@spam.example")
    store.add_entry(alice.id, "block", "eve@spam.example")
    assert _challenge_row(store, by_address).status == "denied"
    assert _challenge_row(store, same_domain).status == "pending" and _challenge_row(store, bobs).status == "pending"
    store.add_entry(alice.id, "block", "@spam.example")  # covers its subdomains, not look-alike domains
    assert _challenge_row(store, same_domain).status == "denied"
    assert _challenge_row(store, sub_domain).status == "denied"
    assert _challenge_row(store, other).status == "pending" and _challenge_row(store, bobs).status == "pending"
    store.add_entry(None, "block", "eve@spam.example")  # a global block ends everyone's
    assert _challenge_row(store, bobs).status == "denied"


def test_a_confirmation_never_lifts_a_block_and_records_the_authentication(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    record = EventRecord(ts=datetime.now(timezone.utc), verdict=Verdict.CHALLENGED, reason="unknown sender",
                         sender="friend@friend.example", recipient="alice@example.org", user_id=alice.id,
                         details={"spf": "pass", "dkim": "pass", "dmarc": "pass",
                                  "auth": {"spf_domain": "friend.example", "dkim_pass": ["friend.example"]}})
    with store.engine.begin() as conn:
        cid, _ = store.challenge_event_tx(conn, record, "friend@friend.example", 3600, "t" * 22)
    assert _challenge_row(store, cid).auth == "spf=pass:friend.example dkim=pass:friend.example dmarc=pass"
    assert store.confirm(cid)
    [entry] = store.entries_page(alice.id, "allow")[0]
    assert entry["source"] == "confirmed"
    assert entry["auth"] == "spf=pass:friend.example dkim=pass:friend.example dmarc=pass"

    # a block that exists when the answer comes (made on another node meanwhile, or by a domain rule)
    stranger, _ = store.open_challenge(alice.id, "alice@example.org", "eve@spam.example", ttl=3600)
    with store.engine.begin() as conn:  # written past the store, as a race with another node would leave it
        conn.execute(schema.list_entries.insert().values(user_id=None, action="block", kind="domain",
                                                         value="spam.example", source="manual", note="",
                                                         created_at=0))
    assert not store.confirm(stranger)
    assert _challenge_row(store, stranger).status == "denied"
    assert [e.pattern.value for e in store.entries(alice.id, "allow")] == ["friend@friend.example"]


def test_pending_challenges_per_user_are_capped(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    bob, _ = store.add_user("bob@example.org")
    first = [store.open_challenge(alice.id, "alice@example.org", f"s{i}@flood.example", ttl=3600, max_pending=3)[0]
             for i in range(3)]
    assert None not in first
    late = store.open_challenge(alice.id, "alice@example.org", "late@real.example", ttl=3600, max_pending=3)
    assert late == (None, "")
    # a sender already pending is not new: its challenge is reused; other users have their own cap
    again = store.open_challenge(alice.id, "alice@example.org", "s0@flood.example", ttl=3600, max_pending=3)
    assert again[0] == first[0]
    assert store.open_challenge(bob.id, "bob@example.org", "late@real.example", ttl=3600, max_pending=3)[0]
    # a decided or lapsed challenge makes room
    store.decide_challenge(alice.id, first[1], "deny")
    assert store.open_challenge(alice.id, "alice@example.org", "late@real.example", ttl=3600, max_pending=3)[0]
    with store.engine.begin() as conn:
        conn.execute(schema.challenges.update().where(schema.challenges.c.id == first[2]).values(expires_at=1))
    assert store.open_challenge(alice.id, "alice@example.org", "later@real.example", ttl=3600, max_pending=3)[0]
    assert _challenge_row(store, first[2]).status == "expired"
    # at the cap, the refusal is recorded as tempfail with the reason, no challenge and no link
    record = EventRecord(ts=datetime.now(timezone.utc), verdict=Verdict.CHALLENGED, reason="unknown sender",
                         sender="flood9@flood.example", recipient="alice@example.org", user_id=alice.id)
    with store.engine.begin() as conn:
        assert store.challenge_event_tx(conn, record, "flood9@flood.example", 3600, "u" * 22, 3) == (None, "")
    with store.engine.connect() as conn:
        ev = conn.execute(select(schema.events).order_by(schema.events.c.id.desc())).first()
    assert ev.verdict == "tempfail" and "cap (3)" in ev.reason and ev.challenge_id is None


def test_expired_challenges_are_pruned_with_their_tokens_and_captchas(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    old, old_token = store.open_challenge(alice.id, "alice@example.org", "old@x.example", ttl=60)
    recent, recent_token = store.open_challenge(alice.id, "alice@example.org", "recent@x.example", ttl=60)
    store.issue_captcha(old, "n" * 22, "123456")
    with store.engine.begin() as conn:
        conn.execute(schema.challenges.update().where(schema.challenges.c.id == old).values(expires_at=1000.0))
        conn.execute(schema.challenges.update().where(schema.challenges.c.id == recent).values(expires_at=5000.0))
    store.add_events([EventRecord(ts=datetime.now(timezone.utc), verdict=Verdict.CHALLENGED, reason="t",
                                  user_id=alice.id, challenge_id=old)])
    assert store.prune_challenges(2000.0) == 1
    assert store.challenge_by_token(old_token) is None and store.challenge_by_token(recent_token) is not None
    with store.engine.connect() as conn:
        tokens = schema.challenge_tokens
        assert conn.execute(select(tokens).where(tokens.c.challenge_id == old)).all() == []
        assert conn.execute(select(schema.captchas)).all() == []
        assert [e.challenge_id for e in conn.execute(select(schema.events)).all()] == [old]  # events stay
    assert store.prune_challenges(2000.0) == 0


def test_confirmation_rate_limits_are_counted_in_the_store(store_url: str) -> None:
    a, b = Store(store_url), Store(store_url)  # two nodes
    a.migrate()
    try:
        now = 1_000_000.0
        assert [(a, b)[i % 2].rate_hit("answer-ip:192.0.2.1", 3, 600, now + i) for i in range(3)] == [0, 0, 0]
        wait = a.rate_hit("answer-ip:192.0.2.1", 3, 600, now + 3)
        assert 500 < wait <= 660
        assert b.rate_hit("answer-ip:192.0.2.1", 3, 600, now + 4) > 0  # the refused hits were not counted ...
        assert b.rate_hit("answer-ip:192.0.2.2", 3, 600, now + 4) == 0
        assert a.rate_hit("answer-ip:192.0.2.1", 3, 600, now + 700) == 0  # ... so the window ends on time
        a.prune_rate_limits(now + 10_000)
        with a.engine.connect() as conn:
            assert conn.execute(select(schema.rate_limits)).all() == []
    finally:
        a.close()
        b.close()


def test_concurrent_hits_from_two_nodes_never_exceed_the_limit(store_url: str) -> None:
    nodes = [Store(store_url) for _ in range(2)]
    nodes[0].migrate()
    allowed: list[float] = []
    try:
        def node(i: int) -> None:
            for _ in range(10):
                allowed.append(nodes[i].rate_hit("answer-challenge:1", 7, 600))
        threads = [threading.Thread(target=node, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(1 for w in allowed if w == 0) == 7
    finally:
        for n in nodes:
            n.close()


def test_migration_gate_hardening_keeps_existing_challenges_and_entries(store_url: str) -> None:
    from importlib import resources

    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import text

    s = Store(store_url)
    try:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(resources.files("sendergate.store") / "migrations"))
        with s.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0003")
        with s.engine.begin() as conn:  # a store as the previous release left it
            conn.execute(text("INSERT INTO users (id, name, role, created_at) VALUES (1, 'a', 'user', 0)"))
            conn.execute(text("INSERT INTO challenges (user_id, recipient, sender, status, created_at, updated_at, "
                              "expires_at) VALUES (1, 'a@example.org', 'b@x.example', 'pending', 0, 0, 1e12)"))
            conn.execute(text("INSERT INTO list_entries (user_id, action, kind, value, created_at) "
                              "VALUES (1, 'allow', 'address', 'c@x.example', 0)"))
        s.migrate()
        with s.engine.connect() as conn:
            [ch] = conn.execute(select(schema.challenges)).all()
            [entry] = conn.execute(select(schema.list_entries)).all()
        assert (ch.sender, ch.status, ch.auth) == ("b@x.example", "pending", None)
        assert (entry.value, entry.auth) == ("c@x.example", None)
        with pytest.raises(IntegrityError):  # still one pending challenge per user and sender
            with s.engine.begin() as conn:
                conn.execute(text("INSERT INTO challenges (user_id, recipient, sender, status, created_at, "
                                  "updated_at, expires_at) VALUES (1, 'a@example.org', 'b@x.example', 'pending', "
                                  "0, 0, 1e12)"))
    finally:
        s.close()


def test_one_link_for_several_recipients_respects_each_ones_block_and_cap(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    bob, _ = store.add_user("bob@example.org")
    carol, _ = store.add_user("carol@example.org")
    store.open_challenge(carol.id, "carol@example.org", "other@x.example", ttl=3600)  # carol is at her cap of 1

    def record(user, rcpt):  # type: ignore[no-untyped-def]
        return EventRecord(ts=datetime.now(timezone.utc), verdict=Verdict.CHALLENGED, reason="unknown sender",
                           sender="s@stranger.example", recipient=rcpt, user_id=user.id,
                           details={"spf": "pass", "dkim": "none", "dmarc": "none",
                                    "auth": {"spf_domain": "stranger.example"}})
    records = [record(carol, "carol@example.org"), record(alice, "alice@example.org"), record(bob, "bob@example.org")]
    with store.engine.begin() as conn:
        cids = store.challenge_group_event_tx(conn, records, "s@stranger.example", 3600, "g" * 22, 1)
    assert [r.verdict for r in records] == [Verdict.TEMPFAIL, Verdict.CHALLENGED, Verdict.CHALLENGED]
    assert len(cids) == 2 and records[0].challenge_id is None
    state = store.link_state("g" * 22)  # the link belongs to the first recipient with a challenge
    assert state is not None and state.recipients == ("alice@example.org", "bob@example.org")
    store.add_entry(bob.id, "block", "@stranger.example")
    assert _challenge_row(store, cids[1]).status == "denied"
    state = store.link_state("g" * 22)
    assert store.confirm(state.challenge_id, others=state.others)
    assert [e.pattern.value for e in store.entries(alice.id, "allow")] == ["s@stranger.example"]
    assert store.entries(bob.id, "allow") == []
    [entry] = store.entries_page(alice.id, "allow")[0]
    assert entry["auth"] == "spf=pass:stranger.example dkim=none dmarc=none"


def test_stream_changes_reads_every_event_page_by_page_and_the_changed_challenges(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    ids = store.add_events([EventRecord(ts=datetime.now(timezone.utc), verdict=Verdict.DELIVERED, reason="t",
                                        user_id=alice.id) for _ in range(5)])
    cid, _ = store.open_challenge(alice.id, "alice@example.org", "s@x.example", ttl=60)
    events, changed = store.stream_changes(ids[0], 0.0, page=2)
    assert [e["id"] for e in events] == ids[1:]
    assert [c["id"] for c in changed] == [cid]


def test_migration_devices_keeps_old_tokens_as_the_device_script(store_url: str) -> None:
    """Issue 16: a token issued before pairing keeps working after the upgrade, as the device "script"
    (what `users token` replaces)."""
    from importlib import resources

    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import text

    s = Store(store_url)
    try:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(resources.files("sendergate.store") / "migrations"))
        with s.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0005")
        with s.engine.begin() as conn:  # a store as the previous release left it
            conn.execute(text("INSERT INTO users (id, name, role, created_at) VALUES (1, 'a', 'user', 0)"))
            conn.execute(text("INSERT INTO user_addresses (user_id, address, is_primary) "
                              "VALUES (1, 'a@example.org', 1)"))
            conn.execute(text("INSERT INTO api_tokens (user_id, token_hash, created_at) VALUES (1, :h, 0)"),
                         {"h": hash_secret("old-token")})
        s.migrate()
        ident = s.token_identity("old-token")
        assert ident is not None and ident[0] == 1
        assert [(d.id, d.name) for d in s.list_devices(1)] == [(ident[1], "script")]
        new = s.rotate_token("a@example.org")  # `users token` replaces that device, as before
        assert s.token_identity("old-token") is None and s.token_identity(new) is not None
    finally:
        s.close()


def test_users_token_replaces_only_the_script_device(store: Store) -> None:
    alice, token = store.add_user("alice@example.org")
    code, _ = store.create_pairing_code(alice.id)
    uid, laptop, laptop_token = store.pair_device(code, "laptop")
    assert uid == alice.id
    new = store.rotate_token("alice@example.org")
    assert store.token_identity(token) is None
    assert store.token_identity(laptop_token) == (alice.id, laptop.id)
    assert store.token_identity(new) is not None
    store.remove_user("alice@example.org")  # codes go with the user
    with pytest.raises(NotFound):
        store.create_pairing_code(alice.id)
