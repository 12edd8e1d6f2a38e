"""The API's routes, one module per resource group, all under /api/v1 (SPEC §6)."""

from fastapi import APIRouter

from . import challenges, devices, digest, events, imports, live, me, modes, screened, senders, stats, tags, undo
from .lists import ALLOW, BLOCK, list_router


def api_routers() -> list[APIRouter]:
    """Every /api/v1 route, in the order the OpenAPI document lists them; each needs a token but POST /pair."""
    return [me.router, events.router, senders.router, challenges.router, screened.router, list_router(ALLOW),
            list_router(BLOCK), undo.router, imports.router, stats.router, live.router, digest.router, devices.router,
            modes.router, tags.router]
