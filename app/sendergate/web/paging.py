"""Cursors for the API's keyset pages (opaque to clients) and the bounds of the ids and text they carry.

A cursor that does not decode is the client's mistake: `BadCursor`, answered 400 by errors.py.
"""

import base64
import binascii
from typing import Annotated

from fastapi import Path

MAX_ID = 2**53  # event ids (BIGINT) beyond this cannot exist; bounding them keeps the drivers' integer types happy
MAX_ROW_ID = 2**31 - 1  # challenges and list entries have INTEGER ids

NoControl = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"  # NUL and friends cannot be stored in PostgreSQL text
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]  # a challenge or list entry in a path


class BadCursor(ValueError):
    """Not a cursor this API handed out."""

    def __init__(self) -> None:
        super().__init__("malformed cursor: pass next_cursor from the previous page unchanged")


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def _decode(cursor: str) -> str:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


def encode_cursor(last_id: int | None) -> str | None:
    """The next page's cursor after the row `last_id` (None: this was the last page)."""
    return None if last_id is None else _encode(f"v1:{last_id}")


def decode_cursor(cursor: str | None, max_id: int = MAX_ID) -> int | None:
    """The id below which the next page starts (None: the first page)."""
    if not cursor:
        return None
    try:
        version, _, value = _decode(cursor).partition(":")
        last_id = int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadCursor() from None
    if version != "v1" or not 0 < last_id <= max_id:
        raise BadCursor()
    return last_id


def encode_screened_cursor(upto_id: int, before_id: int, since: float) -> str:
    return _encode(f"s1:{upto_id}:{before_id}:{int(since)}")


def decode_screened_cursor(cursor: str) -> tuple[int, int, float]:
    """(events up to this id, groups below this id, events since) as pinned by the first page."""
    try:
        version, upto, before, since = _decode(cursor).split(":")
        values = int(upto), int(before), int(since)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadCursor() from None
    if version != "s1" or not all(0 <= v <= MAX_ID for v in values):
        raise BadCursor()
    return values[0], values[1], float(values[2])
