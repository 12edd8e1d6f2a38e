"""The store side of the confirmation page (SPEC §5): looking up a link, checking and confirming.

State changes are conditional statements so that two nodes (or two browser tabs) answering at once
cannot both succeed: a CAPTCHA is one row of `captchas`, and answering it deletes that row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.engine import Connection

from ..policy.address import AddressError, parse, parse_pattern
from ..policy.decide import Verdict
from .challenges import Challenges, action_event
from .engine import new_token, now_ts, to_dt
from .lists import add_entry_tx, entries_for_sender_tx
from .schema import captchas, challenges
from .settings import Settings

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


def _state(row: Row[Any], status: str, *, others: tuple[int, ...] = (), recipients: tuple[str, ...] = ()) -> LinkState:
    return LinkState(challenge_id=row.id, user_id=row.user_id, recipient=row.recipient, sender=row.sender,
                     subject=row.subject or "", status=status, generation=row.confirm_failures, others=others,
                     recipients=recipients or (row.recipient,))


def _blocked(conn: Connection, user_id: int, sender: str, now: float) -> bool:
    """Whether any active block of the user's or a global one covers this sender, at any specificity
    (an address allow would beat a domain block, so none may be made while one applies)."""
    try:
        address = parse(sender)
    except AddressError:
        return False
    when = to_dt(now)
    assert when is not None
    return any(entry.action == "block" and entry.active(when)
               for entry in entries_for_sender_tx(conn, user_id, address))


class Confirm(Challenges, Settings):
    def page_secret(self) -> str:
        """The secret shared by every node on this store (created once, on first use)."""
        value = self.get_setting(SECRET_KEY, lambda: new_token(32))
        assert value is not None
        return str(value)

    def link_state(self, token: str, now: float | None = None) -> LinkState | None:
        """The challenge behind a link token, or None for a token that was never issued."""
        rows = self.challenges_by_token(token)
        if not rows:
            return None
        now = now if now is not None else now_ts()

        def status(row: Row[Any]) -> str:
            if row.status == PENDING and row.expires_at <= now:
                return EXPIRED  # housekeeping marks it hourly; the page must not wait for that
            return str(row.status)

        pending = [r for r in rows if status(r) == PENDING]
        if not pending:  # what the link is now: the first recipient's outcome
            return _state(rows[0], status(rows[0]))
        lead, *others = pending
        return _state(lead, PENDING, others=tuple(r.id for r in others),
                      recipients=tuple(dict.fromkeys(r.recipient for r in pending)))

    def issue_captcha(self, challenge_id: int, nonce: str, answer: str, now: float | None = None) -> None:
        """Make (nonce, answer) the challenge's one CAPTCHA, replacing any earlier one and its rendering."""
        with self.engine.begin() as conn:
            conn.execute(delete(captchas).where(captchas.c.challenge_id == challenge_id))
            conn.execute(insert(captchas).values(challenge_id=challenge_id, nonce=nonce, answer=answer,
                                                 created_at=now or now_ts()))

    def current_captcha(self, challenge_id: int) -> Row[Any] | None:
        """The challenge's CAPTCHA row (nonce, answer, png, wav), or None."""
        with self.engine.connect() as conn:
            return conn.execute(select(captchas).where(captchas.c.challenge_id == challenge_id)).first()

    def keep_rendering(self, challenge_id: int, nonce: str, kind: str, data: bytes) -> bytes | None:
        """Store the one rendering (`png` or `wav`) of this CAPTCHA; returns the stored one: `data`, or what
        another request stored first (so every fetch shows the same rendering), or None once the CAPTCHA
        was replaced or answered."""
        column = captchas.c[kind]
        with self.engine.begin() as conn:
            conn.execute(update(captchas).where(captchas.c.challenge_id == challenge_id,
                                                captchas.c.nonce == nonce, column.is_(None)).values({kind: data}))
            stored: bytes | None = conn.execute(select(column).where(captchas.c.challenge_id == challenge_id,
                                                                     captchas.c.nonce == nonce)).scalar()
            return stored

    def record_wrong_answer(self, challenge_id: int, nonce: str, now: float | None = None) -> bool:
        """Count a wrong answer and retire its CAPTCHA. False: that CAPTCHA was already used or replaced."""
        with self.engine.begin() as conn:
            if conn.execute(delete(captchas).where(captchas.c.challenge_id == challenge_id,
                                                   captchas.c.nonce == nonce)).rowcount != 1:
                return False
            res = conn.execute(update(challenges).where(
                challenges.c.id == challenge_id, challenges.c.status == PENDING)
                .values(confirm_failures=challenges.c.confirm_failures + 1, updated_at=now or now_ts()))
            return bool(res.rowcount == 1)

    def confirm(self, challenge_id: int, nonce: str | None = None, now: float | None = None,
                others: tuple[int, ...] = (), client_ip: str = "") -> bool:
        """A right answer: the challenge becomes confirmed and the sender is allowlisted for its user,
        with the authentication seen when the link was issued, in one transaction, and so does each of
        `others` (the link's further recipients) that is still pending.

        False when the CAPTCHA `nonce` was already used or replaced (None: no CAPTCHA check, for
        admins and tests), the challenge is no longer pending and unexpired, or a block now covers the
        sender for every recipient: a confirmation never lifts a block (SPEC §4.5 item 3); a challenge
        whose recipient blocks the sender is denied instead.

        Each confirmed challenge gets a `confirmed` event (one denied for a block gets `denied`), with the
        confirmer's `client_ip`, in the same transaction: a failed commit records nothing, and a second
        answer finds the challenge no longer pending and records nothing again (SPEC §4.3)."""
        now = now or now_ts()
        c = challenges.c
        with self.engine.begin() as conn:
            if nonce is not None and conn.execute(delete(captchas).where(
                    captchas.c.challenge_id == challenge_id, captchas.c.nonce == nonce)).rowcount != 1:
                return False
            res = conn.execute(update(challenges).where(
                c.id == challenge_id, c.status == PENDING, c.expires_at > now).values(status=CONFIRMED, updated_at=now))
            if res.rowcount != 1:
                return False
            confirmed = [challenge_id]
            for other in others:  # a recipient who denied (or approved) meanwhile keeps their decision
                res = conn.execute(update(challenges).where(
                    c.id == other, c.status == PENDING, c.expires_at > now).values(status=CONFIRMED, updated_at=now))
                if res.rowcount == 1:
                    confirmed.append(other)
            conn.execute(delete(captchas).where(captchas.c.challenge_id == challenge_id))
            allowed = 0
            rows = conn.execute(select(c.id, c.user_id, c.sender, c.recipient, c.subject, c.auth)
                                .where(c.id.in_(confirmed)).order_by(c.id)).all()
            for row in rows:
                if _blocked(conn, row.user_id, row.sender, now):
                    conn.execute(update(challenges).where(c.id == row.id).values(status=DENIED, updated_at=now))
                    self.add_event_tx(conn, action_event(row, Verdict.DENIED, now, client_ip=client_ip,
                                                         reason="solved the CAPTCHA, but a block covers the sender"))
                    continue
                # on this connection: the allowlist entries and the status changes commit together
                note = f"confirmed at the confirmation page (challenge {row.id})"
                if row.auth:
                    note += f"; {row.auth}"
                entry, _ = add_entry_tx(conn, row.user_id, "allow", parse_pattern(row.sender), "confirmed", note,
                                        None, auth=row.auth)
                details: dict[str, Any] = {"entry_id": entry.id, "pattern": str(entry.pattern)}
                if row.auth:
                    details["auth"] = row.auth
                self.add_event_tx(conn, action_event(row, Verdict.CONFIRMED, now, client_ip=client_ip,
                                                     reason="solved the CAPTCHA", details=details))
                allowed += 1
            if not allowed:
                return False
        return True
