"""Events (one per final SMTP decision), their daily counts, the API's pages of them, and pruning.

Each event write also counts it in event_counts (the stats rollup), in the same transaction. Inside a
group commit (AsyncStore) the counts are gathered per batch and written once per (user, day, verdict).
A screened or bulk event is also added to screened_counts (per user, sender and day: the Screened
page's rollup), in the same transaction; pruning and recount_events keep both right.
"""

from __future__ import annotations

import json
import string
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy import Integer, Row, String, case, cast, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from ..policy.decide import EventRecord
from .engine import StoreBase, contains_pattern, dbapi, inserted_id
from .fast_sqlite import add_event_counts as sqlite_add_event_counts
from .fast_sqlite import add_screened_counts as sqlite_add_screened_counts
from .fast_sqlite import insert_event as sqlite_insert_event
from .lists import listed_for_tx
from .paging import keyset_page
from .schema import EVENT_COLUMNS, NO_USER, event_counts, events, screened_counts
from .tags import count_tag_tx

DAY = 86400
BATCH_COUNTS = "sendergate.event_counts"  # conn.info key: counts gathered during one group commit

# What an event keeps of each text: the column's length, and for the free-text columns a page's worth.
_CAPS = (*((c.name, c.type.length) for c in events.columns if isinstance(c.type, String) and c.type.length),
         ("subject", 1000), ("from_header", 1000), ("message_id", 1000))
_record_values = attrgetter(*EVENT_COLUMNS)
_details_json = json.JSONEncoder(separators=(",", ":"), default=str).encode  # json.dumps' output, one encoder
_row_values = itemgetter(*EVENT_COLUMNS)


def event_row(r: EventRecord) -> dict[str, Any]:
    """The events row of a record: its fields (EVENT_COLUMNS), as the columns take them."""
    row = dict(zip(EVENT_COLUMNS, _record_values(r), strict=True))
    row["ts"] = r.ts.timestamp()
    row["verdict"] = r.verdict.value
    row["details"] = _details_json(r.details)
    for name, cap in _CAPS:
        if len(row[name]) > cap:
            row[name] = row[name][:cap]
    return row


def event_dict(row: Row[Any]) -> dict[str, Any]:
    """An events row as the API gives it: `id` and the record's fields, details parsed."""
    out = dict(row._mapping)
    try:
        out["details"] = json.loads(out.get("details") or "{}")
    except ValueError:  # written by something else; show it rather than fail the page
        out["details"] = {"raw": out.get("details")}
    return out


SCREENED_VERDICTS = frozenset(("screened", "bulk"))  # what the Screened page (and its rollup) counts
SCAN_STEP = 500  # rollup rows read per step while finding a Screened page's senders
# senders are grouped lower-cased in ASCII only: what SQLite's lower() does, so a rebuild gives the same keys
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
ScreenedRow = tuple[int, str, int, int, int, float, float, int]  # a screened_counts row, in column order


def screened_row(row: dict[str, Any], event_id: int) -> ScreenedRow:
    """The screened_counts row of one screened or bulk event row (with a sender)."""
    user_id, day, verdict = count_key(row)
    return (user_id, row["sender"].translate(_ASCII_LOWER), day, int(verdict == "screened"),
            int(verdict == "bulk"), row["ts"], row["ts"], event_id)


def merge_screened(rows: Iterable[ScreenedRow]) -> list[ScreenedRow]:
    """One row per key (an upsert may touch a row once), in key order (PostgreSQL row locks: see
    add_event_counts_tx)."""
    out: dict[tuple[int, str, int], ScreenedRow] = {}
    for r in rows:
        k = r[:3]
        o = out.get(k)
        out[k] = r if o is None else (*k, o[3] + r[3], o[4] + r[4], min(o[5], r[5]), max(o[6], r[6]), max(o[7], r[7]))
    return [out[k] for k in sorted(out)]


def screened_rollup_sql(sqlite: bool, where: str = "") -> str:
    """INSERT … SELECT that builds screened_counts rows from events (all, or those `where` selects)."""
    day = "CAST(ts / 86400 AS INTEGER)" if sqlite else "CAST(floor(ts / 86400) AS INTEGER)"
    lower = ("lower(sender)" if sqlite
             else "translate(sender, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')")
    return (f"INSERT INTO screened_counts (user_id, sender, day, screened, bulk, first_ts, last_ts, last_id)"  # noqa: S608  # constants only
            f" SELECT COALESCE(user_id, 0), {lower}, {day}, SUM(CASE WHEN verdict = 'screened' THEN 1 ELSE 0 END),"
            f" SUM(CASE WHEN verdict = 'bulk' THEN 1 ELSE 0 END), MIN(ts), MAX(ts), MAX(id) FROM events"
            f" WHERE verdict IN ('screened', 'bulk') AND sender != ''{where} GROUP BY 1, 2, 3")


def count_key(row: dict[str, Any]) -> tuple[int, int, str]:
    """(user, UTC day, verdict) of an event row: its key in event_counts."""
    user_id = row["user_id"]
    return (NO_USER if user_id is None else user_id, int(row["ts"] // DAY), row["verdict"])


# A text search cannot use an index: it reads the caller's events newest first, in steps, until the
# page is full, or SEARCH_WINDOW events were read, or SEARCH_BUDGET seconds have passed, whichever
# comes first. The budget bounds a page's time whatever the caller's events look like (a user whose
# rows are sparse in the table costs a page read per row); measured in benchmarks.md.
SEARCH_WINDOW = 20_000
SEARCH_BUDGET = 0.025
SEARCH_STEP = 1_000  # the first step; later ones are sized by the rate so far to fit what is left
_MIN_STEP = 250


def _search_window(scope: int | None, before_id: int | None, size: int) -> Select[Any, int]:
    """(oldest id, count) of the `size` newest events of the caller below `before_id`."""
    e = events.c
    read = select(e.id)
    if scope is not None:
        read = read.where(e.user_id == scope)
    if before_id is not None:
        read = read.where(e.id < before_id)
    window = read.order_by(e.id.desc()).limit(size).subquery()
    return select(func.min(window.c.id), func.count()).select_from(window)


_Q_EVENT = insert(events)


class Events(StoreBase):
    # -- writing ------------------------------------------------------------------------------
    def add_event_tx(self, conn: Connection, record: EventRecord) -> int:
        """Store one event (and count it) in the caller's transaction; its id."""
        row = event_row(record)
        if self.fast:
            event_id = sqlite_insert_event(dbapi(conn), _row_values(row))
        else:
            event_id = inserted_id(conn.execute(_Q_EVENT, row))
        batch = conn.info.get(BATCH_COUNTS)
        if batch is not None:
            batch[count_key(row)] += 1
        else:
            self.add_event_counts_tx(conn, Counter([count_key(row)]))
        if row["verdict"] in SCREENED_VERDICTS and row["sender"]:
            self.add_screened_counts_tx(conn, [screened_row(row, event_id)])
        if record.tag and record.user_id is not None:  # mail by a sign-up address: its counts
            count_tag_tx(conn, self.is_sqlite, record.user_id, record.tag, row["sender"], row["verdict"], row["ts"])
        return event_id

    def add_events(self, records: Sequence[EventRecord]) -> list[int]:
        rows = [event_row(r) for r in records]
        with self.engine.begin() as conn:
            if self.is_sqlite or len(rows) == 1:
                ids = [inserted_id(conn.execute(insert(events).values(**r))) for r in rows]
            else:
                res = conn.execute(insert(events).returning(events.c.id, sort_by_parameter_order=True), rows)
                ids = [r[0] for r in res]
            self.add_event_counts_tx(conn, Counter(count_key(r) for r in rows))
            self.add_screened_counts_tx(conn, [screened_row(r, i) for r, i in zip(rows, ids, strict=True)
                                               if r["verdict"] in SCREENED_VERDICTS and r["sender"]])
            for r in rows:
                if r["tag"] and r["user_id"] is not None:
                    count_tag_tx(conn, self.is_sqlite, r["user_id"], r["tag"], r["sender"], r["verdict"], r["ts"])
            return ids

    def add_event_counts_tx(self, conn: Connection, counts: Counter[tuple[int, int, str]]) -> None:
        """Add to the daily counts: one upsert statement, rows in key order.

        The order matters on PostgreSQL: two nodes' transactions then take the
        row locks of shared (user, day, verdict) rows in the same order and
        wait for each other instead of deadlocking.
        """
        rows = [(u, d, v, n) for (u, d, v), n in sorted(counts.items()) if n]
        if not rows:
            return
        if self.fast:
            sqlite_add_event_counts(dbapi(conn), rows)
            return
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as upsert
        else:
            from sqlalchemy.dialects.postgresql import insert as upsert  # type: ignore[assignment]  # same API
        stmt = upsert(event_counts).values([{"user_id": u, "day": d, "verdict": v, "count": n} for u, d, v, n in rows])
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[event_counts.c.user_id, event_counts.c.day, event_counts.c.verdict],
            set_={"count": event_counts.c.count + stmt.excluded.count}))

    def add_screened_counts_tx(self, conn: Connection, rows: Sequence[ScreenedRow]) -> None:
        """Add screened or bulk events to screened_counts: one upsert statement."""
        rows = merge_screened(rows)
        if not rows:
            return
        if self.fast:
            sqlite_add_screened_counts(dbapi(conn), rows)
            return
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as upsert
        else:
            from sqlalchemy.dialects.postgresql import insert as upsert  # type: ignore[assignment]  # same API
        sc = screened_counts.c
        stmt = upsert(screened_counts).values([dict(zip(screened_counts.c.keys(), r, strict=True)) for r in rows])
        x = stmt.excluded
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[sc.user_id, sc.sender, sc.day],
            set_={"screened": sc.screened + x.screened, "bulk": sc.bulk + x.bulk,
                  "first_ts": case((x.first_ts < sc.first_ts, x.first_ts), else_=sc.first_ts),
                  "last_ts": case((x.last_ts > sc.last_ts, x.last_ts), else_=sc.last_ts),
                  "last_id": case((x.last_id > sc.last_id, x.last_id), else_=sc.last_id)}))

    # -- housekeeping -------------------------------------------------------------------------
    def prune_events(self, older_than: float) -> int:
        """Delete events before `older_than`, and their counts: days before the cut go whole, the cut
        day loses what was deleted of it (as returned by the DELETE, so two nodes pruning at once
        do not both subtract)."""
        e, ec = events.c, event_counts.c
        cut_day = int(older_than // DAY)
        with self.engine.begin() as conn:
            cut = conn.execute(delete(events).where(e.ts >= cut_day * DAY, e.ts < older_than)
                               .returning(e.user_id, e.verdict)).all()
            pruned: int = len(cut) + conn.execute(delete(events).where(e.ts < cut_day * DAY)).rowcount
            conn.execute(delete(event_counts).where(ec.day < cut_day))
            gone = Counter((NO_USER if u is None else u, v) for u, v in cut)
            for (user_id, verdict), n in sorted(gone.items()):
                conn.execute(update(event_counts).where(ec.user_id == user_id, ec.day == cut_day,
                                                        ec.verdict == verdict).values(count=ec.count - n))
            if gone:
                conn.execute(delete(event_counts).where(ec.day == cut_day, ec.count <= 0))
            # screened_counts: days before the cut go whole; the cut day is grouped again from what is left
            # of it (one day's screened events: its first/last seen change too, not only its counts)
            sc = screened_counts.c
            conn.execute(delete(screened_counts).where(sc.day < cut_day))
            if any(v in SCREENED_VERDICTS for _, v in gone):
                conn.execute(delete(screened_counts).where(sc.day == cut_day))
                conn.execute(text(screened_rollup_sql(self.is_sqlite, " AND ts >= :a AND ts < :b")),
                             {"a": float(cut_day * DAY), "b": float((cut_day + 1) * DAY)})
            return pruned

    def recount_events(self) -> None:
        """Rebuild event_counts and screened_counts from the events (after a bulk load that bypassed the
        store, e.g. benchmarks; `sendergate recount`)."""
        # floor(ts / 86400) as in count_key; SQLite's CAST truncates, which is floor after 1970
        day = (cast(events.c.ts / DAY, Integer) if self.is_sqlite
               else cast(func.floor(events.c.ts / DAY), Integer))
        user = func.coalesce(events.c.user_id, NO_USER)
        with self.engine.begin() as conn:
            conn.execute(delete(event_counts))
            conn.execute(insert(event_counts).from_select(
                ["user_id", "day", "verdict", "count"],
                select(user, day, events.c.verdict, func.count()).group_by(user, day, events.c.verdict)))
            conn.execute(delete(screened_counts))
            conn.execute(text(screened_rollup_sql(self.is_sqlite)))
        if not self.is_sqlite:
            # PostgreSQL plans a page by the rollups' statistics: rows replaced wholesale would be planned
            # as the handful they were (a user's 100,000 rollup rows read and sorted for one page) until
            # autovacuum analyzes them
            with self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                    text("ANALYZE event_counts, screened_counts"))

    # -- reading ------------------------------------------------------------------------------
    def events_page(self, scope: int | None, *, verdicts: Sequence[str] = (), q: str = "",
                    tag: str | None = None, since: float | None = None, until: float | None = None,
                    before_id: int | None = None, limit: int = 50, window: int = SEARCH_WINDOW,
                    budget: float | None = SEARCH_BUDGET,
                    step: int = SEARCH_STEP) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first; returns the rows and the id to continue below (None on the last page).

        A text search (`q`) reads at most `window` of the caller's events below `before_id` (newest
        first), in steps, starting no new step once `budget` seconds have passed (None: no time limit),
        and returns the matches among what it read: a page may hold fewer than `limit` rows, or none,
        and still have an id to continue below (the oldest event it read). The other filters apply
        inside what was read. None only once the caller's oldest event was read. `tag`: only the events that
        came in by the sign-up address of that name (as stored: lower case).
        """
        e = events.c
        stmt = select(events)
        if scope is not None:
            stmt = stmt.where(e.user_id == scope)
        if tag is not None:
            stmt = stmt.where(e.tag == tag)
        if verdicts:
            stmt = stmt.where(e.verdict.in_(list(verdicts)))
        if since is not None:
            stmt = stmt.where(e.ts >= since)
        if until is not None:
            stmt = stmt.where(e.ts < until)
        if not q:
            with self.engine.connect() as conn:
                page, cursor = keyset_page(conn, stmt, e.id, before=before_id, limit=limit)
            return [event_dict(r) for r in page], cursor
        pat = contains_pattern(q)
        stmt = stmt.where(or_(func.lower(e.sender).like(pat, escape="\\"),
                              func.lower(e.subject).like(pat, escape="\\"),
                              func.lower(e.recipient).like(pat, escape="\\")))
        started = time.monotonic()
        rows: list[Row[Any]] = []
        read, below, step = 0, before_id, min(step, window)
        with self.engine.connect() as conn:
            while True:
                oldest, count = conn.execute(_search_window(scope, below, step)).one()
                if count:
                    part = stmt.where(e.id >= oldest)
                    if below is not None:
                        part = part.where(e.id < below)
                    rows += conn.execute(part.order_by(e.id.desc()).limit(limit + 1 - len(rows))).all()
                    read += count
                if len(rows) > limit:
                    items = [event_dict(r) for r in rows[:limit]]
                    return items, items[-1]["id"]
                if count < step:  # the caller's oldest event was read
                    return [event_dict(r) for r in rows], None
                below, rest = oldest, window - read
                step = rest
                if budget is not None:  # as many as the rate so far says fit in the time left
                    elapsed = time.monotonic() - started
                    step = min(rest, int(read / max(elapsed, 1e-6) * (budget - elapsed)))
                if step <= 0 or (step < _MIN_STEP and step < rest):  # window or time used up: go on below next time
                    return [event_dict(r) for r in rows], oldest

    def events_after(self, scope: int | None, after_id: int, limit: int = 500) -> list[dict[str, Any]]:
        """Events with id > after_id, oldest first (the live feed)."""
        e = events.c
        stmt = select(events).where(e.id > after_id)
        if scope is not None:
            stmt = stmt.where(e.user_id == scope)
        with self.engine.connect() as conn:
            return [event_dict(r) for r in conn.execute(stmt.order_by(e.id).limit(limit)).all()]

    def max_event_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(events.c.id))).scalar() or 0)

    def screened_senders(self, scope: int | None, list_owner: int, *, since: float, upto_id: int,
                         before_id: int | None = None, limit: int = 200,
                         now: float | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """Automated senders that were screened or refused as bulk, one row per sender (lower-cased in
        ASCII), the most recently seen first; read from screened_counts, so a page costs the same however
        long the event log is (it groups a caller's per-sender-and-day rows of the period).

        The period is whole UTC days: from the day `since` falls in. Only events with id <= upto_id
        count: a client paging through the groups pins `upto_id` on its first page, so a sender who
        writes again meanwhile does not jump to a page already read (such a sender's newer events are
        taken off its rollup rows: they are the events after `upto_id`, few). A page ends below
        `before_id` (the last group's newest event id). Each row says which entry of `list_owner`'s
        lists (or a global one) decides for the sender today, if any.
        """
        sc, e = screened_counts.c, events.c
        first_day = int(since // DAY)
        newest = func.max(sc.last_id)
        groups = (select(sc.sender, func.sum(sc.screened).label("screened"), func.sum(sc.bulk).label("bulk"),
                         newest.label("last_id"), func.min(sc.first_ts).label("first_seen"),
                         func.max(sc.last_ts).label("last_seen"))
                  .where(sc.day >= first_day).group_by(sc.sender))
        if scope is not None:
            groups = groups.where(sc.user_id == scope)
        with self.engine.connect() as conn:
            moved, taken = self._screened_moved(conn, scope, groups, first_day, upto_id, before_id)
            page = self._screened_scan(conn, scope, groups, first_day, upto_id, before_id, limit + 1, taken)
            page += moved
            page.sort(key=itemgetter("last_id"), reverse=True)
            cursor = page[limit - 1]["last_id"] if len(page) > limit else None
            page = page[:limit]
            subjects = dict(conn.execute(select(e.id, e.subject).where(
                e.id.in_([g["last_id"] for g in page]))).all()) if page else {}
            deciding = listed_for_tx(conn, list_owner, [g["sender"] for g in page], now=now)
        for g in page:
            g["latest_subject"] = subjects.get(g["last_id"], "")
            g["screened"], g["bulk"] = int(g["screened"] or 0), int(g["bulk"] or 0)
            g["count"] = g["screened"] + g["bulk"]
            g["listed"] = deciding.get(g["sender"])
        return page, cursor

    def _screened_scan(self, conn: Connection, scope: int | None, groups: Select[Any], first_day: int,
                       upto_id: int, before_id: int | None, want: int, skip: set[str]) -> list[dict[str, Any]]:
        """The `want` groups with the newest events below `before_id`, found by reading the rollup's rows
        newest first (an index on last_id) until that many senders were seen: the cost follows the page,
        not the log. A sender whose newest event is at or above `before_id` was on an earlier page."""
        sc = screened_counts.c
        rows = select(sc.sender, sc.last_id).where(sc.day >= first_day, sc.last_id <= upto_id)
        if scope is not None:
            rows = rows.where(sc.user_id == scope)
        rows = rows.order_by(sc.last_id.desc()).limit(SCAN_STEP)
        found: list[dict[str, Any]] = []
        seen, bound = set(skip), before_id
        while len(found) < want:
            chunk = conn.execute(rows if bound is None else rows.where(sc.last_id < bound)).all()
            fresh = []
            for r in chunk:
                if r.sender not in seen:
                    seen.add(r.sender)
                    fresh.append(r.sender)
            if fresh:
                for g in conn.execute(groups.where(sc.sender.in_(fresh))):
                    if before_id is None or g.last_id < before_id:
                        found.append(dict(g._mapping))
            if len(chunk) < SCAN_STEP:
                break
            bound = chunk[-1].last_id
        return found

    def _screened_moved(self, conn: Connection, scope: int | None, groups: Select[Any], first_day: int,
                        upto_id: int, before_id: int | None) -> tuple[list[dict[str, Any]], set[str]]:
        """The groups, as of `upto_id`, of senders with screened or bulk events after it (their rollup
        rows count those too): the rollup less the newer events; the newest event up to `upto_id` read."""
        e, sc = events.c, screened_counts.c
        newer = select(e.sender, e.verdict).where(e.id > upto_id, e.verdict.in_(sorted(SCREENED_VERDICTS)),
                                                  e.sender != "", e.ts >= first_day * DAY)
        if scope is not None:
            newer = newer.where(e.user_id == scope)
        taken: dict[str, Counter[str]] = {}
        for sender, verdict in conn.execute(newer):
            taken.setdefault(sender.translate(_ASCII_LOWER), Counter())[verdict] += 1
        out: list[dict[str, Any]] = []
        for g in conn.execute(groups.where(sc.sender.in_(sorted(taken)))) if taken else ():
            row = dict(g._mapping)
            less = taken[row["sender"]]
            row["screened"] = int(row["screened"] or 0) - less["screened"]
            row["bulk"] = int(row["bulk"] or 0) - less["bulk"]
            if row["screened"] + row["bulk"] <= 0:
                continue  # all of its events in the period came after the first page
            last = select(e.id, e.ts).where(e.id <= upto_id, e.verdict.in_(sorted(SCREENED_VERDICTS)),
                                            e.ts >= first_day * DAY, self._ascii_lower(e.sender) == row["sender"])
            if scope is not None:
                last = last.where(e.user_id == scope)
            found = conn.execute(last.order_by(e.id.desc()).limit(1)).first()
            if found is None or (before_id is not None and found.id >= before_id):
                continue
            row["last_id"], row["last_seen"] = found.id, found.ts
            out.append(row)
        return out, set(taken)

    def _ascii_lower(self, column: Any) -> Any:
        if self.is_sqlite:
            return func.lower(column)  # SQLite's lower() folds ASCII only
        return func.translate(column, string.ascii_uppercase, string.ascii_lowercase)

    def day_counts(self, scope: int | None, first_day: int, last_day: int) -> dict[int, dict[str, int]]:
        """{day number: {verdict: count}} for days first_day..last_day (UTC day numbers since the epoch).

        Read from event_counts, the daily rollup the store keeps with every event
        write: a user's 30 days are at most 30 x verdicts rows, an admin's that
        times the users who had mail; the size of the event log does not matter.
        """
        ec = event_counts.c
        if scope is not None:
            stmt = select(ec.day, ec.verdict, ec.count).where(ec.user_id == scope)
        else:
            stmt = select(ec.day, ec.verdict, func.sum(ec.count)).group_by(ec.day, ec.verdict)
        stmt = stmt.where(ec.day >= first_day, ec.day <= last_day)
        out: dict[int, dict[str, int]] = {d: {} for d in range(first_day, last_day + 1)}
        with self.engine.connect() as conn:
            for d, verdict, n in conn.execute(stmt):
                if n:
                    out.setdefault(int(d), {})[verdict] = int(n)
        return out
