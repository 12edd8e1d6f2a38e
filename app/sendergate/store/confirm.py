"""The store side of the confirmation page (SPEC §5): looking up a link, checking and confirming.

Functions taking a `Store`. State changes are single conditional UPDATEs so
that two nodes (or two browser tabs) answering at once cannot both succeed:
the challenge's `confirm_failures` count doubles as the CAPTCHA generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from ..policy.address import parse_pattern
from . import Store, new_token, now_ts
from . import schema as s

SECRET_KEY = "confirm_page_secret"  # settings key: signs CSRF fields and derives CAPTCHA answers

# What a link's challenge looks like to the page.
PENDING = "pending"
CONFIRMED = "confirmed"
DONE = ("confirmed", "approved")  # the sender may send again
EXPIRED = "expired"
DENIED = "denied"


@dataclass(frozen=True, slots=True)
class LinkState:
    challenge_id: int
    user_id: int
    recipient: str
    sender: str
    subject: str
    status: str  # pending | confirmed | approved | denied | expired (expired also when past expires_at)
    generation: int  # confirm_failures: the current CAPTCHA generation


def page_secret(store: Store) -> str:
    """The secret shared by every node on this store (created once, on first use)."""
    value = store.get_setting(SECRET_KEY, lambda: new_token(32))
    assert value is not None
    return value


def link_state(store: Store, token: str, now: float | None = None) -> LinkState | None:
    """The challenge behind a link token, or None for a token that was never issued."""
    row = store.challenge_by_token(token)
    if row is None:
        return None
    status = row.status
    if status == PENDING and row.expires_at <= (now if now is not None else now_ts()):
        status = EXPIRED  # housekeeping marks it hourly; the page must not wait for that
    return _state(row, status)


def _state(row: Any, status: str) -> LinkState:
    return LinkState(challenge_id=row.id, user_id=row.user_id, recipient=row.recipient, sender=row.sender,
                     subject=row.subject or "", status=status, generation=row.confirm_failures)


def record_wrong_answer(store: Store, challenge_id: int, generation: int, now: float | None = None) -> bool:
    """Count a wrong answer and retire the CAPTCHA generation. False: that CAPTCHA was already used."""
    with store.engine.begin() as conn:
        res = conn.execute(update(s.challenges).where(
            s.challenges.c.id == challenge_id, s.challenges.c.status == PENDING,
            s.challenges.c.confirm_failures == generation)
            .values(confirm_failures=s.challenges.c.confirm_failures + 1, updated_at=now or now_ts()))
        return res.rowcount == 1


def confirm(store: Store, challenge_id: int, generation: int, now: float | None = None) -> bool:
    """A right answer: the challenge becomes confirmed and the sender is allowlisted for its user,
    in one transaction. False when the challenge is no longer pending and unexpired or the CAPTCHA's
    generation has passed (someone answered in between)."""
    now = now or now_ts()
    with store.engine.begin() as conn:
        res = conn.execute(update(s.challenges).where(
            s.challenges.c.id == challenge_id, s.challenges.c.status == PENDING,
            s.challenges.c.expires_at > now, s.challenges.c.confirm_failures == generation)
            .values(status=CONFIRMED, updated_at=now))
        if res.rowcount != 1:
            return False
        row = conn.execute(select(s.challenges.c.user_id, s.challenges.c.sender)
                           .where(s.challenges.c.id == challenge_id)).one()
        # Store._add_entry on this connection: the allowlist entry and the status change commit together.
        store._add_entry(conn, row.user_id, "allow", parse_pattern(row.sender), "confirmed",
                         f"confirmed at the confirmation page (challenge {challenge_id})", None)
    return True

