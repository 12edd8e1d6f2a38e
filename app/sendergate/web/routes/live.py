"""GET /api/v1/stream: the live stream (server-sent events) of new decisions and challenge changes."""

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sse_starlette import EventSourceResponse

from ...runtime import Runtime
from ..auth import API_PREFIX, CallerDep, TokenGate
from ..deps import RuntimeDep, run
from ..stream import StreamHub

log = logging.getLogger("sendergate.api")

router = APIRouter(prefix=API_PREFIX)


DEVICE_RECHECK = 10.0  # seconds: like the token cache, how long a device revoked on another node keeps streaming


async def while_device(request: Request, rt: Runtime, device_id: int,
                       messages: AsyncIterator[dict[str, Any]]) -> AsyncGenerator[dict[str, Any], None]:
    """The stream, until its device is revoked: a revoked laptop's open app must not go on receiving.
    Revoked through this node: before the next message; through another: within DEVICE_RECHECK seconds
    of traffic (the store is asked then). The app's reconnect then gets 401."""
    gate: TokenGate = request.app.state.token_gate
    checked = time.monotonic()
    try:
        async for m in messages:
            if device_id in gate.revoked:
                log.info("api: live stream of revoked device %d closed", device_id)
                return
            if time.monotonic() - checked > DEVICE_RECHECK:
                checked = time.monotonic()
                if await run(rt, rt.store.token_identity_of_device, device_id) is None:
                    log.info("api: live stream of revoked device %d closed", device_id)
                    return
            yield m
    finally:
        close = getattr(messages, "aclose", None)  # the hub's generator unsubscribes when closed
        if close is not None:
            await close()


@router.get("/stream", tags=["events"], response_class=Response,
            responses={200: {"description": "text/event-stream: `event: event` (data: Event), "
                                            "`event: challenge` (data: Challenge); comments as heartbeats. "
                                            "Reconnect with Last-Event-ID to resume.",
                             "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
            summary="Server-sent events: new decisions and challenge changes for the caller's addresses")
async def stream(request: Request, rt: RuntimeDep, caller: CallerDep,
                 heartbeat: Annotated[float, Query(ge=1, le=60, description="Seconds between heartbeats.")] = 15,
                 ) -> Response:
    hub: StreamHub = request.app.state.stream_hub
    last_id = request.headers.get("last-event-id", "")
    messages = hub.follow(request, caller.scope, last_id)
    if caller.device_id is not None:
        messages = while_device(request, rt, caller.device_id, messages)
    return EventSourceResponse(messages, ping=heartbeat,
                               headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
