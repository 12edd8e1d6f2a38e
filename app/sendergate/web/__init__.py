"""The gateway's HTTP side: health, metrics, the confirmation page and the API, composed into one app.

Served by uvicorn inside the gateway process, on the same event loop as SMTP.
"""

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from .. import __version__
from ..runtime import Runtime
from .auth import TokenGate
from .clientip import parse_networks
from .confirm import ConfirmPage, confirm_router
from .digest_page import digest_router
from .errors import AUTH_ERRORS, install_error_handlers
from .openapi import DocumentedApp
from .routes import api_routers
from .routes.devices import page_router as pair_page_router
from .routes.health import router as health_router
from .routes.metrics import metrics_router
from .stream import StreamHub
from .timing import observe_latency


def create_app(rt: Runtime) -> FastAPI:
    public = rt.cfg.http.metrics_public
    # Without http.metrics_public the document and its viewer are served by routes/metrics.py behind a token.
    app = DocumentedApp(title="SenderGate", version=__version__,
                        description="The SenderGate gateway API: events, challenges, allow and block lists.",
                        docs_url="/docs" if public else None, redoc_url="/redoc" if public else None,
                        openapi_url="/openapi.json" if public else None)
    app.state.rt = rt
    app.state.token_gate = TokenGate(trusted_proxies=parse_networks(rt.cfg.http.trusted_proxies))
    app.state.stream_hub = StreamHub(rt)
    app.state.confirm_page = ConfirmPage(rt)
    app.state.stopping = False
    install_error_handlers(app)
    app.middleware("http")(observe_latency)
    app.include_router(health_router)
    app.include_router(confirm_router)
    app.include_router(digest_router)
    app.include_router(pair_page_router)  # the page an https pairing link opens
    for router in api_routers():  # each on the app itself: a route's path is then its whole template
        app.include_router(router, responses=AUTH_ERRORS)
    app.include_router(metrics_router(public))
    return app


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(rt: Runtime, sock: socket.socket, stopping: asyncio.Event) -> None:
    app = create_app(rt)
    cfg = rt.cfg.http
    # proxy_headers off: uvicorn would believe X-Forwarded-For from any loopback peer; the
    # confirmation page reads it itself, from http.trusted_proxies only (web/clientip.py).
    server = _Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", proxy_headers=False,
                                    ssl_certfile=cfg.tls_cert or None, ssl_keyfile=cfg.tls_key or None,
                                    timeout_graceful_shutdown=5, server_header=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await stopping.wait()
    app.state.stopping = True  # open live streams end now instead of at uvicorn's graceful timeout
    server.should_exit = True
    await task
