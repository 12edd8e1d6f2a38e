"""The allow and block lists: list, add (idempotent), read, change and remove entries.

Both lists are served by the same code: `list_router` registers the methods of a `ListRoutes` for each.
"""

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from ...policy.address import AddressError
from ..auth import API_PREFIX, CallerDep, owner_id
from ..convert import entry_out, to_epoch
from ..deps import RuntimeDep, run
from ..errors import BAD_REQUEST, FORBIDDEN, NOT_FOUND
from ..models import Error, ListEntryIn, ListEntryOut, ListEntryPage, ListEntryPatch
from ..paging import MAX_ROW_ID, NoControl, RowId, decode_cursor, encode_cursor

log = logging.getLogger("sendergate.api")


@dataclass(frozen=True)
class ListKind:
    action: str  # as stored: "allow" or "block"
    name: str  # as in the path: "allowlist" or "blocklist"


ALLOW = ListKind("allow", "allowlist")
BLOCK = ListKind("block", "blocklist")


class ListRoutes:
    """The routes of one list: an instance per list, whose methods are the endpoints."""

    def __init__(self, kind: ListKind) -> None:
        self.kind = kind

    async def list_entries(self, caller: CallerDep, rt: RuntimeDep,
                           q: Annotated[str, Query(max_length=200, pattern=NoControl)] = "",
                           owner: Annotated[str | None, Query(max_length=320, pattern=NoControl, description=(
                               "Admins: one user's entries (an address of theirs)."))] = None,
                           cursor: Annotated[str | None, Query(max_length=100)] = None,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> ListEntryPage:
        oid = None
        if owner is not None:
            oid = await owner_id(rt, caller, owner)
        rows, last = await run(rt, rt.store.entries_page, caller.scope, self.kind.action, q=q.strip(),
                               owner_id=oid, before_id=decode_cursor(cursor, MAX_ROW_ID), limit=limit)
        return ListEntryPage(items=[entry_out(r) for r in rows], next_cursor=encode_cursor(last))

    async def add(self, caller: CallerDep, rt: RuntimeDep, body: ListEntryIn,
                  response: Response) -> ListEntryOut:
        if "\x00" in body.note:
            raise HTTPException(422, "note: NUL characters are not allowed")
        uid = await owner_id(rt, caller, body.owner, body.global_entry)
        try:
            row, created = await run(rt, rt.store.add_entry_recorded, uid, self.kind.action, body.entry,
                                     actor=caller.user.id, note=body.note, expires_at=to_epoch(body.expires_at))
        except AddressError as exc:
            raise HTTPException(422, f"entry {body.entry[:80]!r}: {exc}") from None
        if not created:
            response.status_code = 200
        else:
            log.info("api: user %d added %s %s for user %s", caller.user.id, self.kind.action, row["entry"], uid)
        return entry_out(row)

    async def get_one(self, caller: CallerDep, rt: RuntimeDep, entry_id: RowId) -> ListEntryOut:
        return entry_out(await run(rt, rt.store.get_entry, caller.scope, entry_id, self.kind.action))

    async def patch(self, caller: CallerDep, rt: RuntimeDep, entry_id: RowId,
                    body: ListEntryPatch) -> ListEntryOut:
        if body.note is not None and "\x00" in body.note:
            raise HTTPException(422, "note: NUL characters are not allowed")
        row = await run(rt, rt.store.update_entry, caller.scope, self.kind.action, entry_id,
                        note=body.note, expires_at=to_epoch(body.expires_at), clear_expiry=body.clear_expiry)
        return entry_out(row)

    async def remove(self, caller: CallerDep, rt: RuntimeDep, entry_id: RowId) -> Response:
        await run(rt, rt.store.remove_entry_recorded, caller.scope, self.kind.action, entry_id, actor=caller.user.id)
        log.info("api: user %d removed %s entry %d", caller.user.id, self.kind.action, entry_id)
        return Response(status_code=204)


def list_router(kind: ListKind) -> APIRouter:
    """The five routes of one list, documented under its name."""
    name = kind.name
    routes = ListRoutes(kind)
    router = APIRouter(prefix=f"{API_PREFIX}/{name}", tags=[name])
    router.add_api_route("", routes.list_entries, methods=["GET"], response_model=ListEntryPage,
                         responses={**BAD_REQUEST, **NOT_FOUND, **FORBIDDEN},
                         summary=f"{name.capitalize()} entries, newest first", operation_id=f"list_{name}")
    router.add_api_route("", routes.add, methods=["POST"], response_model=ListEntryOut, status_code=201,
                         responses={200: {"model": ListEntryOut, "description": "Already present: the existing entry"},
                                    422: {"model": Error, "description": "Not an address, @domain or list:<id>"},
                                    **FORBIDDEN, **NOT_FOUND},
                         summary=f"Add to the {name} (idempotent: 200 with the existing entry)",
                         operation_id=f"add_{name}")
    router.add_api_route("/{entry_id}", routes.get_one, methods=["GET"], response_model=ListEntryOut,
                         responses=NOT_FOUND, summary="One entry", operation_id=f"get_{name}_entry")
    router.add_api_route("/{entry_id}", routes.patch, methods=["PATCH"], response_model=ListEntryOut,
                         responses=NOT_FOUND, summary="Change an entry's note or expiry",
                         operation_id=f"patch_{name}_entry")
    router.add_api_route("/{entry_id}", routes.remove, methods=["DELETE"], status_code=204, response_class=Response,
                         responses=NOT_FOUND, summary="Remove an entry", operation_id=f"delete_{name}_entry")
    return router
