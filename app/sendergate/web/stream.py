"""The live event stream's hub: one poller per process looks at the store for new events and challenge
changes (from any node) and hands them to the open streams whose caller may see them."""

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from ..runtime import Runtime
from ..store import StoreError
from .convert import challenge_out, event_out
from .deps import run
from .paging import MAX_ID

log = logging.getLogger("sendergate.api")

STREAM_POLL = 0.5  # seconds between looks at the store for the live stream
STREAM_SETTLE = 5.0  # ids can commit out of order (PostgreSQL, several nodes): look back this long

Row = dict[str, Any]


@dataclass(eq=False)
class _Subscriber:
    scope: int | None
    queue: asyncio.Queue[tuple[str, Row]] = field(default_factory=lambda: asyncio.Queue(10_000))
    overflowed: bool = False


class StreamHub:
    """The poller and its subscribers (one hub per app: create_app puts it on app.state)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.subscribers: set[_Subscriber] = set()
        self.task: asyncio.Task[None] | None = None
        self.settled_id = 0  # every event with an id at or below this has been seen
        self.sent_ids: set[int] = set()
        self.highs: deque[tuple[float, int]] = deque()
        self.challenge_since = 0.0
        self.challenge_seen: dict[tuple[int, float, str], float] = {}

    def _subscribe(self, scope: int | None, start_id: int) -> _Subscriber:
        sub = _Subscriber(scope)
        if not self.subscribers and (self.task is None or self.task.done()):
            self.settled_id = start_id
            self.sent_ids.clear()
            self.highs.clear()
            self.challenge_since = time.time() - STREAM_SETTLE
            self.challenge_seen.clear()
            self.task = asyncio.create_task(self._poll(), name="stream-hub")
        self.subscribers.add(sub)
        return sub

    def _deliver(self, kind: str, row: Row) -> None:
        for sub in list(self.subscribers):
            if sub.scope is None or sub.scope == row.get("user_id"):
                try:
                    sub.queue.put_nowait((kind, row))
                except asyncio.QueueFull:  # a client that does not read: it reconnects and resumes
                    sub.overflowed = True

    async def _poll(self) -> None:
        while self.subscribers:
            try:
                await self._poll_once()
            except StoreError as exc:  # the stream waits for the store to come back
                log.error("live stream: polling the store failed: %s", exc)
            except Exception:  # a bug must not end every open stream: logged with its traceback, then on
                log.exception("live stream: polling failed")
            await asyncio.sleep(STREAM_POLL)

    async def _poll_once(self) -> None:
        now = time.monotonic()
        wall = time.time()
        events, changed = await run(self.rt, self.rt.store.stream_changes, self.settled_id,
                                    self.challenge_since - STREAM_SETTLE)
        high = self.settled_id
        for row in events:
            if row["id"] not in self.sent_ids:
                self.sent_ids.add(row["id"])
                self._deliver("event", row)
        if events:
            high = max(high, events[-1]["id"])
        # ids below the highest seen STREAM_SETTLE seconds ago are final: stop looking below them
        self.highs.append((now, high))
        while self.highs and self.highs[0][0] < now - STREAM_SETTLE:
            self.settled_id = max(self.settled_id, self.highs.popleft()[1])
        self.sent_ids = {i for i in self.sent_ids if i > self.settled_id}

        for row in changed:
            key = (row["id"], row["updated_at"], row["status"])
            if key not in self.challenge_seen:
                self.challenge_seen[key] = row["updated_at"]
                self._deliver("challenge", row)
        if changed:
            self.challenge_since = max(self.challenge_since, max(r["updated_at"] for r in changed))
        self.challenge_since = max(self.challenge_since, wall - STREAM_SETTLE)
        cutoff = self.challenge_since - 2 * STREAM_SETTLE
        self.challenge_seen = {k: v for k, v in self.challenge_seen.items() if v > cutoff}

    async def follow(self, request: Request, scope: int | None, last_event_id: str) -> AsyncIterator[dict[str, Any]]:
        """One client's stream: what it missed since Last-Event-ID, then everything new, live."""
        resume_event, resume_ch = parse_stream_id(last_event_id)
        start_id = await run(self.rt, self.rt.store.max_event_id)
        sub = self._subscribe(scope, start_id)
        sent: set[int] = set()
        seen_ch: set[tuple[int, float, str]] = set()
        last_event = resume_event if resume_event is not None else start_id
        last_ch = resume_ch if resume_ch is not None else time.time()

        def message(kind: str, row: Row) -> dict[str, Any]:
            nonlocal last_event, last_ch
            if kind == "event":
                last_event = max(last_event, row["id"])
                data = event_out(row).model_dump_json()
            else:
                last_ch = max(last_ch, row["updated_at"])
                data = challenge_out(row).model_dump_json()
            return {"event": kind, "id": f"{last_event}-{int(last_ch * 1000)}", "data": data}

        try:
            yield {"comment": "sendergate live stream", "retry": 3000}
            if resume_event is not None:  # catch up from the store, then continue from the hub
                after = resume_event
                while True:
                    rows = await run(self.rt, self.rt.store.events_after, scope, after, 500)
                    for row in rows:
                        sent.add(row["id"])
                        yield message("event", row)
                    if len(rows) < 500:
                        break
                    after = rows[-1]["id"]
            if resume_ch is not None:
                for row in await run(self.rt, self.rt.store.challenges_changed_since, scope, resume_ch, 5000):
                    seen_ch.add((row["id"], row["updated_at"], row["status"]))
                    yield message("challenge", row)
            while not getattr(request.app.state, "stopping", False):
                if sub.overflowed:
                    log.warning("live stream: a client fell behind; closing its stream so it resumes")
                    return
                try:
                    kind, row = await asyncio.wait_for(sub.queue.get(), timeout=STREAM_POLL)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    continue
                if kind == "event":
                    if row["id"] in sent or (resume_event is None and row["id"] <= start_id):
                        continue
                    sent.add(row["id"])
                    if len(sent) > 100_000:
                        sent = {i for i in sent if i > last_event - 10_000}
                else:
                    key = (row["id"], row["updated_at"], row["status"])
                    if key in seen_ch:
                        continue
                    seen_ch.add(key)
                    if row["updated_at"] <= (resume_ch or 0) and resume_ch is not None:
                        continue
                yield message(kind, row)
        finally:
            self.subscribers.discard(sub)


def parse_stream_id(value: str) -> tuple[int | None, float | None]:
    """'<last event id>-<last challenge change, ms>' as sent in each message's id; junk means 'from now'."""
    try:
        event_part, ch_part = value.strip().split("-", 1)
        event_id, ch_ms = int(event_part), int(ch_part)
        if not (0 <= event_id <= MAX_ID and 0 <= ch_ms <= MAX_ID):
            raise ValueError
        return event_id, ch_ms / 1000
    except ValueError:
        return None, None
