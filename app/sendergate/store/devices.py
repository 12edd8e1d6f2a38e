"""Devices (a user's API tokens, each with a name) and the one-time pairing codes that make them (issue 16).

A pairing code is 10 characters from an alphabet without look-alikes (no 0/O, 1/I), shown as XXXXX-XXXXX:
50 bits, single use, 24 hours. Only its sha256 is stored; the web layer limits guesses per client.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update

from .engine import StoreBase, hash_secret, inserted_id, new_token, now_ts
from .errors import Invalid, NotFound
from .schema import api_tokens, pairing_codes, users

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32 symbols: 5 bits each, no 0/O or 1/I to confuse
CODE_LENGTH = 10
CODE_TTL = 24 * 3600.0
DEVICE_NAME_MAX = 100
SCRIPT_DEVICE = "script"  # the device `users add` and `users token` issue (and tokens from before pairing)


@dataclass(frozen=True)
class Device:
    id: int
    user_id: int
    name: str
    created_at: float
    last_used_at: float | None


def normalize_code(code: str) -> str:
    """The code as stored: upper case, without the spaces and dashes people type; Invalid if it cannot be one."""
    c = "".join(ch for ch in code.upper() if ch not in " -\t")
    if len(c) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in c):
        raise Invalid(f"a pairing code is {CODE_LENGTH} letters and digits, like ABCDE-23456")
    return c


def format_code(code: str) -> str:
    half = CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def device_name(name: str) -> str:
    n = " ".join(name.split())  # no control characters or line breaks in a name shown in lists and logs
    if not n or len(n) > DEVICE_NAME_MAX or not n.isprintable():
        raise Invalid(f"a device name is 1 to {DEVICE_NAME_MAX} printable characters")
    return n


def _device(row: object) -> Device:
    return Device(row.id, row.user_id, row.name, row.created_at, row.last_used_at)  # type: ignore[attr-defined]


_t = api_tokens.c
_p = pairing_codes.c


class Devices(StoreBase):
    def create_pairing_code(self, user_id: int, ttl: float = CODE_TTL) -> tuple[str, float]:
        """A new one-time code for the user (formatted XXXXX-XXXXX) and when it expires; earlier codes stay valid."""
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        now = now_ts()
        with self.engine.begin() as conn:
            if conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is None:
                raise NotFound(f"no user {user_id}")
            # expired and used codes are kept a day for the record, then dropped here (no housekeeping job)
            conn.execute(delete(pairing_codes).where(pairing_codes.c.expires_at < now - 86400))
            conn.execute(insert(pairing_codes).values(user_id=user_id, code_hash=hash_secret(code), created_at=now,
                                                      expires_at=now + ttl))
        return format_code(code), now + ttl

    def pair_device(self, code: str, name: str) -> tuple[int, Device, str]:
        """Trade a code for a new device's token (returned once, with the user id). NotFound, with one
        message, for a code that is unknown, used or expired (no oracle); Invalid for a malformed code or name."""
        key = hash_secret(normalize_code(code))
        name = device_name(name)
        now = now_ts()
        token = new_token(24)
        with self.engine.begin() as conn:
            row = conn.execute(select(_p.id, _p.user_id).where(_p.code_hash == key, _p.used_at.is_(None),
                                                               _p.expires_at > now)).first()
            # the update claims the code: of two devices racing with one code, one gets rowcount 1
            if row is None or conn.execute(update(pairing_codes).where(_p.id == row.id, _p.used_at.is_(None))
                                           .values(used_at=now)).rowcount != 1:
                raise NotFound("unknown, used or expired pairing code")
            did = inserted_id(conn.execute(insert(api_tokens).values(
                user_id=row.user_id, token_hash=hash_secret(token), created_at=now, name=name)))
            conn.execute(update(pairing_codes).where(_p.id == row.id).values(device_id=did))
            user_id = int(row.user_id)
        return user_id, self.get_device(did, scope=user_id), token

    def get_device(self, device_id: int, *, scope: int | None) -> Device:
        """The device; NotFound when it is not there or not the scope's (a user sees only their own)."""
        q = select(api_tokens).where(_t.id == device_id)
        if scope is not None:
            q = q.where(_t.user_id == scope)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"no device {device_id}")
        return _device(row)

    def list_devices(self, user_id: int) -> list[Device]:
        with self.engine.connect() as conn:
            return [_device(r) for r in conn.execute(select(api_tokens).where(_t.user_id == user_id).order_by(_t.id))]

    def revoke_device(self, device_id: int, *, scope: int | None) -> Device:
        """Delete the device's token: its next call is refused (401). NotFound outside the scope."""
        dev = self.get_device(device_id, scope=scope)
        with self.engine.begin() as conn:
            conn.execute(delete(api_tokens).where(_t.id == dev.id))
        return dev

    def revoke_device_named(self, user_id: int, name_or_id: str) -> list[Device]:
        """The CLI's revoke: by id, or every device of that name; NotFound when none matches."""
        devs = self.list_devices(user_id)
        hit = [d for d in devs if str(d.id) == name_or_id.strip()] or [d for d in devs if d.name == name_or_id]
        if not hit:
            raise NotFound(f"no device {name_or_id!r}")
        with self.engine.begin() as conn:
            conn.execute(delete(api_tokens).where(_t.id.in_([d.id for d in hit]), _t.user_id == user_id))
        return hit

    def token_identity_of_device(self, device_id: int) -> int | None:
        """The user of a device that still exists, or None (an open live stream's recheck)."""
        with self.engine.connect() as conn:
            uid: int | None = conn.execute(select(_t.user_id).where(_t.id == device_id)).scalar()
        return uid

    def token_identity(self, token: str) -> tuple[int, int] | None:
        """(user id, device id) of a bearer token, or None (read only: the hot path of every request)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_t.user_id, _t.id).where(_t.token_hash == hash_secret(token))).first()
        return None if row is None else (int(row.user_id), int(row.id))
