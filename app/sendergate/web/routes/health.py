"""GET /healthz: liveness, for anyone (no reasons here: they go to the log)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import RuntimeDep

router = APIRouter()


@router.get("/healthz", tags=["health"], summary="Liveness, store and scanner status",
            description="`ok` or `degraded` overall and per part; the reasons are in the gateway's log, "
                        "never here (anyone may ask).")
async def healthz(rt: RuntimeDep) -> JSONResponse:
    health = await rt.health()
    return JSONResponse(health, status_code=200 if health["status"] == "ok" else 503)
