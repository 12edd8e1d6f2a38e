"""The store: users, their addresses and tokens, allow/block lists, challenges, events.

`Store` is synchronous (SQLAlchemy Core) and used by the CLI and from worker
threads; `AsyncStore` wraps it for the event loop with a group-committing
event writer, so many SMTP sessions share one durable commit.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, and_, bindparam, cast, delete, event, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection, Engine, create_engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from ..policy.address import Address, AddressError, Pattern, hash_message_id, parse, parse_pattern  # noqa: F401 - hash_message_id re-exported
from ..policy.decide import EventRecord, Verdict
from ..policy.lists import ListEntry, candidate_patterns
from . import schema as s
from .schema import NO_USER

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The store cannot be reached or used; the message is fit for an admin."""


class NotFound(StoreError):
    pass


def now_ts() -> float:
    return time.time()


def to_dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(nbytes: int = 16) -> str:
    """An unguessable token: 16 bytes = 128 bits = 22 base64url characters."""
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).rstrip(b"=").decode()


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    addresses: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # an event or allowlist entry that was answered for is on disk
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            parent = Path(path).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store directory {parent}: {exc.strerror}") from None
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True,
                         connect_args={"connect_timeout": 5})


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        self.engine.dispose()

    # -- schema ------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema to the newest revision (safe to call from several nodes at once)."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(resources.files("sendergate.store") / "migrations"))
        try:
            with self.engine.begin() as conn:
                if not self.is_sqlite:  # one node migrates, the others wait
                    conn.execute(text("SELECT pg_advisory_xact_lock(7240531)"))
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise StoreError(f"store unreachable ({self.safe_url}): {_short(exc)}") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"store error ({self.safe_url}): {_short(exc)}") from None

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # -- users ---------------------------------------------------------------
    def add_user(self, address: str, *, name: str = "", admin: bool = False) -> tuple[User, str]:
        addr = _address_key(address)
        token = new_token(24)
        with self.engine.begin() as conn:
            if conn.execute(select(s.user_addresses.c.id).where(s.user_addresses.c.address == addr)).first():
                raise StoreError(f"{addr} already belongs to a user")
            uid = conn.execute(insert(s.users).values(name=name, role="admin" if admin else "user",
                                                      created_at=now_ts())).inserted_primary_key[0]
            conn.execute(insert(s.user_addresses).values(user_id=uid, address=addr, is_primary=1))
            conn.execute(insert(s.api_tokens).values(user_id=uid, token_hash=hash_secret(token),
                                                     created_at=now_ts()))
        return self.get_user(uid), token

    def get_user(self, user_id: int) -> User:
        with self.engine.connect() as conn:
            row = conn.execute(select(s.users).where(s.users.c.id == user_id)).first()
            if row is None:
                raise NotFound(f"no user {user_id}")
            addrs = conn.execute(select(s.user_addresses.c.address).where(s.user_addresses.c.user_id == user_id)
                                 .order_by(s.user_addresses.c.is_primary.desc(), s.user_addresses.c.id)).scalars()
            return User(row.id, row.name, row.role, tuple(addrs))

    def user_by_address(self, address: str) -> User:
        addr = _address_key(address)
        with self.engine.connect() as conn:
            uid = conn.execute(select(s.user_addresses.c.user_id)
                               .where(s.user_addresses.c.address == addr)).scalar()
        if uid is None:
            raise NotFound(f"no user owns {addr}")
        return self.get_user(uid)

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            ids = conn.execute(select(s.users.c.id).order_by(s.users.c.id)).scalars().all()
        return [self.get_user(i) for i in ids]

    def remove_user(self, address: str) -> User:
        user = self.user_by_address(address)
        with self.engine.begin() as conn:
            cids = select(s.challenges.c.id).where(s.challenges.c.user_id == user.id)
            conn.execute(delete(s.challenge_tokens).where(s.challenge_tokens.c.challenge_id.in_(cids)))
            conn.execute(delete(s.captchas).where(s.captchas.c.challenge_id.in_(cids)))
            for t in (s.api_tokens, s.user_addresses, s.list_entries, s.challenges, s.sent_ids):
                conn.execute(delete(t).where(t.c.user_id == user.id))
            conn.execute(delete(s.users).where(s.users.c.id == user.id))
        return user

    def add_alias(self, address: str, alias: str) -> User:
        user = self.user_by_address(address)
        key = _address_key(alias)
        with self.engine.begin() as conn:
            if conn.execute(select(s.user_addresses.c.id).where(s.user_addresses.c.address == key)).first():
                raise StoreError(f"{key} already belongs to a user")
            conn.execute(insert(s.user_addresses).values(user_id=user.id, address=key))
        return self.get_user(user.id)

    def rotate_token(self, address: str) -> str:
        user = self.user_by_address(address)
        token = new_token(24)
        with self.engine.begin() as conn:
            conn.execute(delete(s.api_tokens).where(s.api_tokens.c.user_id == user.id))
            conn.execute(insert(s.api_tokens).values(user_id=user.id, token_hash=hash_secret(token),
                                                     created_at=now_ts()))
        return token

    def user_for_token(self, token: str) -> User | None:
        h = hash_secret(token)
        with self.engine.begin() as conn:
            uid = conn.execute(select(s.api_tokens.c.user_id).where(s.api_tokens.c.token_hash == h)).scalar()
            if uid is None:
                return None
            conn.execute(update(s.api_tokens).where(s.api_tokens.c.token_hash == h).values(last_used_at=now_ts()))
        return self.get_user(uid)

    # -- the SMTP hot path --------------------------------------------------
    def recipient_user(self, recipient: Address) -> int | None:
        """The user who receives mail for this address (its key, then a catch-all), or None."""
        with self.engine.connect() as conn:
            return self._recipient_user(conn, recipient)

    def _recipient_user(self, conn: Connection, recipient: Address) -> int | None:
        found = dict(conn.execute(_Q_RECIPIENT, {"key": recipient.key, "catch_all": "@" + recipient.domain}).all())
        return found.get(recipient.key, found.get("@" + recipient.domain))

    def entries_for_sender(self, user_id: int | None, sender: Address | None) -> list[ListEntry]:
        """The recipient's and the global entries that could match this sender."""
        with self.engine.connect() as conn:
            return self._entries_for_sender(conn, user_id, sender)

    def _entries_for_sender(self, conn: Connection, user_id: int | None, sender: Address | None) -> list[ListEntry]:
        if sender is None:
            return []
        wanted = {(p.kind, p.value) for p in candidate_patterns(sender)}
        values = sorted({v for _, v in wanted})
        params = {f"v{i}": v for i, v in enumerate(values)}
        params["uid"] = user_id if user_id is not None else -1
        rows = conn.execute(_entries_query(len(values)), params).all()
        return [_entry(r) for r in rows if (r.kind, r.value) in wanted]

    def rcpt_facts(self, recipient: Address, sender: Address | None) -> tuple[int | None, list[ListEntry]]:
        """What RCPT needs, in one connection: the recipient's user and the entries for this sender."""
        with self.engine.connect() as conn:
            user_id = self._recipient_user(conn, recipient)
            if user_id is None:
                return None, []
            return user_id, self._entries_for_sender(conn, user_id, sender)

    def list_entries_for_list(self, user_id: int, list_id: str | None, list_post: Address | None) -> list[ListEntry]:
        conds = []
        if list_id:
            conds.append(and_(s.list_entries.c.kind == "list", s.list_entries.c.value == list_id))
        if list_post is not None:
            conds += [and_(s.list_entries.c.kind == p.kind, s.list_entries.c.value == p.value)
                      for p in candidate_patterns(list_post)]
        if not conds:
            return []
        owner = or_(s.list_entries.c.user_id.is_(None), s.list_entries.c.user_id == user_id)
        with self.engine.connect() as conn:
            rows = conn.execute(select(s.list_entries).where(and_(owner, or_(*conds)))).all()
        return [_entry(r) for r in rows]

    def has_sent_id(self, user_id: int, hashes: Sequence[str]) -> bool:
        if not hashes:
            return False
        with self.engine.connect() as conn:
            return conn.execute(select(s.sent_ids.c.hash).where(
                s.sent_ids.c.user_id == user_id, s.sent_ids.c.hash.in_(list(hashes))).limit(1)).first() is not None

    def add_sent_ids(self, user_id: int, hashes: Iterable[str]) -> int:
        wanted = {h.lower() for h in hashes}
        with self.engine.begin() as conn:
            have = set()
            wl = list(wanted)
            for i in range(0, len(wl), 500):
                have |= set(conn.execute(select(s.sent_ids.c.hash).where(
                    s.sent_ids.c.user_id == user_id, s.sent_ids.c.hash.in_(wl[i:i + 500]))).scalars())
            new = [{"user_id": user_id, "hash": h, "created_at": now_ts()} for h in wanted - have]
            if new:
                conn.execute(insert(s.sent_ids), new)
        return len(new)

    # -- lists ---------------------------------------------------------------
    def add_entry(self, user_id: int | None, action: str, pattern: str | Pattern, *, source: str = "manual",
                  note: str = "", expires_at: float | None = None) -> tuple[ListEntry, bool]:
        """Add an entry; idempotent: an existing identical entry is returned with created=False."""
        pat = parse_pattern(pattern) if isinstance(pattern, str) else pattern
        with self.engine.begin() as conn:
            return self._add_entry(conn, user_id, action, pat, source, note, expires_at)

    def _add_entry(self, conn: Connection, user_id: int | None, action: str, pat: Pattern, source: str,
                   note: str, expires_at: float | None, auth: str | None = None) -> tuple[ListEntry, bool]:
        owner = s.list_entries.c.user_id.is_(None) if user_id is None else s.list_entries.c.user_id == user_id
        row = conn.execute(select(s.list_entries).where(
            owner, s.list_entries.c.action == action, s.list_entries.c.kind == pat.kind,
            s.list_entries.c.value == pat.value)).first()
        if row is not None:
            if expires_at is None and row.expires_at is not None:  # a permanent entry supersedes a temporary one
                conn.execute(update(s.list_entries).where(s.list_entries.c.id == row.id).values(expires_at=None))
                row = conn.execute(select(s.list_entries).where(s.list_entries.c.id == row.id)).first()
            if action == "block":  # a challenge opened despite the block (one made before it, on another node)
                self._end_pending_challenges(conn, user_id, pat)
            return _entry(row), False
        # allowing a sender lifts the same exact block (and vice versa): one entry per pattern
        other = "block" if action == "allow" else "allow"
        conn.execute(delete(s.list_entries).where(owner, s.list_entries.c.action == other,
                                                  s.list_entries.c.kind == pat.kind,
                                                  s.list_entries.c.value == pat.value))
        eid = conn.execute(insert(s.list_entries).values(
            user_id=user_id, action=action, kind=pat.kind, value=pat.value, source=source, note=note,
            created_at=now_ts(), expires_at=expires_at, auth=auth)).inserted_primary_key[0]
        row = conn.execute(select(s.list_entries).where(s.list_entries.c.id == eid)).first()
        if action == "block":
            self._end_pending_challenges(conn, user_id, pat)
        return _entry(row), True

    def _end_pending_challenges(self, conn: Connection, user_id: int | None, pat: Pattern) -> int:
        """A new block ends the pending challenges it covers (SPEC §4.5 item 3): they become `denied`,
        so their links stop working and a CAPTCHA solved later cannot allowlist the sender. A global
        block (user_id None) ends everyone's."""
        c = s.challenges.c
        if pat.kind == "address":
            match = c.sender == pat.value
        elif pat.kind == "domain":  # @domain covers its subdomains too (policy.lists)
            match = or_(c.sender.like("%@" + _like_escape(pat.value), escape="\\"),
                        c.sender.like("%@%." + _like_escape(pat.value), escape="\\"))
        else:  # list:<id> entries name no sender
            return 0
        stmt = update(s.challenges).where(c.status == "pending", match)
        if user_id is not None:
            stmt = stmt.where(c.user_id == user_id)
        ended = conn.execute(stmt.values(status="denied", updated_at=now_ts())).rowcount
        if ended:
            log.info("block %s ended %d pending challenge(s)", pat, ended)
        return ended

    def import_entries(self, user_id: int | None, patterns: Iterable[str], *, source: str = "import",
                       note: str = "") -> dict[str, Any]:
        """Bulk allow, idempotent: counts of added / already present / invalid, with per-entry results."""
        added, present, invalid = 0, 0, 0
        results = []
        with self.engine.begin() as conn:
            for raw in patterns:
                try:
                    pat = parse_pattern(raw)
                except AddressError as exc:
                    invalid += 1
                    results.append({"entry": raw, "status": "invalid", "error": str(exc)})
                    continue
                _, created = self._add_entry(conn, user_id, "allow", pat, source, note, None)
                added += created
                present += not created
                results.append({"entry": str(pat), "status": "added" if created else "present"})
        return {"added": added, "present": present, "invalid": invalid, "results": results}

    def remove_entry(self, entry_id: int, user_id: int | None = None) -> bool:
        cond = s.list_entries.c.id == entry_id
        if user_id is not None:
            cond = and_(cond, s.list_entries.c.user_id == user_id)
        with self.engine.begin() as conn:
            return conn.execute(delete(s.list_entries).where(cond)).rowcount > 0

    def entries(self, user_id: int | None, action: str, *, q: str = "", all_users: bool = False) -> list[ListEntry]:
        stmt = select(s.list_entries).where(s.list_entries.c.action == action)
        if not all_users:
            stmt = stmt.where(s.list_entries.c.user_id.is_(None) if user_id is None
                              else s.list_entries.c.user_id == user_id)
        if q:
            stmt = stmt.where(s.list_entries.c.value.contains(q.lower(), autoescape=True))
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(stmt.order_by(s.list_entries.c.id.desc())).all()]

    # -- challenges ----------------------------------------------------------
    def open_challenge(self, user_id: int, recipient: str, sender: str, *, ttl: float, subject: str = "",
                       client_ip: str = "", auth: str | None = None, max_pending: int = 0) -> tuple[int | None, str]:
        """The pending challenge for this sender and recipient's user, reused or created, and a new link token.

        Only the token's hash is stored, so each refusal carries a freshly
        issued token for the same challenge; earlier links keep working.
        """
        token = new_token()
        for attempt in range(3):  # another worker may open the same challenge at the same moment
            try:
                with self.engine.begin() as conn:
                    return self.open_challenge_tx(conn, user_id, recipient, sender, ttl, subject, client_ip, token,
                                                  auth, max_pending)
            except (IntegrityError, sqlite3.IntegrityError):
                if attempt == 2:
                    raise
            except (OperationalError, sqlite3.OperationalError) as exc:  # SQLite: another process wrote since our snapshot
                if not self.is_sqlite or attempt == 2:
                    raise
                log.info("retrying challenge after concurrent write: %s", _short(exc))
        raise AssertionError("unreachable")

    def open_challenge_tx(self, conn: Connection, user_id: int, recipient: str, sender: str, ttl: float,
                          subject: str, client_ip: str, token: str, auth: str | None = None,
                          max_pending: int = 0, *, member: bool = False) -> tuple[int | None, str]:
        """(challenge id, token); (None, "") when the sender has no pending challenge and the user has
        `max_pending` already (0: no cap), so nothing was opened (SPEC §4.5 item 5).

        `member`: the token was issued for another recipient's challenge in this refusal; this
        challenge joins its link (challenge_link_members) instead of getting a token row."""
        now = now_ts()
        if self.is_sqlite:
            cid = _open_challenge_sqlite(_dbapi(conn), user_id, recipient, sender, ttl, subject, client_ip,
                                         token, now, auth, max_pending, member)
            return (cid, token) if cid is not None else (None, "")
        row = conn.execute(_Q_PENDING, {"uid": user_id, "sender": sender}).first()
        if row is not None and row.expires_at <= now:  # a lapsed challenge makes way for a new one
            conn.execute(update(s.challenges).where(s.challenges.c.id == row.id)
                         .values(status="expired", updated_at=now))
            row = None
        if row is not None:
            cid = row.id
            conn.execute(_Q_REUSE if subject else _Q_REUSE_KEEP_SUBJECT,
                         {"cid": cid, "now": now, "subject": subject, "auth": auth})
        else:
            if max_pending and self._pending_at_cap(conn, user_id, max_pending, now):
                return None, ""
            cid = conn.execute(insert(s.challenges).values(
                user_id=user_id, recipient=recipient, sender=sender, status="pending", created_at=now,
                updated_at=now, expires_at=now + ttl, subject=subject, client_ip=client_ip,
                auth=auth)).inserted_primary_key[0]
        if member:
            conn.execute(_Q_LINK_MEMBER, {"token_hash": hash_secret(token), "challenge_id": cid})
        else:
            conn.execute(_Q_TOKEN, {"token_hash": hash_secret(token), "challenge_id": cid, "created_at": now})
        return cid, token

    @staticmethod
    def _pending_at_cap(conn: Connection, user_id: int, cap: int, now: float) -> bool:
        """Whether the user has `cap` pending challenges. Counted on the pending index alone, at most
        `cap` rows; lapsed ones still marked pending are expired only when they would make the difference."""
        c = s.challenges.c
        counted = select(func.count()).select_from(
            select(c.id).where(c.user_id == user_id, c.status == "pending").limit(cap).subquery())
        if conn.execute(counted).scalar_one() < cap:
            return False
        conn.execute(update(s.challenges).where(c.user_id == user_id, c.status == "pending", c.expires_at <= now)
                     .values(status="expired", updated_at=now))
        return conn.execute(counted).scalar_one() >= cap

    def challenge_event_tx(self, conn: Connection, record: EventRecord, sender: str, ttl: float,
                           token: str, max_pending: int = 0) -> tuple[int | None, str]:
        """A refusal with a link in one transaction: the challenge for `sender` (its normalised key;
        reused or new), its new token, and the event naming it. One group-commit wait per refusal.

        The authentication seen (record.details' spf/dkim/dmarc, when the checks ran) is kept on the
        challenge, for the allowlist entry a confirmation makes. When the user's pending challenges
        are at `max_pending`, no challenge is opened: the event becomes `tempfail` and (None, "")
        is returned, for a 451 (SPEC §4.5 item 5)."""
        assert record.user_id is not None
        cid, token = self.open_challenge_tx(conn, record.user_id, record.recipient, sender, ttl, record.subject,
                                            record.client_ip, token, auth_summary(record.details), max_pending)
        if cid is None:
            record.verdict = Verdict.TEMPFAIL
            record.reason = f"pending challenges at the cap ({max_pending}); sender asked to retry later"
        record.challenge_id = cid
        self.add_event_tx(conn, record)
        return cid, token

    def challenge_group_event_tx(self, conn: Connection, records: Sequence[EventRecord], sender: str, ttl: float,
                                 token: str, max_pending: int = 0) -> list[int]:
        """One refusal naming several recipients, in one transaction: each recipient's challenge
        (reused or new), one link for all of them, and each recipient's event. Recipients that are
        one user (aliases) share that user's challenge. A recipient whose pending challenges are at
        `max_pending` gets none: its event becomes `tempfail` (challenge_id None), as in
        challenge_event_tx."""
        cids: list[int] = []
        auth = auth_summary(records[0].details) if records else None
        for record in records:
            assert record.user_id is not None
            cid, _ = self.open_challenge_tx(conn, record.user_id, record.recipient, sender, ttl, record.subject,
                                            record.client_ip, token, auth, max_pending, member=bool(cids))
            if cid is None:
                record.verdict = Verdict.TEMPFAIL
                record.reason = f"pending challenges at the cap ({max_pending}); sender asked to retry later"
            elif cid not in cids:
                cids.append(cid)
            record.challenge_id = cid
            self.add_event_tx(conn, record)
        return cids

    def challenges_by_token(self, token: str) -> list[Any]:
        """Every challenge a link confirms: the one it was issued for, then the others it names."""
        h = hash_secret(token)
        with self.engine.connect() as conn:
            first = conn.execute(select(s.challenges).join(
                s.challenge_tokens, s.challenge_tokens.c.challenge_id == s.challenges.c.id)
                .where(s.challenge_tokens.c.token_hash == h)).first()
            if first is None:
                return []
            others = conn.execute(select(s.challenges).join(
                s.challenge_link_members, s.challenge_link_members.c.challenge_id == s.challenges.c.id)
                .where(s.challenge_link_members.c.token_hash == h).order_by(s.challenges.c.id)).all()
        return [first, *(r for r in others if r.id != first.id)]

    def challenge_by_token(self, token: str) -> Any:
        """The challenge row a link token belongs to, or None."""
        with self.engine.connect() as conn:
            return conn.execute(select(s.challenges).join(
                s.challenge_tokens, s.challenge_tokens.c.challenge_id == s.challenges.c.id)
                .where(s.challenge_tokens.c.token_hash == hash_secret(token))).first()

    # -- events --------------------------------------------------------------
    # Each event write also counts it in event_counts (the stats rollup), in the
    # same transaction. Inside a group commit the counts are gathered per batch
    # and written once per (user, day, verdict) at the end (AsyncStore._commit).
    def add_event_tx(self, conn: Connection, record: EventRecord) -> int:
        row = _event_row(record)
        if self.is_sqlite:
            event_id = _dbapi(conn).execute(_SQL_EVENT, tuple(row[c] for c in _EVENT_COLUMNS)).lastrowid
        else:
            event_id = conn.execute(_Q_EVENT, row).inserted_primary_key[0]
        batch = conn.info.get(_BATCH_COUNTS)
        if batch is not None:
            batch[_count_key(row)] += 1
        else:
            self.add_event_counts_tx(conn, Counter([_count_key(row)]))
        return event_id

    def add_events(self, records: Sequence[EventRecord]) -> list[int]:
        rows = [_event_row(r) for r in records]
        with self.engine.begin() as conn:
            if self.is_sqlite or len(rows) == 1:
                ids = [conn.execute(insert(s.events).values(**r)).inserted_primary_key[0] for r in rows]
            else:
                res = conn.execute(insert(s.events).returning(s.events.c.id, sort_by_parameter_order=True), rows)
                ids = [r[0] for r in res]
            self.add_event_counts_tx(conn, Counter(_count_key(r) for r in rows))
            return ids

    def add_event_counts_tx(self, conn: Connection, counts: Counter[tuple[int, int, str]]) -> None:
        """Add to the daily counts: one upsert statement, rows in key order.

        The order matters on PostgreSQL: two nodes' transactions then take the
        row locks of shared (user, day, verdict) rows in the same order and
        wait for each other instead of deadlocking.
        """
        if not counts:
            return
        rows = [{"user_id": u, "day": d, "verdict": v, "count": n} for (u, d, v), n in sorted(counts.items()) if n]
        if not rows:
            return
        if self.is_sqlite:
            _dbapi(conn).executemany(_SQL_COUNTS, [(r["user_id"], r["day"], r["verdict"], r["count"]) for r in rows])
            return
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as upsert
        else:
            from sqlalchemy.dialects.postgresql import insert as upsert  # type: ignore[assignment]
        stmt = upsert(s.event_counts).values(rows)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[s.event_counts.c.user_id, s.event_counts.c.day, s.event_counts.c.verdict],
            set_={"count": s.event_counts.c.count + stmt.excluded.count}))

    def prune_events(self, older_than: float) -> int:
        """Delete events before `older_than`, and their counts: days before the cut go whole, the cut
        day loses what was deleted of it (as returned by the DELETE, so two nodes pruning at once
        do not both subtract)."""
        e, ec = s.events.c, s.event_counts.c
        cut_day = int(older_than // DAY)
        with self.engine.begin() as conn:
            cut = conn.execute(delete(s.events).where(e.ts >= cut_day * DAY, e.ts < older_than)
                               .returning(e.user_id, e.verdict)).all()
            pruned = len(cut) + conn.execute(delete(s.events).where(e.ts < cut_day * DAY)).rowcount
            conn.execute(delete(s.event_counts).where(ec.day < cut_day))
            gone = Counter((NO_USER if u is None else u, v) for u, v in cut)
            for (user_id, verdict), n in sorted(gone.items()):
                conn.execute(update(s.event_counts).where(ec.user_id == user_id, ec.day == cut_day,
                                                          ec.verdict == verdict).values(count=ec.count - n))
            if gone:
                conn.execute(delete(s.event_counts).where(ec.day == cut_day, ec.count <= 0))
            return pruned

    def recount_events(self) -> None:
        """Rebuild event_counts from the events (after a bulk load that bypassed the store, e.g. benchmarks)."""
        # floor(ts / 86400) as in _count_key; SQLite's CAST truncates, which is floor after 1970
        day = (cast(s.events.c.ts / DAY, Integer) if self.is_sqlite
               else cast(func.floor(s.events.c.ts / DAY), Integer))
        user = func.coalesce(s.events.c.user_id, NO_USER)
        with self.engine.begin() as conn:
            conn.execute(delete(s.event_counts))
            conn.execute(insert(s.event_counts).from_select(
                ["user_id", "day", "verdict", "count"],
                select(user, day, s.events.c.verdict, func.count()).group_by(user, day, s.events.c.verdict)))

    def expire_challenges(self, now: float | None = None) -> int:
        with self.engine.begin() as conn:
            return conn.execute(update(s.challenges).where(
                s.challenges.c.status == "pending", s.challenges.c.expires_at <= (now or now_ts()))
                .values(status="expired", updated_at=now or now_ts())).rowcount

    def prune_challenges(self, expired_before: float) -> int:
        """Delete challenges whose expiry passed before `expired_before` (whatever their status), with
        their link tokens and CAPTCHAs; events naming them stay (SPEC §4.5 item 5)."""
        c = s.challenges.c
        gone = select(c.id).where(c.expires_at < expired_before)
        with self.engine.begin() as conn:
            conn.execute(delete(s.challenge_link_members).where(s.challenge_link_members.c.challenge_id.in_(gone)))
            conn.execute(delete(s.challenge_link_members).where(s.challenge_link_members.c.token_hash.in_(
                select(s.challenge_tokens.c.token_hash).where(s.challenge_tokens.c.challenge_id.in_(gone)))))
            conn.execute(delete(s.challenge_tokens).where(s.challenge_tokens.c.challenge_id.in_(gone)))
            conn.execute(delete(s.captchas).where(s.captchas.c.challenge_id.in_(gone)))
            return conn.execute(delete(s.challenges).where(c.expires_at < expired_before)).rowcount

    def prune_rate_limits(self, before: float) -> int:
        with self.engine.begin() as conn:
            return conn.execute(delete(s.rate_limits).where(s.rate_limits.c.minute < int(before // 60))).rowcount

    def get_setting(self, key: str, default_factory: Any = None) -> str | None:
        with self.engine.begin() as conn:
            val = conn.execute(select(s.settings.c.value).where(s.settings.c.key == key)).scalar()
            if val is None and default_factory is not None:
                val = default_factory()
                try:
                    with conn.begin_nested():
                        conn.execute(insert(s.settings).values(key=key, value=val))
                except IntegrityError:  # another node won the race
                    val = conn.execute(select(s.settings.c.value).where(s.settings.c.key == key)).scalar()
            return val


    def set_setting(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            if conn.execute(update(s.settings).where(s.settings.c.key == key).values(value=value)).rowcount == 0:
                conn.execute(insert(s.settings).values(key=key, value=value))


def _address_key(address: str) -> str:
    a = address.strip()
    if a.startswith("@"):
        return "@" + parse_pattern(a).value
    try:
        return parse(a).key
    except AddressError as exc:
        raise StoreError(f"{address!r} is not a valid address: {exc}") from None


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def auth_summary(details: dict[str, Any] | None) -> str | None:
    """One line of what SPF, DKIM and DMARC said, from an event's details (the SMTP handler's
    spf/dkim/dmarc words and `auth` domains), or None when the checks did not run."""
    if not details or "spf" not in details:
        return None
    domains = details.get("auth") or {}
    spf = str(details.get("spf", "none"))
    if domains.get("spf_domain"):
        spf += ":" + str(domains["spf_domain"])
    dkim = str(details.get("dkim", "none"))
    if dkim == "pass" and domains.get("dkim_pass"):
        dkim += ":" + ",".join(str(d) for d in domains["dkim_pass"])
    return f"spf={spf} dkim={dkim} dmarc={details.get('dmarc', 'none')}"[:500]


def _entry(row: Any) -> ListEntry:
    return ListEntry(id=row.id, action=row.action, pattern=Pattern(row.kind, row.value),
                     expires_at=to_dt(row.expires_at), user_id=row.user_id, source=row.source)


def _event_row(r: EventRecord) -> dict[str, Any]:
    return {
        "ts": r.ts.timestamp(), "user_id": r.user_id, "client_ip": r.client_ip[:64], "helo": r.helo[:255],
        "sender": r.sender[:320], "recipient": r.recipient[:320], "verdict": r.verdict.value,
        "reason": r.reason, "subject": r.subject[:1000], "from_header": r.from_header[:1000],
        "message_id": r.message_id[:1000], "size": r.size, "spam_score": r.spam_score,
        "virus": r.virus[:200], "challenge_id": r.challenge_id,
        "details": json.dumps(r.details, separators=(",", ":"), default=str),
    }


DAY = 86400
_BATCH_COUNTS = "sendergate.event_counts"  # conn.info key: counts gathered during one group commit


def _count_key(row: dict[str, Any]) -> tuple[int, int, str]:
    """(user, UTC day, verdict) of an event row: its key in event_counts."""
    user_id = row["user_id"]
    return (NO_USER if user_id is None else user_id, int(row["ts"] // DAY), row["verdict"])


# The SMTP side's statements, built once: executing a prepared statement object
# skips SQLAlchemy's per-call construction and cache-key work (a third of a
# short session's CPU when they were built on every call).
_ua, _le, _ch = s.user_addresses.c, s.list_entries.c, s.challenges.c
_Q_RECIPIENT = select(_ua.address, _ua.user_id).where(
    or_(_ua.address == bindparam("key"), _ua.address == bindparam("catch_all")))
_Q_PENDING = select(_ch.id, _ch.expires_at).where(
    _ch.user_id == bindparam("uid"), _ch.sender == bindparam("sender"), _ch.status == "pending")
_Q_REUSE = update(s.challenges).where(_ch.id == bindparam("cid")).values(
    attempts=_ch.attempts + 1, updated_at=bindparam("now"), subject=bindparam("subject"), auth=bindparam("auth"))
_Q_REUSE_KEEP_SUBJECT = update(s.challenges).where(_ch.id == bindparam("cid")).values(
    attempts=_ch.attempts + 1, updated_at=bindparam("now"), auth=bindparam("auth"))
_Q_TOKEN = insert(s.challenge_tokens)
_Q_LINK_MEMBER = text("INSERT INTO challenge_link_members (token_hash, challenge_id) "
                      "VALUES (:token_hash, :challenge_id) ON CONFLICT DO NOTHING")
_Q_EVENT = insert(s.events)
_ENTRIES_QUERIES: dict[int, Any] = {}


def _entries_query(n: int) -> Any:
    """Entries of one user (or global) whose value is one of n candidates: one statement per n."""
    q = _ENTRIES_QUERIES.get(n)
    if q is None:
        q = select(s.list_entries).where(  # kind: candidate_patterns' kinds, so the lookup index serves it
            _le.kind.in_(["address", "domain"]),
            or_(_le.user_id.is_(None), _le.user_id == bindparam("uid")),
            or_(*[_le.value == bindparam(f"v{i}") for i in range(n)]))
        _ENTRIES_QUERIES[n] = q
    return q


# The same statements in SQLite's own SQL, run on the DBAPI connection of the
# SQLAlchemy transaction: the group-commit writer spent most of its time in
# SQLAlchemy's per-execute work, not in SQLite.
_EVENT_COLUMNS = ("ts", "user_id", "client_ip", "helo", "sender", "recipient", "verdict", "reason", "subject",
                  "from_header", "message_id", "size", "spam_score", "virus", "challenge_id", "details")
_SQL_EVENT = f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})"
_SQL_COUNTS = ('INSERT INTO event_counts (user_id, day, verdict, "count") VALUES (?, ?, ?, ?) '
               'ON CONFLICT (user_id, day, verdict) DO UPDATE SET "count" = event_counts."count" + excluded."count"')
_SQL_PENDING = "SELECT id, expires_at FROM challenges WHERE user_id = ? AND sender = ? AND status = 'pending'"
_SQL_EXPIRE = "UPDATE challenges SET status = 'expired', updated_at = ? WHERE id = ?"
_SQL_REUSE = "UPDATE challenges SET attempts = attempts + 1, updated_at = ?, subject = ?, auth = ? WHERE id = ?"
_SQL_REUSE_KEEP_SUBJECT = "UPDATE challenges SET attempts = attempts + 1, updated_at = ?, auth = ? WHERE id = ?"
_SQL_CHALLENGE = ("INSERT INTO challenges (user_id, recipient, sender, status, created_at, updated_at, expires_at, "
                  "subject, client_ip, auth) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)")
_SQL_TOKEN = "INSERT INTO challenge_tokens (token_hash, challenge_id, created_at) VALUES (?, ?, ?)"
# at most `cap` rows, read from the partial unique index of pending challenges
_SQL_PENDING_COUNT = ("SELECT COUNT(*) FROM (SELECT 1 FROM challenges WHERE user_id = ? AND status = 'pending' "
                      "LIMIT ?)")
_SQL_EXPIRE_LAPSED = ("UPDATE challenges SET status = 'expired', updated_at = ? "
                      "WHERE user_id = ? AND status = 'pending' AND expires_at <= ?")
# an alias of a user already named in the link shares that user's challenge: nothing to add
_SQL_LINK_MEMBER = "INSERT OR IGNORE INTO challenge_link_members (token_hash, challenge_id) VALUES (?, ?)"


def _dbapi(conn: Connection) -> Any:
    """The sqlite3 connection under a SQLAlchemy connection (same transaction)."""
    return conn.connection.driver_connection


def _open_challenge_sqlite(db: Any, user_id: int, recipient: str, sender: str, ttl: float, subject: str,
                           client_ip: str, token: str, now: float, auth: str | None = None,
                           max_pending: int = 0, member: bool = False) -> int | None:
    """Store.open_challenge_tx's statements on SQLite."""
    row = db.execute(_SQL_PENDING, (user_id, sender)).fetchone()
    if row is not None and row[1] <= now:  # a lapsed challenge makes way for a new one
        db.execute(_SQL_EXPIRE, (now, row[0]))
        row = None
    if row is not None:
        cid = row[0]
        if subject:
            db.execute(_SQL_REUSE, (now, subject, auth, cid))
        else:
            db.execute(_SQL_REUSE_KEEP_SUBJECT, (now, auth, cid))
    else:
        if max_pending and db.execute(_SQL_PENDING_COUNT, (user_id, max_pending)).fetchone()[0] >= max_pending:
            db.execute(_SQL_EXPIRE_LAPSED, (now, user_id, now))
            if db.execute(_SQL_PENDING_COUNT, (user_id, max_pending)).fetchone()[0] >= max_pending:
                return None
        cid = db.execute(_SQL_CHALLENGE, (user_id, recipient, sender, now, now, now + ttl, subject,
                                          client_ip, auth)).lastrowid
    if member:
        db.execute(_SQL_LINK_MEMBER, (hash_secret(token), cid))
    else:
        db.execute(_SQL_TOKEN, (hash_secret(token), cid, now))
    return cid


_SQL_RECIPIENT = "SELECT address, user_id FROM user_addresses WHERE address = ? OR address = ?"
_SQL_ENTRIES = ("SELECT id, action, kind, value, expires_at, user_id, source FROM list_entries "
                "WHERE kind IN ('address', 'domain') AND value IN ({}) AND (user_id IS NULL OR user_id = ?)")


def _rcpt_facts_sqlite(conn: sqlite3.Connection, recipient: Address,
                       sender: Address | None) -> tuple[int | None, list[ListEntry]]:
    """Store.rcpt_facts in plain SQL on a sqlite3 connection (same statements, same answers)."""
    catch_all = "@" + recipient.domain
    found = dict(conn.execute(_SQL_RECIPIENT, (recipient.key, catch_all)).fetchall())
    user_id = found.get(recipient.key, found.get(catch_all))
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


def _short(exc: BaseException) -> str:
    msg = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
    return msg[0] if msg else exc.__class__.__name__


class AsyncStore:
    """The store for the event loop.

    Reads run on a small thread pool. Writes from many SMTP sessions are
    group-committed: whatever is queued while one commit is on its way to
    disk goes into the next transaction, so a busy gateway pays one fsync
    for many events and challenges. Each caller gets its own result or
    error once its write is durable.
    """

    def __init__(self, store: Store, *, threads: int = 4) -> None:
        self.store = store
        self._reader: sqlite3.Connection | None | bool = None  # SQLite: this process's own read connection
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="store")
        self._writer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._pending: list[tuple[Any, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._wakeup: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None

    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        except (OperationalError, SQLAlchemyError, sqlite3.Error) as exc:
            raise StoreError(_short(exc)) from exc

    async def rcpt_facts(self, recipient: Address, sender: Address | None) -> tuple[int | None, list[ListEntry]]:
        """Store.rcpt_facts for the event loop. On SQLite it reads inline, on a connection of this
        process's own: a WAL reader does not wait for writers, and the two indexed lookups cost less
        than the hop to a thread and back. Every statement is its own read transaction, so a change
        committed by another process (the API, another worker or node) applies to the next RCPT."""
        reader = self._sqlite_reader()
        if reader is not None:
            try:
                return _rcpt_facts_sqlite(reader, recipient, sender)
            except sqlite3.OperationalError as exc:  # busy (WAL recovery, checkpoint): wait on a thread instead
                log.info("inline RCPT lookup failed (%s); using the store's pool", exc)
            except sqlite3.Error as exc:
                raise StoreError(str(exc)) from exc
        return await self.run(self.store.rcpt_facts, recipient, sender)

    def _sqlite_reader(self) -> sqlite3.Connection | None:
        if self._reader is None:
            self._reader = False
            path = self.store.engine.url.database if self.store.is_sqlite else None
            if path and path != ":memory:" and not path.startswith("file:"):
                try:
                    conn = sqlite3.connect(path, timeout=0.05, isolation_level=None, check_same_thread=False)
                    conn.execute("PRAGMA query_only=ON")
                    self._reader = conn
                except sqlite3.Error as exc:
                    log.info("no inline SQLite reader (%s); reads go through the pool", exc)
                    self._reader = None  # try again next time
        return self._reader or None

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._writer = asyncio.create_task(self._write_loop(), name="store-writer")

    async def write(self, op: Any, *args: Any) -> Any:
        """Run `op(conn, *args)` in the next group commit; returns its result once committed."""
        assert self._wakeup is not None, "AsyncStore.start() not called"
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((op, args, fut))
        self._wakeup.set()
        return await fut

    async def record(self, record: EventRecord) -> int:
        """Store one event durably; returns its id."""
        return await self.write(self.store.add_event_tx, record)

    async def _write_loop(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            results = await loop.run_in_executor(self._writer_pool, self._commit, [(op, a) for op, a, _ in batch])
            for (_, _, fut), (ok, value) in zip(batch, results):
                if fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value if isinstance(value, StoreError) else StoreError(_short(value)))

    def _commit(self, ops: list[tuple[Any, tuple[Any, ...]]]) -> list[tuple[bool, Any]]:
        try:
            with self.store.engine.begin() as conn:
                counts: Counter[tuple[int, int, str]] = Counter()
                conn.info[_BATCH_COUNTS] = counts  # add_event_tx counts here instead of upserting
                try:
                    results = [(True, op(conn, *args)) for op, args in ops]
                finally:
                    del conn.info[_BATCH_COUNTS]  # info outlives this checkout of the pooled connection
                self.store.add_event_counts_tx(conn, counts)
            return results
        except Exception as exc:  # noqa: BLE001 - one bad write must not fail its neighbours
            if len(ops) > 1:
                log.info("group commit of %d writes failed (%s); writing them one by one", len(ops), _short(exc))
        out = []
        for op, args in ops:
            out.append(self._commit_one(op, args))
        return out

    def _commit_one(self, op: Any, args: tuple[Any, ...]) -> tuple[bool, Any]:
        for attempt in range(3):
            try:
                with self.store.engine.begin() as conn:
                    return True, op(conn, *args)
            except (IntegrityError, sqlite3.IntegrityError) as exc:  # a concurrent writer got there first; the retry sees its row
                error: Exception = exc
            except (OperationalError, sqlite3.OperationalError) as exc:  # SQLite: locked, or another process wrote since our snapshot
                error = exc
                if not self.store.is_sqlite:
                    break
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                log.error("store write failed: %s", _short(exc))
                return False, exc
            time.sleep(0.01 * (attempt + 1))
        log.error("store write failed: %s", _short(error))
        return False, error

    async def close(self) -> None:
        if self._writer is not None:
            while self._pending:  # flush what is queued before stopping
                self._wakeup.set()  # type: ignore[union-attr]
                await asyncio.sleep(0.01)
            await asyncio.sleep(0)  # let the last batch's callers wake
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
        self._writer_pool.shutdown(wait=True)
        self._pool.shutdown(wait=True)
        if self._reader:
            self._reader.close()  # type: ignore[union-attr]
        self._reader = None
