"""The signed-in user's digest setting (issue 16 item 4): how often the summary of new pending senders
is mailed to them."""

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from ...store.engine import to_dt
from ..auth import API_PREFIX, CallerDep
from ..deps import RuntimeDep, run

router = APIRouter(prefix=API_PREFIX, tags=["digest"])

Frequency = Literal["off", "daily", "weekly"]


class DigestSetting(BaseModel):
    frequency: Frequency
    default: bool = False  # the user chose nothing: the configured digest.default applies
    last_sent_at: datetime | None = None


class DigestSettingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    frequency: Frequency


async def _setting(rt: RuntimeDep, user_id: int) -> DigestSetting:
    freq, last = await run(rt, rt.store.digest_setting, user_id)
    return DigestSetting(frequency=freq or rt.cfg.digest.default, default=freq is None, last_sent_at=to_dt(last))


@router.get("/digest", response_model=DigestSetting, summary="How often the digest of new pending senders is mailed")
async def get_digest(caller: CallerDep, rt: RuntimeDep) -> DigestSetting:
    return await _setting(rt, caller.user.id)


@router.put("/digest", response_model=DigestSetting, summary="Set how often the digest is mailed: off, daily, weekly")
async def put_digest(caller: CallerDep, rt: RuntimeDep, body: DigestSettingIn) -> DigestSetting:
    await run(rt, rt.store.set_digest_frequency, caller.user.id, body.frequency)
    return await _setting(rt, caller.user.id)
