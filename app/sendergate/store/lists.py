"""Allow and block entries: the lookups RCPT makes, adding and importing, the API's pages, and which
entry decides for a sender."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Row, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from ..policy.address import Address, AddressError, Pattern, parse, parse_pattern
from ..policy.lists import ListEntry, candidate_patterns, match_sender
from .engine import StoreBase, contains_pattern, inserted_id, like_escape, now_ts, to_dt
from .errors import NotFound
from .paging import keyset_page
from .schema import challenges, list_entries, user_addresses
from .users import recipient_user_tx

log = logging.getLogger(__name__)

_le = list_entries.c
_ENTRIES_QUERIES: dict[int, Select[Any]] = {}
IMPORT_BATCH = 500  # values per look-up in a bulk import (below SQLite's and asyncpg's parameter limits)


def entry_of(row: Any) -> ListEntry:
    return ListEntry(id=row.id, action=row.action, pattern=Pattern(row.kind, row.value),
                     expires_at=to_dt(row.expires_at), user_id=row.user_id, source=row.source)


def _entries_query(n: int) -> Select[Any]:
    """Entries of one user (or global) whose value is one of n candidates: one statement per n, built once
    (executing a prepared statement object skips SQLAlchemy's per-call construction: RCPT's hot path)."""
    q = _ENTRIES_QUERIES.get(n)
    if q is None:
        q = select(list_entries).where(  # kind: candidate_patterns' kinds, so the lookup index serves it
            _le.kind.in_(["address", "domain"]),
            or_(_le.user_id.is_(None), _le.user_id == bindparam("uid")),
            or_(*[_le.value == bindparam(f"v{i}") for i in range(n)]))
        _ENTRIES_QUERIES[n] = q
    return q


def entries_for_sender_tx(conn: Connection, user_id: int | None, sender: Address | None) -> list[ListEntry]:
    """The recipient's and the global entries that could match this sender."""
    if sender is None:
        return []
    wanted = {(p.kind, p.value) for p in candidate_patterns(sender)}
    values = sorted({v for _, v in wanted})
    params: dict[str, Any] = {f"v{i}": v for i, v in enumerate(values)}
    params["uid"] = user_id if user_id is not None else -1
    rows = conn.execute(_entries_query(len(values)), params).all()
    return [entry_of(r) for r in rows if (r.kind, r.value) in wanted]


def add_entry_tx(conn: Connection, user_id: int | None, action: str, pat: Pattern, source: str, note: str,
                 expires_at: float | None, auth: str | None = None) -> tuple[ListEntry, bool]:
    """Lists.add_entry in the caller's transaction (a confirmation's or a decision's)."""
    owner = _le.user_id.is_(None) if user_id is None else _le.user_id == user_id
    row = conn.execute(select(list_entries).where(
        owner, _le.action == action, _le.kind == pat.kind, _le.value == pat.value)).first()
    if row is not None:
        if expires_at is None and row.expires_at is not None:  # a permanent entry supersedes a temporary one
            conn.execute(update(list_entries).where(_le.id == row.id).values(expires_at=None))
            row = conn.execute(select(list_entries).where(_le.id == row.id)).first()
        if action == "block":  # a challenge opened despite the block (one made before it, on another node)
            end_pending_challenges(conn, user_id, pat)
        return entry_of(row), False
    # allowing a sender lifts the same exact block (and vice versa): one entry per pattern
    other = "block" if action == "allow" else "allow"
    conn.execute(delete(list_entries).where(owner, _le.action == other, _le.kind == pat.kind,
                                            _le.value == pat.value))
    eid = inserted_id(conn.execute(insert(list_entries).values(
        user_id=user_id, action=action, kind=pat.kind, value=pat.value, source=source, note=note,
        created_at=now_ts(), expires_at=expires_at, auth=auth)))
    row = conn.execute(select(list_entries).where(_le.id == eid)).first()
    if action == "block":
        end_pending_challenges(conn, user_id, pat)
    return entry_of(row), True


def end_pending_challenges(conn: Connection, user_id: int | None, pat: Pattern) -> int:
    """A new block ends the pending challenges it covers (SPEC §4.5 item 3): they become `denied`,
    so their links stop working and a CAPTCHA solved later cannot allowlist the sender. A global
    block (user_id None) ends everyone's."""
    c = challenges.c
    if pat.kind == "address":
        match = c.sender == pat.value
    elif pat.kind == "domain":  # @domain covers its subdomains too (policy.lists)
        match = or_(c.sender.like("%@" + like_escape(pat.value), escape="\\"),
                    c.sender.like("%@%." + like_escape(pat.value), escape="\\"))
    else:  # list:<id> entries name no sender
        return 0
    stmt = update(challenges).where(c.status == "pending", match)
    if user_id is not None:
        stmt = stmt.where(c.user_id == user_id)
    ended: int = conn.execute(stmt.values(status="denied", updated_at=now_ts())).rowcount
    if ended:
        log.info("block %s ended %d pending challenge(s)", pat, ended)
    return ended


def listed_for_tx(conn: Connection, user_id: int | None, senders: Sequence[str],
                  now: float | None = None) -> dict[str, dict[str, str]]:
    """Lists.listed_for on the caller's connection."""
    addresses = {}
    for raw in senders:
        try:
            addresses[raw] = parse(raw, unwrap=True)
        except AddressError:  # recorded as given in MAIL FROM; nothing on a list can match it
            continue
    wanted = sorted({p.value for a in addresses.values() for p in candidate_patterns(a)})
    entries: list[ListEntry] = []
    for i in range(0, len(wanted), 500):
        rows = conn.execute(select(_le.id, _le.action, _le.kind, _le.value, _le.expires_at, _le.user_id).where(
            _le.user_id.is_(None) if user_id is None else or_(_le.user_id == user_id, _le.user_id.is_(None)),
            _le.kind.in_(("address", "domain")),
            _le.value.in_(wanted[i:i + 500]))).all()
        entries += [ListEntry(r.id, r.action, Pattern(r.kind, r.value), to_dt(r.expires_at), r.user_id)
                    for r in rows]
    when = to_dt(now or now_ts())
    assert when is not None
    out = {}
    for raw, address in addresses.items():
        found = match_sender(entries, address, when)
        if found is not None:
            out[raw] = {"action": found.action, "entry": str(found.pattern)}
    return out


def _entries_select() -> Select[Any]:
    ua = user_addresses
    return (select(*list_entries.c, ua.c.address.label("owner"))
            .select_from(list_entries.outerjoin(ua, and_(ua.c.user_id == _le.user_id, ua.c.is_primary == 1))))


def _entry_dict(row: Row[Any]) -> dict[str, Any]:
    m = row._mapping
    kind, value = m["kind"], m["value"]
    entry = "@" + value if kind == "domain" else "list:" + value if kind == "list" else value
    return {"id": m["id"], "entry": entry, "kind": kind, "action": m["action"], "source": m["source"],
            "note": m["note"], "created_at": m["created_at"], "expires_at": m["expires_at"],
            "user_id": m["user_id"], "owner": m["owner"], "auth": m["auth"]}


class Lists(StoreBase):
    # -- what RCPT and end of DATA look up ----------------------------------------------------
    def rcpt_facts(self, recipient: Address, sender: Address | None) -> tuple[int | None, list[ListEntry]]:
        """What RCPT needs, in one connection: the recipient's user and the entries for this sender."""
        with self.engine.connect() as conn:
            user_id = recipient_user_tx(conn, recipient)
            if user_id is None:
                return None, []
            return user_id, entries_for_sender_tx(conn, user_id, sender)

    def entries_for_sender(self, user_id: int | None, sender: Address | None) -> list[ListEntry]:
        """The recipient's and the global entries that could match this sender."""
        with self.engine.connect() as conn:
            return entries_for_sender_tx(conn, user_id, sender)

    def list_entries_for_list(self, user_id: int, list_id: str | None, list_post: Address | None) -> list[ListEntry]:
        """The user's and the global entries naming a mailing list (its List-Id or List-Post address)."""
        conds = []
        if list_id:
            conds.append(and_(_le.kind == "list", _le.value == list_id))
        if list_post is not None:
            conds += [and_(_le.kind == p.kind, _le.value == p.value) for p in candidate_patterns(list_post)]
        if not conds:
            return []
        owner = or_(_le.user_id.is_(None), _le.user_id == user_id)
        with self.engine.connect() as conn:
            rows = conn.execute(select(list_entries).where(and_(owner, or_(*conds)))).all()
        return [entry_of(r) for r in rows]

    def listed_for(self, user_id: int | None, senders: Sequence[str],
                   now: float | None = None) -> dict[str, dict[str, str]]:
        """sender -> {"action", "entry"} of the list entry that decides for it (SPEC §4.1: the user's and the
        global entries, most specific wins, block beats allow), for senders some active entry matches."""
        with self.engine.connect() as conn:
            return listed_for_tx(conn, user_id, senders, now)

    # -- adding, importing, removing ----------------------------------------------------------
    def add_entry(self, user_id: int | None, action: str, pattern: str | Pattern, *, source: str = "manual",
                  note: str = "", expires_at: float | None = None) -> tuple[ListEntry, bool]:
        """Add an entry; idempotent: an existing identical entry is returned with created=False."""
        pat = parse_pattern(pattern) if isinstance(pattern, str) else pattern
        with self.engine.begin() as conn:
            return add_entry_tx(conn, user_id, action, pat, source, note, expires_at)

    def add_entry_dict(self, owner_id: int | None, action: str, raw: str, *, note: str = "",
                       expires_at: float | None = None) -> tuple[dict[str, Any], bool]:
        """add_entry by hand (source `manual`), as the API shows an entry; AddressError for an entry that is
        not an address, @domain or list:id."""
        entry, created = self.add_entry(owner_id, action, parse_pattern(raw), source="manual", note=note,
                                        expires_at=expires_at)
        return self.get_entry(None, entry.id), created

    def import_entries(self, user_id: int | None, patterns: Iterable[str], *, source: str = "import",
                       note: str = "") -> dict[str, Any]:
        """Bulk allow, idempotent: counts of added / already present / invalid, with per-entry results.

        What add_entry_tx does per entry, done per batch in one transaction: a look-up of the owner's
        allow and block entries for IMPORT_BATCH values at a time, one DELETE of the blocks an allow
        lifts, one UPDATE of temporary allow entries made permanent, one multi-row INSERT.
        """
        parsed: list[tuple[str, Pattern | None, str]] = []
        for raw in patterns:
            try:
                parsed.append((raw, parse_pattern(raw), ""))
            except AddressError as exc:
                parsed.append((raw, None, str(exc)))
        wanted = sorted({(p.kind, p.value) for _, p, _ in parsed if p is not None})
        owner = _le.user_id.is_(None) if user_id is None else _le.user_id == user_id
        now = now_ts()
        with self.engine.begin() as conn:
            have: set[tuple[str, str]] = set()
            for i in range(0, len(wanted), IMPORT_BATCH):
                batch = wanted[i:i + IMPORT_BATCH]
                by_kind: dict[str, list[str]] = {}
                for kind, value in batch:
                    by_kind.setdefault(kind, []).append(value)
                allow_temp: list[int] = []
                block_ids: list[int] = []
                for kind, values in by_kind.items():
                    for r in conn.execute(select(_le.id, _le.action, _le.value, _le.expires_at).where(
                            _le.kind == kind, _le.value.in_(values), owner)):
                        if r.action == "allow":
                            have.add((kind, r.value))
                            if r.expires_at is not None:  # a permanent entry supersedes a temporary one
                                allow_temp.append(r.id)
                        else:
                            block_ids.append(r.id)
                if allow_temp:
                    conn.execute(update(list_entries).where(_le.id.in_(allow_temp)).values(expires_at=None))
                if block_ids:  # allowing a sender lifts the same exact block: one entry per pattern
                    conn.execute(delete(list_entries).where(_le.id.in_(block_ids)))
                new = [{"user_id": user_id, "action": "allow", "kind": k, "value": v, "source": source,
                        "note": note, "created_at": now, "expires_at": None, "auth": None}
                       for k, v in batch if (k, v) not in have]
                if new:
                    conn.execute(insert(list_entries), new)
        added, present, invalid = 0, 0, 0
        results: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for raw, p, error in parsed:
            if p is None:
                invalid += 1
                results.append({"entry": raw, "status": "invalid", "error": error})
                continue
            key = (p.kind, p.value)
            created = key not in have and key not in seen
            seen.add(key)  # a repeat within the same import is already present
            added += created
            present += not created
            results.append({"entry": str(p), "status": "added" if created else "present"})
        return {"added": added, "present": present, "invalid": invalid, "results": results}

    def import_preview(self, owner_id: int | None, raws: Iterable[str]) -> dict[str, Any]:
        """What import_entries would do, without doing it (the app's preview, `--dry-run`)."""
        parsed: list[tuple[str, Pattern | None, str]] = []
        for raw in raws:
            try:
                parsed.append((raw, parse_pattern(raw), ""))
            except AddressError as exc:
                parsed.append((raw, None, str(exc)))
        owner = _le.user_id.is_(None) if owner_id is None else _le.user_id == owner_id
        by_kind: dict[str, list[str]] = {}
        for kind, value in sorted({(p.kind, p.value) for _, p, _ in parsed if p is not None}):
            by_kind.setdefault(kind, []).append(value)
        have: set[tuple[str, str]] = set()
        with self.engine.connect() as conn:
            for kind, values in by_kind.items():  # kind first: the lookup index (kind, value, user_id) serves it
                for i in range(0, len(values), IMPORT_BATCH):
                    have |= {(kind, r.value) for r in conn.execute(select(_le.value).where(
                        _le.kind == kind, _le.value.in_(values[i:i + IMPORT_BATCH]), owner, _le.action == "allow"))}
        results: list[dict[str, Any]] = []
        for raw, p, error in parsed:
            if p is None:
                results.append({"entry": raw, "status": "invalid", "error": error})
                continue
            key = (p.kind, p.value)
            results.append({"entry": str(p), "status": "present" if key in have else "added"})
            have.add(key)  # a repeat within the same import is already present, as import_entries reports it
        counts = {k: sum(1 for r in results if r["status"] == k) for k in ("added", "present", "invalid")}
        return {**counts, "results": results}

    def domain_cover(self, owner_id: int | None, results: list[dict[str, Any]], now: float | None = None) -> None:
        """Import results: an address not on the list itself whose mail an active @domain allow entry of the
        owner (or a global one) already lets in gets `covered_by` = that entry. One look-up for the import."""
        addresses = [r["entry"] for r in results
                     if r["status"] == "added" and not r["entry"].startswith(("@", "list:"))]
        if not addresses:
            return
        deciding = self.listed_for(owner_id, addresses, now=now)
        for r in results:
            found = deciding.get(r["entry"]) if r["status"] == "added" else None
            if found is not None and found["action"] == "allow" and found["entry"].startswith("@"):
                r["covered_by"] = found["entry"]

    def update_entry(self, scope: int | None, action: str, entry_id: int, *, note: str | None,
                     expires_at: float | None, clear_expiry: bool) -> dict[str, Any]:
        self.get_entry(scope, entry_id, action)  # NotFound unless it is the caller's
        values: dict[str, Any] = {}
        if note is not None:
            values["note"] = note
        if clear_expiry:
            values["expires_at"] = None
        elif expires_at is not None:
            values["expires_at"] = expires_at
        if values:
            with self.engine.begin() as conn:
                conn.execute(update(list_entries).where(_le.id == entry_id).values(**values))
        return self.get_entry(None, entry_id)

    def remove_entry(self, scope: int | None, action: str, entry_id: int) -> None:
        """Remove the caller's (scope's; None: any) `action` entry; NotFound unless there is one."""
        cond = and_(_le.id == entry_id, _le.action == action)
        if scope is not None:
            cond = and_(cond, _le.user_id == scope)
        with self.engine.begin() as conn:
            if conn.execute(delete(list_entries).where(cond)).rowcount == 0:
                raise NotFound(f"no entry {entry_id}")

    # -- reading ----------------------------------------------------------------------------
    def entries(self, user_id: int | None, action: str) -> list[ListEntry]:
        """The user's (None: the global) `action` entries, newest first."""
        stmt = select(list_entries).where(_le.action == action,
                                          _le.user_id.is_(None) if user_id is None else _le.user_id == user_id)
        with self.engine.connect() as conn:
            return [entry_of(r) for r in conn.execute(stmt.order_by(_le.id.desc())).all()]

    def entries_page(self, scope: int | None, action: str, *, q: str = "", owner_id: int | None = None,
                     before_id: int | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], int | None]:
        """A user's entries (scope), or for an admin all entries, or one user's (owner_id), newest first."""
        stmt = _entries_select().where(_le.action == action)
        if scope is not None:
            stmt = stmt.where(_le.user_id == scope)
        elif owner_id is not None:
            stmt = stmt.where(_le.user_id == owner_id)
        if q:
            pat = contains_pattern(q)
            stmt = stmt.where(or_(_le.value.like(pat, escape="\\"), func.lower(_le.note).like(pat, escape="\\")))
        with self.engine.connect() as conn:
            rows, cursor = keyset_page(conn, stmt, _le.id, before=before_id, limit=limit)
        return [_entry_dict(r) for r in rows], cursor

    def get_entry(self, scope: int | None, entry_id: int, action: str | None = None) -> dict[str, Any]:
        stmt = _entries_select().where(_le.id == entry_id)
        if scope is not None:
            stmt = stmt.where(_le.user_id == scope)
        if action is not None:
            stmt = stmt.where(_le.action == action)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise NotFound(f"no entry {entry_id}")
        return _entry_dict(row)
