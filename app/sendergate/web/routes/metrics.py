"""/metrics (Prometheus), and the API's own description (/openapi.json, /docs) for token holders.

With http.metrics_public all three are open to anyone (FastAPI serves the document and viewer itself);
otherwise /metrics needs an admin's token and the description any token (SPEC §4.5 item 6).
"""

import asyncio
import json

from fastapi import APIRouter, Depends, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse

from ..auth import CallerDep, require_admin
from ..deps import RuntimeDep, run
from ..errors import AUTH_ERRORS, FORBIDDEN


async def metrics(rt: RuntimeDep) -> Response:
    counts = await run(rt, rt.store.challenge_counts)
    body = await asyncio.to_thread(rt.metrics.render, counts)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def openapi_document(request: Request, caller: CallerDep) -> JSONResponse:
    return JSONResponse(request.app.openapi())


async def docs(request: Request, caller: CallerDep) -> Response:
    # A browser cannot send the token to the document the viewer loads: serve the viewer only to token
    # holders, with the document inlined.
    app = request.app
    html = bytes(get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API").body).decode()
    spec = json.dumps(app.openapi()).replace("</", "<\\/")
    html = html.replace("url: '/openapi.json',", f"spec: {spec},")
    return Response(html, media_type="text/html")


def metrics_router(public: bool) -> APIRouter:
    router = APIRouter()
    router.add_api_route("/metrics", metrics, methods=["GET"], tags=["health"],
                         dependencies=[] if public else [Depends(require_admin)], response_class=Response,
                         responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                          "description": "Prometheus text format"},
                                    **({} if public else {**AUTH_ERRORS, **FORBIDDEN})},
                         summary="Prometheus metrics (all worker processes; challenge counts from the store)")
    if not public:
        router.add_api_route("/openapi.json", openapi_document, methods=["GET"], include_in_schema=False)
        router.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    return router
