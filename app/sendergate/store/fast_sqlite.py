"""The SMTP hot path's statements in SQLite's own SQL, run on the driver connection.

The group-commit writer spent most of its time in SQLAlchemy's per-execute work, not in SQLite, so on
SQLite these replace the SQLAlchemy statements of the same name (the store's `fast` flag);
tests/test_store_fast_path.py runs both on the same operations and compares the rows they leave.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable

from ..policy.address import Address, Pattern
from ..policy.lists import ListEntry, candidate_patterns
from .engine import hash_secret, to_dt
from .modes import RcptFacts, pick_recipient
from .schema import EVENT_COLUMNS

log = logging.getLogger(__name__)

# column names from the schema, values bound
_SQL_EVENT = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"  # noqa: S608
_SQL_COUNTS = ('INSERT INTO event_counts (user_id, day, verdict, "count") VALUES (?, ?, ?, ?) '
               'ON CONFLICT (user_id, day, verdict) DO UPDATE SET "count" = event_counts."count" + excluded."count"')
_SQL_SCREENED = ("INSERT INTO screened_counts (user_id, sender, day, screened, bulk, first_ts, last_ts, last_id) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, sender, day) DO UPDATE SET "
                 "screened = screened + excluded.screened, bulk = bulk + excluded.bulk, "
                 "first_ts = min(first_ts, excluded.first_ts), last_ts = max(last_ts, excluded.last_ts), "
                 "last_id = max(last_id, excluded.last_id)")
# The sender's pending challenge in one statement (at most one: uq_challenges_one_pending): reused while
# it lasts (?1 now; an empty ?2 keeps the subject, an empty ?4 the From header), expired when it has lapsed
# (it makes way for a new one); RETURNING says which.
_SQL_REUSE = ("UPDATE challenges SET status = CASE WHEN expires_at > ?1 THEN status ELSE 'expired' END, "
              "updated_at = ?1, attempts = CASE WHEN expires_at > ?1 THEN attempts + 1 ELSE attempts END, "
              "subject = CASE WHEN expires_at > ?1 AND ?2 <> '' THEN ?2 ELSE subject END, "
              "auth = CASE WHEN expires_at > ?1 THEN ?3 ELSE auth END, "
              "from_header = CASE WHEN expires_at > ?1 THEN COALESCE(NULLIF(?4, ''), from_header) ELSE from_header END "
              "WHERE user_id = ?5 AND sender = ?6 AND status = 'pending' RETURNING id, status")
_SQL_CHALLENGE = ("INSERT INTO challenges (user_id, recipient, sender, status, created_at, updated_at, expires_at, "
                  "subject, client_ip, auth, from_header) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)")
_SQL_TOKEN = "INSERT INTO challenge_tokens (token_hash, challenge_id, created_at) VALUES (?, ?, ?)"
# at most `cap` rows, read from the partial unique index of pending challenges
_SQL_PENDING_COUNT = ("SELECT COUNT(*) FROM (SELECT 1 FROM challenges WHERE user_id = ? AND status = 'pending' "
                      "LIMIT ?)")
_SQL_EXPIRE_LAPSED = ("UPDATE challenges SET status = 'expired', updated_at = ? "
                      "WHERE user_id = ? AND status = 'pending' AND expires_at <= ?")
# an alias of a user already named in the link shares that user's challenge: nothing to add
_SQL_LINK_MEMBER = "INSERT OR IGNORE INTO challenge_link_members (token_hash, challenge_id) VALUES (?, ?)"
_SQL_RECIPIENT = "SELECT address, user_id FROM user_addresses WHERE address = ? OR address = ?"
_SQL_ENTRIES = ("SELECT id, action, kind, value, expires_at, user_id, source FROM list_entries "
                "WHERE kind IN ('address', 'domain') AND value IN ({}) AND (user_id IS NULL OR user_id = ?)")


def open_challenge(db: sqlite3.Connection, user_id: int, recipient: str, sender: str, ttl: float, subject: str,
                   client_ip: str, token: str, now: float, auth: str | None, max_pending: int,
                   member: bool, from_header: str = "") -> int | None:
    """Challenges.open_challenge_tx's statements; the challenge id, or None at the pending cap."""
    # fetchall: a RETURNING statement left unfinished would hold up the COMMIT
    row = db.execute(_SQL_REUSE, (now, subject, auth, from_header, user_id, sender)).fetchall()
    cid: int | None
    if row and row[0][1] == "pending":
        cid = row[0][0]
    else:
        if max_pending and db.execute(_SQL_PENDING_COUNT, (user_id, max_pending)).fetchone()[0] >= max_pending:
            db.execute(_SQL_EXPIRE_LAPSED, (now, user_id, now))
            if db.execute(_SQL_PENDING_COUNT, (user_id, max_pending)).fetchone()[0] >= max_pending:
                return None
        cid = db.execute(_SQL_CHALLENGE, (user_id, recipient, sender, now, now, now + ttl, subject,
                                          client_ip, auth, from_header or None)).lastrowid
    if member:
        db.execute(_SQL_LINK_MEMBER, (hash_secret(token), cid))
    else:
        db.execute(_SQL_TOKEN, (hash_secret(token), cid, now))
    return cid


def insert_event(db: sqlite3.Connection, values: tuple[object, ...]) -> int:
    """One events row, `values` in EVENT_COLUMNS order; its id."""
    event_id = db.execute(_SQL_EVENT, values).lastrowid
    assert event_id is not None
    return event_id


def add_event_counts(db: sqlite3.Connection, rows: Iterable[tuple[int, int, str, int]]) -> None:
    """Events.add_event_counts_tx's upsert: (user_id, day, verdict, count) rows."""
    db.executemany(_SQL_COUNTS, rows)


def add_screened_counts(db: sqlite3.Connection, rows: Iterable[tuple[object, ...]]) -> None:
    """Events.add_screened_counts_tx's upsert: screened_counts rows in column order."""
    db.executemany(_SQL_SCREENED, rows)


def rcpt_facts(conn: sqlite3.Connection, recipient: Address,
               sender: Address | None) -> tuple[int | None, list[ListEntry]]:
    """Lists.rcpt_facts in plain SQL on a sqlite3 connection (same statements, same answers)."""
    catch_all = "@" + recipient.domain
    found = dict(conn.execute(_SQL_RECIPIENT, (recipient.key, catch_all)).fetchall())
    user_id: int | None = found.get(recipient.key, found.get(catch_all))
    if user_id is None:
        return None, []
    if sender is None:
        return user_id, []
    wanted = {(p.kind, p.value) for p in candidate_patterns(sender)}
    values = sorted({v for _, v in wanted})
    rows = conn.execute(_SQL_ENTRIES.format(",".join("?" * len(values))), (*values, user_id)).fetchall()
    return user_id, [ListEntry(id=i, action=action, pattern=Pattern(kind, value), expires_at=to_dt(expires),
                               user_id=uid, source=source)
                     for i, action, kind, value, expires, uid, source in rows if (kind, value) in wanted]


_SQL_RECIPIENT_MODE = ("SELECT a.address, a.user_id, a.mode, u.mode FROM user_addresses a JOIN users u "
                       "ON u.id = a.user_id WHERE a.address = ? OR a.address = ?")


def rcpt_lookup(conn: sqlite3.Connection, recipient: Address, sender: Address | None) -> RcptFacts:
    """Modes.rcpt_lookup in plain SQL on a sqlite3 connection (same statements, same answers)."""
    catch_all = "@" + recipient.domain
    user_id, mode = pick_recipient(conn.execute(_SQL_RECIPIENT_MODE, (recipient.key, catch_all)).fetchall(),
                                   recipient.key, catch_all)
    if user_id is None:
        return RcptFacts(None, [])
    if sender is None:
        return RcptFacts(user_id, [], mode)
    wanted = {(p.kind, p.value) for p in candidate_patterns(sender)}
    values = sorted({v for _, v in wanted})
    rows = conn.execute(_SQL_ENTRIES.format(",".join("?" * len(values))), (*values, user_id)).fetchall()
    return RcptFacts(user_id, [ListEntry(id=i, action=action, pattern=Pattern(kind, value), expires_at=to_dt(expires),
                                         user_id=uid, source=source)
                               for i, action, kind, value, expires, uid, source in rows if (kind, value) in wanted],
                     mode)


def can_read_inline(path: str | None) -> bool:
    """Whether the database is a file this process can open a reader of its own on (not in memory, no URI)."""
    return bool(path) and path != ":memory:" and not str(path).startswith("file:")


def open_reader(path: str) -> sqlite3.Connection | None:
    """A read-only connection of this process's own to the database file, or None when it cannot be opened
    (then reads go through the store's pool)."""
    try:
        conn = sqlite3.connect(path, timeout=0.05, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")
    except sqlite3.Error as exc:
        log.info("no inline SQLite reader (%s); reads go through the pool", exc)
        return None
    return conn
