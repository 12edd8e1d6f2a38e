"""Undo (issue 17 item 2): the reverse of a decision on a challenge and of a list add or remove, for the
caller who made it and for a few minutes after (store/undo.py). The app's toast and Ctrl+Z call these."""

import logging
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field

from ...store import Conflict
from ..auth import API_PREFIX, CallerDep
from ..convert import challenge_out, entry_out
from ..deps import RuntimeDep, run
from ..errors import _ERR, NOT_FOUND
from ..models import Challenge, ChallengeIds, ListEntryOut, _Out
from ..paging import MAX_ROW_ID, RowId
from .lists import ALLOW, BLOCK, ListKind

log = logging.getLogger("sendergate.api")

router = APIRouter(prefix=API_PREFIX, tags=["undo"])

REFUSED: dict[int | str, dict[str, Any]] = {409: {**_ERR, "description": (
    "Cannot be undone: the undo window passed, the caller did not make the change, the sender confirmed "
    "or the challenge expired, or a list entry still blocks the sender; `detail` says which")}}
WINDOW_DOC = "Only the caller who made the change can undo it, and only for 5 minutes after."


class Reopened(_Out):
    """What reopen did: the challenge after it."""

    challenge: Challenge
    changed: bool = Field(description="False when the challenge was pending already (a repeated undo).")


class ReopenItem(_Out):
    """One id of a batch reopen: what happened to it."""

    id: int
    status: Literal["changed", "unchanged", "missing", "refused"] = Field(description=(
        "changed: pending again now; unchanged: it was pending already; missing: the caller has no such "
        "challenge; refused: it cannot be reopened (`error` says why, as the single route's 409)."))
    challenge: Challenge | None = None
    error: str | None = None


class ReopenBatch(_Out):
    changed: int
    unchanged: int
    missing: int
    refused: int
    results: list[ReopenItem] = Field(description="One per distinct id, in the order sent.")


async def refused(coro: Any) -> Any:
    try:
        return await coro
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/challenges/{challenge_id}/reopen", response_model=Reopened, responses={**NOT_FOUND, **REFUSED},
             summary="Undo the caller's approve, deny or allow-domain: the challenge is pending again",
             description=("The list entry the decision made is removed and an entry it replaced comes back. "
                          "Refused for a challenge the sender confirmed or that expired, and for a sender a "
                          "list entry still blocks (the link would work again). " + WINDOW_DOC))
async def reopen(caller: CallerDep, rt: RuntimeDep, challenge_id: RowId) -> Reopened:
    ch, changed = await refused(run(rt, rt.store.reopen_challenge, caller.scope, challenge_id, actor=caller.user.id))
    if changed:
        log.info("api: user %d reopened challenge %d (%s -> %s, now %s)", caller.user.id, challenge_id,
                 ch["sender"], ch["recipient"], ch["status"])
    return Reopened(challenge=challenge_out(ch), changed=changed)


@router.post("/challenges/reopen", response_model=ReopenBatch,
             summary="Undo the caller's decisions on several challenges: pending again",
             description=("As `/challenges/{id}/reopen` for each id, each in its own transaction, in the order "
                          "sent; an id that is not the caller's is `missing`, one that cannot be reopened is "
                          "`refused` with the reason; neither stops the others. " + WINDOW_DOC))
async def reopen_many(caller: CallerDep, rt: RuntimeDep, body: ChallengeIds) -> ReopenBatch:
    ids = list(dict.fromkeys(body.ids))  # a repeated id is reopened once
    bad = next((i for i in ids if not 1 <= i <= MAX_ROW_ID), None)
    if bad is not None:
        raise HTTPException(422, f"ids: {bad} is not a challenge id")
    outcomes = await run(rt, rt.store.reopen_challenges, caller.scope, ids, actor=caller.user.id)
    items = []
    for o in outcomes:
        if o["status"] == "changed":
            log.info("api: user %d reopened challenge %d (%s -> %s, now %s)", caller.user.id, o["id"],
                     o["challenge"]["sender"], o["challenge"]["recipient"], o["challenge"]["status"])
        items.append(ReopenItem(id=o["id"], status=o["status"], error=o.get("error"),
                                challenge=challenge_out(o["challenge"]) if "challenge" in o else None))
    counts = {k: sum(1 for i in items if i.status == k) for k in ("changed", "unchanged", "missing", "refused")}
    return ReopenBatch(**counts, results=items)


def add_list_undo(kind: ListKind) -> None:
    name = kind.name

    async def withdraw(caller: CallerDep, rt: RuntimeDep, entry_id: RowId) -> Response:
        await refused(run(rt, rt.store.withdraw_entry, caller.scope, kind.action, entry_id, actor=caller.user.id))
        log.info("api: user %d withdrew %s entry %d", caller.user.id, kind.action, entry_id)
        return Response(status_code=204)

    async def restore(caller: CallerDep, rt: RuntimeDep, entry_id: RowId, response: Response) -> ListEntryOut:
        row, created = await refused(run(rt, rt.store.restore_entry, caller.scope, kind.action, entry_id,
                                         actor=caller.user.id))
        if created:
            log.info("api: user %d restored %s entry %d as %d", caller.user.id, kind.action, entry_id, row["id"])
        else:
            response.status_code = 200
        return entry_out(row)

    router.add_api_route(f"/{name}/{{entry_id}}/withdraw", withdraw, methods=["POST"], status_code=204,
                         response_class=Response, responses={**NOT_FOUND, **REFUSED},
                         summary=f"Undo the caller's add to the {name}",
                         description=("The entry goes, and an entry for the same pattern on the other list that "
                                      "the add replaced comes back. Refused when the add found the entry there "
                                      "already. " + WINDOW_DOC),
                         operation_id=f"withdraw_{name}_entry")
    router.add_api_route(f"/{name}/{{entry_id}}/restore", restore, methods=["POST"], status_code=201,
                         response_model=ListEntryOut,
                         responses={200: {"model": ListEntryOut,
                                          "description": "The same entry is there again already"},
                                    **NOT_FOUND, **REFUSED},
                         summary=f"Undo the caller's removal of a {name} entry (by its old id)",
                         description=("The entry comes back as the server kept it: pattern, note, expiry, source "
                                      "and the authentication a confirmation recorded (a client cannot set a "
                                      "source through POST), under a new id. " + WINDOW_DOC),
                         operation_id=f"restore_{name}_entry")


for _kind in (ALLOW, BLOCK):
    add_list_undo(_kind)
