"""GET /api/v1/screened: automated senders screened or refused as bulk, one row per sender."""

import time
from typing import Annotated

from fastapi import APIRouter, Query

from ...store import DAY
from ..auth import API_PREFIX, CallerDep
from ..convert import screened_out
from ..deps import RuntimeDep, run
from ..errors import BAD_REQUEST
from ..models import ScreenedPage
from ..paging import decode_screened_cursor, encode_screened_cursor

router = APIRouter(prefix=API_PREFIX)


@router.get("/screened", response_model=ScreenedPage, tags=["events"], responses=BAD_REQUEST,
            summary="Automated senders screened or refused as bulk, grouped by sender, most recently seen first",
            description="Read from the store's per-sender daily rollup, so a page costs the same however long "
                        "the event log is; `days` counts whole UTC days (from the start of the day `days` ago). "
                        "The first page pins the period and the events it "
                        "counts, so later pages neither repeat nor skip a sender who writes again meanwhile "
                        "(`days` is taken from the cursor then). `listed` tells which of the caller's (or a "
                        "global) allow or block entries decides for the sender or its domain now. A user sees "
                        "the senders who wrote to them; an admin sees all.")
async def screened(caller: CallerDep, rt: RuntimeDep,
                   days: Annotated[int, Query(ge=1, le=366, description="Look back this many days.")] = 90,
                   cursor: Annotated[str | None, Query(max_length=200)] = None,
                   limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> ScreenedPage:
    before: int | None
    if cursor:
        upto, before, since = decode_screened_cursor(cursor)
    else:
        upto, before, since = await run(rt, rt.store.max_event_id), None, time.time() - days * DAY
    rows, last = await run(rt, rt.store.screened_senders, caller.scope, caller.user.id, since=since,
                           upto_id=upto, before_id=before, limit=limit)
    return ScreenedPage(items=[screened_out(r) for r in rows],
                        next_cursor=None if last is None else encode_screened_cursor(upto, last, since))
