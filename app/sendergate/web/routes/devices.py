"""Pairing and devices (issue 16 item 1), and the admins' users routes (item 2).

POST /api/v1/pair takes no token: a one-time code is its credential. Wrong codes count against the same
per-client limit as wrong tokens (TokenGate), so guessing a 50-bit code is hopeless.
"""

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from ...pairing import pair_links
from ...runtime import Runtime
from ...store import Conflict, Device, Invalid, NotFound, User, to_dt
from ..auth import API_PREFIX, AdminDep, CallerDep, TokenGate, gate_open
from ..deps import RuntimeDep, run
from ..errors import FORBIDDEN, NOT_FOUND
from ..models import DeviceOut, Error, Me, PairIn, PairingCode, PairOut, UserCreated, UserIn, UserList, UserOut
from ..paging import RowId
from .modes import me_mode

log = logging.getLogger("sendergate.api")

router = APIRouter(prefix=API_PREFIX)

_ERR = {"model": Error}
PAIR_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {**_ERR, "description": "Unknown, used or expired code (one answer for all three)"},
               422: {**_ERR, "description": "Not a code or not a device name"},
               429: {**_ERR, "description": "Too many wrong codes or tokens from this client"}}


def device_out(d: Device, current: int | None = None) -> DeviceOut:
    created = to_dt(d.created_at)
    assert created is not None
    return DeviceOut(id=d.id, name=d.name, created_at=created, last_used_at=to_dt(d.last_used_at),
                     current=d.id == current)


async def me_out(rt: Runtime, u: User) -> Me:
    return Me(id=u.id, name=u.name, role="admin" if u.is_admin else "user", addresses=list(u.addresses),
              **await me_mode(rt, u.id))


async def user_out(rt: Runtime, u: User, current: int | None = None) -> UserOut:
    devices = await run(rt, rt.store.list_devices, u.id)
    return UserOut(id=u.id, name=u.name, role="admin" if u.is_admin else "user", addresses=list(u.addresses),
                   devices=[device_out(d, current) for d in devices], mode=u.mode or rt.cfg.challenge.default_mode)


async def new_code(rt: Runtime, user_id: int) -> PairingCode:
    code, expires = await run(rt, rt.store.create_pairing_code, user_id)
    link, app_link = pair_links(rt.cfg.public_url, code)
    when = to_dt(expires)
    assert when is not None
    return PairingCode(code=code, expires_at=when, link=link, app_link=app_link)


@router.post("/pair", response_model=PairOut, status_code=201, tags=["devices"], responses=PAIR_ERRORS,
             summary="Pair a device: a one-time code and a device name -> the device's own token (no token needed)")
async def pair(request: Request, rt: RuntimeDep, body: PairIn) -> PairOut:
    gate, ip, now = gate_open(request, "pairing")
    try:
        user_id, device, token = await run(rt, rt.store.pair_device, body.code, body.device)
    except Invalid as exc:
        gate.failed(ip, now)  # a malformed code is a guess too
        raise HTTPException(422, str(exc)) from None
    except NotFound:
        gate.failed(ip, now)
        log.warning("api: wrong pairing code from %s", ip)
        raise HTTPException(404, "unknown, used or expired pairing code") from None
    user = await run(rt, rt.store.get_user, user_id)
    log.info("api: user %d paired device %d (%r) from %s", user.id, device.id, device.name, ip)
    return PairOut(token=token, device=device_out(device, device.id), user=await me_out(rt, user))


@router.get("/devices", response_model=list[DeviceOut], tags=["devices"],
            summary="The caller's devices; `current` marks the one making the request")
async def devices(caller: CallerDep, rt: RuntimeDep) -> list[DeviceOut]:
    return [device_out(d, caller.device_id) for d in await run(rt, rt.store.list_devices, caller.user.id)]


@router.delete("/devices/{device_id}", status_code=204, tags=["devices"], responses=NOT_FOUND,
               summary="Revoke a device: its token stops working (an admin may revoke anyone's)")
async def revoke(request: Request, caller: CallerDep, rt: RuntimeDep, device_id: RowId) -> None:
    dev = await run(rt, rt.store.revoke_device, device_id, scope=caller.scope)
    gate: TokenGate = request.app.state.token_gate
    gate.forget_device(dev.id)
    log.info("api: user %d revoked device %d (%r) of user %d", caller.user.id, dev.id, dev.name, dev.user_id)


@router.get("/users", response_model=UserList, tags=["users"], responses=FORBIDDEN,
            summary="Admins: every user with addresses and devices")
async def users(caller: AdminDep, rt: RuntimeDep) -> UserList:
    return UserList(items=[await user_out(rt, u, caller.device_id) for u in await run(rt, rt.store.list_users)])


@router.get("/users/{user_id}", response_model=UserOut, tags=["users"], responses={**FORBIDDEN, **NOT_FOUND},
            summary="Admins: one user")
async def user(caller: AdminDep, rt: RuntimeDep, user_id: RowId) -> UserOut:
    return await user_out(rt, await run(rt, rt.store.get_user, user_id), caller.device_id)


@router.post("/users", response_model=UserCreated, status_code=201, tags=["users"],
             responses={**FORBIDDEN, 409: {**_ERR, "description": "The address already belongs to a user"},
                        422: {**_ERR, "description": "Not an address"}},
             summary="Admins: add a person; the answer carries their first pairing code")
async def add_user(caller: AdminDep, rt: RuntimeDep, body: UserIn) -> UserCreated:
    try:
        u, _token = await run(rt, rt.store.add_user, body.address, name=body.name, admin=body.admin)
    except Invalid as exc:
        raise HTTPException(422, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    # the "script" token add_user makes is not handed out here: the person pairs their own device
    await run(rt, rt.store.revoke_device_named, u.id, "script")
    log.info("api: admin %d added user %d (%s)", caller.user.id, u.id, u.addresses[0])
    return UserCreated(user=await user_out(rt, u), pairing=await new_code(rt, u.id))


@router.post("/users/{user_id}/pairing-code", response_model=PairingCode, status_code=201, tags=["users"],
             responses={**FORBIDDEN, **NOT_FOUND},
             summary="Admins: a new one-time pairing code for a user (earlier codes stay valid until used)")
async def pairing_code(caller: AdminDep, rt: RuntimeDep, user_id: RowId) -> PairingCode:
    code = await new_code(rt, user_id)
    log.info("api: admin %d made a pairing code for user %d", caller.user.id, user_id)
    return code


# -- the page an https pairing link opens ------------------------------------------------------------------
page_router = APIRouter(include_in_schema=False)

_PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
                                            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
                 "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}

PAIR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Connect the SenderGate app</title>
<style>body{font-family:sans-serif;max-width:36em;margin:3em auto;padding:0 1em;line-height:1.5}
#code{font:bold 2em monospace;letter-spacing:.1em;padding:.3em .5em;border:1px solid #888;display:inline-block}</style>
</head><body>
<h1>Connect the SenderGate app</h1>
<p>Your pairing code:</p>
<p><span id="code">(the code is the part of this page's address after #)</span></p>
<ol>
<li>Open the SenderGate desktop app (install it first if you have not).</li>
<li>In its setup, type this code into <b>Pairing code or link</b> (or paste this page's address)
and choose <b>Pair this computer</b>.</li>
<li>The app gets its own key for this computer. The code works once, for 24 hours.</li>
</ol>
<p>Do not pass the code on: whoever uses it first can read and decide your mail's pending senders.</p>
<script src="/pair.js"></script>
</body></html>
"""

# The code stays in the fragment: never sent to the gateway, so no proxy or log sees it. textContent: no markup.
PAIR_JS = """(function () {
  var c = decodeURIComponent(location.hash.replace(/^#(code=)?/, ""));
  if (/^[A-Za-z0-9 -]{4,40}$/.test(c)) { document.getElementById("code").textContent = c; }
})();
"""


@page_router.get("/pair")
async def pair_page() -> HTMLResponse:
    return HTMLResponse(PAIR_PAGE, headers=_PAGE_HEADERS)


@page_router.get("/pair.js")
async def pair_js() -> Response:
    return Response(PAIR_JS, media_type="text/javascript", headers=_PAGE_HEADERS)
