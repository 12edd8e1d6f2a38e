"""Mailbox modes (SPEC §4.6): PATCH /api/v1/me {mode} for the caller, PATCH /api/v1/users/{id} {mode} for an
admin; GET /api/v1/me shows the mode (me.py asks me_mode)."""

from typing import Any

from fastapi import APIRouter, HTTPException

from ...runtime import Runtime
from ..auth import API_PREFIX, CallerDep
from ..deps import RuntimeDep, run
from ..errors import FORBIDDEN, NOT_FOUND
from ..models import Me, ModeIn, UserMode
from ..paging import RowId

router = APIRouter(prefix=API_PREFIX)


async def me_mode(rt: Runtime, user_id: int) -> dict[str, Any]:
    """The mode fields of Me, read fresh (the caller's cached User may be older than a change)."""
    mode, per_address = await run(rt, rt.store.user_mode, user_id)
    return {"mode": mode or rt.cfg.challenge.default_mode, "mode_is_default": mode is None,
            "address_modes": per_address}


@router.patch("/me", response_model=Me, tags=["account"],
              summary="Change the caller's mailbox mode (enforce, observe, off, or default)")
async def patch_me(body: ModeIn, caller: CallerDep, rt: RuntimeDep) -> Me:
    u = caller.user
    await run(rt, rt.store.set_user_mode, u.id, body.mode)
    return Me(id=u.id, name=u.name, role="admin" if u.is_admin else "user", addresses=list(u.addresses),
              recipient_delimiter=rt.cfg.domains.recipient_delimiter, **await me_mode(rt, u.id))


@router.patch("/users/{user_id}", response_model=UserMode, tags=["account"],
              responses={**FORBIDDEN, **NOT_FOUND},
              summary="Change a user's mailbox mode (admins)")
async def patch_user(user_id: RowId, body: ModeIn, caller: CallerDep, rt: RuntimeDep) -> UserMode:
    if not caller.user.is_admin:
        raise HTTPException(403, "only an admin may change another user's mode")
    await run(rt, rt.store.set_user_mode, user_id, body.mode)
    fields = await me_mode(rt, user_id)
    return UserMode(id=user_id, mode=fields["mode"], mode_is_default=fields["mode_is_default"])
