"""Small state every node shares through the store: settings (a secret made once) and rate counters."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .engine import StoreBase, now_ts
from .schema import rate_limits, settings


class Settings(StoreBase):
    def get_setting(self, key: str, default_factory: Callable[[], str] | None = None) -> str | None:
        """The setting, or None; with `default_factory`, a missing one is made and kept (the first node's wins)."""
        with self.engine.begin() as conn:
            val: str | None = conn.execute(select(settings.c.value).where(settings.c.key == key)).scalar()
            if val is None and default_factory is not None:
                val = default_factory()
                try:
                    with conn.begin_nested():
                        conn.execute(insert(settings).values(key=key, value=val))
                except IntegrityError:  # another node won the race
                    val = conn.execute(select(settings.c.value).where(settings.c.key == key)).scalar()
            return val

    def set_setting(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            if conn.execute(update(settings).where(settings.c.key == key).values(value=value)).rowcount == 0:
                conn.execute(insert(settings).values(key=key, value=value))

    def rate_hit(self, key: str, limit: int, window: float, now: float | None = None) -> float:
        """Count one event for `key`; 0 if allowed, else the seconds until the next one would be.

        Counters are per minute in the store, so every node sees every hit (SPEC §4.5 item 6). The hit is
        written first and the window summed after, in one transaction: two nodes counting at once take turns
        on the minute's row and the second sees the first's hit. A refused hit is taken back, so a client
        that keeps retrying does not push its own wait further out."""
        now = now or now_ts()
        minute = int(now // 60)
        minutes = max(1, int(window // 60))
        first = minute - minutes + 1
        r = rate_limits.c
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as upsert
        else:
            from sqlalchemy.dialects.postgresql import insert as upsert  # type: ignore[assignment]  # same API
        stmt = upsert(rate_limits).values(key=key[:100], minute=minute, count=1)
        stmt = stmt.on_conflict_do_update(index_elements=[r.key, r.minute], set_={"count": r.count + 1})
        with self.engine.begin() as conn:
            conn.execute(stmt)
            rows = conn.execute(select(r.minute, r.count).where(r.key == key[:100], r.minute >= first)
                                .order_by(r.minute)).all()
            if sum(n for _, n in rows) <= limit:
                return 0.0
            conn.execute(update(rate_limits).where(r.key == key[:100], r.minute == minute)
                         .values(count=r.count - 1))
        oldest = next((m for m, n in rows if n > 0), minute)
        return float(max(1.0, (oldest + minutes) * 60 - now))  # when the oldest counted minute leaves the window

    def prune_rate_limits(self, before: float) -> int:
        with self.engine.begin() as conn:
            pruned: int = conn.execute(delete(rate_limits).where(rate_limits.c.minute < int(before // 60))).rowcount
            return pruned
