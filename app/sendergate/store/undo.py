"""Undo (issue 17 item 2): the reverse of a user's decision on a challenge and of a list change, done by the
store from what the action recorded (undo_records), for UNDO_WINDOW seconds and only for who made it.

What no script can do with it (SPEC §4.5 item 3): reopen a challenge the sender confirmed, one that expired,
one whose sender a list entry still blocks, or someone else's; bring a link back after the window; put an
entry back with a source it did not have (a restore re-inserts the snapshot the server took, never what the
client sends).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Connection

from ..policy.address import parse_pattern
from .challenges import Challenges
from .engine import inserted_id, now_ts
from .errors import Conflict, NotFound
from .lists import add_entry_tx, listed_for_tx
from .schema import challenges, list_entries, undo_records
from .undo_log import UNDO_WINDOW, entry_key, opposite_entry_tx, record_tx, snapshot_of

_u = undo_records.c
_le = list_entries.c
_ch = challenges.c


def _restore_tx(conn: Connection, snapshot: str) -> int | None:
    """Put a snapshot back as it was (source, auth, note, dates), unless its owner has an entry for the same
    pattern now (then that one stands: the user chose since). Returns the new entry's id, or None."""
    snap = json.loads(snapshot)
    owner = _le.user_id.is_(None) if snap["user_id"] is None else _le.user_id == snap["user_id"]
    if conn.execute(select(_le.id).where(owner, _le.kind == snap["kind"], _le.value == snap["value"])).first():
        return None
    return inserted_id(conn.execute(insert(list_entries).values(**snap)))


def _delete_made_tx(conn: Connection, rec: Any, owner: int | None) -> bool:
    """Remove the entry the recorded action made, if the row under its id is still that entry (and the
    owner's, when `owner` is given); False when it is gone or another entry has the id now."""
    row = conn.execute(select(list_entries).where(_le.id == rec.entry_id)).first()
    if row is None or entry_key(row.action, row.kind, row.value) != rec.entry_key:
        return False
    if owner is not None and row.user_id != owner:
        return False
    conn.execute(delete(list_entries).where(_le.id == rec.entry_id))
    return True


def _claim(conn: Connection, rec: Any) -> None:
    """Use the record up, first: of two undos of one action at once (two nodes, a double click), the second
    waits on this row and then finds it gone, so the action is reversed once."""
    if conn.execute(delete(undo_records).where(_u.id == rec.id)).rowcount != 1:
        raise Conflict("undone already")


def _newest(conn: Connection, actor: int, kind: str, now: float, *, challenge_id: int | None = None,
            entry_id: int | None = None) -> Any:
    """The actor's newest record of this kind for the challenge or entry; Conflict when it is past the window."""
    cond = and_(_u.actor_id == actor, _u.kind == kind)
    cond = and_(cond, _u.challenge_id == challenge_id) if challenge_id is not None else and_(
        cond, _u.entry_id == entry_id)
    rec = conn.execute(select(undo_records).where(cond).order_by(_u.id.desc()).limit(1)).first()
    if rec is None:
        return None
    if rec.created_at < now - UNDO_WINDOW:
        raise Conflict(f"too late to undo: undo works for {int(UNDO_WINDOW // 60)} minutes after the action")
    return rec


class Undo(Challenges):
    # -- the actions that can be undone (the API's list routes call these) ---------------------
    def add_entry_recorded(self, owner_id: int | None, action: str, raw: str, *, actor: int, note: str = "",
                           expires_at: float | None = None) -> tuple[dict[str, Any], bool]:
        """Lists.add_entry_dict, recording for `actor`'s undo what the add created and what it lifted."""
        pat = parse_pattern(raw)
        with self.engine.begin() as conn:
            lifted = opposite_entry_tx(conn, owner_id, action, pat)
            entry, created = add_entry_tx(conn, owner_id, action, pat, "manual", note, expires_at)
            if created:
                record_tx(conn, actor, "add", entry_id=entry.id, key=entry_key(action, pat.kind, pat.value),
                          snapshot=lifted)
        return self.get_entry(None, entry.id), created

    def remove_entry_recorded(self, scope: int | None, action: str, entry_id: int, *, actor: int) -> None:
        """Lists.remove_entry, keeping a snapshot for `actor`'s undo."""
        cond = and_(_le.id == entry_id, _le.action == action)
        if scope is not None:
            cond = and_(cond, _le.user_id == scope)
        with self.engine.begin() as conn:
            row = conn.execute(select(list_entries).where(cond)).first()
            if row is None:
                raise NotFound(f"no entry {entry_id}")
            conn.execute(delete(list_entries).where(_le.id == entry_id))
            record_tx(conn, actor, "remove", entry_id=entry_id, key=entry_key(row.action, row.kind, row.value),
                      snapshot=snapshot_of(row))

    # -- the reverses -------------------------------------------------------------------------
    def reopen_challenge(self, scope: int | None, challenge_id: int, *, actor: int,
                         now: float | None = None) -> tuple[dict[str, Any], bool]:
        """Undo the actor's latest decision on this challenge: the status it had before (pending for a
        decision made from Pending), the entry the decision created removed, the entry it lifted put back.
        (challenge, changed). NotFound: not the caller's. Conflict: the sender confirmed it, it expired,
        the window passed, the actor made no decision on it, or reopening would revive a link for a sender
        a list entry still blocks or who has a newer pending challenge."""
        now = now or now_ts()
        with self.engine.begin() as conn:
            stmt = select(challenges).where(_ch.id == challenge_id)
            if scope is not None:
                stmt = stmt.where(_ch.user_id == scope)
            if not self.is_sqlite:
                stmt = stmt.with_for_update()  # a decision and its undo on two nodes: one after the other
            row = conn.execute(stmt).first()
            if row is None:
                raise NotFound(f"no challenge {challenge_id}")
            if row.status == "confirmed":
                raise Conflict(f"challenge {challenge_id}: the sender confirmed it; there is no decision to undo")
            if row.status == "expired" or row.expires_at <= now:
                raise Conflict(f"challenge {challenge_id} has expired; it cannot be reopened")
            rec = _newest(conn, actor, "decision", now, challenge_id=challenge_id)
            if rec is None:
                if row.status == "pending":  # undone already (a repeated undo): nothing to do
                    return self.get_challenge(None, challenge_id), False
                raise Conflict(f"challenge {challenge_id}: you made no decision on it that can be undone")
            _claim(conn, rec)
            status = rec.prior_status or "pending"
            if rec.entry_id is not None:
                _delete_made_tx(conn, rec, row.user_id)
            if rec.snapshot:
                _restore_tx(conn, rec.snapshot)
            if status == "pending":  # the link works again: only for a sender nothing blocks (SPEC §4.5 item 3)
                found = listed_for_tx(conn, row.user_id, [row.sender], now).get(row.sender)
                if found is not None and found["action"] == "block":
                    raise Conflict(f"challenge {challenge_id}: {found['entry']} is still blocked; "
                                   "remove that entry first")  # raising rolls the entry changes back
                other = conn.execute(select(_ch.id).where(_ch.user_id == row.user_id, _ch.sender == row.sender,
                                                          _ch.status == "pending", _ch.id != challenge_id)).first()
                if other is not None:
                    raise Conflict(f"challenge {challenge_id}: the sender has a newer pending challenge "
                                   f"({other.id})")
            conn.execute(update(challenges).where(_ch.id == challenge_id).values(status=status, updated_at=now))
        return self.get_challenge(None, challenge_id), True

    def reopen_challenges(self, scope: int | None, challenge_ids: Sequence[int], *,
                          actor: int) -> list[dict[str, Any]]:
        """reopen_challenge for each id, each in its own transaction (one refused does not stop the others);
        per id: changed / unchanged with the challenge, missing (not the caller's) or refused, with why."""
        out: list[dict[str, Any]] = []
        for cid in challenge_ids:
            try:
                challenge, changed = self.reopen_challenge(scope, cid, actor=actor)
            except NotFound as exc:
                out.append({"id": cid, "status": "missing", "error": str(exc)})
                continue
            except Conflict as exc:
                out.append({"id": cid, "status": "refused", "error": str(exc)})
                continue
            out.append({"id": cid, "status": "changed" if changed else "unchanged", "challenge": challenge})
        return out

    def withdraw_entry(self, scope: int | None, action: str, entry_id: int, *, actor: int,
                       now: float | None = None) -> None:
        """Undo the actor's add of this entry: it goes, and the other list's entry it lifted comes back.
        NotFound: not the caller's entry. Conflict: the window passed, or the actor did not add it (it was
        there before: the add changed nothing)."""
        now = now or now_ts()
        cond = and_(_le.id == entry_id, _le.action == action)
        if scope is not None:
            cond = and_(cond, _le.user_id == scope)
        with self.engine.begin() as conn:
            if conn.execute(select(_le.id).where(cond)).first() is None:
                raise NotFound(f"no entry {entry_id}")
            rec = _newest(conn, actor, "add", now, entry_id=entry_id)
            if rec is None:
                raise Conflict(f"entry {entry_id}: you did not add it in the last minutes; remove it instead")
            _claim(conn, rec)
            if not _delete_made_tx(conn, rec, scope):
                raise Conflict(f"entry {entry_id} is not the entry you added; remove it instead")
            if rec.snapshot:
                _restore_tx(conn, rec.snapshot)

    def restore_entry(self, scope: int | None, action: str, entry_id: int, *, actor: int,
                      now: float | None = None) -> tuple[dict[str, Any], bool]:
        """Undo the actor's removal of entry `entry_id`: it comes back as it was (pattern, note, expiry,
        source and recorded authentication; a new id). (entry, created): created False when the same entry
        is on the list again already. NotFound: the actor removed no such entry of this list (or not within
        a day). Conflict: the window passed, or the pattern is on the other list now."""
        now = now or now_ts()
        with self.engine.begin() as conn:
            rec = _newest(conn, actor, "remove", now, entry_id=entry_id)
            snap = json.loads(rec.snapshot) if rec is not None and rec.snapshot else None
            if snap is None or snap["action"] != action or (scope is not None and snap["user_id"] != scope):
                raise NotFound(f"no removed entry {entry_id} to restore")
            _claim(conn, rec)
            owner = _le.user_id.is_(None) if snap["user_id"] is None else _le.user_id == snap["user_id"]
            now_there = conn.execute(select(_le.id, _le.action).where(
                owner, _le.kind == snap["kind"], _le.value == snap["value"])).first()
            if now_there is not None and now_there.action != action:
                raise Conflict(f"entry {entry_id}: the same pattern is on the {now_there.action}list now; "
                               "remove it there first")
            if now_there is not None:
                new_id, created = now_there.id, False
            else:
                new_id, created = inserted_id(conn.execute(insert(list_entries).values(**snap))), True
        return self.get_entry(None, new_id), created
