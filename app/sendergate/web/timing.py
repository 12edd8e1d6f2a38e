"""Every HTTP answer's latency into the metrics, labelled by route template (not the raw path)."""

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from ..runtime import Runtime

UNTIMED = frozenset({"/api/v1/stream"})  # a stream's duration is not a latency


async def observe_latency(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", None) or "unmatched"
    if path not in UNTIMED:
        rt: Runtime = request.app.state.rt
        rt.metrics.observe_api(request.method, path, response.status_code, time.perf_counter() - started)
    return response
