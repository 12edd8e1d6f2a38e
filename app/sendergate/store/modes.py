"""Mailbox modes (SPEC §4.6): per user and per address, what RCPT looks up with the recipient, and
who receives the role mailboxes (postmaster@, abuse@) nobody has."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.engine import Connection

from ..policy.address import Address
from ..policy.decide import MODES
from ..policy.lists import ListEntry
from .engine import StoreBase
from .errors import Invalid, NotFound
from .lists import entries_for_sender_tx
from .schema import user_addresses, users
from .users import User, address_key

_ua = user_addresses.c
# built once (RCPT's hot path): the address row (or the catch-all) with its own and its user's mode
_Q_RECIPIENT_MODE = (select(_ua.address, _ua.user_id, _ua.mode, users.c.mode)
                     .select_from(user_addresses.join(users, users.c.id == _ua.user_id))
                     .where(or_(_ua.address == bindparam("key"), _ua.address == bindparam("catch_all"))))


@dataclass(frozen=True, slots=True)
class RcptFacts:
    """What RCPT needs about one recipient: the user, the entries for this sender, the mailbox's mode
    (the address's own, else the user's; None = the config's default)."""

    user_id: int | None
    entries: list[ListEntry]
    mode: str | None = None


def pick_recipient(rows: list[tuple[str, int, str | None, str | None]], key: str,
                   catch_all: str) -> tuple[int | None, str | None]:
    """The user and mode from the rows of the address and its domain's catch-all: the address wins."""
    found = {r[0]: r for r in rows}
    row = found.get(key, found.get(catch_all))
    if row is None:
        return None, None
    return row[1], row[2] or row[3]


def recipient_mode_tx(conn: Connection, recipient: Address) -> tuple[int | None, str | None]:
    catch_all = "@" + recipient.domain
    rows = [tuple(r) for r in conn.execute(_Q_RECIPIENT_MODE, {"key": recipient.key, "catch_all": catch_all}).all()]
    return pick_recipient(rows, recipient.key, catch_all)


def _mode(mode: str | None) -> str | None:
    if mode is None or mode == "default":
        return None
    if mode not in MODES:
        raise Invalid(f"unknown mode {mode!r}; one of {', '.join(MODES)} or default")
    return mode


class Modes(StoreBase):
    def rcpt_lookup(self, recipient: Address, sender: Address | None) -> RcptFacts:
        """Lists.rcpt_facts with the mailbox's mode, in one connection."""
        with self.engine.connect() as conn:
            user_id, mode = recipient_mode_tx(conn, recipient)
            if user_id is None:
                return RcptFacts(None, [])
            return RcptFacts(user_id, entries_for_sender_tx(conn, user_id, sender), mode)

    def user_mode(self, user_id: int) -> tuple[str | None, dict[str, str]]:
        """The user's own mode (None: the default) and the modes their addresses set of their own."""
        with self.engine.connect() as conn:
            mode = conn.execute(select(users.c.mode).where(users.c.id == user_id)).scalar()
            rows = conn.execute(select(_ua.address, _ua.mode).where(_ua.user_id == user_id, _ua.mode.is_not(None)))
            return mode, {a: m for a, m in rows}

    def set_user_mode(self, user_id: int, mode: str | None) -> None:
        """The user's mode ("default" or None: the config's); NotFound, Invalid."""
        value = _mode(mode)
        with self.engine.begin() as conn:
            if conn.execute(update(users).where(users.c.id == user_id).values(mode=value)).rowcount == 0:
                raise NotFound(f"no user {user_id}")

    def set_address_mode(self, address: str, mode: str | None) -> User:
        """One address's own mode ("default" or None: its user's); NotFound, Invalid."""
        value = _mode(mode)
        key = address_key(address)
        with self.engine.begin() as conn:
            uid = conn.execute(select(_ua.user_id).where(_ua.address == key)).scalar()
            if uid is None:
                raise NotFound(f"no user owns {key}")
            conn.execute(update(user_addresses).where(_ua.address == key).values(mode=value))
        return self.get_user(uid)  # type: ignore[attr-defined,no-any-return]

    def role_owner(self, address: str) -> int | None:
        """The user who receives role mail nobody has: the owner of `address`, or with "" the first admin."""
        with self.engine.connect() as conn:
            if address:
                uid: int | None = conn.execute(select(_ua.user_id).where(_ua.address == address)).scalar()
                return uid
            uid = conn.execute(select(users.c.id).where(users.c.role == "admin").order_by(users.c.id)
                               .limit(1)).scalar()
            return uid
