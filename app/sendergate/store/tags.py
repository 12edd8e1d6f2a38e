"""Sign-up addresses (issue 19): tags on a user's address, what RCPT looks up about one, and the counts of
the mail that came in by each (kept in the transaction that writes the event)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..policy import tags as tag_rule
from ..policy.address import AddressError, parse
from .engine import StoreBase, inserted_id, now_ts
from .errors import Conflict, Forbidden, Invalid, NotFound
from .schema import tag_senders, tags, user_addresses

SECRET_KEY = "tag_secret"  # settings key: the MAC key of dated tags, one for every node
TOP_SENDERS = 5
DATED_DEFAULT = 30 * 86400.0  # a dated tag made without an expiry
_ACCEPTED = ("delivered", "screened", "observed")
_t = tags.c
_s = tag_senders.c
_ua = user_addresses.c


@dataclass(frozen=True, slots=True)
class TagLookup:
    """What RCPT needs to know about `base+part@domain`: the user who owns the base address (None: the
    address is not a tagged one of a user's, the normal rules apply) and their tag of that name, if any."""

    user_id: int | None
    owner: str = ""  # the base address key
    row: Any = None  # (id, address, dated, folder, expires_at, revoked_at) of the tag, None: no such tag


def tag_secret_factory() -> str:
    return secrets.token_urlsafe(32)


def _owner_key(address: str, delimiter: str) -> str:
    """The address a tag is made on: one of a user's own, given without a tag; Invalid otherwise."""
    a = address.strip()
    if a.startswith("@"):
        raise Invalid("a sign-up address is made on a mailbox address, not on a catch-all (@domain)")
    try:
        addr = parse(a)
    except AddressError as exc:
        raise Invalid(f"{address[:80]!r} is not a valid address: {exc}") from None
    if delimiter in addr.local or "+" in addr.local:
        raise Invalid(f"give the address without a tag ({addr.key}), the name separately")
    return addr.key


class Tags(StoreBase):
    def tag_secret(self) -> str:
        value = self.get_setting(SECRET_KEY, tag_secret_factory)  # type: ignore[attr-defined]
        assert isinstance(value, str)
        return value

    def add_tag(self, scope: int | None, address: str, name: str, *, expires_in: float | None = None,
                dated: bool = False, folder: str | None = None, delimiter: str = "+") -> dict[str, Any]:
        """A new tag on `address` (one of the scope user's; an admin: anyone's). Forbidden for another user's
        address, NotFound for one nobody has, Invalid for a bad name, Conflict when the user has the name."""
        owner = _owner_key(address, delimiter)
        try:
            clean = tag_rule.check_name(name, delimiter)
        except tag_rule.TagError as exc:
            raise Invalid(str(exc)) from None
        if folder is not None and folder not in tag_rule.FOLDERS:
            raise Invalid(f"folder must be one of {', '.join(tag_rule.FOLDERS)}")
        if expires_in is not None and expires_in <= 0:
            raise Invalid("an expiry must be in the future")
        now = now_ts()
        expires_at = None if expires_in is None else now + expires_in
        secret = ""
        if dated:
            secret = self.tag_secret()
            expires_at = tag_rule.dated_expiry(now + (expires_in or DATED_DEFAULT))
        try:
            tag_rule.check_length(tag_rule.tag_address(owner, clean, delimiter, secret=secret,
                                                       expires_at=expires_at))
        except tag_rule.TagError as exc:
            raise Invalid(str(exc)) from None
        with self.engine.begin() as conn:
            uid = conn.execute(select(_ua.user_id).where(_ua.address == owner)).scalar()
            if uid is None:
                raise NotFound(f"no user owns {owner}")
            if scope is not None and uid != scope:
                raise Forbidden("you may only make sign-up addresses on your own addresses")
            try:
                with conn.begin_nested():
                    tid = inserted_id(conn.execute(insert(tags).values(
                        user_id=uid, address=owner, name=clean, dated=int(dated), folder=folder, created_at=now,
                        expires_at=expires_at)))
            except IntegrityError:
                raise Conflict(f"{owner} has a sign-up address named {clean!r} already (a revoked one stays "
                               "revoked): choose another name") from None
        return self.get_tag(scope, tid, delimiter=delimiter)

    def get_tag(self, scope: int | None, tag_id: int, *, delimiter: str = "+") -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(tags).where(_t.id == tag_id)).first()
            if row is None or (scope is not None and row.user_id != scope):
                raise NotFound(f"no sign-up address {tag_id}")
            return self._tag_dict(conn, row, delimiter)

    def tag_by_name(self, scope: int | None, address: str, name: str, *, delimiter: str = "+") -> dict[str, Any]:
        owner = _owner_key(address, delimiter)
        with self.engine.connect() as conn:
            row = conn.execute(select(tags).where(_t.address == owner, _t.name == name.strip().lower())).first()
            if row is None or (scope is not None and row.user_id != scope):
                raise NotFound(f"{owner} has no sign-up address named {name.strip()[:40]!r}")
            return self._tag_dict(conn, row, delimiter)

    def list_tags(self, scope: int | None, address: str | None = None, *,
                  delimiter: str = "+") -> list[dict[str, Any]]:
        """The scope's tags (an admin: everyone's), newest first; with `address`, those on it only."""
        stmt = select(tags).order_by(_t.id.desc())
        if scope is not None:
            stmt = stmt.where(_t.user_id == scope)
        if address is not None:
            owner = _owner_key(address, delimiter)
            with self.engine.connect() as conn:
                uid = conn.execute(select(_ua.user_id).where(_ua.address == owner)).scalar()
            if uid is None:
                raise NotFound(f"no user owns {owner}")
            if scope is not None and uid != scope:
                raise Forbidden("you may only see sign-up addresses on your own addresses")
            stmt = stmt.where(_t.address == owner)
        with self.engine.connect() as conn:
            return [self._tag_dict(conn, r, delimiter) for r in conn.execute(stmt).all()]

    def revoke_tag(self, scope: int | None, tag_id: int, *, delimiter: str = "+") -> dict[str, Any]:
        """Revoke (kept, so mail to it is refused); revoking a revoked tag changes nothing."""
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.user_id).where(_t.id == tag_id)).first()
            if row is None or (scope is not None and row.user_id != scope):
                raise NotFound(f"no sign-up address {tag_id}")
            conn.execute(update(tags).where(_t.id == tag_id, _t.revoked_at.is_(None)).values(revoked_at=now_ts()))
        return self.get_tag(scope, tag_id, delimiter=delimiter)

    def set_tag_folder(self, scope: int | None, tag_id: int, folder: str | None, *,
                       delimiter: str = "+") -> dict[str, Any]:
        if folder is not None and folder not in tag_rule.FOLDERS:
            raise Invalid(f"folder must be one of {', '.join(tag_rule.FOLDERS)}")
        with self.engine.begin() as conn:
            row = conn.execute(select(_t.user_id).where(_t.id == tag_id)).first()
            if row is None or (scope is not None and row.user_id != scope):
                raise NotFound(f"no sign-up address {tag_id}")
            conn.execute(update(tags).where(_t.id == tag_id).values(folder=folder))
        return self.get_tag(scope, tag_id, delimiter=delimiter)

    def _tag_dict(self, conn: Connection, row: Row[Any], delimiter: str) -> dict[str, Any]:
        senders = conn.execute(select(_s.sender, _s.count).where(_s.tag_id == row.id)
                               .order_by(_s.count.desc(), _s.last_at.desc()).limit(TOP_SENDERS)).all()
        secret = self.tag_secret() if row.dated else ""
        return {
            "id": row.id, "user_id": row.user_id, "owner_address": row.address, "name": row.name,
            "address": tag_rule.tag_address(row.address, row.name, delimiter, secret=secret,
                                            expires_at=row.expires_at),
            "dated": bool(row.dated), "folder": row.folder, "created_at": row.created_at,
            "expires_at": row.expires_at, "revoked_at": row.revoked_at,
            "status": tag_rule.status(row.revoked_at, row.expires_at, now_ts()),
            "received": row.received, "refused": row.refused, "last_received_at": row.last_received_at,
            "senders": [{"sender": s, "count": n} for s, n in senders],
        }

    def prune_tag_senders(self, older_than: float) -> int:
        """Forget senders who last wrote to a tag before `older_than` (events.retention, housekeeping): a
        leaked tag's row count stays bounded by the senders of the retention period."""
        with self.engine.begin() as conn:
            n: int = conn.execute(delete(tag_senders).where(_s.last_at < older_than)).rowcount
            return n

    # -- SMTP ------------------------------------------------------------------------------------

    def tag_lookup(self, full_key: str, base_key: str, name: str) -> TagLookup:
        """RCPT, for a local part with the delimiter: an address stored as it is (`first-last@` with "-") is
        not a tag; else the user of the base address (never a catch-all) and their tag `name`."""
        with self.engine.connect() as conn:
            if full_key != base_key and \
                    conn.execute(select(_ua.user_id).where(_ua.address == full_key)).first() is not None:
                return TagLookup(None)
            uid = conn.execute(select(_ua.user_id).where(_ua.address == base_key)).scalar()
            if uid is None:
                return TagLookup(None)
            row = conn.execute(select(_t.id, _t.address, _t.dated, _t.folder, _t.expires_at, _t.revoked_at)
                               .where(_t.user_id == uid, _t.name == name)).first()
            return TagLookup(uid, base_key, row if row is not None and row.address == base_key else None)


def count_tag_tx(conn: Connection, is_sqlite: bool, user_id: int, name: str, sender: str, verdict: str,
                 ts: float) -> None:
    """A message came in by the user's tag `name`: delivered, or refused (a retry asked for is neither).
    Called with the event's write, in its transaction."""
    if verdict == "tempfail":
        return
    if verdict in _ACCEPTED:
        values: dict[str, Any] = {"received": _t.received + 1, "last_received_at": ts}
    else:
        values = {"refused": _t.refused + 1}
    tid = conn.execute(update(tags).where(_t.user_id == user_id, _t.name == name).values(**values)
                       .returning(_t.id)).scalar()
    if tid is None or not sender:
        return
    if is_sqlite:
        from sqlalchemy.dialects.sqlite import insert as upsert
    else:
        from sqlalchemy.dialects.postgresql import insert as upsert  # type: ignore[assignment]  # same API
    stmt = upsert(tag_senders).values(tag_id=tid, sender=sender[:320].lower(), count=1, last_at=ts)
    conn.execute(stmt.on_conflict_do_update(index_elements=[_s.tag_id, _s.sender],
                                            set_={"count": _s.count + 1, "last_at": ts}))
