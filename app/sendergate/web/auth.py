"""Who is calling: the bearer-token gate (cached, with a limit on wrong tokens per client), the caller as a
FastAPI dependency, the admin check, and whose list a write goes to.

A user sees and changes what belongs to their own addresses; an admin sees everything.
"""

import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..policy.address import AddressError, parse, parse_pattern
from ..runtime import Runtime
from ..store import NotFound, User
from .clientip import Network, client_address, rate_key
from .deps import RuntimeDep, run

log = logging.getLogger("sendergate.api")

TOKEN_CACHE_SECONDS = 10.0  # a revoked token stops working on every node within this time
TOKEN_TOUCH_SECONDS = 60.0  # last_used_at is written (and the use logged) at most this often per token
FAILURES_ALLOWED = 10  # wrong tokens per client IP ...
FAILURE_WINDOW = 60.0  # ... per this many seconds, then 429

API_PREFIX = "/api/v1"  # every route under it needs a token (CallerDep)

bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="An API token from `sendergate users add` or `sendergate users token`.")


@dataclass(frozen=True)
class Caller:
    user: User
    device_id: int | None = None  # the api_tokens row of the token used (GET /api/v1/devices marks it)

    @property
    def scope(self) -> int | None:
        """Whose data this caller sees: their own user id, or None (everything) for an admin."""
        return None if self.user.is_admin else self.user.id


@dataclass
class TokenGate:
    """Token -> user, cached briefly; wrong tokens are counted per client IP and then refused for a while.
    One per app (create_app puts it on app.state)."""

    trusted_proxies: list[Network] = field(default_factory=list)  # http.trusted_proxies, parsed
    cache: dict[str, tuple[User, int, float]] = field(default_factory=dict)
    touched: dict[str, float] = field(default_factory=dict)
    failures: dict[str, deque[float]] = field(default_factory=dict)
    revoked: set[int] = field(default_factory=set)  # devices revoked through this node: open streams end

    def blocked(self, ip: str, now: float) -> float:
        """Seconds until this client may try again (0: not blocked)."""
        recent = self.failures.get(ip)
        if not recent:
            return 0.0
        while recent and recent[0] < now - FAILURE_WINDOW:
            recent.popleft()
        if len(recent) < FAILURES_ALLOWED:
            return 0.0
        return max(1.0, recent[0] + FAILURE_WINDOW - now)

    def forget_device(self, device_id: int) -> None:
        """A revoked device's token stops at once on this node (other nodes: within TOKEN_CACHE_SECONDS)."""
        for token in [t for t, (_u, d, _e) in self.cache.items() if d == device_id]:
            del self.cache[token]
        if len(self.revoked) > 100_000:
            self.revoked.clear()
        self.revoked.add(device_id)

    def failed(self, ip: str, now: float) -> None:
        if len(self.failures) > 100_000:  # bounded memory under a spray from many addresses
            self.failures.clear()
        self.failures.setdefault(ip, deque()).append(now)


def client_ip(request: Request) -> str:
    """The client behind http.trusted_proxies (the token-failure limit counts per client)."""
    peer = request.client.host if request.client else "unknown"
    gate: TokenGate = request.app.state.token_gate
    return rate_key(client_address(peer, request.headers.getlist("x-forwarded-for"), gate.trusted_proxies))


def gate_open(request: Request, what: str) -> tuple[TokenGate, str, float]:
    """The failed-attempt gate for this client (429 while it is shut): the gate, the client, now."""
    gate: TokenGate = request.app.state.token_gate
    ip = client_ip(request)
    now = time.monotonic()
    wait = gate.blocked(ip, now)
    if wait:
        raise HTTPException(429, f"too many failed {what} attempts; try again later",
                            headers={"Retry-After": str(int(wait) + 1)})
    return gate, ip, now


async def caller(request: Request, rt: RuntimeDep,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """The user whose token came with the request: 401 without a known token, 429 after too many wrong ones."""
    gate, ip, now = gate_open(request, "token")
    if credentials is None or not credentials.credentials:
        raise HTTPException(401, "missing token: send 'Authorization: Bearer TOKEN'",
                            headers={"WWW-Authenticate": "Bearer"})
    token = credentials.credentials
    cached = gate.cache.get(token)
    if cached is not None and cached[2] > now:
        user, device_id = cached[0], cached[1]
    else:
        ident = await run(rt, rt.store.token_identity, token) if len(token) <= 200 else None
        if ident is None:
            gate.failed(ip, now)
            # The path is the client's: JSON-quoted, so no control or line-separator character reaches the log
            log.warning("api: unknown token from %s (%s %s)", ip, request.method, json.dumps(request.url.path))
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        uid, device_id = ident
        user = await run(rt, rt.store.get_user, uid)
        if len(gate.cache) > 10_000:
            gate.cache.clear()
        gate.cache[token] = (user, device_id, now + TOKEN_CACHE_SECONDS)
    if gate.touched.get(token, 0.0) + TOKEN_TOUCH_SECONDS < now:
        gate.touched[token] = now
        log.info("api: token of user %d (%s) used from %s", user.id, user.addresses[0] if user.addresses else "-", ip)
        await run(rt, rt.store.touch_token, token, time.time())
    return Caller(user, device_id)


CallerDep = Annotated[Caller, Depends(caller)]


async def require_admin(who: CallerDep) -> None:
    if not who.user.is_admin:
        raise HTTPException(403, "metrics are for admins")


async def admin_caller(who: CallerDep) -> Caller:
    if not who.user.is_admin:
        raise HTTPException(403, "only an admin may do this")
    return who


AdminDep = Annotated[Caller, Depends(admin_caller)]

WHOSE_DOC = "Admins only: one user's (their id) instead of everyone's; anyone else passing it gets 403."


def whose(who: Caller, user: int | None) -> int | None:
    """The scope of a list route: the caller's own, everyone's (admin), or one user's (admin with `user`)."""
    if user is None:
        return who.scope
    if not who.user.is_admin:
        raise HTTPException(403, "only an admin may look at another user's lists")
    return user


async def owner_id(rt: Runtime, who: Caller, owner: str | None, global_entry: bool = False) -> int | None:
    """Whose list a write goes to: the caller, or (admins) the named user or nobody (global)."""
    if global_entry:
        if not who.user.is_admin:
            raise HTTPException(403, "only an admin may add global entries")
        return None
    if owner is None:
        return who.user.id
    try:
        parse_pattern(owner) if owner.strip().startswith("@") else parse(owner)
    except AddressError as exc:
        raise HTTPException(422, f"owner {owner[:80]!r}: {exc}") from None
    try:
        user: User | None = await run(rt, rt.store.user_by_address, owner)
    except NotFound:
        user = None
    if user is None or (not who.user.is_admin and user.id != who.user.id):
        if who.user.is_admin:
            raise HTTPException(404, f"no user owns {owner[:80]}")
        raise HTTPException(403, "you may only act for your own addresses")
    return user.id
