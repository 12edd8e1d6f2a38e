"""Bulk uploads from the desktop app: many allowlist entries at once, and hashes of sent Message-IDs."""

import logging

from fastapi import APIRouter, HTTPException

from ..auth import API_PREFIX, CallerDep, owner_id
from ..deps import RuntimeDep, run
from ..errors import FORBIDDEN, NOT_FOUND
from ..models import ImportRequest, ImportResult, SentIdsIn, SentIdsResult

log = logging.getLogger("sendergate.api")

router = APIRouter(prefix=API_PREFIX)

HEX = frozenset("0123456789abcdefABCDEF")


@router.post("/allowlist/import", response_model=ImportResult, tags=["allowlist"], responses={**FORBIDDEN, **NOT_FOUND},
             summary="Allow many entries at once; idempotent; per-entry result",
             description="Each result says whether the entry was added (or would be, with `dry_run`), was present "
                         "already, or is invalid. In a dry run, an address that would be added but whose domain "
                         "the owner already allows carries `covered_by` (the @domain entry).")
async def import_allow(caller: CallerDep, rt: RuntimeDep, body: ImportRequest) -> ImportResult:
    uid = await owner_id(rt, caller, body.owner)
    if body.dry_run:
        result = await run(rt, rt.store.import_preview, uid, body.entries)
        await run(rt, rt.store.domain_cover, uid, result["results"])
    else:
        result = await run(rt, rt.store.import_entries, uid, body.entries, source="import", note=body.note)
        log.info("api: user %d imported %d entries for user %s: %d added, %d present, %d invalid",
                 caller.user.id, len(body.entries), uid, result["added"], result["present"], result["invalid"])
    return ImportResult.model_validate(result)


@router.post("/sent-ids", response_model=SentIdsResult, tags=["replies"], responses={**FORBIDDEN, **NOT_FOUND},
             summary="Upload hashes of Message-IDs the user sent (replies to them count as known)")
async def sent_ids(caller: CallerDep, rt: RuntimeDep, body: SentIdsIn) -> SentIdsResult:
    uid = await owner_id(rt, caller, body.owner)
    assert uid is not None  # without global_entry, owner_id names a user
    bad = next((h for h in body.hashes if len(h) != 64 or not HEX.issuperset(h)), None)
    if bad is not None:
        raise HTTPException(422, f"not a sha256 hex digest: {bad[:80]!r}")
    added = await run(rt, rt.store.add_sent_ids, uid, [h.lower() for h in body.hashes])
    return SentIdsResult(received=len(body.hashes), added=added)
