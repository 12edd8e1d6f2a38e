"""The SMTP hot path's two implementations agree: the same operations through the SQLite fast path
(store/fast_sqlite.py: SQLite's own SQL on the driver connection) and through the SQLAlchemy statements
(the fast path switched off), on SQLite, and through the SQLAlchemy statements on a real PostgreSQL,
return the same answers and leave the same rows.

The operations are what the SMTP side does: recipient facts at RCPT, refusals that open or reuse
challenges (one recipient or several sharing one link, with the pending cap), events with their day
counts, committed one by one or group-committed as AsyncStore does; between them, list entries (a
block ends pending challenges) and the clock moving on (lapsed challenges make way for new ones).
Hypothesis draws the sequences.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text

from sendergate.policy.address import parse
from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import AsyncStore, Store, schema
from sendergate.store import challenges as challenges_module
from sendergate.store import lists as lists_module
from sendergate.store.events import BATCH_COUNTS
from sendergate.store.fast_sqlite import can_read_inline, open_reader
from sendergate.store.fast_sqlite import rcpt_facts as sqlite_rcpt_facts

T0 = 1_780_000_000.0
RECIPIENTS = ["alice@example.org", "bob@example.org", "bob2@example.org", "anyone@catch.example"]
STRANGERS = ["nobody@example.org", "x@elsewhere.example"]
SENDERS = ["s1@spam.example", "s2@spam.example", "x@sub.spam.example", "news@lists.example", "friend@ok.example"]
PATTERNS = ["s1@spam.example", "@spam.example", "@lists.example", "friend@ok.example", "list:news.lists.example"]
# the tables the operations write; users and their addresses are made once per store
WRITTEN = [schema.challenge_link_members, schema.challenge_tokens, schema.captchas, schema.challenges,
           schema.events, schema.event_counts, schema.screened_counts, schema.list_entries]
# columns left out of the comparison: an entry's creation time is the wall clock's, and its id is the
# backend's (allowing a sender replaces the block of it: SQLite gives the new row the freed rowid, a
# PostgreSQL sequence does not); an entry is known by its owner, action and pattern
VOLATILE = {"list_entries": {"created_at", "id"}}

refusal = st.fixed_dictionaries({
    "recipients": st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=3),
    "sender": st.sampled_from(SENDERS),
    "subject": st.sampled_from(["", "hello"]),
    "ttl": st.sampled_from([60.0, 86400.0]),
    "max_pending": st.sampled_from([0, 1, 2]),
    "auth": st.booleans(),
})
plain_event = st.fixed_dictionaries({
    "recipient": st.sampled_from(RECIPIENTS + STRANGERS),
    "verdict": st.sampled_from([Verdict.DELIVERED, Verdict.SPAM, Verdict.UNKNOWN_RECIPIENT, Verdict.BULK,
                                Verdict.SCREENED]),
    "sender": st.sampled_from(["s@x.example", "News@Shop.example", ""]),  # screened_counts groups them lower-cased
})
write = st.one_of(st.tuples(st.just("refuse"), refusal), st.tuples(st.just("event"), plain_event))
step = st.one_of(
    st.tuples(st.just("commit"), st.lists(write, min_size=1, max_size=4)),  # AsyncStore's group commit
    st.tuples(st.just("alone"), write),  # its own transaction, counts upserted at once
    st.tuples(st.just("rcpt"), st.sampled_from(RECIPIENTS + STRANGERS), st.sampled_from(SENDERS + [None])),
    st.tuples(st.just("entry"), st.sampled_from(["alice", "bob", None]), st.sampled_from(["allow", "block"]),
              st.sampled_from(PATTERNS)),
    st.tuples(st.just("advance"), st.sampled_from([30.0, 90.0, 100_000.0])),
)


class Clock:
    """The store's clock in these tests: the challenge and list code read now_ts() from it."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Subject:
    """One store under test, and how it answers RCPT (the fast path's own reader, or the store)."""

    def __init__(self, name: str, url: str, *, fast: bool) -> None:
        self.name = name
        self.store = Store(url, fast_sqlite=fast)
        self.store.migrate()
        self.astore = AsyncStore(self.store, threads=1)
        path = self.store.engine.url.database if self.store.fast else None
        self.reader = open_reader(path) if path and can_read_inline(path) else None
        assert self.store.fast == (self.reader is not None), "the fast path needs its reader here"
        self.users = {
            "alice": self.store.add_user("alice@example.org")[0].id,
            "bob": self.store.add_user("bob@example.org")[0].id,
            "catch": self.store.add_user("@catch.example")[0].id,
        }
        self.store.add_alias("bob@example.org", "bob2@example.org")

    def reset(self) -> None:
        with self.store.engine.begin() as conn:
            if self.store.is_sqlite:  # rowids restart at 1 in an empty table (no AUTOINCREMENT)
                for table in WRITTEN:
                    conn.execute(delete(table))
            else:
                conn.execute(text(f"TRUNCATE {', '.join(t.name for t in WRITTEN)} RESTART IDENTITY"))

    def rcpt(self, recipient: str, sender: str | None) -> Any:
        r, s = parse(recipient), (parse(sender) if sender else None)
        user_id, entries = sqlite_rcpt_facts(self.reader, r, s) if self.reader else self.store.rcpt_facts(r, s)
        facts = ((e.action, str(e.pattern), e.expires_at, e.user_id, e.source) for e in entries)
        return user_id, sorted(facts, key=repr)

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        out = {}
        with self.store.engine.connect() as conn:
            for table in WRITTEN:
                cols = [c for c in table.c if c.name not in VOLATILE.get(table.name, ())]
                out[table.name] = sorted((tuple(r) for r in conn.execute(select(*cols)).all()), key=repr)
        return out

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        self.astore._release_conn()
        self.astore._pool.shutdown()
        self.store.close()


def run(subject: Subject, steps: list[Any], clock: Clock) -> list[Any]:
    """Apply the steps to one store; what each step answered."""
    store, answers = subject.store, []
    tokens = iter(range(10**6))
    clock.now = T0

    def op(kind: str, w: dict[str, Any]) -> tuple[Any, tuple[Any, ...]]:
        """The write as AsyncStore queues it: (op(conn, *args), args)."""
        ts = datetime.fromtimestamp(clock.now, timezone.utc)
        if kind == "event":
            user_id = store.recipient_user(parse(w["recipient"]))
            return store.add_event_tx, (EventRecord(ts=ts, verdict=w["verdict"], reason="r",
                                                    sender=w.get("sender", "s@x.example"),
                                                    recipient=w["recipient"], user_id=user_id, size=100),)
        details = {"spf": "pass", "dkim": "none", "dmarc": "none"} if w["auth"] else {}
        records = [EventRecord(ts=ts, verdict=Verdict.CHALLENGED, reason="challenged", sender=w["sender"],
                               recipient=r, user_id=store.recipient_user(parse(r)), subject=w["subject"],
                               client_ip="192.0.2.7", details=dict(details),
                               # the challenge keeps the latest From header (a message without one keeps it)
                               from_header=f"N {w['subject']} <{w['sender']}>" if w["subject"] else "")
                   for r in w["recipients"]]
        token = f"token-{next(tokens)}"
        if len(records) == 1:
            return store.challenge_event_tx, (records[0], w["sender"], w["ttl"], token, w["max_pending"])
        return store.challenge_group_event_tx, (records, w["sender"], w["ttl"], token, w["max_pending"])

    def outcome(result: Any, args: tuple[Any, ...]) -> Any:
        records = args[0] if isinstance(args[0], list) else [args[0]]
        return result, [(r.verdict.value, r.reason, r.challenge_id) for r in records]

    for s in steps:
        if s[0] == "commit":
            ops = [op(*w) for w in s[1]]
            results = subject.astore._commit(lambda: ops)
            answers.append([(ok, outcome(value, args)) for (ok, value), (_, args) in zip(results, ops, strict=True)])
        elif s[0] == "alone":
            fn, args = op(*s[1])
            with store.engine.begin() as conn:
                assert BATCH_COUNTS not in conn.info
                answers.append(outcome(fn(conn, *args), args))
        elif s[0] == "rcpt":
            answers.append(subject.rcpt(s[1], s[2]))
        elif s[0] == "entry":
            owner = None if s[1] is None else subject.users[s[1]]
            entry, created = store.add_entry(owner, s[2], s[3])
            answers.append((entry.action, str(entry.pattern), created))
        else:
            clock.now += s[1]
    return answers


@pytest.fixture
def subjects(postgres: Any, tmp_path_factory: pytest.TempPathFactory,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[Subject], Clock]]:
    clock = Clock()
    monkeypatch.setattr(challenges_module, "now_ts", clock)
    monkeypatch.setattr(lists_module, "now_ts", clock)
    base = tmp_path_factory.mktemp("fastpath")
    made = [Subject("sqlite, fast path", f"sqlite:///{base}/fast.db", fast=True),
            Subject("sqlite, SQLAlchemy", f"sqlite:///{base}/slow.db", fast=False),
            Subject("postgresql", postgres.create_database("fp_" + uuid.uuid4().hex[:10]), fast=True)]
    try:
        assert len({tuple(s.users.values()) for s in made}) == 1
        yield made, clock
    finally:
        for s in made:
            s.close()


def test_fast_path_and_sqlalchemy_path_agree_on_both_backends(subjects: tuple[list[Subject], Clock]) -> None:
    stores, clock = subjects
    kinds: Counter[str] = Counter()

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(steps=st.lists(step, min_size=1, max_size=14))
    def agree(steps: list[Any]) -> None:
        outcomes = []
        for s in stores:
            s.reset()
            outcomes.append((run(s, steps, clock), s.rows()))
        (answers, rows), others = outcomes[0], outcomes[1:]
        for s, (their_answers, their_rows) in zip(stores[1:], others, strict=True):
            assert their_answers == answers, f"{s.name} answered otherwise than {stores[0].name}"
            for table in rows:
                assert their_rows[table] == rows[table], f"{table}: {s.name} differs from {stores[0].name}"
        kinds.update(s[0] for s in steps)

    agree()
    assert kinds["commit"] and kinds["alone"] and kinds["rcpt"], kinds


def test_the_comparison_sees_the_paths_it_compares(subjects: tuple[list[Subject], Clock]) -> None:
    """A fixed sequence that reaches every branch of the hot path: new, reused (with and without a
    subject), lapsed and replaced, at the cap, lapsed ones expired at the cap, a group with an alias,
    a block ending a challenge, counts batched and alone; and the rows it leaves are the expected ones."""
    stores, clock = subjects
    refuse = {"sender": "s1@spam.example", "subject": "hello", "ttl": 60.0, "max_pending": 1, "auth": True}
    steps: list[Any] = [
        ("rcpt", "alice@example.org", "s1@spam.example"),
        ("commit", [("refuse", {**refuse, "recipients": ["alice@example.org"]}),
                    ("event", {"recipient": "nobody@example.org", "verdict": Verdict.UNKNOWN_RECIPIENT})]),
        ("alone", ("refuse", {**refuse, "recipients": ["alice@example.org"], "subject": ""})),  # reused
        ("alone", ("refuse", {**refuse, "recipients": ["alice@example.org"], "sender": "s2@spam.example"})),  # cap
        ("advance", 90.0),
        ("commit", [("refuse", {**refuse, "recipients": ["alice@example.org"], "sender": "s2@spam.example"})]),
        ("alone", ("refuse", {**refuse, "recipients": ["bob@example.org", "bob2@example.org", "alice@example.org"],
                              "max_pending": 0})),
        ("entry", "bob", "block", "@spam.example"),
        ("rcpt", "bob2@example.org", "x@sub.spam.example"),
        ("commit", [("event", {"recipient": "alice@example.org", "verdict": Verdict.SCREENED,
                               "sender": "News@Shop.example"}),
                    ("event", {"recipient": "alice@example.org", "verdict": Verdict.BULK,
                               "sender": "news@shop.example"})]),
        ("alone", ("event", {"recipient": "alice@example.org", "verdict": Verdict.SCREENED,
                             "sender": "news@shop.example"})),
    ]
    results = []
    for s in stores:
        s.reset()
        results.append((run(s, steps, clock), s.rows()))
    assert all(r == results[0] for r in results[1:])
    answers, rows = results[0]
    alice, bob = stores[0].users["alice"], stores[0].users["bob"]
    assert answers[0] == (alice, [])
    assert answers[3] == ((None, ""), [("tempfail", "pending challenges at the cap (1); sender asked to retry later",
                                        None)])
    names = [c.name for c in schema.challenges.c]
    challenges = [dict(zip(names, r, strict=True)) for r in rows["challenges"]]
    assert [(c["user_id"], c["sender"], c["status"], c["attempts"], c["subject"]) for c in challenges] == [
        (alice, "s1@spam.example", "expired", 2, "hello"),  # reused (its subject kept), lapsed, expired at the cap
        (alice, "s2@spam.example", "pending", 1, "hello"),  # refused at the cap, opened once s1's lapsed
        (bob, "s1@spam.example", "denied", 2, "hello"),  # bob and his alias share it; bob's block ended it
        (alice, "s1@spam.example", "pending", 1, "hello"),  # a new one for alice beside her expired one
    ]
    assert challenges[0]["auth"] == "spf=pass dkim=none dmarc=none"
    assert [m[1] for m in rows["challenge_link_members"]] == [3, 4]  # the group's link names bob's and alice's
    assert answers[7][0] == bob and [e[:2] for e in answers[7][1]] == [("block", "@spam.example")]
    day = int(T0 // 86400)
    assert (alice, day, "tempfail", 1) in rows["event_counts"]
    assert (0, day, "unknown_recipient", 1) in rows["event_counts"]
    # the Screened rollup: one row for the sender however it was spelt, counts per verdict, the newest id
    newest = max(r[0] for r in rows["events"])
    assert [r[:5] + r[7:] for r in rows["screened_counts"]] == [(alice, "news@shop.example", day, 2, 1, newest)]
