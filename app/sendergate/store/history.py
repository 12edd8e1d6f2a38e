"""One sender's history (issue 17 item 3): their events and their domain's, newest first, counts per verdict,
first and last seen, and the list entries that match them.

Events keep the envelope sender as given, so a sender is found by two expression indexes (migration 0012):
lower(sender) and the lower-cased part after the first "@", each with id for the keyset page. The
expressions below must be spelled exactly as the indexes are (constants inline, no bound parameters), or
the planner cannot use them.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal_column, or_, select
from sqlalchemy.engine import Connection

from ..policy.address import AddressError, Pattern, domain_suffixes, normalise_domain, parse
from ..policy.lists import ListEntry, candidate_patterns, match_sender
from .engine import StoreBase, now_ts, to_dt
from .errors import Invalid
from .events import event_dict
from .lists import _entries_select, _entry_dict
from .paging import keyset_page
from .schema import event_counts, events, list_entries

_e = events.c
_le = list_entries.c
SUMMARY_WINDOW = 1_000  # events counted per summary, newest first (measured: tests/bench/bench_api.py --only history)
DOMAIN_PROBE = 20_000  # a domain's events counted (index only) to compare with a user's, SQLite
_LIST_IN_REASON = re.compile(r"\blist:([A-Za-z0-9._-]{1,255})")  # a `list:<id>` entry named in an event's reason


def sender_key(sqlite: bool) -> ColumnElement[Any]:
    """What ix_events_sender_key indexes: the envelope sender, lower-cased."""
    return func.lower(_e.sender)


def domain_key(sqlite: bool) -> ColumnElement[Any]:
    """What ix_events_sender_domain indexes: the part after the first "@", lower-cased."""
    at: ColumnElement[Any] = literal_column("'@'")
    find = func.instr(_e.sender, at) if sqlite else func.strpos(_e.sender, at)
    return func.lower(func.substr(_e.sender, find + literal_column("1")))


def parse_subject(raw: str) -> tuple[str | None, str]:
    """(address or None, domain) of what the history is asked for: an address or `@domain`. Invalid when
    it is neither."""
    s = raw.strip()
    if s.startswith("@"):
        try:
            return None, normalise_domain(s[1:])
        except AddressError as exc:
            raise Invalid(f"sender: {exc}") from None
    try:
        address = parse(s, unwrap=True)
    except AddressError as exc:
        raise Invalid(f"sender: {exc}") from None
    return s.strip("<>").strip(), address.domain


class History(StoreBase):
    def sender_history(self, scope: int | None, sender: str, *, whole_domain: bool = False,
                       before_id: int | None = None, limit: int = 50, summary: bool = True,
                       now: float | None = None) -> dict[str, Any]:
        """The events from `sender` (an address; `@domain` asks for the domain only), or from their whole
        domain with `whole_domain`, newest first, a keyset page below `before_id`; with `summary`, counts
        per verdict and first/last seen for the sender and for the domain; and the list entries of the
        scope (a user's and the global ones; an admin's: everyone's) that match the sender or domain, or
        that the page's events name (`list:<id>`), each saying whether it decides for its owner today."""
        address, domain = parse_subject(sender)
        if address is None:
            whole_domain = True
        sk, dk = sender_key(self.is_sqlite), domain_key(self.is_sqlite)
        mine = [] if scope is None else [_e.user_id == scope]
        exact = and_(sk == func.lower(address), *mine) if address is not None else None
        out: dict[str, Any] = {"sender": address, "domain": domain, "whole_domain": whole_domain}
        with self.engine.connect() as conn:
            if self._user_rows_fewer(conn, scope, dk == func.lower(domain)):
                dk = dk.concat(literal_column("''"))  # not the index's expression: the planner reads the user's
            in_domain = and_(dk == func.lower(domain), *mine)
            stmt = select(events).where(in_domain if whole_domain or exact is None else exact)
            page, cursor = keyset_page(conn, stmt, _e.id, before=before_id, limit=limit)
            out["items"] = [event_dict(r) for r in page]
            out["next_cursor"] = cursor
            out["sender_summary"] = self._summary(conn, exact) if summary and exact is not None else None
            out["domain_summary"] = self._summary(conn, in_domain) if summary else None
            named = sorted({m for r in page for m in _LIST_IN_REASON.findall(r.reason or "")})
            out["entries"] = self._matching_entries(conn, scope, address, domain, named, now)
        return out

    def _user_rows_fewer(self, conn: Connection, scope: int | None, in_domain: ColumnElement[bool]) -> bool:
        """SQLite, a user's history of a domain: whether the user has fewer events than the domain (counted
        up to DOMAIN_PROBE on the domain index alone), so reading the user's own events (their index) and
        keeping the domain's is cheaper than the planner's choice, the domain index checking each row's
        user (measured: a user with 1 % of a 143,000-event domain, 0.1 s a page). PostgreSQL plans this
        from its statistics."""
        if not self.is_sqlite or scope is None:
            return False
        ec = event_counts.c
        mine = conn.execute(select(func.coalesce(func.sum(ec.count), 0)).where(ec.user_id == scope)).scalar_one()
        theirs = conn.execute(select(func.count()).select_from(
            select(_e.id).where(in_domain).limit(DOMAIN_PROBE).subquery())).scalar_one()
        return bool(mine < theirs)

    @staticmethod
    def _summary(conn: Connection, where: ColumnElement[bool], window: int | None = None) -> dict[str, Any]:
        """Counts per verdict of the newest `window` events `where` selects (read newest first on the
        index), and first and last seen of all of them: a freemail domain's hundred thousand events cost
        what `window` do. `complete` is False when older events were left out of the counts."""
        newest = (select(_e.id, _e.verdict, _e.ts).where(where).order_by(_e.id.desc())
                  .limit(window or SUMMARY_WINDOW).subquery())
        rows = conn.execute(select(newest.c.verdict, func.count(), func.min(newest.c.id), func.max(newest.c.ts))
                            .group_by(newest.c.verdict)).all()
        counts = {r[0]: int(r[1]) for r in rows}
        oldest = conn.execute(select(_e.id, _e.ts).where(where).order_by(_e.id).limit(1)).first()
        counted_from = min((r[2] for r in rows), default=None)
        return {"counts": counts, "total": sum(counts.values()),
                "complete": oldest is None or counted_from is None or oldest.id >= counted_from,
                "first_seen": oldest.ts if oldest is not None else None,
                "last_seen": max((r[3] for r in rows), default=None)}

    def _matching_entries(self, conn: Connection, scope: int | None, address: str | None, domain: str,
                          named_lists: list[str], now: float | None) -> list[dict[str, Any]]:
        try:
            parsed = parse(address, unwrap=True) if address is not None else None
        except AddressError:
            parsed = None
        patterns = (candidate_patterns(parsed) if parsed is not None
                    else [Pattern("domain", d) for d in domain_suffixes(domain)])
        wanted = [and_(_le.kind == p.kind, _le.value == p.value) for p in patterns]
        wanted += [and_(_le.kind == "list", _le.value == v) for v in named_lists]
        stmt = _entries_select().where(or_(*wanted))
        if scope is not None:
            stmt = stmt.where(or_(_le.user_id == scope, _le.user_id.is_(None)))
        rows = [_entry_dict(r) for r in conn.execute(stmt.order_by(_le.id)).all()]
        when = to_dt(now or now_ts())
        assert when is not None
        as_entries = [ListEntry(r["id"], r["action"], Pattern(r["kind"], r["entry"].removeprefix("@")
                                                              .removeprefix("list:")),
                                to_dt(r["expires_at"]), r["user_id"]) for r in rows]
        deciding: set[int] = set()
        probe = parsed if parsed is not None else _domain_probe(domain)
        owners: set[int | None] = {e.user_id for e in as_entries if e.user_id is not None}
        if scope is not None:
            owners.add(scope)
        for owner in owners or {None}:  # each owner's entries and the global ones: what decides for that owner
            found = match_sender([e for e in as_entries if e.user_id in (owner, None)], probe, when)
            if found is not None:
                deciding.add(found.id)
        for r in rows:
            r["deciding"] = r["id"] in deciding
        return rows


def _domain_probe(domain: str) -> Any:
    """An address at `domain` that no address entry names: what decides for "anyone at the domain"."""
    try:
        return parse(f"nobody.history.probe@{domain}", unwrap=True)
    except AddressError:
        return None
