"""Keyset pages, newest first: a page ends below a key (an id), so rows written meanwhile never shift or
repeat a page. Every paged query of the store reads through `keyset_page`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select


def keyset_page(conn: Connection, stmt: Select[Any], key: ColumnElement[Any], *, before: int | None, limit: int,
                cursor: str = "id", grouped: bool = False) -> tuple[Sequence[Row[Any]], int | None]:
    """The `limit` rows of `stmt` with the highest `key` below `before` (None: from the top), and the key to
    continue below: the `cursor` column of the last row, or None on the last page. `grouped`: `key` is an
    aggregate of a GROUP BY, so the bound goes in HAVING."""
    if before is not None:
        stmt = stmt.having(key < before) if grouped else stmt.where(key < before)
    rows = conn.execute(stmt.order_by(key.desc()).limit(limit + 1)).all()
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, page[-1]._mapping[cursor]
