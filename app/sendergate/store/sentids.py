"""Hashes of the Message-IDs a user sent, for recognising replies to them (SPEC §4.2 item 8)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice

from sqlalchemy import insert, select

from .engine import StoreBase, now_ts
from .schema import sent_ids

_BATCH = 5000  # hashes per transaction: a large import does not hold the write lock for long
_CHUNK = 500  # hashes per IN (...) look-up


class SentIds(StoreBase):
    def has_sent_id(self, user_id: int, hashes: Sequence[str]) -> bool:
        if not hashes:
            return False
        with self.engine.connect() as conn:
            return conn.execute(select(sent_ids.c.hash).where(
                sent_ids.c.user_id == user_id, sent_ids.c.hash.in_(list(hashes))).limit(1)).first() is not None

    def add_sent_ids(self, user_id: int, hashes: Iterable[str]) -> int:
        """Add the hashes the user does not have yet (case-insensitively); how many were new."""
        added = 0
        it = iter(hashes)
        while batch := list(islice(it, _BATCH)):
            wanted = list({h.lower() for h in batch})
            with self.engine.begin() as conn:
                have: set[str] = set()
                for i in range(0, len(wanted), _CHUNK):
                    have |= set(conn.execute(select(sent_ids.c.hash).where(
                        sent_ids.c.user_id == user_id, sent_ids.c.hash.in_(wanted[i:i + _CHUNK]))).scalars())
                new = [{"user_id": user_id, "hash": h, "created_at": now_ts()} for h in wanted if h not in have]
                if new:
                    conn.execute(insert(sent_ids), new)
            added += len(new)
        return added
