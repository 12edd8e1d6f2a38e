"""GET /api/v1/stream: the live stream (server-sent events) of new decisions and challenge changes."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sse_starlette import EventSourceResponse

from ..auth import API_PREFIX, CallerDep
from ..stream import StreamHub

router = APIRouter(prefix=API_PREFIX)


@router.get("/stream", tags=["events"], response_class=Response,
            responses={200: {"description": "text/event-stream: `event: event` (data: Event), "
                                            "`event: challenge` (data: Challenge); comments as heartbeats. "
                                            "Reconnect with Last-Event-ID to resume.",
                             "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
            summary="Server-sent events: new decisions and challenge changes for the caller's addresses")
async def stream(request: Request, caller: CallerDep,
                 heartbeat: Annotated[float, Query(ge=1, le=60, description="Seconds between heartbeats.")] = 15,
                 ) -> Response:
    hub: StreamHub = request.app.state.stream_hub
    last_id = request.headers.get("last-event-id", "")
    return EventSourceResponse(hub.follow(request, caller.scope, last_id), ping=heartbeat,
                               headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
