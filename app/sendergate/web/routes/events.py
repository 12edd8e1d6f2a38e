"""GET /api/v1/events: the decision log, newest first, a keyset page at a time."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from ...policy.decide import Verdict
from ...policy.tags import NAME_MAX
from ...store import SEARCH_BUDGET, SEARCH_WINDOW
from ..auth import API_PREFIX, WHOSE_DOC, CallerDep, whose
from ..convert import event_out, to_epoch
from ..deps import RuntimeDep, run
from ..errors import BAD_REQUEST
from ..models import EventPage
from ..paging import MAX_ROW_ID, NoControl, decode_cursor, encode_cursor

router = APIRouter(prefix=API_PREFIX)

SEARCH_DOC = ("Text in sender, recipient or subject. Each request reads a bounded share of the caller's "
              f"events (newest first; at most {SEARCH_WINDOW:,}, in about "
              f"{SEARCH_BUDGET * 1000:.0f} ms), so a page may be short or empty "
              "with a `next_cursor` to go on.")

TAG_QUERY = r"^[A-Za-z0-9_-]+$"  # what a tag name can hold (policy/tags.py), in any case: anything else is a 422
TAG_DOC = ("Only the messages that came in by the sign-up address of this name (`alice+acme@` -> `acme`; any "
           "case), among the caller's events (an admin: everyone's, or with `user` that person's).")


@router.get("/events", response_model=EventPage, tags=["events"], responses=BAD_REQUEST,
            summary="Every decision (the log), newest first, a page at a time")
async def events(caller: CallerDep, rt: RuntimeDep,
                 verdict: Annotated[list[Verdict] | None,
                                    Query(description="One or more verdicts (repeat the parameter).")] = None,
                 q: Annotated[str, Query(max_length=200, pattern=NoControl, description=SEARCH_DOC)] = "",
                 tag: Annotated[str | None, Query(min_length=1, max_length=NAME_MAX, pattern=TAG_QUERY,
                                                  description=TAG_DOC)] = None,
                 since: Annotated[datetime | None, Query(description="Only decisions at or after this time.")] = None,
                 until: Annotated[datetime | None, Query(description="Only decisions before this time.")] = None,
                 cursor: Annotated[str | None, Query(max_length=100)] = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 user: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description=WHOSE_DOC)] = None) -> EventPage:
    before = decode_cursor(cursor)
    rows, last = await run(rt, rt.store.events_page, whose(caller, user),
                           verdicts=[v.value for v in verdict or []], q=q.strip(),
                           tag=tag.lower() if tag is not None else None, since=to_epoch(since),
                           until=to_epoch(until), before_id=before, limit=limit)
    return EventPage(items=[event_out(r) for r in rows], next_cursor=encode_cursor(last),
                     partial=bool(q.strip()) and last is not None and len(rows) < limit)
