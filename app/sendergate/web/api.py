"""The REST API under /api/v1 (SPEC §6), /metrics, and the live event stream.

Every route needs `Authorization: Bearer TOKEN` (but /healthz, the
confirmation page and, when `http.metrics_public`, /metrics, /docs and
/openapi.json; /metrics otherwise needs an admin's token). A user sees and
changes what belongs to their own addresses; an admin sees everything.
Something that exists but belongs to someone else answers 404, exactly like
something that does not exist. Store calls run on the store's thread pool.
"""


import asyncio
import base64
import binascii
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, AsyncIterator, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..policy.address import AddressError, parse, parse_pattern
from ..policy.decide import VERDICTS, Verdict
from ..store import DAY, SEARCH_BUDGET, SEARCH_WINDOW, Forbidden, NotFound, StoreError, User
from . import clientip
from .models import (Challenge, ChallengeBatch, ChallengeBatchItem, ChallengeDecision, ChallengeIds, ChallengePage,
                     ChallengeStatus, Error, Event, EventPage, ImportRequest, ImportResult, ListEntryIn, ListEntryOut,
                     ListEntryPage, ListEntryPatch, Me, ScreenedPage, ScreenedSender, SentIdsIn, SentIdsResult, Stats,
                     StatsDay)

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("sendergate.api")

MAX_ID = 2**53  # event ids (BIGINT) beyond this cannot exist; bounding them keeps the drivers' integer types happy
MAX_ROW_ID = 2**31 - 1  # challenges and list entries have INTEGER ids
TOKEN_CACHE_SECONDS = 10.0  # a revoked token stops working on every node within this time
TOKEN_TOUCH_SECONDS = 60.0  # last_used_at is written (and the use logged) at most this often per token
FAILURES_ALLOWED = 10  # wrong tokens per client IP ...
FAILURE_WINDOW = 60.0  # ... per this many seconds, then 429
STREAM_POLL = 0.5  # seconds between looks at the store for the live stream
STREAM_SETTLE = 5.0  # ids can commit out of order (PostgreSQL, several nodes): look back this long

bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="An API token from `sendergate users add` or `sendergate users token`.")

_ERR = {"model": Error}
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {**_ERR, "description": "No or unknown token"},
                                                429: {**_ERR, "description": "Too many failed token attempts"},
                                                503: {**_ERR, "description": "Store unavailable"}}
NOT_FOUND = {404: {**_ERR, "description": "No such item for this caller"}}
FORBIDDEN = {403: {**_ERR, "description": "Only an admin may do this"}}
BAD_REQUEST = {400: {**_ERR, "description": "Malformed cursor or value"}}


# -- callers -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Caller:
    user: User

    @property
    def scope(self) -> int | None:
        """Whose data this caller sees: their own user id, or None (everything) for an admin."""
        return None if self.user.is_admin else self.user.id


@dataclass
class TokenGate:
    """Token -> user, cached briefly; wrong tokens are counted per client IP and then refused for a while."""

    cache: dict[str, tuple[User, float]] = field(default_factory=dict)
    touched: dict[str, float] = field(default_factory=dict)
    failures: dict[str, deque[float]] = field(default_factory=dict)

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

    def failed(self, ip: str, now: float) -> None:
        if len(self.failures) > 100_000:  # bounded memory under a spray from many addresses
            self.failures.clear()
        self.failures.setdefault(ip, deque()).append(now)


def _client_ip(request: Request) -> str:
    """The client behind http.trusted_proxies (the token-failure limit counts per client)."""
    peer = request.client.host if request.client else "unknown"
    trusted = getattr(request.app.state, "trusted_proxies", None)
    if trusted is None:
        trusted = request.app.state.trusted_proxies = clientip.parse_networks(
            request.app.state.rt.cfg.http.trusted_proxies)
    return clientip.rate_key(clientip.client_address(peer, request.headers.getlist("x-forwarded-for"), trusted))


async def _run(rt: "Runtime", fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A store call on the pool; store trouble is a 503 with a one-line reason, not a 500."""
    try:
        return await rt.astore.run(fn, *args, **kwargs)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except Forbidden as exc:
        raise HTTPException(403, str(exc)) from None
    except StoreError as exc:
        log.error("store unavailable for %s: %s", getattr(fn, "__name__", fn), exc)
        raise HTTPException(503, "store unavailable; try again later") from None


def make_caller_dependency(rt: "Runtime", gate: TokenGate) -> Any:
    async def caller(request: Request,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
        ip = _client_ip(request)
        now = time.monotonic()
        wait = gate.blocked(ip, now)
        if wait:
            raise HTTPException(429, "too many failed token attempts; try again later",
                                headers={"Retry-After": str(int(wait) + 1)})
        if credentials is None or not credentials.credentials:
            raise HTTPException(401, "missing token: send 'Authorization: Bearer TOKEN'",
                                headers={"WWW-Authenticate": "Bearer"})
        token = credentials.credentials
        cached = gate.cache.get(token)
        if cached is not None and cached[1] > now:
            user = cached[0]
        else:
            uid = await _run(rt, rt.store.user_id_for_token, token) if len(token) <= 200 else None
            if uid is None:
                gate.failed(ip, now)
                log.warning("api: unknown token from %s (%s %s)", ip, request.method, request.url.path)
                raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
            user = await _run(rt, rt.store.get_user, uid)
            if len(gate.cache) > 10_000:
                gate.cache.clear()
            gate.cache[token] = (user, now + TOKEN_CACHE_SECONDS)
        if gate.touched.get(token, 0.0) + TOKEN_TOUCH_SECONDS < now:
            gate.touched[token] = now
            log.info("api: token of user %d (%s) used from %s", user.id, user.addresses[0] if user.addresses else "-",
                     ip)
            await _run(rt, rt.store.touch_token, token, time.time())
        return Caller(user)

    return caller


# -- conversions -----------------------------------------------------------------------------
def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


def _ts(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:  # a time without zone is taken as UTC, like every time in this API
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def _times(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {**row, **{n: _dt(row[n]) for n in names if n in row}}


def event_out(row: dict[str, Any]) -> Event:
    return Event.model_validate(_times(row, "ts"))


def challenge_out(row: dict[str, Any]) -> Challenge:
    return Challenge.model_validate(_times(row, "created_at", "updated_at", "expires_at"))


def entry_out(row: dict[str, Any]) -> ListEntryOut:
    return ListEntryOut.model_validate(_times(row, "created_at", "expires_at"))


def encode_cursor(last_id: int | None) -> str | None:
    if last_id is None:
        return None
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str | None, max_id: int = MAX_ID) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, _, value = raw.partition(":")
        last_id = int(value)
        if version != "v1" or not 0 < last_id <= max_id:
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise HTTPException(400, "malformed cursor: pass next_cursor from the previous page unchanged") from None
    return last_id


def encode_screened_cursor(upto_id: int, before_id: int, since: float) -> str:
    return base64.urlsafe_b64encode(f"s1:{upto_id}:{before_id}:{int(since)}".encode()).rstrip(b"=").decode()


def decode_screened_cursor(cursor: str) -> tuple[int, int, float]:
    """(events up to this id, groups below this id, events since) as pinned by the first page."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, upto, before, since = raw.split(":")
        values = int(upto), int(before), int(since)
        if version != "s1" or not all(0 <= v <= MAX_ID for v in values):
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise HTTPException(400, "malformed cursor: pass next_cursor from the previous page unchanged") from None
    return values[0], values[1], float(values[2])


NoControl = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"  # NUL and friends cannot be stored in PostgreSQL text


# -- the routes ------------------------------------------------------------------------------
def register(app: FastAPI, rt: "Runtime") -> None:
    gate = TokenGate()
    caller_dep = make_caller_dependency(rt, gate)
    CallerDep = Annotated[Caller, Depends(caller_dep)]
    hub = StreamHub(rt)
    app.state.stopping = False

    _install_error_handlers(app)
    _install_timing(app, rt)
    _document_security(app)

    api = APIRouter(prefix="/api/v1", responses=AUTH_ERRORS)

    async def owner_id(caller: Caller, owner: str | None, global_entry: bool = False) -> int | None:
        """Whose list a write goes to: the caller, or (admins) the named user or nobody (global)."""
        if global_entry:
            if not caller.user.is_admin:
                raise HTTPException(403, "only an admin may add global entries")
            return None
        if owner is None:
            return caller.user.id
        try:
            parse_pattern(owner) if owner.strip().startswith("@") else parse(owner)
        except AddressError as exc:
            raise HTTPException(422, f"owner {owner[:80]!r}: {exc}") from None
        try:
            user = await _run(rt, rt.store.user_by_address, owner)
        except HTTPException as exc:
            if exc.status_code != 404:
                raise
            user = None
        if user is None or (not caller.user.is_admin and user.id != caller.user.id):
            if caller.user.is_admin:
                raise HTTPException(404, f"no user owns {owner[:80]}")
            raise HTTPException(403, "you may only act for your own addresses")
        return user.id

    @api.get("/me", response_model=Me, tags=["account"], summary="The caller: addresses and role")
    async def me(caller: CallerDep) -> Me:
        u = caller.user
        return Me(id=u.id, name=u.name, role="admin" if u.is_admin else "user", addresses=list(u.addresses))

    # -- events --
    @api.get("/events", response_model=EventPage, tags=["events"], responses=BAD_REQUEST,
             summary="Every decision (the log), newest first, a page at a time")
    async def events(caller: CallerDep,
                     verdict: Annotated[list[Verdict] | None, Query(description="One or more verdicts (repeat the parameter).")] = None,
                     q: Annotated[str, Query(max_length=200, pattern=NoControl, description=(
                         "Text in sender, recipient or subject. Each request reads a bounded share of the caller's "
                         f"events (newest first; at most {SEARCH_WINDOW:,}, in about "
                         f"{SEARCH_BUDGET * 1000:.0f} ms), so a page may be short or empty "
                         "with a `next_cursor` to go on."))] = "",
                     since: Annotated[datetime | None, Query(description="Only decisions at or after this time.")] = None,
                     until: Annotated[datetime | None, Query(description="Only decisions before this time.")] = None,
                     cursor: Annotated[str | None, Query(max_length=100)] = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50) -> EventPage:
        before = decode_cursor(cursor)
        rows, last = await _run(rt, rt.store.events_page, caller.scope,
                                verdicts=[v.value for v in verdict or []], q=q.strip(), since=_ts(since),
                                until=_ts(until), before_id=before, limit=limit)
        return EventPage(items=[event_out(r) for r in rows], next_cursor=encode_cursor(last),
                         partial=bool(q.strip()) and last is not None and len(rows) < limit)

    # -- challenges --
    @api.get("/challenges", response_model=ChallengePage, tags=["challenges"], responses=BAD_REQUEST,
             summary="Challenges (pending by default), newest first, with subject and attempt count")
    async def challenges(caller: CallerDep,
                         status: Annotated[ChallengeStatus | Literal["all"], Query()] = ChallengeStatus.PENDING,
                         q: Annotated[str, Query(max_length=200, pattern=NoControl)] = "",
                         cursor: Annotated[str | None, Query(max_length=100)] = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 50) -> ChallengePage:
        st = None if status == "all" else ChallengeStatus(status).value
        rows, last = await _run(rt, rt.store.challenges_page, caller.scope, status=st, q=q.strip(),
                                before_id=decode_cursor(cursor, MAX_ROW_ID), limit=limit)
        return ChallengePage(items=[challenge_out(r) for r in rows], next_cursor=encode_cursor(last))

    ChallengeId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]

    @api.get("/challenges/{challenge_id}", response_model=Challenge, tags=["challenges"], responses=NOT_FOUND,
             summary="One challenge")
    async def challenge(caller: CallerDep, challenge_id: ChallengeId) -> Challenge:
        return challenge_out(await _run(rt, rt.store.get_challenge, caller.scope, challenge_id))

    async def decide(caller: Caller, challenge_id: int, decision: str) -> ChallengeDecision:
        ch, entry, changed = await _run(rt, rt.store.decide_challenge, caller.scope, challenge_id, decision)
        if changed:
            log.info("api: user %d %s challenge %d (%s -> %s)", caller.user.id, decision, challenge_id,
                     ch["sender"], ch["recipient"])
        return ChallengeDecision(challenge=challenge_out(ch), entry=entry_out(entry), changed=changed)

    @api.post("/challenges/{challenge_id}/approve", response_model=ChallengeDecision, tags=["challenges"],
              responses=NOT_FOUND, summary="Approve: allowlist the sender (source 'approved'); idempotent")
    async def approve(caller: CallerDep, challenge_id: ChallengeId) -> ChallengeDecision:
        return await decide(caller, challenge_id, "approve")

    @api.post("/challenges/{challenge_id}/deny", response_model=ChallengeDecision, tags=["challenges"],
              responses=NOT_FOUND, summary="Deny: blocklist the sender; the confirmation link stops working; idempotent")
    async def deny(caller: CallerDep, challenge_id: ChallengeId) -> ChallengeDecision:
        return await decide(caller, challenge_id, "deny")

    @api.post("/challenges/{challenge_id}/allow-domain", response_model=ChallengeDecision, tags=["challenges"],
              responses=NOT_FOUND, summary="Allowlist the sender's whole domain and close the challenge; idempotent")
    async def allow_domain(caller: CallerDep, challenge_id: ChallengeId) -> ChallengeDecision:
        return await decide(caller, challenge_id, "allow-domain")

    async def decide_many(caller: Caller, body: ChallengeIds, decision: str) -> ChallengeBatch:
        ids = list(dict.fromkeys(body.ids))  # a repeated id is decided once
        bad = next((i for i in ids if not 1 <= i <= MAX_ROW_ID), None)
        if bad is not None:
            raise HTTPException(422, f"ids: {bad} is not a challenge id")
        outcomes = await _run(rt, rt.store.decide_challenges, caller.scope, ids, decision)
        items = []
        for o in outcomes:
            if o["status"] == "missing":
                items.append(ChallengeBatchItem(id=o["id"], status="missing", error=o["error"]))
                continue
            if o["status"] == "changed":
                log.info("api: user %d %s challenge %d (%s -> %s)", caller.user.id, decision, o["id"],
                         o["challenge"]["sender"], o["challenge"]["recipient"])
            items.append(ChallengeBatchItem(id=o["id"], status=o["status"], challenge=challenge_out(o["challenge"]),
                                            entry=entry_out(o["entry"])))
        counts = {k: sum(1 for i in items if i.status == k) for k in ("changed", "unchanged", "missing")}
        return ChallengeBatch(**counts, results=items)

    batch_doc = ("Each id in its own transaction, in the order sent; an id the caller has no challenge for is "
                 "reported `missing` and does not stop the others. Idempotent.")

    @api.post("/challenges/approve", response_model=ChallengeBatch, tags=["challenges"],
              summary="Approve several challenges: allowlist their senders", description=batch_doc)
    async def approve_many(caller: CallerDep, body: ChallengeIds) -> ChallengeBatch:
        return await decide_many(caller, body, "approve")

    @api.post("/challenges/deny", response_model=ChallengeBatch, tags=["challenges"],
              summary="Deny several challenges: blocklist their senders, their links stop working",
              description=batch_doc)
    async def deny_many(caller: CallerDep, body: ChallengeIds) -> ChallengeBatch:
        return await decide_many(caller, body, "deny")

    @api.post("/challenges/allow-domain", response_model=ChallengeBatch, tags=["challenges"],
              summary="Allowlist the senders' whole domains and close several challenges", description=batch_doc)
    async def allow_domain_many(caller: CallerDep, body: ChallengeIds) -> ChallengeBatch:
        return await decide_many(caller, body, "allow-domain")

    # -- screened senders --
    @api.get("/screened", response_model=ScreenedPage, tags=["events"], responses=BAD_REQUEST,
             summary="Automated senders screened or refused as bulk, grouped by sender, most recently seen first",
             description="Grouped and counted by the store. The first page pins the period and the events it "
                         "counts, so later pages neither repeat nor skip a sender who writes again meanwhile "
                         "(`days` is taken from the cursor then). `listed` tells which of the caller's (or a "
                         "global) allow or block entries decides for the sender or its domain now. A user sees "
                         "the senders who wrote to them; an admin sees all.")
    async def screened(caller: CallerDep,
                       days: Annotated[int, Query(ge=1, le=366, description="Look back this many days.")] = 90,
                       cursor: Annotated[str | None, Query(max_length=200)] = None,
                       limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> ScreenedPage:
        if cursor:
            upto, before, since = decode_screened_cursor(cursor)
        else:
            upto, before, since = await _run(rt, rt.store.max_event_id), None, time.time() - days * DAY
        rows, last = await _run(rt, rt.store.screened_senders, caller.scope, caller.user.id, since=since,
                                upto_id=upto, before_id=before, limit=limit)
        return ScreenedPage(items=[ScreenedSender.model_validate(_times(r, "first_seen", "last_seen")) for r in rows],
                            next_cursor=None if last is None else encode_screened_cursor(upto, last, since))

    # -- allow and block lists --
    for action, name in (("allow", "allowlist"), ("block", "blocklist")):
        _list_routes(api, rt, action, name, CallerDep, owner_id)

    @api.post("/allowlist/import", response_model=ImportResult, tags=["allowlist"], responses={**FORBIDDEN, **NOT_FOUND},
              summary="Allow many entries at once; idempotent; per-entry result",
              description="Each result says whether the entry was added (or would be, with `dry_run`), was present "
                          "already, or is invalid. In a dry run, an address that would be added but whose domain "
                          "the owner already allows carries `covered_by` (the @domain entry).")
    async def import_allow(caller: CallerDep, body: ImportRequest) -> ImportResult:
        uid = await owner_id(caller, body.owner)
        if body.dry_run:
            result = await _run(rt, rt.store.import_preview, uid, body.entries)
            await _run(rt, rt.store.domain_cover, uid, result["results"])
        else:
            result = await _run(rt, rt.store.import_entries, uid, body.entries, source="import", note=body.note)
            log.info("api: user %d imported %d entries for user %s: %d added, %d present, %d invalid",
                     caller.user.id, len(body.entries), uid, result["added"], result["present"], result["invalid"])
        return ImportResult.model_validate(result)

    # -- sent Message-IDs --
    @api.post("/sent-ids", response_model=SentIdsResult, tags=["replies"], responses={**FORBIDDEN, **NOT_FOUND},
              summary="Upload hashes of Message-IDs the user sent (replies to them count as known)")
    async def sent_ids(caller: CallerDep, body: SentIdsIn) -> SentIdsResult:
        uid = await owner_id(caller, body.owner)
        assert uid is not None
        bad = next((h for h in body.hashes if len(h) != 64 or not all(c in "0123456789abcdefABCDEF" for c in h)), None)
        if bad is not None:
            raise HTTPException(422, f"not a sha256 hex digest: {bad[:80]!r}")
        added = await _run(rt, rt.store.add_sent_ids, uid, [h.lower() for h in body.hashes])
        return SentIdsResult(received=len(body.hashes), added=added)

    # -- stats --
    @api.get("/stats", response_model=Stats, tags=["events"],
             summary="Counts per verdict per UTC day, oldest first, up to today; pending challenges")
    async def stats(caller: CallerDep, days: Annotated[int, Query(ge=1, le=366)] = 30) -> Stats:
        today = int(time.time() // DAY)
        per_day = await _run(rt, rt.store.day_counts, caller.scope, today - days + 1, today)
        pending = await _run(rt, rt.store.pending_count, caller.scope)
        out_days, totals = [], dict.fromkeys(VERDICTS, 0)
        for day in sorted(per_day):
            counts = {v: per_day[day].get(v, 0) for v in VERDICTS}
            for v, n in per_day[day].items():
                totals[v] = totals.get(v, 0) + n
                counts[v] = n
            out_days.append(StatsDay(date=datetime.fromtimestamp(day * DAY, timezone.utc).date(), counts=counts))
        return Stats(days=out_days, totals=totals, pending_challenges=pending)

    # -- live stream --
    @api.get("/stream", tags=["events"], response_class=Response,
             responses={200: {"description": "text/event-stream: `event: event` (data: Event), "
                                             "`event: challenge` (data: Challenge); comments as heartbeats. "
                                             "Reconnect with Last-Event-ID to resume.",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
             summary="Server-sent events: new decisions and challenge changes for the caller's addresses")
    async def stream(request: Request, caller: CallerDep,
                     heartbeat: Annotated[float, Query(ge=1, le=60, description="Seconds between heartbeats.")] = 15) -> Response:
        from sse_starlette import EventSourceResponse
        last_id = request.headers.get("last-event-id", "")
        return EventSourceResponse(hub.follow(request, caller.scope, last_id), ping=heartbeat,
                                   headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    app.include_router(api)

    # -- metrics --
    async def require_admin(caller: CallerDep) -> None:
        if not caller.user.is_admin:
            raise HTTPException(403, "metrics are for admins")

    public = rt.cfg.http.metrics_public

    @app.get("/metrics", tags=["health"], dependencies=[] if public else [Depends(require_admin)],
             response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text format"},
                        **({} if public else {**AUTH_ERRORS, **FORBIDDEN})},
             summary="Prometheus metrics (all worker processes; challenge counts from the store)")
    async def metrics() -> Response:
        counts = await _run(rt, rt.store.challenge_counts)
        body = await asyncio.to_thread(rt.metrics.render, counts)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    if not public:  # the API's own description, for callers with a token (SPEC §4.5 item 6)
        from fastapi.openapi.docs import get_swagger_ui_html

        @app.get("/openapi.json", include_in_schema=False)
        async def openapi_document(caller: CallerDep) -> JSONResponse:
            return JSONResponse(app.openapi())

        @app.get("/docs", include_in_schema=False)
        async def docs(caller: CallerDep) -> Response:
            # A browser cannot send the token to the document the viewer loads: serve the viewer only
            # to token holders, with the document inlined.
            html = get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API").body.decode()
            spec = json.dumps(app.openapi()).replace("</", "<\\/")
            html = html.replace("url: '/openapi.json',", f"spec: {spec},")
            return Response(html, media_type="text/html")


def _list_routes(api: APIRouter, rt: "Runtime", action: str, name: str, CallerDep: Any, owner_id: Any) -> None:
    EntryId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]

    @api.get(f"/{name}", response_model=ListEntryPage, tags=[name], responses={**BAD_REQUEST, **NOT_FOUND, **FORBIDDEN},
             summary=f"{name.capitalize()} entries, newest first", operation_id=f"list_{name}")
    async def list_entries(caller: CallerDep,
                           q: Annotated[str, Query(max_length=200, pattern=NoControl)] = "",
                           owner: Annotated[str | None, Query(max_length=320, pattern=NoControl,
                                                              description="Admins: one user's entries (an address of theirs).")] = None,
                           cursor: Annotated[str | None, Query(max_length=100)] = None,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> ListEntryPage:
        oid = None
        if owner is not None:
            oid = await owner_id(caller, owner)
        rows, last = await _run(rt, rt.store.entries_page, caller.scope, action, q=q.strip(), owner_id=oid,
                                before_id=decode_cursor(cursor, MAX_ROW_ID), limit=limit)
        return ListEntryPage(items=[entry_out(r) for r in rows], next_cursor=encode_cursor(last))

    @api.post(f"/{name}", response_model=ListEntryOut, tags=[name], status_code=201,
              responses={200: {"model": ListEntryOut, "description": "Already present: the existing entry"},
                         422: {"model": Error, "description": "Not an address, @domain or list:<id>"},
                         **FORBIDDEN, **NOT_FOUND},
              summary=f"Add to the {name} (idempotent: 200 with the existing entry)", operation_id=f"add_{name}")
    async def add(caller: CallerDep, body: ListEntryIn, response: Response) -> ListEntryOut:
        if "\x00" in body.note:
            raise HTTPException(422, "note: NUL characters are not allowed")
        uid = await owner_id(caller, body.owner, body.global_entry)
        try:
            row, created = await _run(rt, rt.store.add_entry_dict, uid, action, body.entry, note=body.note,
                                      expires_at=_ts(body.expires_at))
        except AddressError as exc:
            raise HTTPException(422, f"entry {body.entry[:80]!r}: {exc}") from None
        if not created:
            response.status_code = 200
        else:
            log.info("api: user %d added %s %s for user %s", caller.user.id, action, row["entry"], uid)
        return entry_out(row)

    @api.get(f"/{name}/{{entry_id}}", response_model=ListEntryOut, tags=[name], responses=NOT_FOUND,
             summary="One entry", operation_id=f"get_{name}_entry")
    async def get_one(caller: CallerDep, entry_id: EntryId) -> ListEntryOut:
        return entry_out(await _run(rt, rt.store.get_entry, caller.scope, entry_id, action))

    @api.patch(f"/{name}/{{entry_id}}", response_model=ListEntryOut, tags=[name], responses=NOT_FOUND,
               summary="Change an entry's note or expiry", operation_id=f"patch_{name}_entry")
    async def patch(caller: CallerDep, entry_id: EntryId, body: ListEntryPatch) -> ListEntryOut:
        if body.note is not None and "\x00" in body.note:
            raise HTTPException(422, "note: NUL characters are not allowed")
        return entry_out(await _run(rt, rt.store.update_entry, caller.scope, action, entry_id,
                                    note=body.note, expires_at=_ts(body.expires_at), clear_expiry=body.clear_expiry))

    @api.delete(f"/{name}/{{entry_id}}", status_code=204, response_class=Response, tags=[name],
                responses=NOT_FOUND, summary="Remove an entry", operation_id=f"delete_{name}_entry")
    async def remove(caller: CallerDep, entry_id: EntryId) -> Response:
        await _run(rt, rt.store.remove_entry, caller.scope, action, entry_id)
        log.info("api: user %d removed %s entry %d", caller.user.id, action, entry_id)
        return Response(status_code=204)


# -- errors, timing, OpenAPI -----------------------------------------------------------------
def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 204 or exc.status_code < 400:
            return Response(status_code=exc.status_code, headers=exc.headers)
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = jsonable_encoder(exc.errors(), custom_encoder={Exception: str, bytes: lambda b: b.decode("latin-1")})
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg", "invalid"),
                             "errors": errors}, status_code=422)

    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]


def _install_timing(app: FastAPI, rt: "Runtime") -> None:
    @app.middleware("http")
    async def timing(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        if path != "/api/v1/stream":  # a stream's duration is not a latency
            rt.metrics.observe_api(request.method, path, response.status_code, time.perf_counter() - started)
        return response


def _document_security(app: FastAPI) -> None:
    """422 answers carry our Error body, not FastAPI's default; the OpenAPI document says so."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        if "Error" not in comps:
            comps["Error"] = Error.model_json_schema(ref_template="#/components/schemas/{model}")
        for path_item in schema.get("paths", {}).values():
            for op in path_item.values():
                if not isinstance(op, dict):
                    continue
                resp = op.get("responses", {})
                if "422" in resp:
                    resp["422"] = {"description": resp["422"].get("description", "Validation error"),
                                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for name in ("HTTPValidationError", "ValidationError"):
            comps.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# -- live stream ---------------------------------------------------------------------------------
@dataclass(eq=False)
class _Subscriber:
    scope: int | None
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = field(default_factory=lambda: asyncio.Queue(10_000))
    overflowed: bool = False


class StreamHub:
    """One poller per process looks at the store for new events and challenge changes (from any node)
    and hands them to the open streams whose caller may see them."""

    def __init__(self, rt: "Runtime") -> None:
        self.rt = rt
        self.subscribers: set[_Subscriber] = set()
        self.task: asyncio.Task[None] | None = None
        self.settled_id = 0  # every event with an id at or below this has been seen
        self.sent_ids: set[int] = set()
        self.highs: deque[tuple[float, int]] = deque()
        self.challenge_since = 0.0
        self.challenge_seen: dict[tuple[int, float, str], float] = {}

    def _subscribe(self, scope: int | None, start_id: int) -> _Subscriber:
        sub = _Subscriber(scope)
        if not self.subscribers and (self.task is None or self.task.done()):
            self.settled_id = start_id
            self.sent_ids.clear()
            self.highs.clear()
            self.challenge_since = time.time() - STREAM_SETTLE
            self.challenge_seen.clear()
            self.task = asyncio.create_task(self._poll(), name="stream-hub")
        self.subscribers.add(sub)
        return sub

    def _deliver(self, kind: str, row: dict[str, Any]) -> None:
        for sub in list(self.subscribers):
            if sub.scope is None or sub.scope == row.get("user_id"):
                try:
                    sub.queue.put_nowait((kind, row))
                except asyncio.QueueFull:  # a client that does not read: it reconnects and resumes
                    sub.overflowed = True

    async def _poll(self) -> None:
        store = self.rt.store
        while self.subscribers:
            try:
                await self._poll_once(store)
            except Exception as exc:  # the stream waits for the store to come back; logged, not fatal
                log.error("live stream: polling the store failed: %s", exc)
            await asyncio.sleep(STREAM_POLL)

    async def _poll_once(self, store: Any) -> None:
        now = time.monotonic()
        high = self.settled_id
        after = self.settled_id
        while True:
            rows = await self.rt.astore.run(store.events_after, None, after, 1000)
            for row in rows:
                if row["id"] not in self.sent_ids:
                    self.sent_ids.add(row["id"])
                    self._deliver("event", row)
            if rows:
                high = max(high, rows[-1]["id"])
                after = rows[-1]["id"]
            if len(rows) < 1000:
                break
        # ids below the highest seen STREAM_SETTLE seconds ago are final: stop looking below them
        self.highs.append((now, high))
        while self.highs and self.highs[0][0] < now - STREAM_SETTLE:
            self.settled_id = max(self.settled_id, self.highs.popleft()[1])
        self.sent_ids = {i for i in self.sent_ids if i > self.settled_id}

        wall = time.time()
        changed = await self.rt.astore.run(store.challenges_changed_since, None,
                                           self.challenge_since - STREAM_SETTLE, 5000)
        for row in changed:
            key = (row["id"], row["updated_at"], row["status"])
            if key not in self.challenge_seen:
                self.challenge_seen[key] = row["updated_at"]
                self._deliver("challenge", row)
        if changed:
            self.challenge_since = max(self.challenge_since, max(r["updated_at"] for r in changed))
        self.challenge_since = max(self.challenge_since, wall - STREAM_SETTLE)
        cutoff = self.challenge_since - 2 * STREAM_SETTLE
        self.challenge_seen = {k: v for k, v in self.challenge_seen.items() if v > cutoff}

    async def follow(self, request: Request, scope: int | None, last_event_id: str) -> AsyncIterator[dict[str, Any]]:
        """One client's stream: what it missed since Last-Event-ID, then everything new, live."""
        resume_event, resume_ch = _parse_stream_id(last_event_id)
        start_id = await self.rt.astore.run(self.rt.store.max_event_id)
        sub = self._subscribe(scope, start_id)
        sent: set[int] = set()
        seen_ch: set[tuple[int, float, str]] = set()
        last_event = resume_event if resume_event is not None else start_id
        last_ch = resume_ch if resume_ch is not None else time.time()

        def message(kind: str, row: dict[str, Any]) -> dict[str, Any]:
            nonlocal last_event, last_ch
            if kind == "event":
                last_event = max(last_event, row["id"])
                data = event_out(row).model_dump_json()
            else:
                last_ch = max(last_ch, row["updated_at"])
                data = challenge_out(row).model_dump_json()
            return {"event": kind, "id": f"{last_event}-{int(last_ch * 1000)}", "data": data}

        try:
            yield {"comment": "sendergate live stream", "retry": 3000}
            if resume_event is not None:  # catch up from the store, then continue from the hub
                after = resume_event
                while True:
                    rows = await self.rt.astore.run(self.rt.store.events_after, scope, after, 500)
                    for row in rows:
                        sent.add(row["id"])
                        yield message("event", row)
                    if len(rows) < 500:
                        break
                    after = rows[-1]["id"]
            if resume_ch is not None:
                for row in await self.rt.astore.run(self.rt.store.challenges_changed_since, scope,
                                                    resume_ch, 5000):
                    seen_ch.add((row["id"], row["updated_at"], row["status"]))
                    yield message("challenge", row)
            while not getattr(request.app.state, "stopping", False):
                if sub.overflowed:
                    log.warning("live stream: a client fell behind; closing its stream so it resumes")
                    return
                try:
                    kind, row = await asyncio.wait_for(sub.queue.get(), timeout=STREAM_POLL)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    continue
                if kind == "event":
                    if row["id"] in sent or (resume_event is None and row["id"] <= start_id):
                        continue
                    sent.add(row["id"])
                    if len(sent) > 100_000:
                        sent = {i for i in sent if i > last_event - 10_000}
                else:
                    key = (row["id"], row["updated_at"], row["status"])
                    if key in seen_ch:
                        continue
                    seen_ch.add(key)
                    if row["updated_at"] <= (resume_ch or 0) and resume_ch is not None:
                        continue
                yield message(kind, row)
        finally:
            self.subscribers.discard(sub)


def _parse_stream_id(value: str) -> tuple[int | None, float | None]:
    """'<last event id>-<last challenge change, ms>' as sent in each message's id; junk means 'from now'."""
    try:
        event_part, ch_part = value.strip().split("-", 1)
        event_id, ch_ms = int(event_part), int(ch_part)
        if not (0 <= event_id <= MAX_ID and 0 <= ch_ms <= MAX_ID):
            raise ValueError
        return event_id, ch_ms / 1000
    except ValueError:
        return None, None
