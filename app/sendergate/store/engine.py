"""The engine under every table group: connection setup, migrations, and the small helpers they share."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, CursorResult, Engine, create_engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from .errors import StoreError, short


def now_ts() -> float:
    return time.time()


def to_dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(nbytes: int = 16) -> str:
    """An unguessable token: 16 bytes = 128 bits = 22 base64url characters."""
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).rstrip(b"=").decode()


def like_escape(value: str) -> str:
    """`value` as a LIKE operand with escape '\\': its %, _ and \\ match themselves."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_pattern(text_: str) -> str:
    """A case-insensitive substring search for LIKE (compared against a lower()ed column)."""
    return "%" + like_escape(text_.lower()) + "%"


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key an INSERT made."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def dbapi(conn: Connection) -> Any:
    """The driver connection under a SQLAlchemy connection (same transaction)."""
    return conn.connection.driver_connection


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # an event or allowlist entry that was answered for is on disk
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            parent = Path(path).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store directory {parent}: {exc.strerror}") from None
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True,
                         connect_args={"connect_timeout": 5})


class StoreBase:
    """The engine and what every table group's queries share.

    `fast_sqlite`: on SQLite, the SMTP hot path runs its statements in SQLite's own SQL on the driver
    connection (fast_sqlite.py); False runs the SQLAlchemy statements instead (the differential test).
    """

    def __init__(self, url: str, *, fast_sqlite: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.fast = self.is_sqlite and fast_sqlite

    def close(self) -> None:
        self.engine.dispose()

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (safe to call from several nodes at once)."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(resources.files("sendergate.store") / "migrations"))
        try:
            with self.engine.begin() as conn:
                if not self.is_sqlite:  # one node migrates, the others wait
                    conn.execute(text("SELECT pg_advisory_xact_lock(7240531)"))
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise StoreError(f"store unreachable ({self.safe_url}): {short(exc)}") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"store error ({self.safe_url}): {short(exc)}") from None

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
