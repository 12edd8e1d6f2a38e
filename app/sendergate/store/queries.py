"""Read and write queries for the API: pages, challenge decisions, list entries, stats, the live feed.

Functions take a `Store` and plain values and return plain dicts (times as
epoch floats); the web layer turns them into response models. `scope` is the
user whose data is asked for, or None for an admin who sees everything.
Pages are keyset pages over the primary key (newest first): a page boundary
is an id, so rows inserted meanwhile never shift or repeat a page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.sql import Select

from ..policy.address import AddressError, Pattern, domain_suffixes, parse, parse_pattern
from ..policy.lists import ListEntry, candidate_patterns, match_sender
from . import Store, hash_secret, now_ts, to_dt
from . import schema as s

DAY = 86400


class Forbidden(Exception):
    """The caller may not do this (the web layer answers 403)."""


class Missing(Exception):
    """No such thing for this caller (404: the same answer whether it exists for someone else or not)."""


# -- tokens -------------------------------------------------------------------------
def user_id_for_token(store: Store, token: str) -> int | None:
    """The user a bearer token belongs to (read only: the hot path of every request)."""
    with store.engine.connect() as conn:
        return conn.execute(select(s.api_tokens.c.user_id)
                            .where(s.api_tokens.c.token_hash == hash_secret(token))).scalar()


def touch_token(store: Store, token: str, when: float) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(s.api_tokens).where(s.api_tokens.c.token_hash == hash_secret(token))
                     .values(last_used_at=when))


# -- events -------------------------------------------------------------------------
def _event_dict(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    try:
        out["details"] = json.loads(out.get("details") or "{}")
    except ValueError:  # written by something else; show it rather than fail the page
        out["details"] = {"raw": out.get("details")}
    return out


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# A text search cannot use an index: it reads the caller's events newest first, in steps, until the
# page is full, or SEARCH_WINDOW events were read, or SEARCH_BUDGET seconds have passed, whichever
# comes first. The budget bounds a page's time whatever the caller's events look like (a user whose
# rows are sparse in the table costs a page read per row); measured in benchmarks.md.
SEARCH_WINDOW = 20_000
SEARCH_BUDGET = 0.025
SEARCH_STEP = 1_000  # the first step; later ones are sized by the rate so far to fit what is left
_MIN_STEP = 250


def _search_window(scope: int | None, before_id: int | None, size: int) -> Select:
    """(oldest id, count) of the `size` newest events of the caller below `before_id`."""
    e = s.events.c
    read = select(e.id)
    if scope is not None:
        read = read.where(e.user_id == scope)
    if before_id is not None:
        read = read.where(e.id < before_id)
    read = read.order_by(e.id.desc()).limit(size).subquery()
    return select(func.min(read.c.id), func.count()).select_from(read)


def events_page(store: Store, scope: int | None, *, verdicts: Sequence[str] = (), q: str = "",
                since: float | None = None, until: float | None = None, before_id: int | None = None,
                limit: int = 50, window: int = SEARCH_WINDOW, budget: float | None = SEARCH_BUDGET,
                step: int = SEARCH_STEP) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; returns the rows and the id to continue below (None on the last page).

    A text search (`q`) reads at most `window` of the caller's events below `before_id` (newest
    first), in steps, starting no new step once `budget` seconds have passed (None: no time limit),
    and returns the matches among what it read: a page may hold fewer than `limit` rows, or none,
    and still have an id to continue below (the oldest event it read). The other filters apply
    inside what was read. None only once the caller's oldest event was read.
    """
    e = s.events.c
    stmt = select(s.events)
    if scope is not None:
        stmt = stmt.where(e.user_id == scope)
    if verdicts:
        stmt = stmt.where(e.verdict.in_(list(verdicts)))
    if since is not None:
        stmt = stmt.where(e.ts >= since)
    if until is not None:
        stmt = stmt.where(e.ts < until)
    if not q:
        if before_id is not None:
            stmt = stmt.where(e.id < before_id)
        with store.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(e.id.desc()).limit(limit + 1)).all()
        items = [_event_dict(r) for r in rows[:limit]]
        return items, (items[-1]["id"] if len(rows) > limit else None)
    pat = _like(q)
    stmt = stmt.where(or_(func.lower(e.sender).like(pat, escape="\\"),
                          func.lower(e.subject).like(pat, escape="\\"),
                          func.lower(e.recipient).like(pat, escape="\\")))
    started = time.monotonic()
    rows: list[Any] = []
    read, below, step = 0, before_id, min(step, window)
    with store.engine.connect() as conn:
        while True:
            oldest, count = conn.execute(_search_window(scope, below, step)).one()
            if count:
                part = stmt.where(e.id >= oldest)
                if below is not None:
                    part = part.where(e.id < below)
                rows += conn.execute(part.order_by(e.id.desc()).limit(limit + 1 - len(rows))).all()
                read += count
            if len(rows) > limit:
                items = [_event_dict(r) for r in rows[:limit]]
                return items, items[-1]["id"]
            if count < step:  # the caller's oldest event was read
                return [_event_dict(r) for r in rows], None
            below, rest = oldest, window - read
            step = rest
            if budget is not None:  # as many as the rate so far says fit in the time left
                elapsed = time.monotonic() - started
                step = min(rest, int(read / max(elapsed, 1e-6) * (budget - elapsed)))
            if step <= 0 or (step < _MIN_STEP and step < rest):  # window or time used up: go on below next time
                return [_event_dict(r) for r in rows], oldest


def events_after(store: Store, scope: int | None, after_id: int, limit: int = 500) -> list[dict[str, Any]]:
    """Events with id > after_id, oldest first (the live feed)."""
    e = s.events.c
    stmt = select(s.events).where(e.id > after_id)
    if scope is not None:
        stmt = stmt.where(e.user_id == scope)
    with store.engine.connect() as conn:
        return [_event_dict(r) for r in conn.execute(stmt.order_by(e.id).limit(limit)).all()]


def screened_senders(store: Store, scope: int | None, list_owner: int, *, since: float, upto_id: int,
                     before_id: int | None = None, limit: int = 200,
                     now: float | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Automated senders that were screened or refused as bulk, one row per sender (lower-cased), the
    most recently seen first; grouped and counted in the database.

    Only events with since <= ts and id <= upto_id count: a client paging through the groups pins
    `upto_id` on its first page, so a sender who writes again meanwhile does not jump to a page
    already read. A page ends below `before_id` (the last group's newest event id). Each row says
    which entry of `list_owner`'s lists (or a global one) decides for the sender today, if any.
    """
    e = s.events.c
    sender = func.lower(e.sender)
    newest = func.max(e.id)
    stmt = (select(sender.label("sender"), func.count().label("count"),
                   func.sum(case((e.verdict == "screened", 1), else_=0)).label("screened"),
                   func.sum(case((e.verdict == "bulk", 1), else_=0)).label("bulk"),
                   newest.label("last_id"), func.min(e.ts).label("first_seen"), func.max(e.ts).label("last_seen"))
            .where(e.verdict.in_(("screened", "bulk")), e.ts >= since, e.id <= upto_id, e.sender != "")
            .group_by(sender))
    if scope is not None:
        stmt = stmt.where(e.user_id == scope)
    if before_id is not None:
        stmt = stmt.having(newest < before_id)
    stmt = stmt.order_by(newest.desc()).limit(limit + 1)
    with store.engine.connect() as conn:
        groups = [dict(r._mapping) for r in conn.execute(stmt).all()]
        page = groups[:limit]
        subjects = dict(conn.execute(select(e.id, e.subject).where(e.id.in_([g["last_id"] for g in page]))).all()) \
            if page else {}
    deciding = listed_for(store, list_owner, [g["sender"] for g in page], now=now)
    for g in page:
        g["latest_subject"] = subjects.get(g["last_id"], "")
        g["screened"], g["bulk"] = int(g["screened"] or 0), int(g["bulk"] or 0)
        g["listed"] = deciding.get(g["sender"])
    return page, (page[-1]["last_id"] if len(groups) > limit else None)


def listed_for(store: Store, user_id: int | None, senders: Sequence[str],
               now: float | None = None) -> dict[str, dict[str, str]]:
    """sender -> {"action", "entry"} of the list entry that decides for it (SPEC §4.1: the user's and the
    global entries, most specific wins, block beats allow), for senders some active entry matches."""
    addresses = {}
    for raw in senders:
        try:
            addresses[raw] = parse(raw, unwrap=True)
        except AddressError:  # recorded as given in MAIL FROM; nothing on a list can match it
            continue
    wanted = sorted({p.value for a in addresses.values() for p in candidate_patterns(a)})
    le = s.list_entries.c
    entries: list[ListEntry] = []
    with store.engine.connect() as conn:
        for i in range(0, len(wanted), 500):
            rows = conn.execute(select(le.id, le.action, le.kind, le.value, le.expires_at, le.user_id).where(
                le.user_id.is_(None) if user_id is None else or_(le.user_id == user_id, le.user_id.is_(None)),
                le.kind.in_(("address", "domain")),
                le.value.in_(wanted[i:i + 500]))).all()
            entries += [ListEntry(r.id, r.action, Pattern(r.kind, r.value), to_dt(r.expires_at), r.user_id)
                        for r in rows]
    when = to_dt(now or now_ts())
    out = {}
    for raw, address in addresses.items():
        found = match_sender(entries, address, when)
        if found is not None:
            out[raw] = {"action": found.action, "entry": str(found.pattern)}
    return out


def max_event_id(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.max(s.events.c.id))).scalar() or 0


# -- challenges ---------------------------------------------------------------------
_CHALLENGE_COLS = [s.challenges.c[n] for n in ("id", "user_id", "recipient", "sender", "status", "subject",
                                                "attempts", "confirm_failures", "client_ip", "created_at",
                                                "updated_at", "expires_at", "auth")]


def challenges_page(store: Store, scope: int | None, *, status: str | None = "pending", q: str = "",
                    before_id: int | None = None, limit: int = 50,
                    now: float | None = None) -> tuple[list[dict[str, Any]], int | None]:
    c = s.challenges.c
    stmt = select(*_CHALLENGE_COLS)
    if scope is not None:
        stmt = stmt.where(c.user_id == scope)
    if status == "pending":  # a pending challenge past its expiry is expired, whether housekeeping ran or not
        stmt = stmt.where(c.status == "pending", c.expires_at > (now or now_ts()))
    elif status:
        stmt = stmt.where(c.status == status)
    if q:
        pat = _like(q)
        stmt = stmt.where(or_(func.lower(c.sender).like(pat, escape="\\"),
                              func.lower(c.subject).like(pat, escape="\\")))
    if before_id is not None:
        stmt = stmt.where(c.id < before_id)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt.order_by(c.id.desc()).limit(limit + 1)).all()
    items = [dict(r._mapping) for r in rows[:limit]]
    return items, (items[-1]["id"] if len(rows) > limit else None)


def challenges_changed_since(store: Store, scope: int | None, since: float, limit: int = 500) -> list[dict[str, Any]]:
    c = s.challenges.c
    stmt = select(*_CHALLENGE_COLS).where(c.updated_at > since)
    if scope is not None:
        stmt = stmt.where(c.user_id == scope)
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt.order_by(c.updated_at, c.id).limit(limit)).all()]


def pending_count(store: Store, scope: int | None, now: float | None = None) -> int:
    c = s.challenges.c
    stmt = select(func.count()).select_from(s.challenges).where(c.status == "pending",
                                                                 c.expires_at > (now or now_ts()))
    if scope is not None:
        stmt = stmt.where(c.user_id == scope)
    with store.engine.connect() as conn:
        return conn.execute(stmt).scalar() or 0


def get_challenge(store: Store, scope: int | None, challenge_id: int) -> dict[str, Any]:
    c = s.challenges.c
    stmt = select(*_CHALLENGE_COLS).where(c.id == challenge_id)
    if scope is not None:
        stmt = stmt.where(c.user_id == scope)
    with store.engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        raise Missing(f"no challenge {challenge_id}")
    return dict(row._mapping)


def decide_challenge(store: Store, scope: int | None, challenge_id: int, decision: str,
                     now: float | None = None) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """approve | deny | allow-domain, idempotent; returns (challenge, list entry, changed).

    approve: the sender goes on the challenge user's allowlist (source
    `approved`); allow-domain: the sender's domain does; deny: the sender goes
    on the blocklist and the challenge is `denied`, so its links stop working.
    The entry and the status change commit together.
    """
    now = now or now_ts()
    c = s.challenges.c
    with store.engine.begin() as conn:
        stmt = select(*_CHALLENGE_COLS).where(c.id == challenge_id)
        if scope is not None:
            stmt = stmt.where(c.user_id == scope)
        if not store.is_sqlite:
            stmt = stmt.with_for_update()  # two nodes deciding the same challenge: one after the other
        row = conn.execute(stmt).first()
        if row is None:
            raise Missing(f"no challenge {challenge_id}")
        sender = row.sender
        if decision == "allow-domain":
            pattern = parse_pattern("@" + sender.rsplit("@", 1)[1])
        else:
            pattern = parse_pattern(sender)
        action = "block" if decision == "deny" else "allow"
        status = "denied" if decision == "deny" else "approved"
        source = "manual" if decision == "deny" else "approved"
        note = f"{'denied' if decision == 'deny' else 'approved'} challenge {challenge_id} ({row.recipient})"
        entry, created = store._add_entry(conn, row.user_id, action, pattern, source, note, None)
        changed = created or row.status != status
        if row.status != status:
            conn.execute(update(s.challenges).where(c.id == challenge_id).values(status=status, updated_at=now))
        out = dict(conn.execute(select(*_CHALLENGE_COLS).where(c.id == challenge_id)).first()._mapping)
    return out, get_entry(store, None, entry.id), changed


def decide_challenges(store: Store, scope: int | None, challenge_ids: Sequence[int],
                      decision: str) -> list[dict[str, Any]]:
    """decide_challenge for each id, each in its own transaction (one that is not the caller's does not
    undo the others); per id: the outcome, or `missing` when the caller has no such challenge."""
    out: list[dict[str, Any]] = []
    for cid in challenge_ids:
        try:
            challenge, entry, changed = decide_challenge(store, scope, cid, decision)
        except Missing as exc:
            out.append({"id": cid, "status": "missing", "error": str(exc)})
            continue
        out.append({"id": cid, "status": "changed" if changed else "unchanged", "challenge": challenge,
                    "entry": entry})
    return out


# -- list entries ---------------------------------------------------------------------
def _entries_select() -> Select:
    le, ua = s.list_entries.c, s.user_addresses
    return (select(*s.list_entries.c, ua.c.address.label("owner"))
            .select_from(s.list_entries.outerjoin(ua, and_(ua.c.user_id == le.user_id, ua.c.is_primary == 1))))


def _entry_dict(row: Any) -> dict[str, Any]:
    m = row._mapping
    kind, value = m["kind"], m["value"]
    entry = "@" + value if kind == "domain" else "list:" + value if kind == "list" else value
    return {"id": m["id"], "entry": entry, "kind": kind, "action": m["action"], "source": m["source"],
            "note": m["note"], "created_at": m["created_at"], "expires_at": m["expires_at"],
            "user_id": m["user_id"], "owner": m["owner"], "auth": m["auth"]}


def entries_page(store: Store, scope: int | None, action: str, *, q: str = "", owner_id: int | None = None,
                 before_id: int | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], int | None]:
    """A user's entries (scope), or for an admin all entries, or one user's (owner_id), newest first."""
    le = s.list_entries.c
    stmt = _entries_select().where(le.action == action)
    if scope is not None:
        stmt = stmt.where(le.user_id == scope)
    elif owner_id is not None:
        stmt = stmt.where(le.user_id == owner_id)
    if q:
        stmt = stmt.where(or_(le.value.like(_like(q), escape="\\"), func.lower(le.note).like(_like(q), escape="\\")))
    if before_id is not None:
        stmt = stmt.where(le.id < before_id)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt.order_by(le.id.desc()).limit(limit + 1)).all()
    items = [_entry_dict(r) for r in rows[:limit]]
    return items, (items[-1]["id"] if len(rows) > limit else None)


def get_entry(store: Store, scope: int | None, entry_id: int, action: str | None = None) -> dict[str, Any]:
    le = s.list_entries.c
    stmt = _entries_select().where(le.id == entry_id)
    if scope is not None:
        stmt = stmt.where(le.user_id == scope)
    if action is not None:
        stmt = stmt.where(le.action == action)
    with store.engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        raise Missing(f"no entry {entry_id}")
    return _entry_dict(row)


def add_entry(store: Store, owner_id: int | None, action: str, raw: str, *, note: str = "",
              expires_at: float | None = None) -> tuple[dict[str, Any], bool]:
    """Add (idempotent); raises AddressError for an entry that is not an address, @domain or list:id."""
    pattern = parse_pattern(raw)
    entry, created = store.add_entry(owner_id, action, pattern, source="manual", note=note, expires_at=expires_at)
    return get_entry(store, None, entry.id), created


def update_entry(store: Store, scope: int | None, action: str, entry_id: int, *, note: str | None,
                 expires_at: float | None, clear_expiry: bool) -> dict[str, Any]:
    get_entry(store, scope, entry_id, action)  # 404 unless it is the caller's
    values: dict[str, Any] = {}
    if note is not None:
        values["note"] = note
    if clear_expiry:
        values["expires_at"] = None
    elif expires_at is not None:
        values["expires_at"] = expires_at
    if values:
        with store.engine.begin() as conn:
            conn.execute(update(s.list_entries).where(s.list_entries.c.id == entry_id).values(**values))
    return get_entry(store, None, entry_id)


def remove_entry(store: Store, scope: int | None, action: str, entry_id: int) -> None:
    get_entry(store, scope, entry_id, action)
    store.remove_entry(entry_id)


def import_preview(store: Store, owner_id: int | None, raws: Iterable[str]) -> dict[str, Any]:
    """What Store.import_entries would do, without doing it (the app's preview, `--dry-run`)."""
    parsed: list[tuple[str, Any, str]] = []
    for raw in raws:
        try:
            parsed.append((raw, parse_pattern(raw), ""))
        except AddressError as exc:
            parsed.append((raw, None, str(exc)))
    le = s.list_entries.c
    owner = le.user_id.is_(None) if owner_id is None else le.user_id == owner_id
    values = sorted({p.value for _, p, _ in parsed if p is not None})
    have: set[tuple[str, str]] = set()
    with store.engine.connect() as conn:
        for i in range(0, len(values), 500):
            have |= {(r.kind, r.value) for r in conn.execute(select(le.kind, le.value).where(
                owner, le.action == "allow", le.value.in_(values[i:i + 500])))}
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


def domain_cover(store: Store, owner_id: int | None, results: list[dict[str, Any]],
                 now: float | None = None) -> None:
    """Import results: an address not on the list itself whose mail an active @domain allow entry of the
    owner (or a global one) already lets in gets `covered_by` = that entry. One look-up for the import."""
    addresses = [r["entry"] for r in results
                 if r["status"] == "added" and not r["entry"].startswith(("@", "list:"))]
    if not addresses:
        return
    deciding = listed_for(store, owner_id, addresses, now=now)
    for r in results:
        found = deciding.get(r["entry"]) if r["status"] == "added" else None
        if found is not None and found["action"] == "allow" and found["entry"].startswith("@"):
            r["covered_by"] = found["entry"]


# -- stats --------------------------------------------------------------------------------
def day_counts(store: Store, scope: int | None, first_day: int, last_day: int) -> dict[int, dict[str, int]]:
    """{day number: {verdict: count}} for days first_day..last_day (UTC day numbers since the epoch).

    Read from event_counts, the daily rollup the store keeps with every event
    write: a user's 30 days are at most 30 x verdicts rows, an admin's that
    times the users who had mail; the size of the event log does not matter.
    """
    ec = s.event_counts.c
    if scope is not None:
        stmt = select(ec.day, ec.verdict, ec.count).where(ec.user_id == scope)
    else:
        stmt = select(ec.day, ec.verdict, func.sum(ec.count)).group_by(ec.day, ec.verdict)
    stmt = stmt.where(ec.day >= first_day, ec.day <= last_day)
    out: dict[int, dict[str, int]] = {d: {} for d in range(first_day, last_day + 1)}
    with store.engine.connect() as conn:
        for d, verdict, n in conn.execute(stmt):
            if n:
                out.setdefault(int(d), {})[verdict] = int(n)
    return out


# -- sent ids ------------------------------------------------------------------------------
def add_sent_ids(store: Store, user_id: int, hashes: Iterable[str]) -> int:
    total = 0
    batch: list[str] = []
    for h in hashes:
        batch.append(h)
        if len(batch) >= 5000:
            total += store.add_sent_ids(user_id, batch)
            batch = []
    if batch:
        total += store.add_sent_ids(user_id, batch)
    return total


def wall_day(ts: float | None = None) -> int:
    return int((ts if ts is not None else time.time()) // DAY)


# -- the live stream and /metrics (web/stream.py, web/routes/metrics.py) -----------------
def stream_changes(store: Store, after_id: int, challenges_since: float, *, page: int = 1000,
                   challenge_limit: int = 5000) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What the live stream's poller looks at, in one call: every event with id > after_id (oldest first,
    read `page` rows at a time) and up to `challenge_limit` challenges changed after `challenges_since`
    (oldest change first), for all users."""
    events: list[dict[str, Any]] = []
    while True:
        rows = events_after(store, None, after_id, page)
        events += rows
        if len(rows) < page:
            break
        after_id = rows[-1]["id"]
    return events, challenges_changed_since(store, None, challenges_since, challenge_limit)


def challenge_counts(store: Store) -> dict[str, int]:
    """Challenges per status, all users (the /metrics gauges)."""
    c = s.challenges.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(c.status, func.count()).group_by(c.status)).all()
    return {status: n for status, n in rows}
