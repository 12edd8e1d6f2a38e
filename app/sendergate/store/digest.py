"""The digest's state (issue 16 item 4): each user's frequency and last digest, the claim that makes one
node send it, single-use digest links; and approved senders already told they may write (item 5)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from .engine import StoreBase, now_ts
from .errors import Invalid
from .schema import challenges, digest_links_used, digest_settings, events, notified_senders, users

FREQUENCIES = ("off", "daily", "weekly")
_ds = digest_settings.c
_ch = challenges.c


class Digest(StoreBase):
    def digest_setting(self, user_id: int) -> tuple[str | None, float | None]:
        """(frequency or None for the configured default, last sent or None)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_ds.frequency, _ds.last_sent_at).where(_ds.user_id == user_id)).first()
        return (row.frequency, row.last_sent_at) if row else (None, None)

    def set_digest_frequency(self, user_id: int, frequency: str | None) -> None:
        if frequency is not None and frequency not in FREQUENCIES:
            raise Invalid(f"frequency must be one of {', '.join(FREQUENCIES)}")
        with self.engine.begin() as conn:
            if conn.execute(update(digest_settings).where(_ds.user_id == user_id)
                            .values(frequency=frequency)).rowcount == 0:
                conn.execute(insert(digest_settings).values(user_id=user_id, frequency=frequency))

    def digest_candidates(self) -> list[tuple[int, str | None, float | None]]:
        """Every user with (id, frequency or None, last sent or None)."""
        stmt = select(users.c.id, _ds.frequency, _ds.last_sent_at).select_from(
            users.outerjoin(digest_settings, _ds.user_id == users.c.id)).order_by(users.c.id)
        with self.engine.connect() as conn:
            return [(r.id, r.frequency, r.last_sent_at) for r in conn.execute(stmt).all()]

    def claim_digest(self, user_id: int, seen_last_sent: float | None, now: float | None = None) -> bool:
        """Move the user's last digest from `seen_last_sent` to now; False when another node did first.
        One UPDATE with the old value in its WHERE: atomic on SQLite and PostgreSQL alike."""
        now = now or now_ts()
        with self.engine.begin() as conn:
            if conn.execute(select(_ds.user_id).where(_ds.user_id == user_id)).first() is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(digest_settings).values(user_id=user_id, frequency=None,
                                                                    last_sent_at=None))
                except IntegrityError:  # another node made the row meanwhile
                    pass
            cond = _ds.last_sent_at.is_(None) if seen_last_sent is None else _ds.last_sent_at == seen_last_sent
            claimed: bool = conn.execute(update(digest_settings).where(_ds.user_id == user_id, cond)
                                         .values(last_sent_at=now)).rowcount == 1
            return claimed

    def unclaim_digest(self, user_id: int, claimed_at: float, previous: float | None) -> None:
        """Give a claim back (the digest could not be delivered), so the next round tries again."""
        with self.engine.begin() as conn:
            conn.execute(update(digest_settings).where(_ds.user_id == user_id, _ds.last_sent_at == claimed_at)
                         .values(last_sent_at=previous))

    def digest_pending(self, user_id: int, since: float | None, limit: int,
                       now: float | None = None) -> tuple[list[dict[str, Any]], int]:
        """The user's pending challenges opened after `since` (all when None), newest first, at most
        `limit`; and how many there are in all."""
        now = now or now_ts()
        cond = [_ch.user_id == user_id, _ch.status == "pending", _ch.expires_at > now]
        if since is not None:
            cond.append(_ch.created_at > since)
        cols = [_ch.id, _ch.user_id, _ch.recipient, _ch.sender, _ch.subject, _ch.attempts, _ch.created_at,
                _ch.updated_at, _ch.auth]
        with self.engine.connect() as conn:
            rows = conn.execute(select(*cols).where(*cond).order_by(_ch.id.desc()).limit(limit)).all()
            total = int(conn.execute(select(func.count()).select_from(challenges).where(*cond)).scalar() or 0)
        return [dict(r._mapping) for r in rows], total

    def challenge_from_headers(self, user_id: int, challenge_ids: list[int]) -> dict[int, str]:
        """The From header of each challenge's latest refused message (for the display name)."""
        if not challenge_ids:
            return {}
        ev = events.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(ev.challenge_id, ev.from_header).where(
                ev.user_id == user_id, ev.challenge_id.in_(challenge_ids))
                                .order_by(ev.id)).all()
        return {r.challenge_id: r.from_header for r in rows if r.from_header}

    def use_digest_link(self, nonce: str, expires_at: float) -> bool:
        """Mark a digest link used; False when it was used before (single use, every node)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(digest_links_used).values(nonce=nonce[:40], expires_at=expires_at))
            return True
        except IntegrityError:
            return False

    def digest_link_used(self, nonce: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(digest_links_used.c.nonce)
                                .where(digest_links_used.c.nonce == nonce[:40])).first() is not None

    def prune_digest_links(self, now: float | None = None) -> int:
        with self.engine.begin() as conn:
            n: int = conn.execute(delete(digest_links_used)
                                  .where(digest_links_used.c.expires_at < (now or now_ts()))).rowcount
            return n

    def claim_notice(self, user_id: int, sender: str) -> bool:
        """Record that this user's approved sender is being told; False when they were told before."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(notified_senders).values(user_id=user_id, sender=sender[:320].lower(),
                                                             created_at=now_ts()))
            return True
        except IntegrityError:
            return False

    def notified(self, user_id: int) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(notified_senders.c.sender)
                                               .where(notified_senders.c.user_id == user_id)).all()]
