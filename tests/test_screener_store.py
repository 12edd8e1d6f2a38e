"""The screener's store side (issue 17 item 1) on SQLite and PostgreSQL: the challenge keeps the latest
From header (the SQLAlchemy path; the SQLite fast path is compared with it in test_store_fast_path.py),
and the senders' histories are read in one query, within the caller's scope."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    s.migrate()
    yield s
    s.close()


def test_the_challenge_keeps_the_latest_from_header(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    cid, _ = store.open_challenge(alice.id, "alice@example.org", "eve@x.example", ttl=3600, subject="one",
                                  from_header="Eve <eve@x.example>")
    assert store.get_challenge(alice.id, cid)["from_header"] == "Eve <eve@x.example>"
    store.open_challenge(alice.id, "alice@example.org", "eve@x.example", ttl=3600, subject="two",
                         from_header="Eve Again <eve@x.example>")
    assert store.get_challenge(alice.id, cid)["from_header"] == "Eve Again <eve@x.example>"
    store.open_challenge(alice.id, "alice@example.org", "eve@x.example", ttl=3600)  # no header: kept
    row = store.get_challenge(alice.id, cid)
    assert (row["from_header"], row["subject"], row["attempts"]) == ("Eve Again <eve@x.example>", "two", 3)
    other, _ = store.open_challenge(alice.id, "alice@example.org", "old@x.example", ttl=3600)
    assert store.get_challenge(alice.id, other)["from_header"] is None


def test_histories_count_earlier_refusals_and_stay_in_scope(store: Store) -> None:
    alice, _ = store.add_user("alice@example.org")
    store.add_alias("alice@example.org", "sales@example.org")
    bob, _ = store.add_user("bob@example.org")
    cid, _ = store.open_challenge(alice.id, "alice@example.org", "eve@x.example", ttl=3600)
    bid, _ = store.open_challenge(bob.id, "bob@example.org", "eve@x.example", ttl=3600)
    then = datetime.now(timezone.utc) - timedelta(days=5)

    def ev(verdict: Verdict, rcpt: str, uid: int, challenge: int | None = None, sender: str = "Eve@X.example"):
        return EventRecord(ts=then, verdict=verdict, sender=sender, recipient=rcpt, user_id=uid, reason="r",
                           challenge_id=challenge)

    store.add_events([ev(Verdict.SPAM, "alice@example.org", alice.id), ev(Verdict.BULK, "Sales@example.org", alice.id),
                      ev(Verdict.DELIVERED, "alice@example.org", alice.id),  # not a refusal
                      ev(Verdict.CHALLENGED, "alice@example.org", alice.id, cid),  # this challenge's own
                      ev(Verdict.BLOCKED, "bob@example.org", bob.id, bid),
                      ev(Verdict.SPAM, "alice@example.org", alice.id, sender="someone@else.example")])
    rows = [store.get_challenge(None, cid), store.get_challenge(None, bid)]
    mine = store.sender_histories(alice.id, rows[:1])[cid]
    assert mine["earlier_refusals"] == 2 and mine["first_refused"] == pytest.approx(then.timestamp())
    assert (mine["other_recipients"], mine["other_recipient_count"]) == (["sales@example.org"], 1)
    assert store.sender_histories(bob.id, rows[1:])[bid]["other_recipients"] == []
    admin = store.sender_histories(None, rows)
    assert admin[cid]["other_recipients"] == ["bob@example.org", "sales@example.org"]
    assert admin[bid]["other_recipients"] == ["alice@example.org", "sales@example.org"]
    assert admin[bid]["earlier_refusals"] == 0  # Bob's only refusal is his challenge's own
    assert store.sender_histories(None, []) == {}
