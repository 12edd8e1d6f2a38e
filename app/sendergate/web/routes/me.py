"""GET /api/v1/me: who the token belongs to."""

from fastapi import APIRouter

from ..auth import API_PREFIX, CallerDep
from ..deps import RuntimeDep
from ..models import Me
from .modes import me_mode

router = APIRouter(prefix=API_PREFIX)


@router.get("/me", response_model=Me, tags=["account"], summary="The caller: addresses and role")
async def me(caller: CallerDep, rt: RuntimeDep) -> Me:
    u = caller.user
    return Me(id=u.id, name=u.name, role="admin" if u.is_admin else "user", addresses=list(u.addresses),
              recipient_delimiter=rt.cfg.domains.recipient_delimiter, **await me_mode(rt, u.id))
