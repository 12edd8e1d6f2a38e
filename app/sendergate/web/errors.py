"""Errors as HTTP answers: the store's exceptions mapped to a status in one place (the API and the
confirmation page both use it), the app's error handlers, and the error answers the OpenAPI document lists."""

import json
import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..store import Conflict, Forbidden, Invalid, NotFound, StoreError
from .models import Error
from .paging import BadCursor

log = logging.getLogger("sendergate.api")

STORE_UNAVAILABLE = "store unavailable; try again later"

_ERR = {"model": Error}
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {**_ERR, "description": "No or unknown token"},
                                                429: {**_ERR, "description": "Too many failed token attempts"},
                                                503: {**_ERR, "description": "Store unavailable"}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {**_ERR, "description": "No such item for this caller"}}
FORBIDDEN: dict[int | str, dict[str, Any]] = {403: {**_ERR, "description": "Only an admin may do this"}}
BAD_REQUEST: dict[int | str, dict[str, Any]] = {400: {**_ERR, "description": "Malformed cursor or value"}}


def store_status(exc: Exception) -> int:
    """404: no such thing for this caller (whether it exists for someone else or not); 403: the caller
    may not; 409: it exists already; 422: the input is not what the store takes; 503: the store is
    unreachable or failing (the client may try again). Bad input is never a 503: a client would retry it."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, Invalid):
        return 422
    return 503


async def store_error(request: Request, exc: Exception) -> Response:
    """A store exception raised by a route or a dependency; store trouble is a 503 with a one-line
    reason (the details go to the log), not a 500."""
    status = store_status(exc)
    if status == 503:
        log.error("store unavailable for %s %s: %s", request.method, json.dumps(request.url.path), exc)
        return JSONResponse({"detail": STORE_UNAVAILABLE}, status_code=503)
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def bad_cursor(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=400)


async def http_error(request: Request, exc: Exception) -> Response:
    """Every HTTP error as our Error body, `{"detail": "..."}`."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 204 or exc.status_code < 400:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


async def validation_error(request: Request, exc: Exception) -> Response:
    """422 with the first problem in `detail` ("where: what") and all of them in `errors`."""
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors(), custom_encoder={Exception: str, bytes: lambda b: b.decode("latin-1")})
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    msg = first.get("msg", "invalid")
    return JSONResponse({"detail": f"{where}: {msg}" if where else msg, "errors": errors}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(BadCursor, bad_cursor)
    app.add_exception_handler(StoreError, store_error)  # NotFound, Forbidden and the rest are StoreErrors
