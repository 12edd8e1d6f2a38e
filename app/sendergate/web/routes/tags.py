"""Sign-up addresses (issue 19): POST/GET /api/v1/tags, GET/PATCH/DELETE /api/v1/tags/{id}.

A user makes and sees tags on their own addresses only (an admin: anyone's); another user's tag is a 404,
a tag on another user's address a 403.
"""

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from ...config import parse_duration
from ...store import Conflict, Invalid
from ..auth import API_PREFIX, CallerDep
from ..convert import tag_out
from ..deps import RuntimeDep, run
from ..errors import NOT_FOUND
from ..models import Error, TagIn, TagList, TagOut, TagPatch
from ..paging import NoControl, RowId

log = logging.getLogger("sendergate.api")

router = APIRouter(prefix=API_PREFIX)
_ERR = {"model": Error}
ADD_ERRORS: dict[int | str, dict[str, Any]] = {403: {**_ERR, "description": "The address is another user's"},
              404: {**_ERR, "description": "No user has the address"},
              409: {**_ERR, "description": "The user has a sign-up address of that name (revoked ones stay)"},
              422: {**_ERR, "description": "Not an address, not a name, or not a duration"}}


@router.post("/tags", response_model=TagOut, status_code=201, tags=["sign-up addresses"], responses=ADD_ERRORS,
             summary="Make a sign-up address (alice+NAME@…) that accepts any sender, scanned, until revoked or "
                     "expired")
async def add_tag(body: TagIn, caller: CallerDep, rt: RuntimeDep) -> TagOut:
    expires_in = None
    if body.expires is not None:
        try:
            expires_in = parse_duration(body.expires)
        except ValueError as exc:
            raise HTTPException(422, f"expires: {exc}") from None
        if expires_in <= 0:
            raise HTTPException(422, "expires: must be longer than zero")
    try:
        row = await run(rt, rt.store.add_tag, caller.scope, body.address, body.name, expires_in=expires_in,
                        dated=body.dated, folder=body.folder, delimiter=rt.cfg.domains.recipient_delimiter)
    except Invalid as exc:
        raise HTTPException(422, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    log.info("api: user %d made sign-up address %d (%s) for user %d", caller.user.id, row["id"], row["name"],
             row["user_id"])
    return tag_out(row)


@router.get("/tags", response_model=TagList, tags=["sign-up addresses"], responses=NOT_FOUND,
            summary="The caller's sign-up addresses (an admin: everyone's), newest first")
async def list_tags(caller: CallerDep, rt: RuntimeDep,
                    address: Annotated[str | None, Query(max_length=320, pattern=NoControl, description=(
                        "Only those on this address of the caller's."))] = None) -> TagList:
    try:
        rows = await run(rt, rt.store.list_tags, caller.scope, address,
                         delimiter=rt.cfg.domains.recipient_delimiter)
    except Invalid as exc:
        raise HTTPException(422, str(exc)) from None
    return TagList(items=[tag_out(r) for r in rows])


@router.get("/tags/{tag_id}", response_model=TagOut, tags=["sign-up addresses"], responses=NOT_FOUND,
            summary="One sign-up address, with its counts and top senders")
async def get_tag(tag_id: RowId, caller: CallerDep, rt: RuntimeDep) -> TagOut:
    return tag_out(await run(rt, rt.store.get_tag, caller.scope, tag_id,
                             delimiter=rt.cfg.domains.recipient_delimiter))


@router.patch("/tags/{tag_id}", response_model=TagOut, tags=["sign-up addresses"], responses=NOT_FOUND,
              summary="Change where a sign-up address's mail goes")
async def patch_tag(tag_id: RowId, body: TagPatch, caller: CallerDep, rt: RuntimeDep) -> TagOut:
    return tag_out(await run(rt, rt.store.set_tag_folder, caller.scope, tag_id, body.folder,
                             delimiter=rt.cfg.domains.recipient_delimiter))


@router.delete("/tags/{tag_id}", response_model=TagOut, tags=["sign-up addresses"], responses=NOT_FOUND,
               summary="Revoke a sign-up address: it is kept, and mail to it is refused (550 5.1.1) from now on")
async def revoke_tag(tag_id: RowId, caller: CallerDep, rt: RuntimeDep) -> TagOut:
    row = await run(rt, rt.store.revoke_tag, caller.scope, tag_id, delimiter=rt.cfg.domains.recipient_delimiter)
    log.info("api: user %d revoked sign-up address %d (%s)", caller.user.id, row["id"], row["name"])
    return tag_out(row)
