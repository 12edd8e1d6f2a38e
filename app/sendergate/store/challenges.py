"""Challenges: opening or reusing one per refused sender (the SMTP hot path), their link tokens and the
further challenges one link names, the API's pages and decisions, and housekeeping."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Row, and_, bindparam, case, delete, func, insert, literal, or_, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from ..policy.address import parse_pattern
from ..policy.decide import EventRecord, Verdict
from .engine import contains_pattern, dbapi, hash_secret, inserted_id, new_token, now_ts, to_dt
from .errors import NotFound, short
from .events import Events
from .fast_sqlite import open_challenge as sqlite_open_challenge
from .lists import Lists, add_entry_tx
from .paging import keyset_page
from .schema import captchas, challenge_link_members, challenge_tokens, challenges, events
from .undo_log import entry_key, opposite_entry_tx, record_tx

log = logging.getLogger(__name__)

# what the Pending screener counts as an earlier refusal of a sender (the mail did not arrive)
REFUSED_VERDICTS = tuple(v.value for v in (Verdict.CHALLENGED, Verdict.BULK, Verdict.VIRUS, Verdict.SPAM,
                                           Verdict.BLOCKED, Verdict.TEMPFAIL))
MAX_OTHER_RECIPIENTS = 5  # named in a history; the rest are counted

_ch = challenges.c
# The SMTP side's statements, built once: executing a prepared statement object skips SQLAlchemy's
# per-call construction and cache-key work (a third of a short session's CPU when built on every call).
# The sender's pending challenge in one statement (at most one: uq_challenges_one_pending): reused while it
# lasts (an empty `subj` keeps the subject, an empty `fromh` the From header), expired when it has lapsed
# (it makes way for a new one); RETURNING says which. fast_sqlite._SQL_REUSE is the same statement.
_LIVE = _ch.expires_at > bindparam("now")
_Q_REUSE = update(challenges).where(
    _ch.user_id == bindparam("uid"), _ch.sender == bindparam("sndr"), _ch.status == "pending").values(
    status=case((_LIVE, _ch.status), else_=literal("expired")), updated_at=bindparam("now"),
    attempts=case((_LIVE, _ch.attempts + 1), else_=_ch.attempts),
    subject=case((and_(_LIVE, bindparam("subj") != ""), bindparam("subj")), else_=_ch.subject),
    auth=case((_LIVE, bindparam("authv")), else_=_ch.auth),
    from_header=case((_LIVE, func.coalesce(func.nullif(bindparam("fromh"), ""), _ch.from_header)),
                     else_=_ch.from_header),
).returning(_ch.id, _ch.status)
_Q_TOKEN = insert(challenge_tokens)
_Q_LINK_MEMBER = text("INSERT INTO challenge_link_members (token_hash, challenge_id) "
                      "VALUES (:token_hash, :challenge_id) ON CONFLICT DO NOTHING")

_CHALLENGE_COLS = [_ch[n] for n in ("id", "user_id", "recipient", "sender", "status", "subject", "attempts",
                                    "confirm_failures", "client_ip", "created_at", "updated_at", "expires_at", "auth",
                                    "from_header")]


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


def action_event(row: Any, verdict: Verdict, now: float, *, reason: str, client_ip: str = "",
                 details: dict[str, Any] | None = None) -> EventRecord:
    """The event of a person's action on a challenge (`confirmed`, `approved`, `denied`; SPEC §4.3): the
    challenge's user, sender, recipient and subject, and who did what in `reason`."""
    return EventRecord(ts=to_dt(now) or datetime.now(timezone.utc), verdict=verdict, reason=reason[:500],
                       client_ip=client_ip, sender=row.sender, recipient=row.recipient, user_id=row.user_id,
                       subject=row.subject or "", challenge_id=row.id, details=details or {})


def _pending_at_cap(conn: Connection, user_id: int, cap: int, now: float) -> bool:
    """Whether the user has `cap` pending challenges. Counted on the pending index alone, at most
    `cap` rows; lapsed ones still marked pending are expired only when they would make the difference."""
    counted = select(func.count()).select_from(
        select(_ch.id).where(_ch.user_id == user_id, _ch.status == "pending").limit(cap).subquery())
    if conn.execute(counted).scalar_one() < cap:
        return False
    conn.execute(update(challenges).where(_ch.user_id == user_id, _ch.status == "pending", _ch.expires_at <= now)
                 .values(status="expired", updated_at=now))
    at_cap: bool = conn.execute(counted).scalar_one() >= cap
    return at_cap


class Challenges(Events, Lists):
    # -- the SMTP hot path --------------------------------------------------------------------
    def open_challenge(self, user_id: int, recipient: str, sender: str, *, ttl: float, subject: str = "",
                       client_ip: str = "", auth: str | None = None, max_pending: int = 0,
                       from_header: str = "") -> tuple[int | None, str]:
        """The pending challenge for this sender and recipient's user, reused or created, and a new link token.

        Only the token's hash is stored, so each refusal carries a freshly
        issued token for the same challenge; earlier links keep working.
        """
        token = new_token()
        for attempt in range(3):  # another worker may open the same challenge at the same moment
            try:
                with self.engine.begin() as conn:
                    return self.open_challenge_tx(conn, user_id, recipient, sender, ttl, subject, client_ip, token,
                                                  auth, max_pending, from_header=from_header)
            except (IntegrityError, sqlite3.IntegrityError):
                if attempt == 2:
                    raise
            except (OperationalError, sqlite3.OperationalError) as exc:  # SQLite: another process wrote meanwhile
                if not self.is_sqlite or attempt == 2:
                    raise
                log.info("retrying challenge after concurrent write: %s", short(exc))
        raise AssertionError("unreachable")

    def open_challenge_tx(self, conn: Connection, user_id: int, recipient: str, sender: str, ttl: float,
                          subject: str, client_ip: str, token: str, auth: str | None = None,
                          max_pending: int = 0, *, member: bool = False,
                          from_header: str = "") -> tuple[int | None, str]:
        """(challenge id, token); (None, "") when the sender has no pending challenge and the user has
        `max_pending` already (0: no cap), so nothing was opened (SPEC §4.5 item 5).

        `member`: the token was issued for another recipient's challenge in this refusal; this
        challenge joins its link (challenge_link_members) instead of getting a token row."""
        now = now_ts()
        if self.fast:
            fast_cid = sqlite_open_challenge(dbapi(conn), user_id, recipient, sender, ttl, subject, client_ip,
                                                  token, now, auth, max_pending, member, from_header)
            return (fast_cid, token) if fast_cid is not None else (None, "")
        row = conn.execute(_Q_REUSE, {"uid": user_id, "sndr": sender, "now": now, "subj": subject,
                                      "authv": auth, "fromh": from_header}).first()
        if row is not None and row.status == "pending":
            cid = row.id
        else:
            if max_pending and _pending_at_cap(conn, user_id, max_pending, now):
                return None, ""
            cid = inserted_id(conn.execute(insert(challenges).values(
                user_id=user_id, recipient=recipient, sender=sender, status="pending", created_at=now,
                updated_at=now, expires_at=now + ttl, subject=subject, client_ip=client_ip,
                auth=auth, from_header=from_header or None)))
        if member:
            conn.execute(_Q_LINK_MEMBER, {"token_hash": hash_secret(token), "challenge_id": cid})
        else:
            conn.execute(_Q_TOKEN, {"token_hash": hash_secret(token), "challenge_id": cid, "created_at": now})
        return cid, token

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
                                            record.client_ip, token, auth_summary(record.details), max_pending,
                                            from_header=record.from_header)
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
                                            record.client_ip, token, auth, max_pending, member=bool(cids),
                                            from_header=record.from_header)
            if cid is None:
                record.verdict = Verdict.TEMPFAIL
                record.reason = f"pending challenges at the cap ({max_pending}); sender asked to retry later"
            elif cid not in cids:
                cids.append(cid)
            record.challenge_id = cid
            self.add_event_tx(conn, record)
        return cids

    # -- links --------------------------------------------------------------------------------
    def challenges_by_token(self, token: str) -> list[Row[Any]]:
        """Every challenge a link confirms: the one it was issued for, then the others it names."""
        h = hash_secret(token)
        with self.engine.connect() as conn:
            first = conn.execute(select(challenges).join(
                challenge_tokens, challenge_tokens.c.challenge_id == _ch.id)
                .where(challenge_tokens.c.token_hash == h)).first()
            if first is None:
                return []
            others = conn.execute(select(challenges).join(
                challenge_link_members, challenge_link_members.c.challenge_id == _ch.id)
                .where(challenge_link_members.c.token_hash == h).order_by(_ch.id)).all()
        return [first, *(r for r in others if r.id != first.id)]

    def challenge_by_token(self, token: str) -> Row[Any] | None:
        """The challenge row a link token was issued for, or None."""
        with self.engine.connect() as conn:
            return conn.execute(select(challenges).join(
                challenge_tokens, challenge_tokens.c.challenge_id == _ch.id)
                .where(challenge_tokens.c.token_hash == hash_secret(token))).first()

    # -- the API ------------------------------------------------------------------------------
    def challenges_page(self, scope: int | None, *, status: str | None = "pending", q: str = "",
                        before_id: int | None = None, limit: int = 50,
                        now: float | None = None) -> tuple[list[dict[str, Any]], int | None]:
        stmt = select(*_CHALLENGE_COLS)
        if scope is not None:
            stmt = stmt.where(_ch.user_id == scope)
        if status == "pending":  # a pending challenge past its expiry is expired, whether housekeeping ran or not
            stmt = stmt.where(_ch.status == "pending", _ch.expires_at > (now or now_ts()))
        elif status:
            stmt = stmt.where(_ch.status == status)
        if q:
            pat = contains_pattern(q)
            stmt = stmt.where(or_(func.lower(_ch.sender).like(pat, escape="\\"),
                                  func.lower(_ch.subject).like(pat, escape="\\")))
        with self.engine.connect() as conn:
            rows, cursor = keyset_page(conn, stmt, _ch.id, before=before_id, limit=limit)
        return [dict(r._mapping) for r in rows], cursor

    def sender_histories(self, scope: int | None, rows: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """Per challenge row (by id): the sender's earlier refusals to the challenge's user (events of
        REFUSED_VERDICTS not naming this challenge) and the other recipients they wrote to that `scope`
        may see (its own addresses; every user's for None). One grouped read of the event log for a
        whole page, at read time: the refusal path writes nothing for it. Senders match the challenge
        key case-insensitively (a +tag or BATV variant of the envelope sender is not counted)."""
        if not rows:
            return {}
        ev = events.c
        sender_l, rcpt_l = func.lower(ev.sender), func.lower(ev.recipient)
        stmt = (select(ev.user_id, sender_l.label("s"), rcpt_l.label("r"), ev.challenge_id,
                       func.count().label("n"), func.min(ev.ts).label("first"))
                .where(sender_l.in_(sorted({r["sender"] for r in rows})), ev.verdict.in_(REFUSED_VERDICTS))
                .group_by(ev.user_id, sender_l, rcpt_l, ev.challenge_id))
        if scope is not None:  # a user never learns about other users' mail
            stmt = stmt.where(ev.user_id == scope)
        with self.engine.connect() as conn:
            seen = conn.execute(stmt).all()
        by_sender: dict[str, list[Any]] = {}
        for g in seen:
            by_sender.setdefault(g.s, []).append(g)
        out: dict[int, dict[str, Any]] = {}
        for row in rows:
            groups = by_sender.get(row["sender"], [])
            earlier = [g for g in groups if g.user_id == row["user_id"] and g.challenge_id != row["id"]]
            others = sorted({g.r for g in groups if g.r != row["recipient"].lower()})
            out[row["id"]] = {"earlier_refusals": sum(g.n for g in earlier),
                              "first_refused": min((g.first for g in earlier), default=None),
                              "other_recipients": others[:MAX_OTHER_RECIPIENTS],
                              "other_recipient_count": len(others)}
        return out

    def challenges_changed_since(self, scope: int | None, since: float, limit: int = 500) -> list[dict[str, Any]]:
        stmt = select(*_CHALLENGE_COLS).where(_ch.updated_at > since)
        if scope is not None:
            stmt = stmt.where(_ch.user_id == scope)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt.order_by(_ch.updated_at, _ch.id).limit(limit)).all()]

    def stream_changes(self, after_id: int, challenges_since: float, *, page: int = 1000,
                       challenge_limit: int = 5000) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """What the live stream's poller looks at, in one call: every event with id > after_id (oldest first,
        read `page` rows at a time) and up to `challenge_limit` challenges changed after `challenges_since`
        (oldest change first), for all users."""
        events: list[dict[str, Any]] = []
        while True:
            rows = self.events_after(None, after_id, page)
            events += rows
            if len(rows) < page:
                break
            after_id = rows[-1]["id"]
        return events, self.challenges_changed_since(None, challenges_since, challenge_limit)

    def pending_count(self, scope: int | None, now: float | None = None) -> int:
        stmt = select(func.count()).select_from(challenges).where(_ch.status == "pending",
                                                                  _ch.expires_at > (now or now_ts()))
        if scope is not None:
            stmt = stmt.where(_ch.user_id == scope)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar() or 0)

    def challenge_counts(self) -> dict[str, int]:
        """Challenges per status, all users (the metrics)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_ch.status, func.count()).group_by(_ch.status)).all()
        return {status: n for status, n in rows}

    def get_challenge(self, scope: int | None, challenge_id: int) -> dict[str, Any]:
        stmt = select(*_CHALLENGE_COLS).where(_ch.id == challenge_id)
        if scope is not None:
            stmt = stmt.where(_ch.user_id == scope)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise NotFound(f"no challenge {challenge_id}")
        return dict(row._mapping)

    def decide_challenge(self, scope: int | None, challenge_id: int, decision: str,
                         now: float | None = None, via: str = "in the app", client_ip: str = "", *,
                         actor: int | None = None) -> tuple[dict[str, Any], dict[str, Any], bool]:
        """approve | deny | allow-domain, idempotent; returns (challenge, list entry, changed).

        approve: the sender goes on the challenge user's allowlist (source
        `approved`); allow-domain: the sender's domain does; deny: the sender goes
        on the blocklist and the challenge is `denied`, so its links stop working.
        The entry and the status change commit together, with an `approved` or `denied` event (SPEC §4.3)
        when anything changed (a repeated decision, a retry, records none) and, given the deciding `actor`,
        what undo needs to reverse exactly this decision (undo_records; store/undo.py). `via` says where and
        by whom ("in the app by alice"), for the event's reason; `client_ip` is theirs.
        """
        now = now or now_ts()
        with self.engine.begin() as conn:
            stmt = select(*_CHALLENGE_COLS).where(_ch.id == challenge_id)
            if scope is not None:
                stmt = stmt.where(_ch.user_id == scope)
            if not self.is_sqlite:
                stmt = stmt.with_for_update()  # two nodes deciding the same challenge: one after the other
            row = conn.execute(stmt).first()
            if row is None:
                raise NotFound(f"no challenge {challenge_id}")
            sender = row.sender
            if decision == "allow-domain":
                pattern = parse_pattern("@" + sender.rsplit("@", 1)[1])
            else:
                pattern = parse_pattern(sender)
            action = "block" if decision == "deny" else "allow"
            status = "denied" if decision == "deny" else "approved"
            source = "manual" if decision == "deny" else "approved"
            note = f"{'denied' if decision == 'deny' else 'approved'} challenge {challenge_id} ({row.recipient})"
            lifted = opposite_entry_tx(conn, row.user_id, action, pattern) if actor is not None else None
            entry, created = add_entry_tx(conn, row.user_id, action, pattern, source, note, None)
            changed = created or row.status != status
            if changed and actor is not None:
                made = entry_key(action, pattern.kind, pattern.value) if created else None
                record_tx(conn, actor, "decision", challenge_id=challenge_id, entry_id=entry.id if created else None,
                          key=made, prior_status=row.status, snapshot=lifted, now=now)
            if row.status != status:
                conn.execute(update(challenges).where(_ch.id == challenge_id).values(status=status, updated_at=now))
            if changed:
                what = {"approve": "approved", "deny": "denied",
                        "allow-domain": f"allowed the domain {entry.pattern}"}[decision]
                reason = f"{what} {via}"
                self.add_event_tx(conn, action_event(
                    row, Verdict.DENIED if decision == "deny" else Verdict.APPROVED, now, reason=reason,
                    client_ip=client_ip, details={"entry_id": entry.id, "pattern": str(entry.pattern),
                                                  "decision": decision}))
            out = dict(conn.execute(select(*_CHALLENGE_COLS).where(_ch.id == challenge_id)).one()._mapping)
        return out, self.get_entry(None, entry.id), changed

    def decide_challenges(self, scope: int | None, challenge_ids: Sequence[int],
                          decision: str, via: str = "in the app", client_ip: str = "", *,
                          actor: int | None = None) -> list[dict[str, Any]]:
        """decide_challenge for each id, each in its own transaction (one that is not the caller's does not
        undo the others); per id: the outcome, or `missing` when the caller has no such challenge."""
        out: list[dict[str, Any]] = []
        for cid in challenge_ids:
            try:
                challenge, entry, changed = self.decide_challenge(scope, cid, decision, via=via, client_ip=client_ip,
                                                                  actor=actor)
            except NotFound as exc:
                out.append({"id": cid, "status": "missing", "error": str(exc)})
                continue
            out.append({"id": cid, "status": "changed" if changed else "unchanged", "challenge": challenge,
                        "entry": entry})
        return out

    # -- housekeeping -------------------------------------------------------------------------
    def expire_challenges(self, now: float | None = None) -> int:
        with self.engine.begin() as conn:
            expired: int = conn.execute(update(challenges).where(
                _ch.status == "pending", _ch.expires_at <= (now or now_ts()))
                .values(status="expired", updated_at=now or now_ts())).rowcount
            return expired

    def prune_challenges(self, expired_before: float) -> int:
        """Delete challenges whose expiry passed before `expired_before` (whatever their status), with
        their link tokens and CAPTCHAs; events naming them stay (SPEC §4.5 item 5)."""
        gone = select(_ch.id).where(_ch.expires_at < expired_before)
        with self.engine.begin() as conn:
            conn.execute(delete(challenge_link_members).where(challenge_link_members.c.challenge_id.in_(gone)))
            conn.execute(delete(challenge_link_members).where(challenge_link_members.c.token_hash.in_(
                select(challenge_tokens.c.token_hash).where(challenge_tokens.c.challenge_id.in_(gone)))))
            conn.execute(delete(challenge_tokens).where(challenge_tokens.c.challenge_id.in_(gone)))
            conn.execute(delete(captchas).where(captchas.c.challenge_id.in_(gone)))
            pruned: int = conn.execute(delete(challenges).where(_ch.expires_at < expired_before)).rowcount
            return pruned
