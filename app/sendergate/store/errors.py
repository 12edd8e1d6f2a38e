"""The store's one exception family: every failure a caller may handle is a StoreError."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be reached or used; the message is fit for an admin."""


class NotFound(StoreError):
    """No such thing for this caller (the same answer whether it exists for someone else or not)."""


class Forbidden(StoreError):
    """The caller may not do this."""


class Conflict(StoreError):
    """It exists already (an address that belongs to a user)."""


class Invalid(StoreError):
    """The input is not what the store takes (an address that does not parse); the message says why."""


def short(exc: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's statement dump."""
    msg = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
    return msg[0] if msg else exc.__class__.__name__
