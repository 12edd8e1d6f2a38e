"""Users, the addresses they receive mail at, and their API tokens."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from ..policy.address import Address, AddressError, parse, parse_pattern
from .engine import StoreBase, hash_secret, inserted_id, new_token, now_ts
from .errors import Conflict, Invalid, NotFound
from .schema import (
    api_tokens,
    captchas,
    challenge_tokens,
    challenges,
    list_entries,
    pairing_codes,
    sent_ids,
    user_addresses,
    users,
)


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    addresses: tuple[str, ...]
    mode: str | None = None  # enforce | observe | off; None = the config's default (SPEC §4.6)
    address_modes: tuple[tuple[str, str], ...] = ()  # addresses with a mode of their own

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def address_key(address: str) -> str:
    """The matching key of a user's address ("@domain" for a catch-all); Invalid for anything that is not
    an address."""
    a = address.strip()
    try:
        return "@" + parse_pattern(a).value if a.startswith("@") else parse(a).key
    except (AddressError, ValueError) as exc:  # a catch-all's domain is checked by the pattern parser
        raise Invalid(f"{address!r} is not a valid address: {exc}") from None


_ua = user_addresses.c
# built once: executing a prepared statement object skips SQLAlchemy's per-call construction (RCPT's hot path)
_Q_RECIPIENT = select(_ua.address, _ua.user_id).where(
    or_(_ua.address == bindparam("key"), _ua.address == bindparam("catch_all")))


def recipient_user_tx(conn: Connection, recipient: Address) -> int | None:
    """The user who receives mail for this address (its key, then a catch-all), or None."""
    found = dict(conn.execute(_Q_RECIPIENT, {"key": recipient.key, "catch_all": "@" + recipient.domain}).all())
    uid: int | None = found.get(recipient.key, found.get("@" + recipient.domain))
    return uid


class Users(StoreBase):
    def add_user(self, address: str, *, name: str = "", admin: bool = False) -> tuple[User, str]:
        """A new user with this address and an API token; the token is returned once, only its hash kept."""
        addr = address_key(address)
        token = new_token(24)
        with self.engine.begin() as conn:
            if conn.execute(select(_ua.id).where(_ua.address == addr)).first():
                raise Conflict(f"{addr} already belongs to a user")
            uid = inserted_id(conn.execute(insert(users).values(name=name, role="admin" if admin else "user",
                                                    created_at=now_ts())))
            conn.execute(insert(user_addresses).values(user_id=uid, address=addr, is_primary=1))
            conn.execute(insert(api_tokens).values(user_id=uid, token_hash=hash_secret(token), created_at=now_ts(),
                                                   name="script"))
        return self.get_user(uid), token

    def get_user(self, user_id: int) -> User:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
            if row is None:
                raise NotFound(f"no user {user_id}")
            rows = conn.execute(select(_ua.address, _ua.mode).where(_ua.user_id == user_id)
                                .order_by(_ua.is_primary.desc(), _ua.id)).all()
            return User(row.id, row.name, row.role, tuple(a for a, _ in rows), row.mode,
                        tuple((a, m) for a, m in rows if m))

    def user_by_address(self, address: str) -> User:
        addr = address_key(address)
        with self.engine.connect() as conn:
            uid = conn.execute(select(_ua.user_id).where(_ua.address == addr)).scalar()
        if uid is None:
            raise NotFound(f"no user owns {addr}")
        return self.get_user(uid)

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            ids = conn.execute(select(users.c.id).order_by(users.c.id)).scalars().all()
        return [self.get_user(i) for i in ids]

    def remove_user(self, address: str) -> User:
        user = self.user_by_address(address)
        with self.engine.begin() as conn:
            cids = select(challenges.c.id).where(challenges.c.user_id == user.id)
            conn.execute(delete(challenge_tokens).where(challenge_tokens.c.challenge_id.in_(cids)))
            conn.execute(delete(captchas).where(captchas.c.challenge_id.in_(cids)))
            conn.execute(delete(pairing_codes).where(pairing_codes.c.user_id == user.id))
            for t in (api_tokens, user_addresses, list_entries, challenges, sent_ids):
                conn.execute(delete(t).where(t.c.user_id == user.id))
            conn.execute(delete(users).where(users.c.id == user.id))
        return user

    def add_alias(self, address: str, alias: str) -> User:
        user = self.user_by_address(address)
        key = address_key(alias)
        with self.engine.begin() as conn:
            if conn.execute(select(_ua.id).where(_ua.address == key)).first():
                raise Conflict(f"{key} already belongs to a user")
            conn.execute(insert(user_addresses).values(user_id=user.id, address=key))
        return self.get_user(user.id)

    def rotate_token(self, address: str, device: str = "script") -> str:
        """A new API token for the user's device of this name (default "script", which `users add` and tokens
        from before pairing are); that device's old token stops working, other (paired) devices keep theirs."""
        user = self.user_by_address(address)
        token = new_token(24)
        with self.engine.begin() as conn:
            conn.execute(delete(api_tokens).where(api_tokens.c.user_id == user.id, api_tokens.c.name == device))
            conn.execute(insert(api_tokens).values(user_id=user.id, token_hash=hash_secret(token),
                                                   created_at=now_ts(), name=device))
        return token

    def user_id_for_token(self, token: str) -> int | None:
        """The user a bearer token belongs to (read only: the hot path of every request)."""
        with self.engine.connect() as conn:
            uid: int | None = conn.execute(select(api_tokens.c.user_id)
                                           .where(api_tokens.c.token_hash == hash_secret(token))).scalar()
            return uid

    def touch_token(self, token: str, when: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(api_tokens).where(api_tokens.c.token_hash == hash_secret(token))
                         .values(last_used_at=when))

    def recipient_user(self, recipient: Address) -> int | None:
        """The user who receives mail for this address (its key, then a catch-all), or None."""
        with self.engine.connect() as conn:
            return recipient_user_tx(conn, recipient)
