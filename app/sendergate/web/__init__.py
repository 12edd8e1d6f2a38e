"""The gateway's HTTP side: health, metrics, the confirmation page and the API.

Served by uvicorn inside the gateway process, on the same event loop as SMTP.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from .. import __version__

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("sendergate.web")


def create_app(rt: "Runtime") -> FastAPI:
    public = rt.cfg.http.metrics_public
    # Without http.metrics_public the document and its viewer are served by api.py behind a token.
    app = FastAPI(title="SenderGate", version=__version__,
                  description="The SenderGate gateway API: events, challenges, allow and block lists.",
                  docs_url="/docs" if public else None, redoc_url="/redoc" if public else None,
                  openapi_url="/openapi.json" if public else None)
    app.state.rt = rt

    @app.get("/healthz", tags=["health"], summary="Liveness, store and scanner status",
             description="`ok` or `degraded` overall and per part; the reasons are in the gateway's log, "
                         "never here (anyone may ask).")
    async def healthz() -> JSONResponse:
        health = await rt.health()
        return JSONResponse(health, status_code=200 if health["status"] == "ok" else 503)

    for module in ("confirm", "api"):  # optional parts register themselves when present
        try:
            part = __import__(f"sendergate.web.{module}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"sendergate.web.{module}":
                raise
            continue
        part.register(app, rt)
    return app


class _Server:
    """uvicorn without its own signal handling: the gateway decides when to stop."""

    def __init__(self, app: Any, rt: "Runtime") -> None:
        import uvicorn

        cfg = rt.cfg.http
        # proxy_headers off: uvicorn would believe X-Forwarded-For from any loopback peer; the
        # confirmation page reads it itself, from http.trusted_proxies only (web/clientip.py).
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", proxy_headers=False,
                                ssl_certfile=cfg.tls_cert or None, ssl_keyfile=cfg.tls_key or None,
                                timeout_graceful_shutdown=5, server_header=False)

        class Server(uvicorn.Server):
            def capture_signals(self) -> Any:  # type: ignore[override]
                import contextlib
                return contextlib.nullcontext()

        self.server = Server(config)


async def serve_http(rt: "Runtime", sock: socket.socket, stopping: asyncio.Event) -> None:
    app = create_app(rt)
    server = _Server(app, rt).server
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await stopping.wait()
    app.state.stopping = True  # open live streams end now instead of at uvicorn's graceful timeout
    server.should_exit = True
    await task
