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
    # A link may name several recipients (one refusal to alice and bob): the challenge above is the
    # one the page answers for (the first still pending), `others` the rest it confirms with it.
    others: tuple[int, ...] = ()
    recipients: tuple[str, ...] = ()  # every recipient the link still confirms, for the page


def page_secret(store: Store) -> str:
    """The secret shared by every node on this store (created once, on first use)."""
    value = store.get_setting(SECRET_KEY, lambda: new_token(32))
    assert value is not None
    return value


def link_state(store: Store, token: str, now: float | None = None) -> LinkState | None:
    """The challenge behind a link token, or None for a token that was never issued."""
    rows = store.challenges_by_token(token)
    if not rows:
        return None
    now = now if now is not None else now_ts()

    def status(row: Any) -> str:
        if row.status == PENDING and row.expires_at <= now:
            return EXPIRED  # housekeeping marks it hourly; the page must not wait for that
        return row.status

    pending = [r for r in rows if status(r) == PENDING]
    if not pending:  # what the link is now: the first recipient's outcome
        return _state(rows[0], status(rows[0]))
    lead, *others = pending
    return _state(lead, PENDING, others=tuple(r.id for r in others),
                  recipients=tuple(dict.fromkeys(r.recipient for r in pending)))


def _state(row: Any, status: str, *, others: tuple[int, ...] = (), recipients: tuple[str, ...] = ()) -> LinkState:
    return LinkState(challenge_id=row.id, user_id=row.user_id, recipient=row.recipient, sender=row.sender,
                     subject=row.subject or "", status=status, generation=row.confirm_failures, others=others,
                     recipients=recipients or (row.recipient,))


def record_wrong_answer(store: Store, challenge_id: int, generation: int, now: float | None = None) -> bool:
    """Count a wrong answer and retire the CAPTCHA generation. False: that CAPTCHA was already used."""
    with store.engine.begin() as conn:
        res = conn.execute(update(s.challenges).where(
            s.challenges.c.id == challenge_id, s.challenges.c.status == PENDING,
            s.challenges.c.confirm_failures == generation)
            .values(confirm_failures=s.challenges.c.confirm_failures + 1, updated_at=now or now_ts()))
        return res.rowcount == 1


def confirm(store: Store, challenge_id: int, generation: int, now: float | None = None,
            others: tuple[int, ...] = ()) -> bool:
    """A right answer: the challenge becomes confirmed and the sender is allowlisted for its user,
    in one transaction, and so does each of `others` (the link's further recipients) that is
    still pending. False when the challenge is no longer pending and unexpired or the CAPTCHA's
    generation has passed (someone answered in between)."""
    now = now or now_ts()
    with store.engine.begin() as conn:
        res = conn.execute(update(s.challenges).where(
            s.challenges.c.id == challenge_id, s.challenges.c.status == PENDING,
            s.challenges.c.expires_at > now, s.challenges.c.confirm_failures == generation)
            .values(status=CONFIRMED, updated_at=now))
        if res.rowcount != 1:
            return False
        confirmed = [challenge_id]
        for other in others:  # a recipient who denied (or approved) meanwhile keeps their decision
            res = conn.execute(update(s.challenges).where(
                s.challenges.c.id == other, s.challenges.c.status == PENDING, s.challenges.c.expires_at > now)
                .values(status=CONFIRMED, updated_at=now))
            if res.rowcount == 1:
                confirmed.append(other)
        rows = conn.execute(select(s.challenges.c.id, s.challenges.c.user_id, s.challenges.c.sender)
                            .where(s.challenges.c.id.in_(confirmed))).all()
        for row in rows:
            # Store._add_entry on this connection: the allowlist entries and the status changes commit together.
            store._add_entry(conn, row.user_id, "allow", parse_pattern(row.sender), "confirmed",
                             f"confirmed at the confirmation page (challenge {row.id})", None)
    return True

