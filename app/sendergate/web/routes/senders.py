"""GET /api/v1/senders/history: one sender's history (issue 17 item 3), for the desktop app's history panel."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from ...store import Invalid
from ...store.history import parse_subject
from ..auth import API_PREFIX, WHOSE_DOC, CallerDep, whose
from ..convert import _times, entry_out, event_out
from ..deps import RuntimeDep, run
from ..errors import BAD_REQUEST
from ..models import HistoryEntry, HistorySummary, SenderHistory
from ..paging import MAX_ROW_ID, NoControl, decode_cursor, encode_cursor

router = APIRouter(prefix=API_PREFIX)


def _summary(row: dict[str, Any] | None) -> HistorySummary | None:
    return None if row is None else HistorySummary.model_validate(_times(row, "first_seen", "last_seen"))


@router.get("/senders/history", response_model=SenderHistory, tags=["events"], responses=BAD_REQUEST,
            summary="One sender's history: their events or their domain's, counts, first and last seen, "
                    "and the allow/block entries that match them",
            description="`sender` is an address (as in an event's `sender`, matched without regard to case) or "
                        "`@domain`. Events are the caller's (an admin's: everyone's, or one user's with `user`), "
                        "newest first, a keyset page at a time; with `domain=true` every event from the "
                        "sender's domain. The summaries come with the first page only. Entries are the caller's "
                        "and the global ones (an admin's: every user's) for the address, its domain and parent "
                        "domains, and `list:` entries the page's events name.")
async def sender_history(caller: CallerDep, rt: RuntimeDep,
                         sender: Annotated[str, Query(min_length=2, max_length=320, pattern=NoControl,
                                                      description="An address or @domain.")],
                         domain: Annotated[bool, Query(description="Every event from the domain.")] = False,
                         cursor: Annotated[str | None, Query(max_length=100)] = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 50,
                         user: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description=WHOSE_DOC)] = None,
                         ) -> SenderHistory:
    before = decode_cursor(cursor)
    try:
        parse_subject(sender)  # bad input is the caller's 422, before any store work
    except Invalid as exc:
        raise HTTPException(422, str(exc)) from None
    out = await run(rt, rt.store.sender_history, whose(caller, user), sender, whole_domain=domain,
                    before_id=before, limit=limit, summary=before is None)
    return SenderHistory(sender=out["sender"], domain=out["domain"], whole_domain=out["whole_domain"],
                         items=[event_out(r) for r in out["items"]], next_cursor=encode_cursor(out["next_cursor"]),
                         sender_summary=_summary(out["sender_summary"]), domain_summary=_summary(out["domain_summary"]),
                         entries=[HistoryEntry.model_validate({**entry_out(e).model_dump(), "deciding": e["deciding"]})
                                  for e in out["entries"]])
