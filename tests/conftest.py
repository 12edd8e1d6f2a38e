"""Shared fixtures: real services started once per test session, on loopback ports.

Each launcher lives in tests/support/ and fails loudly when its daemon is
missing: the suite never skips a test because a component is absent.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

# Qt needs a platform before any QApplication exists; offscreen renders for real.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Daemons and directories left by an earlier run that was killed outright are removed first."""
    from tests.support.common import sweep_stale_service_dirs

    for path in sweep_stale_service_dirs():
        print(f"removed {path}, left by a test run that was killed")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`postgres` on every test that reaches the PostgreSQL server: through its fixtures, or as the
    "postgresql" case of a backend parameter (store_url, or a module's own fixture that calls it up)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        if "postgres" in getattr(item, "fixturenames", ()) or "postgresql" in params:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """One private PostgreSQL 15 cluster for the whole session."""
    from tests.support.postgres import PostgresServer

    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres: object) -> str:
    """A fresh, empty database in the session's PostgreSQL."""
    return postgres.create_database("t_" + uuid.uuid4().hex[:12])  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """Run a store test against both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def two_nodes(postgres: object) -> Iterator[tuple[object, object]]:
    """Two gateway processes on one fresh PostgreSQL database: several nodes behind one MX."""
    from tests.support.gateway import GatewayProcess

    url = postgres.create_database("nodes_" + uuid.uuid4().hex[:10])  # type: ignore[attr-defined]
    a, b = GatewayProcess(store_url=url), GatewayProcess(store_url=url)
    a.start()
    try:
        b.start()
        try:
            yield a, b
        finally:
            b.close()
    finally:
        a.close()
