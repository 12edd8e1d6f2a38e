"""What an undoable action records (undo_records), written in the action's own transaction: shared by the
decisions (challenges.py) and the reverses (undo.py)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from ..policy.address import Pattern
from .engine import now_ts
from .schema import list_entries, undo_records

UNDO_WINDOW = 300.0  # seconds after an action during which its maker may undo it (the app offers 10 s)
KEEP = 86400.0  # records are dropped a day after the action (until then, "too late" is said as such)

_u = undo_records.c
_le = list_entries.c
_SNAP_COLS = ("user_id", "action", "kind", "value", "source", "note", "created_at", "expires_at", "auth")


def entry_key(action: str, kind: str, value: str) -> str:
    """What an entry is, beside its id (SQLite may give a later entry the id of a removed one): an undo
    removes the entry it recorded only while the row under that id is still that entry."""
    return f"{action} {kind}:{value}"


def snapshot_of(row: Any) -> str:
    m = row._mapping
    return json.dumps({k: m[k] for k in _SNAP_COLS})


def opposite_entry_tx(conn: Connection, user_id: int | None, action: str, pat: Pattern) -> str | None:
    """The snapshot of the other list's entry for exactly this pattern, which adding `action` would lift."""
    owner = _le.user_id.is_(None) if user_id is None else _le.user_id == user_id
    other = "block" if action == "allow" else "allow"
    row = conn.execute(select(list_entries).where(owner, _le.action == other, _le.kind == pat.kind,
                                                  _le.value == pat.value)).first()
    return snapshot_of(row) if row is not None else None


def record_tx(conn: Connection, actor: int, kind: str, *, challenge_id: int | None = None,
              entry_id: int | None = None, key: str | None = None, prior_status: str | None = None,
              snapshot: str | None = None, now: float | None = None) -> None:
    now = now or now_ts()
    conn.execute(delete(undo_records).where(_u.created_at < now - KEEP))  # indexed; usually nothing
    conn.execute(insert(undo_records).values(actor_id=actor, kind=kind, challenge_id=challenge_id,
                                             entry_id=entry_id, entry_key=key, prior_status=prior_status,
                                             snapshot=snapshot, created_at=now))
