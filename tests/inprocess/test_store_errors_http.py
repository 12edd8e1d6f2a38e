"""Store errors as HTTP answers (web/errors.py), through the app's real exception handlers: bad input and
a duplicate are the caller's to fix (422, 409), never a 503 that tells a client to retry the same request;
only real store trouble is a 503, and its details stay in the log."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sendergate.store import Conflict, Forbidden, Invalid, NotFound, StoreError
from sendergate.web.errors import install_error_handlers, store_status

pytestmark = pytest.mark.fast

CASES = [(NotFound("no such challenge"), 404), (Forbidden("admins only"), 403),
         (Conflict("alice@example.org belongs to a user"), 409), (Invalid("'a@@b' is not an address"), 422),
         (StoreError("database is locked: /var/lib/sendergate/store.db"), 503)]


@pytest.mark.parametrize("exc,status", CASES, ids=[type(e).__name__ for e, _ in CASES])
def test_each_store_error_has_its_status(exc: StoreError, status: int) -> None:
    assert store_status(exc) == status


@pytest.mark.parametrize("exc,status", CASES, ids=[type(e).__name__ for e, _ in CASES])
def test_a_route_that_lets_a_store_error_escape(exc: StoreError, status: int) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/x")
    def fail() -> None:
        raise exc

    answer = TestClient(app).get("/x")
    assert answer.status_code == status
    if status == 503:
        assert answer.json() == {"detail": "store unavailable; try again later"}  # no path, no driver text
    else:
        assert answer.json() == {"detail": str(exc)}  # the caller's own mistake, said in one line
