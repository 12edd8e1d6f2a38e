"""Challenges: the list, one challenge, and the user's decisions on one or several (approve, deny,
allow the sender's domain), each idempotent."""

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from ... import notify
from ...runtime import Runtime
from ...store import NotFound
from ..auth import API_PREFIX, WHOSE_DOC, Caller, CallerDep, whose
from ..convert import challenge_out, entry_out
from ..deps import RuntimeDep, run
from ..errors import BAD_REQUEST, NOT_FOUND
from ..models import (
    Challenge,
    ChallengeBatch,
    ChallengeBatchItem,
    ChallengeDecision,
    ChallengeIds,
    ChallengePage,
    ChallengeStatus,
)
from ..paging import MAX_ROW_ID, NoControl, RowId, decode_cursor, encode_cursor

log = logging.getLogger("sendergate.api")

router = APIRouter(prefix=API_PREFIX, tags=["challenges"])

BATCH_DOC = ("Each id in its own transaction, in the order sent; an id the caller has no challenge for is "
             "reported `missing` and does not stop the others. Idempotent.")


@router.get("/challenges", response_model=ChallengePage, responses=BAD_REQUEST,
            summary="Challenges (pending by default), newest first, with subject, attempt count and sender context",
            description=("Each item carries what a person needs to decide: the sender's display name (made safe), "
                         "the authentication seen for the sender's domain, wrong CAPTCHA answers, and their "
                         "history (earlier refusals; other recipients the caller may see)."))
async def challenges(caller: CallerDep, rt: RuntimeDep,
                     status: Annotated[ChallengeStatus | Literal["all"], Query()] = ChallengeStatus.PENDING,
                     q: Annotated[str, Query(max_length=200, pattern=NoControl)] = "",
                     cursor: Annotated[str | None, Query(max_length=100)] = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     user: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description=WHOSE_DOC)] = None,
                     ) -> ChallengePage:
    st = None if status == "all" else ChallengeStatus(status).value
    rows, last = await run(rt, rt.store.challenges_page, whose(caller, user), status=st, q=q.strip(),
                           before_id=decode_cursor(cursor, MAX_ROW_ID), limit=limit)
    # the sender context of the whole page in one read; whom else they wrote to: what the caller may see
    histories = await run(rt, rt.store.sender_histories, caller.scope, rows)
    return ChallengePage(items=[challenge_out(r, histories.get(r["id"])) for r in rows],
                         next_cursor=encode_cursor(last))


@router.get("/challenges/{challenge_id}", response_model=Challenge, responses=NOT_FOUND,
            summary="One challenge, with the sender's history")
async def challenge(caller: CallerDep, rt: RuntimeDep, challenge_id: RowId) -> Challenge:
    row = await run(rt, rt.store.get_challenge, caller.scope, challenge_id)
    histories = await run(rt, rt.store.sender_histories, caller.scope, [row])
    return challenge_out(row, histories.get(row["id"]))


def decider(caller: Caller) -> str:
    """Where and by whom, for the `approved`/`denied` event's reason."""
    return f"in the app by {caller.user.name or f'user {caller.user.id}'}"


async def prior_status(rt: Runtime, caller: Caller, challenge_id: int, decision: str) -> str | None:
    """The challenge's status before an approval, when [notify] may tell its sender (else None: no lookup)."""
    if not rt.cfg.notify.enabled or decision == "deny":
        return None
    try:
        return str((await run(rt, rt.store.get_challenge, caller.scope, challenge_id))["status"])
    except NotFound:
        return None


async def decide(rt: Runtime, caller: Caller, challenge_id: int, decision: str) -> ChallengeDecision:
    prior = await prior_status(rt, caller, challenge_id, decision)
    ch, entry, changed = await run(rt, rt.store.decide_challenge, caller.scope, challenge_id, decision, None,
                                   decider(caller), actor=caller.user.id)
    if changed:
        log.info("api: user %d %s challenge %d (%s -> %s)", caller.user.id, decision, challenge_id,
                 ch["sender"], ch["recipient"])
        if prior is not None:
            notify.schedule(rt.cfg, rt.store, ch, prior, rt.astore.run)
    return ChallengeDecision(challenge=challenge_out(ch), entry=entry_out(entry), changed=changed)


@router.post("/challenges/{challenge_id}/approve", response_model=ChallengeDecision, responses=NOT_FOUND,
             summary="Approve: allowlist the sender (source 'approved'); idempotent")
async def approve(caller: CallerDep, rt: RuntimeDep, challenge_id: RowId) -> ChallengeDecision:
    return await decide(rt, caller, challenge_id, "approve")


@router.post("/challenges/{challenge_id}/deny", response_model=ChallengeDecision, responses=NOT_FOUND,
             summary="Deny: blocklist the sender; the confirmation link stops working; idempotent")
async def deny(caller: CallerDep, rt: RuntimeDep, challenge_id: RowId) -> ChallengeDecision:
    return await decide(rt, caller, challenge_id, "deny")


@router.post("/challenges/{challenge_id}/allow-domain", response_model=ChallengeDecision, responses=NOT_FOUND,
             summary="Allowlist the sender's whole domain and close the challenge; idempotent")
async def allow_domain(caller: CallerDep, rt: RuntimeDep, challenge_id: RowId) -> ChallengeDecision:
    return await decide(rt, caller, challenge_id, "allow-domain")


async def decide_many(rt: Runtime, caller: Caller, body: ChallengeIds, decision: str) -> ChallengeBatch:
    ids = list(dict.fromkeys(body.ids))  # a repeated id is decided once
    bad = next((i for i in ids if not 1 <= i <= MAX_ROW_ID), None)
    if bad is not None:
        raise HTTPException(422, f"ids: {bad} is not a challenge id")
    priors = {i: await prior_status(rt, caller, i, decision) for i in ids} if rt.cfg.notify.enabled else {}
    outcomes = await run(rt, rt.store.decide_challenges, caller.scope, ids, decision, decider(caller),
                         actor=caller.user.id)
    items = []
    for o in outcomes:
        if o["status"] == "missing":
            items.append(ChallengeBatchItem(id=o["id"], status="missing", error=o["error"]))
            continue
        if o["status"] == "changed":
            log.info("api: user %d %s challenge %d (%s -> %s)", caller.user.id, decision, o["id"],
                     o["challenge"]["sender"], o["challenge"]["recipient"])
            if priors.get(o["id"]) is not None:
                notify.schedule(rt.cfg, rt.store, o["challenge"], str(priors[o["id"]]), rt.astore.run)
        items.append(ChallengeBatchItem(id=o["id"], status=o["status"], challenge=challenge_out(o["challenge"]),
                                        entry=entry_out(o["entry"])))
    counts = {k: sum(1 for i in items if i.status == k) for k in ("changed", "unchanged", "missing")}
    return ChallengeBatch(**counts, results=items)


@router.post("/challenges/approve", response_model=ChallengeBatch,
             summary="Approve several challenges: allowlist their senders", description=BATCH_DOC)
async def approve_many(caller: CallerDep, rt: RuntimeDep, body: ChallengeIds) -> ChallengeBatch:
    return await decide_many(rt, caller, body, "approve")


@router.post("/challenges/deny", response_model=ChallengeBatch,
             summary="Deny several challenges: blocklist their senders, their links stop working",
             description=BATCH_DOC)
async def deny_many(caller: CallerDep, rt: RuntimeDep, body: ChallengeIds) -> ChallengeBatch:
    return await decide_many(rt, caller, body, "deny")


@router.post("/challenges/allow-domain", response_model=ChallengeBatch,
             summary="Allowlist the senders' whole domains and close several challenges", description=BATCH_DOC)
async def allow_domain_many(caller: CallerDep, rt: RuntimeDep, body: ChallengeIds) -> ChallengeBatch:
    return await decide_many(rt, caller, body, "allow-domain")
