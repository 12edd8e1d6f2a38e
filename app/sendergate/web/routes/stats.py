"""GET /api/v1/stats: counts per verdict per UTC day, and the pending challenges."""

import time
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Query

from ...policy.decide import VERDICTS
from ...store import DAY
from ..auth import API_PREFIX, CallerDep
from ..deps import RuntimeDep, run
from ..models import Stats, StatsDay

router = APIRouter(prefix=API_PREFIX)


@router.get("/stats", response_model=Stats, tags=["events"],
            summary="Counts per verdict per UTC day, oldest first, up to today; pending challenges")
async def stats(caller: CallerDep, rt: RuntimeDep, days: Annotated[int, Query(ge=1, le=366)] = 30) -> Stats:
    today = int(time.time() // DAY)
    per_day = await run(rt, rt.store.day_counts, caller.scope, today - days + 1, today)
    pending = await run(rt, rt.store.pending_count, caller.scope)
    out_days, totals = [], dict.fromkeys(VERDICTS, 0)
    for day in sorted(per_day):
        counts = {v: per_day[day].get(v, 0) for v in VERDICTS}
        for v, n in per_day[day].items():
            totals[v] = totals.get(v, 0) + n
            counts[v] = n
        out_days.append(StatsDay(date=datetime.fromtimestamp(day * DAY, timezone.utc).date(), counts=counts))
    return Stats(days=out_days, totals=totals, pending_challenges=pending)
