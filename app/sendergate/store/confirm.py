"""The store side of the confirmation page (SPEC §5): looking up a link, checking and confirming.

Functions taking a `Store`. State changes are conditional statements so
that two nodes (or two browser tabs) answering at once cannot both succeed:
a CAPTCHA is one row of `captchas`, and answering it deletes that row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update

from ..policy.address import AddressError, parse, parse_pattern
from . import Store, new_token, now_ts, to_dt
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
    generation: int  # confirm_failures: wrong answers so far
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


def issue_captcha(store: Store, challenge_id: int, nonce: str, answer: str, now: float | None = None) -> None:
    """Make (nonce, answer) the challenge's one CAPTCHA, replacing any earlier one and its rendering."""
    with store.engine.begin() as conn:
        conn.execute(delete(s.captchas).where(s.captchas.c.challenge_id == challenge_id))
        conn.execute(insert(s.captchas).values(challenge_id=challenge_id, nonce=nonce, answer=answer,
                                               created_at=now or now_ts()))


def current_captcha(store: Store, challenge_id: int) -> Any:
    """The challenge's CAPTCHA row (nonce, answer, png, wav), or None."""
    with store.engine.connect() as conn:
        return conn.execute(select(s.captchas).where(s.captchas.c.challenge_id == challenge_id)).first()


def keep_rendering(store: Store, challenge_id: int, nonce: str, kind: str, data: bytes) -> bytes | None:
    """Store the one rendering (`png` or `wav`) of this CAPTCHA; returns the stored one: `data`, or what
    another request stored first (so every fetch shows the same rendering), or None once the CAPTCHA
    was replaced or answered."""
    column = s.captchas.c[kind]
    with store.engine.begin() as conn:
        conn.execute(update(s.captchas).where(s.captchas.c.challenge_id == challenge_id,
                                              s.captchas.c.nonce == nonce, column.is_(None)).values({kind: data}))
        return conn.execute(select(column).where(s.captchas.c.challenge_id == challenge_id,
                                                 s.captchas.c.nonce == nonce)).scalar()


def record_wrong_answer(store: Store, challenge_id: int, nonce: str, now: float | None = None) -> bool:
    """Count a wrong answer and retire its CAPTCHA. False: that CAPTCHA was already used or replaced."""
    with store.engine.begin() as conn:
        if conn.execute(delete(s.captchas).where(s.captchas.c.challenge_id == challenge_id,
                                                 s.captchas.c.nonce == nonce)).rowcount != 1:
            return False
        res = conn.execute(update(s.challenges).where(
            s.challenges.c.id == challenge_id, s.challenges.c.status == PENDING)
            .values(confirm_failures=s.challenges.c.confirm_failures + 1, updated_at=now or now_ts()))
        return res.rowcount == 1


def confirm(store: Store, challenge_id: int, nonce: str | None = None, now: float | None = None,
            others: tuple[int, ...] = ()) -> bool:
    """A right answer: the challenge becomes confirmed and the sender is allowlisted for its user,
    with the authentication seen when the link was issued, in one transaction, and so does each of
    `others` (the link's further recipients) that is still pending.

    False when the CAPTCHA `nonce` was already used or replaced (None: no CAPTCHA check, for
    admins and tests), the challenge is no longer pending and unexpired, or a block now covers the
    sender for every recipient: a confirmation never lifts a block (SPEC §4.5 item 3); a challenge
    whose recipient blocks the sender is denied instead."""
    now = now or now_ts()
    c = s.challenges.c
    with store.engine.begin() as conn:
        if nonce is not None and conn.execute(delete(s.captchas).where(
                s.captchas.c.challenge_id == challenge_id, s.captchas.c.nonce == nonce)).rowcount != 1:
            return False
        res = conn.execute(update(s.challenges).where(
            c.id == challenge_id, c.status == PENDING, c.expires_at > now).values(status=CONFIRMED, updated_at=now))
        if res.rowcount != 1:
            return False
        confirmed = [challenge_id]
        for other in others:  # a recipient who denied (or approved) meanwhile keeps their decision
            res = conn.execute(update(s.challenges).where(
                c.id == other, c.status == PENDING, c.expires_at > now).values(status=CONFIRMED, updated_at=now))
            if res.rowcount == 1:
                confirmed.append(other)
        conn.execute(delete(s.captchas).where(s.captchas.c.challenge_id == challenge_id))
        allowed = 0
        for row in conn.execute(select(c.id, c.user_id, c.sender, c.auth).where(c.id.in_(confirmed))).all():
            if _blocked(store, conn, row.user_id, row.sender, now):
                conn.execute(update(s.challenges).where(c.id == row.id).values(status=DENIED, updated_at=now))
                continue
            # Store._add_entry on this connection: the allowlist entries and the status changes commit together.
            note = f"confirmed at the confirmation page (challenge {row.id})"
            if row.auth:
                note += f"; {row.auth}"
            store._add_entry(conn, row.user_id, "allow", parse_pattern(row.sender), "confirmed", note, None,
                             auth=row.auth)
            allowed += 1
        if not allowed:
            return False
    return True


def _blocked(store: Store, conn: Any, user_id: int, sender: str, now: float) -> bool:
    """Whether any active block of the user's or a global one covers this sender, at any specificity
    (an address allow would beat a domain block, so none may be made while one applies)."""
    try:
        address = parse(sender)
    except AddressError:
        return False
    for entry in store._entries_for_sender(conn, user_id, address):
        if entry.action == "block" and entry.active(to_dt(now)):  # type: ignore[arg-type]
            return True
    return False


# -- rate limits shared by every node (SPEC §4.5 item 6) ------------------------------
def rate_hit(store: Store, key: str, limit: int, window: float, now: float | None = None) -> float:
    """Count one event for `key`; 0 if allowed, else the seconds until the next one would be.

    Counters are per minute in the store, so every node sees every hit. The hit is written first and
    the window summed after, in one transaction: two nodes counting at once take turns on the
    minute's row and the second sees the first's hit. A refused hit is taken back, so a client that
    keeps retrying does not push its own wait further out."""
    now = now or now_ts()
    minute = int(now // 60)
    minutes = max(1, int(window // 60))
    first = minute - minutes + 1
    r = s.rate_limits.c
    if store.is_sqlite:
        from sqlalchemy.dialects.sqlite import insert as upsert
    else:
        from sqlalchemy.dialects.postgresql import insert as upsert  # type: ignore[assignment]
    stmt = upsert(s.rate_limits).values(key=key[:100], minute=minute, count=1)
    stmt = stmt.on_conflict_do_update(index_elements=[r.key, r.minute], set_={"count": r.count + 1})
    with store.engine.begin() as conn:
        conn.execute(stmt)
        rows = conn.execute(select(r.minute, r.count).where(r.key == key[:100], r.minute >= first)
                            .order_by(r.minute)).all()
        if sum(n for _, n in rows) <= limit:
            return 0.0
        conn.execute(update(s.rate_limits).where(r.key == key[:100], r.minute == minute)
                     .values(count=r.count - 1))
    oldest = next((m for m, n in rows if n > 0), minute)
    return max(1.0, (oldest + minutes) * 60 - now)  # when the oldest counted minute leaves the window
