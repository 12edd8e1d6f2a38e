"""The desktop app's only way into the gateway: its HTTP API (SPEC §6), through httpx.

Synchronous on purpose: every call runs on a worker thread (operations.py),
never on the GUI thread. Answers become small frozen records; errors become
`ApiError`s whose message is one line fit to show to a person.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any
from urllib.parse import urlsplit

import httpx

# The verdicts of SPEC §4.3, in the order the app shows them.
MAIL_VERDICTS: tuple[str, ...] = ("delivered", "screened", "challenged", "bulk", "virus", "spam", "blocked",
                                  "relay_denied", "unknown_recipient", "tempfail", "observed")
# what people did about a challenge: events, not mail (Overview's mail counts leave them out)
ACTION_VERDICTS: tuple[str, ...] = ("confirmed", "approved", "denied")
VERDICTS: tuple[str, ...] = MAIL_VERDICTS + ACTION_VERDICTS
MODES: tuple[str, ...] = ("enforce", "observe", "off")  # mailbox modes (SPEC §4.6)

USER_AGENT = "sendergate-desktop"


class ApiError(Exception):
    """A call failed in a way a person can understand and act on; str() is one line."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Unauthorized(ApiError):
    """The gateway does not accept the token."""


class Unreachable(ApiError):
    """The gateway did not answer (down, wrong address, network)."""


# -- records ---------------------------------------------------------------------------------
def _ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


parse_time = _ts  # for the models: API time string -> aware UTC datetime (None for empty)


@dataclass(frozen=True, slots=True)
class Me:
    id: int
    name: str
    role: str
    addresses: tuple[str, ...]
    mode: str = "enforce"  # a gateway without modes (before 0007) challenges: enforce
    mode_is_default: bool = True
    recipient_delimiter: str = "+"  # joins an address and a tag name; a gateway before it was told uses "+"

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Me:
        return cls(d["id"], d.get("name", ""), d["role"], tuple(d.get("addresses", ())), d.get("mode", "enforce"),
                   bool(d.get("mode_is_default", True)), str(d.get("recipient_delimiter") or "+"))


@dataclass(frozen=True, slots=True)
class Device:
    """One of the user's devices: an API token with a name (GET /devices)."""

    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    current: bool

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Device:
        return cls(d["id"], d.get("name", ""), _ts(d.get("created_at")) or datetime.now(timezone.utc),
                   _ts(d.get("last_used_at")), bool(d.get("current", False)))


@dataclass(frozen=True, slots=True)
class StaffUser:
    """A user as an admin sees them (GET /users); `mode` where the gateway has mailbox modes."""

    id: int
    name: str
    role: str
    addresses: tuple[str, ...]
    devices: tuple[Device, ...]
    mode: str | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StaffUser:
        return cls(d["id"], d.get("name", ""), d.get("role", "user"), tuple(d.get("addresses", ())),
                   tuple(Device.from_json(x) for x in d.get("devices", ())), d.get("mode"))


@dataclass(frozen=True, slots=True)
class PairingCode:
    code: str
    expires_at: datetime
    link: str
    app_link: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PairingCode:
        return cls(d["code"], _ts(d.get("expires_at")) or datetime.now(timezone.utc), d.get("link", ""),
                   d.get("app_link", ""))


@dataclass(frozen=True, slots=True)
class Event:
    """One final SMTP decision, as the API gives it: the gateway's event (its policy.decide.EventRecord and
    id) but for EVENT_NOT_KEPT; tests/test_event_schema.py fails when the two part."""

    id: int
    ts: datetime
    verdict: str
    reason: str
    sender: str
    recipient: str
    subject: str
    from_header: str
    client_ip: str
    helo: str
    message_id: str
    size: int | None
    spam_score: float | None
    virus: str
    challenge_id: int | None
    details: dict[str, Any]
    tag: str | None = None  # the sign-up address's name the message came in by (issue 19)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Event:
        return cls.from_row(_event_row({**_EVENT_DEFAULTS, **d}))

    @classmethod
    def from_row(cls, row: EventRow) -> Event:
        values = dict(zip(EVENT_FIELDS, row, strict=True))
        values["ts"] = _ts(values["ts"]) or datetime.now(timezone.utc)
        values["details"] = values["details"] or {}
        return cls(**values)

    def to_row(self) -> EventRow:
        ts = self.ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        return (self.id, ts, self.verdict, self.reason, self.sender, self.recipient, self.subject, self.from_header,
                self.client_ip, self.helo, self.message_id, self.size, self.spam_score, self.virus,
                self.challenge_id, self.details, self.tag)


# The Activity log keeps events as plain tuples in this field order (EventRow): a worker thread builds a
# page of them in C (itemgetter), with no per-row Python code holding the GIL against the GUI thread, and
# tuples of strings and numbers drop out of the garbage collector's full passes. `ts` stays the API's
# ISO string until a row is shown; Event.from_row makes the full record when one is asked for.
EVENT_FIELDS: tuple[str, ...] = tuple(Event.__dataclass_fields__)
EVENT_NOT_KEPT = ("user_id",)  # the app shows a user's own events (an admin's: everyone's), not whose they are
EventRow = tuple[Any, ...]
_event_row = itemgetter(*EVENT_FIELDS)
_EVENT_DEFAULTS: dict[str, Any] = {"reason": "", "sender": "", "recipient": "", "subject": "", "from_header": "",
                                   "client_ip": "", "helo": "", "message_id": "", "size": None, "spam_score": None,
                                   "virus": "", "challenge_id": None, "details": None, "tag": None}
ROW_ID, ROW_TS, ROW_VERDICT, ROW_REASON, ROW_SENDER, ROW_RECIPIENT, ROW_SUBJECT = range(7)


def event_rows(items: list[dict[str, Any]]) -> tuple[EventRow, ...]:
    """API event objects -> EventRows; a gateway that leaves out an optional field gets its default."""
    try:
        return tuple(map(_event_row, items))
    except KeyError:
        return tuple(_event_row({**_EVENT_DEFAULTS, **d}) for d in items)


@dataclass(frozen=True, slots=True)
class ChallengeHistory:
    """A pending sender's history with us, as far as this user may see (GET /challenges)."""

    earlier_refusals: int
    first_refused: datetime | None
    other_recipients: tuple[str, ...]
    other_recipient_count: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ChallengeHistory:
        return cls(int(d.get("earlier_refusals", 0)), _ts(d.get("first_refused")),
                   tuple(str(r) for r in d.get("other_recipients", ())), int(d.get("other_recipient_count", 0)))


@dataclass(frozen=True, slots=True)
class Challenge:
    id: int
    recipient: str
    sender: str
    status: str
    subject: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    # the screener's sender context (issue 17); defaults for a gateway from before it
    display_name: str = ""
    display_name_hidden: bool = False
    auth_status: str = "unchecked"  # verified | unverified | failed | unchecked
    auth_detail: str = ""
    confirm_failures: int = 0  # wrong CAPTCHA answers
    history: ChallengeHistory | None = None  # None in the live stream: the page keeps what it had

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Challenge:
        now = datetime.now(timezone.utc)
        history = d.get("history")
        return cls(d["id"], d.get("recipient", ""), d["sender"], d["status"], d.get("subject", ""),
                   d.get("attempts", 0), _ts(d.get("created_at")) or now, _ts(d.get("updated_at")) or now,
                   _ts(d.get("expires_at")) or now, d.get("display_name", "") or "",
                   bool(d.get("display_name_hidden", False)), d.get("auth_status", "unchecked") or "unchecked",
                   d.get("auth_detail", "") or "", int(d.get("confirm_failures", 0) or 0),
                   ChallengeHistory.from_json(history) if isinstance(history, dict) else None)


@dataclass(frozen=True, slots=True)
class ListEntry:
    id: int
    entry: str
    kind: str
    action: str
    source: str
    note: str
    created_at: datetime
    expires_at: datetime | None
    owner: str | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ListEntry:
        return cls(d["id"], d["entry"], d.get("kind", "address"), d.get("action", "allow"), d.get("source", ""),
                   d.get("note", ""), _ts(d.get("created_at")) or datetime.now(timezone.utc),
                   _ts(d.get("expires_at")), d.get("owner"))


@dataclass(frozen=True, slots=True)
class Stats:
    days: tuple[tuple[str, dict[str, int]], ...]  # (ISO date, verdict -> count), oldest first
    totals: dict[str, int]
    pending_challenges: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Stats:
        return cls(tuple((day["date"], dict(day["counts"])) for day in d.get("days", ())), dict(d.get("totals", {})),
                   int(d.get("pending_challenges", 0)))

    def today(self) -> dict[str, int]:
        return dict(self.days[-1][1]) if self.days else dict.fromkeys(VERDICTS, 0)


@dataclass(frozen=True, slots=True)
class ScreenedSender:
    """GET /screened: one automated sender, its counts, and the list entry that decides for it now."""

    sender: str
    count: int
    screened: int
    bulk: int
    latest_subject: str
    first_seen: datetime
    last_seen: datetime
    listed_action: str  # 'allow', 'block', or '' while undecided
    listed_entry: str  # the deciding entry: the address or its @domain

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ScreenedSender:
        now = datetime.now(timezone.utc)
        listed = d.get("listed") or {}
        return cls(d["sender"], int(d["count"]), int(d.get("screened", 0)), int(d.get("bulk", 0)),
                   d.get("latest_subject", ""), _ts(d.get("first_seen")) or now, _ts(d.get("last_seen")) or now,
                   listed.get("action", ""), listed.get("entry", ""))


@dataclass(frozen=True, slots=True)
class Tag:
    """A sign-up address (GET /tags): the address to hand out, whose it is, and the mail it brought."""

    id: int
    address: str  # the full address to give the site (alice+acme@example.org)
    owner_address: str
    name: str
    dated: bool
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    status: str  # 'live', 'expired' or 'revoked'
    received: int
    last_received_at: datetime | None
    senders: tuple[tuple[str, int], ...]  # the top senders to it and their counts, most first
    folder: str | None = None  # 'inbox', 'tag' (its own folder), 'screened'; None: the gateway's default
    refused: int = 0  # spam, viruses, and mail after it was revoked or expired
    user_id: int | None = None  # whose it is (None: a gateway that does not say)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Tag:
        uid = d.get("user_id")
        return cls(int(d["id"]), d["address"], d.get("owner_address", ""), d.get("name", ""), bool(d.get("dated")),
                   _ts(d.get("created_at")) or datetime.now(timezone.utc), _ts(d.get("expires_at")),
                   _ts(d.get("revoked_at")), d.get("status", "live"), int(d.get("received") or 0),
                   _ts(d.get("last_received_at")),
                   tuple((str(s["sender"]), int(s["count"])) for s in d.get("senders") or ()), d.get("folder"),
                   int(d.get("refused") or 0), int(uid) if uid is not None else None)


@dataclass(frozen=True, slots=True)
class Decided:
    """One challenge of a decision on several: the challenge after it, or why there is none."""

    id: int
    challenge: Challenge | None
    error: str


@dataclass(frozen=True, slots=True)
class ImportItem:
    entry: str  # normalised, or the input as given when invalid
    status: str  # 'added' (or would be, in a dry run), 'present', 'invalid'
    error: str
    covered_by: str = ""  # dry run: the @domain allow entry that already lets this address in


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """POST /allowlist/import: counts and one item per entry sent, in the order sent."""

    added: int
    present: int
    invalid: int
    items: tuple[ImportItem, ...]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ImportOutcome:
        return cls(int(d["added"]), int(d["present"]), int(d["invalid"]),
                   tuple(ImportItem(r["entry"], r["status"], r.get("error") or "", r.get("covered_by") or "")
                         for r in d.get("results", ())))


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[Any, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class HistorySummary:
    """What the gateway has seen from a sender (or their domain): events per verdict, first and last seen."""

    counts: dict[str, int]
    total: int
    first_seen: datetime | None
    last_seen: datetime | None
    complete: bool = True  # False: only the newest events were counted (there are more)

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> HistorySummary | None:
        if d is None:
            return None
        return cls(dict(d.get("counts", {})), int(d.get("total", 0)), _ts(d.get("first_seen")), _ts(d.get("last_seen")),
                   bool(d.get("complete", True)))


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    entry: ListEntry
    deciding: bool  # the entry decides for the sender today (for its owner)


@dataclass(frozen=True, slots=True)
class SenderHistory(Page):
    """A page of a sender's history (EventRows in `items`); the summaries come with the first page only."""

    sender: str | None = None
    domain: str = ""
    whole_domain: bool = False
    sender_summary: HistorySummary | None = None
    domain_summary: HistorySummary | None = None
    entries: tuple[HistoryEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One server-sent event: kind is 'event' or 'challenge'; record is an Event or a Challenge.

    `user_id` is whose it is (None: nobody's, e.g. an unknown recipient's refusal), as the gateway said when
    `owner_known`: an admin's stream carries everyone's, and a "Whose" view takes in only its person's."""

    kind: str
    record: Any
    last_id: str
    user_id: int | None = None
    owner_known: bool = False

    def is_for(self, whose: int | None) -> bool | None:
        """Whether the view of `whose` (None: the caller's own or, an admin's, everyone's) shows it; None when
        the gateway did not say whose it is (the view must ask the gateway again)."""
        if whose is None:
            return True
        return self.user_id == whose if self.owner_known else None


# -- URLs --------------------------------------------------------------------------------------
def normalise_url(url: str) -> str:
    """'mx.example.org:8025' -> 'https://mx.example.org:8025'; trailing slashes dropped. Raises ValueError."""
    url = url.strip()
    if not url:
        raise ValueError("enter the gateway's address, e.g. https://mx.example.org")
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the gateway's address must start with https:// (or http://), not {parts.scheme}://")
    if not parts.hostname:
        raise ValueError("the gateway's address has no host name")
    try:
        _ = parts.port  # reading it validates it
    except ValueError:
        raise ValueError("the gateway's address has an invalid port") from None
    return url.rstrip("/")


def is_loopback_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def sends_token_in_clear(url: str) -> bool:
    """True for plain http to anything but this machine: the token would cross the network readable."""
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback_host(parts.hostname or "")


# -- the client ------------------------------------------------------------------------------
def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def pair(base_url: str, code: str, device: str, *, timeout: float = 15.0) -> tuple[str, Me, Device]:
    """Trade a pairing code for this device's own token (no token needed): (token, whose, the device)."""
    client = GatewayClient(base_url, "", timeout=timeout)
    try:
        client._http.headers.pop("Authorization", None)
        try:
            body = client._call("POST", "/pair", json={"code": code.strip()[:40], "device": device.strip()[:100]})
        except ApiError as exc:
            if exc.status == 404:
                raise ApiError("this pairing code is unknown, used or expired: ask for a new one", 404) from None
            if exc.status == 429:
                raise ApiError("too many wrong codes from this computer: wait a minute and try again", 429) from None
            raise
        return str(body["token"]), Me.from_json(body["user"]), Device.from_json(body["device"])
    finally:
        client.close()


class GatewayClient:
    """One gateway, one token. Thread-safe for concurrent calls (httpx.Client is)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 15.0) -> None:
        self.base_url = normalise_url(base_url)
        self._token = token
        self.whose: int | None = None  # admins: Pending and Activity show this user's only (None: everyone's)
        self._http = httpx.Client(base_url=self.base_url + "/api/v1", timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT,
                                           "Accept": "application/json"})

    def close(self) -> None:
        self._http.close()

    # -- plumbing --
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._check(self._send(method, path, **kwargs))

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise Unreachable(f"the gateway at {self.base_url} did not answer in time") from None
        except httpx.TransportError as exc:
            why = _one_line(exc) or type(exc).__name__
            raise Unreachable(f"cannot reach the gateway at {self.base_url}: {why}") from None

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code < 400:
            if response.status_code == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise ApiError(f"{self.base_url} answered with something that is not the SenderGate API "
                               f"(HTTP {response.status_code})", response.status_code) from None
        try:
            detail = response.json().get("detail", "")
        except (ValueError, AttributeError):
            detail = ""
        detail = _one_line(detail or response.reason_phrase or "error")
        if response.status_code == 401:
            raise Unauthorized(f"the gateway does not accept this token ({detail}): this device may have been "
                               "revoked; pair it again with a new code (File → Connection…)", 401)
        if response.status_code == 404 and not detail:
            raise ApiError(f"{self.base_url} does not look like a SenderGate gateway (no /api/v1)", 404)
        if response.status_code >= 500:
            raise ApiError(f"the gateway has a problem: {detail} (HTTP {response.status_code})", response.status_code)
        raise ApiError(detail, response.status_code)

    # -- account --
    def me(self) -> Me:
        return Me.from_json(self._call("GET", "/me"))

    def set_mode(self, mode: str) -> Me:
        """The signed-in user's mailbox mode: enforce, observe, off, or default (the gateway's)."""
        return Me.from_json(self._call("PATCH", "/me", json={"mode": mode}))

    # -- devices and pairing (issue 16) --
    def devices(self) -> list[Device]:
        return [Device.from_json(d) for d in self._call("GET", "/devices")]

    def revoke_device(self, device_id: int) -> None:
        self._call("DELETE", f"/devices/{int(device_id)}")

    # -- the owner's view (admins) --
    def users(self) -> list[StaffUser]:
        return [StaffUser.from_json(u) for u in self._call("GET", "/users")["items"]]

    def add_user(self, address: str, name: str = "") -> tuple[StaffUser, PairingCode]:
        body = self._call("POST", "/users", json={"address": address.strip(), "name": name.strip()})
        return StaffUser.from_json(body["user"]), PairingCode.from_json(body["pairing"])

    def pairing_code(self, user_id: int) -> PairingCode:
        return PairingCode.from_json(self._call("POST", f"/users/{int(user_id)}/pairing-code"))

    # -- events --
    def events(self, *, verdicts: tuple[str, ...] = (), q: str = "", cursor: str | None = None,
               limit: int = 200, since: datetime | None = None) -> Page:
        body = self._call("GET", "/events", params=self._whose(self._event_params(verdicts, q, cursor, limit, since)))
        return Page(tuple(Event.from_json(e) for e in body["items"]), body.get("next_cursor"))

    def event_rows(self, *, verdicts: tuple[str, ...] = (), q: str = "", cursor: str | None = None,
                   limit: int = 200, since: datetime | None = None) -> Page:
        """Like events(), as EventRows (the Activity log's compact form)."""
        body = self._call("GET", "/events", params=self._whose(self._event_params(verdicts, q, cursor, limit, since)))
        return Page(event_rows(body["items"]), body.get("next_cursor"))

    def sender_history(self, sender: str, *, domain: bool = False, cursor: str | None = None,
                       limit: int = 200) -> SenderHistory:
        """GET /senders/history: the sender's (or with `domain` their domain's) events as EventRows, newest
        first, and on the first page what we have seen of them and the list entries that match them."""
        params: list[tuple[str, str | int]] = [("sender", sender), ("limit", limit)]
        if domain:
            params.append(("domain", "true"))
        if cursor:
            params.append(("cursor", cursor))
        body = self._call("GET", "/senders/history", params=self._whose(params))
        return SenderHistory(event_rows(body["items"]), body.get("next_cursor"), body.get("sender"),
                             body.get("domain", ""), bool(body.get("whole_domain")),
                             HistorySummary.from_json(body.get("sender_summary")),
                             HistorySummary.from_json(body.get("domain_summary")),
                             tuple(HistoryEntry(ListEntry.from_json(e), bool(e.get("deciding")))
                                   for e in body.get("entries", ())))

    def _whose(self, params: list[tuple[str, str | int]]) -> list[tuple[str, str | int]]:
        """An admin's "Whose" choice on Pending and Activity: one user's (their id), or everyone's (None)."""
        return params if self.whose is None else [*params, ("user", self.whose)]

    @staticmethod
    def _event_params(verdicts: tuple[str, ...], q: str, cursor: str | None, limit: int,
                      since: datetime | None) -> list[tuple[str, str | int]]:
        params: list[tuple[str, str | int]] = [("limit", limit)]
        params += [("verdict", v) for v in verdicts]
        if q.strip():
            params.append(("q", q.strip()[:200]))
        if cursor:
            params.append(("cursor", cursor))
        if since is not None:
            params.append(("since", since.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")))
        return params

    def stats(self, days: int = 30) -> Stats:
        return Stats.from_json(self._call("GET", "/stats", params={"days": days}))

    # -- challenges --
    def challenges(self, *, status: str = "pending", q: str = "", cursor: str | None = None, limit: int = 200) -> Page:
        params: dict[str, str | int] = {"status": status, "limit": limit}
        if q.strip():
            params["q"] = q.strip()[:200]
        if cursor:
            params["cursor"] = cursor
        if self.whose is not None:
            params["user"] = self.whose
        body = self._call("GET", "/challenges", params=params)
        return Page(tuple(Challenge.from_json(c) for c in body["items"]), body.get("next_cursor"))

    def all_pending(self) -> list[Challenge]:
        out: list[Challenge] = []
        cursor: str | None = None
        while True:
            page = self.challenges(cursor=cursor, limit=500)
            out += page.items
            if not page.next_cursor:
                return out
            cursor = page.next_cursor

    def decide(self, challenge_id: int, decision: str) -> Challenge:
        """decision: 'approve', 'deny' or 'allow-domain'."""
        if decision not in ("approve", "deny", "allow-domain"):
            raise ValueError(decision)
        body = self._call("POST", f"/challenges/{int(challenge_id)}/{decision}")
        return Challenge.from_json(body["challenge"])

    def decide_many(self, challenge_ids: list[int], decision: str) -> list[Decided]:
        """Several challenges in one call (POST /challenges/{decision}); per id, in the order given.

        A gateway from before that route (it answers 404/405) gets one call per challenge instead.
        """
        if decision not in ("approve", "deny", "allow-domain"):
            raise ValueError(decision)
        try:
            body = self._call("POST", f"/challenges/{decision}", json={"ids": [int(i) for i in challenge_ids]})
        except ApiError as exc:
            if exc.status not in (404, 405):
                raise
            return [self._decide_one(cid, decision) for cid in challenge_ids]
        return [Decided(r["id"], Challenge.from_json(r["challenge"]) if r.get("challenge") else None,
                        r.get("error") or "") for r in body["results"]]

    def _decide_one(self, challenge_id: int, decision: str) -> Decided:
        try:
            return Decided(challenge_id, self.decide(challenge_id, decision), "")
        except ApiError as exc:
            if isinstance(exc, (Unauthorized, Unreachable)):
                raise
            return Decided(challenge_id, None, str(exc))

    # -- screened senders --
    def screened(self, *, days: int = 90, cursor: str | None = None, limit: int = 500) -> Page:
        params: dict[str, str | int] = {"days": days, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = self._call("GET", "/screened", params=params)
        return Page(tuple(ScreenedSender.from_json(g) for g in body["items"]), body.get("next_cursor"))

    def all_screened(self, days: int = 90) -> list[ScreenedSender]:
        out: list[ScreenedSender] = []
        cursor: str | None = None
        while True:
            # each page is a GROUP BY over the period's automated mail: few big pages, not many small ones
            page = self.screened(days=days, cursor=cursor, limit=5000)
            out += page.items
            if not page.next_cursor:
                return out
            cursor = page.next_cursor

    # -- allow and block lists: action is 'allow' or 'block' --
    @staticmethod
    def _list(action: str) -> str:
        if action not in ("allow", "block"):
            raise ValueError(action)
        return "/allowlist" if action == "allow" else "/blocklist"

    def entries(self, action: str, *, q: str = "", cursor: str | None = None, limit: int = 500) -> Page:
        params: dict[str, str | int] = {"limit": limit}
        if q.strip():
            params["q"] = q.strip()[:200]
        if cursor:
            params["cursor"] = cursor
        body = self._call("GET", self._list(action), params=params)
        return Page(tuple(ListEntry.from_json(e) for e in body["items"]), body.get("next_cursor"))

    def all_entries(self, action: str, q: str = "") -> list[ListEntry]:
        out: list[ListEntry] = []
        cursor: str | None = None
        while True:
            page = self.entries(action, q=q, cursor=cursor, limit=1000)
            out += page.items
            if not page.next_cursor:
                return out
            cursor = page.next_cursor

    def add_entry(self, action: str, entry: str, *, note: str = "", expires_at: datetime | None = None) -> ListEntry:
        body: dict[str, Any] = {"entry": entry, "note": note}
        if expires_at is not None:
            body["expires_at"] = expires_at.astimezone(timezone.utc).isoformat()
        return ListEntry.from_json(self._call("POST", self._list(action), json=body))

    def update_entry(self, action: str, entry_id: int, *, note: str | None = None,
                     expires_at: datetime | None = None, clear_expiry: bool = False) -> ListEntry:
        body: dict[str, Any] = {"clear_expiry": clear_expiry}
        if note is not None:
            body["note"] = note
        if expires_at is not None:
            body["expires_at"] = expires_at.astimezone(timezone.utc).isoformat()
        return ListEntry.from_json(self._call("PATCH", f"{self._list(action)}/{int(entry_id)}", json=body))

    def remove_entry(self, action: str, entry_id: int) -> None:
        self._call("DELETE", f"{self._list(action)}/{int(entry_id)}")

    # -- undo (issue 17 item 2): the gateway reverses what the caller did, for a few minutes --
    def add_entry_created(self, action: str, entry: str, *, note: str = "",
                          expires_at: datetime | None = None) -> tuple[ListEntry, bool]:
        """add_entry, and whether it added the entry (False: it was there already, nothing to undo)."""
        body: dict[str, Any] = {"entry": entry, "note": note}
        if expires_at is not None:
            body["expires_at"] = expires_at.astimezone(timezone.utc).isoformat()
        response = self._send("POST", self._list(action), json=body)
        return ListEntry.from_json(self._check(response)), response.status_code == 201

    def reopen(self, challenge_id: int) -> Challenge:
        """Undo this caller's approve / deny / allow-domain: the challenge is pending again."""
        return Challenge.from_json(self._call("POST", f"/challenges/{int(challenge_id)}/reopen")["challenge"])

    def reopen_many(self, challenge_ids: list[int]) -> list[str]:
        """reopen for several in one call (POST /challenges/reopen); the reasons of those not reopened."""
        body = self._call("POST", "/challenges/reopen", json={"ids": [int(i) for i in challenge_ids]})
        return [f"{r['error']}" for r in body["results"] if r["status"] in ("missing", "refused")]

    def withdraw_entry(self, action: str, entry_id: int) -> None:
        """Undo this caller's add: the entry goes, an entry of the other list it replaced comes back."""
        self._call("POST", f"{self._list(action)}/{int(entry_id)}/withdraw")

    def restore_entry(self, action: str, entry_id: int) -> ListEntry:
        """Undo this caller's removal of entry `entry_id` (its old id): it comes back as it was."""
        return ListEntry.from_json(self._call("POST", f"{self._list(action)}/{int(entry_id)}/restore"))

    def import_allow(self, entries: list[str], *, note: str = "", dry_run: bool = False) -> ImportOutcome:
        """Allow many entries at once (idempotent); `dry_run` only tells what would happen."""
        body = {"entries": entries, "note": note[:1000], "dry_run": dry_run}
        return ImportOutcome.from_json(self._call("POST", "/allowlist/import", json=body))

    def upload_sent_ids(self, hashes: list[str]) -> int:
        """Hashed Message-IDs of sent mail (replies to them count as known); returns how many were new."""
        return int(self._call("POST", "/sent-ids", json={"hashes": hashes})["added"])

    def digest_frequency(self) -> str:
        """How often the digest of new pending senders is mailed to this user: off, daily or weekly."""
        return str(self._call("GET", "/digest")["frequency"])

    def set_digest_frequency(self, frequency: str) -> str:
        return str(self._call("PUT", "/digest", json={"frequency": frequency})["frequency"])

    # -- sign-up addresses (issue 19) --
    def tags(self, address: str | None = None) -> list[Tag]:
        """The caller's sign-up addresses, of one of their addresses or (None) of all of them."""
        params = {"address": address} if address else {}
        return [Tag.from_json(t) for t in self._call("GET", "/tags", params=params)["items"]]

    def add_tag(self, address: str, name: str, *, expires: str | None = None, dated: bool = False,
                folder: str | None = None) -> Tag:
        """A new sign-up address for `name` on `address`; `expires` like "30d" (None: never); `folder` where
        its mail goes (None: the gateway's default)."""
        body: dict[str, Any] = {"address": address.strip(), "name": name.strip(), "expires": expires, "dated": dated}
        if folder is not None:
            body["folder"] = folder
        return Tag.from_json(self._call("POST", "/tags", json=body))

    def tag(self, tag_id: int) -> Tag:
        """One sign-up address as it is now (its counts and top senders)."""
        return Tag.from_json(self._call("GET", f"/tags/{int(tag_id)}"))

    def tag_event_rows(self, name: str, *, user: int | None = None, cursor: str | None = None,
                       limit: int = 50) -> Page:
        """The events that came in by the sign-up address `name`, newest first, as EventRows: the caller's own;
        an admin's everyone's, or `user`'s (never the Whose choice: a tag is one person's)."""
        params: list[tuple[str, str | int]] = [("tag", name), ("limit", limit)]
        if cursor:
            params.append(("cursor", cursor))
        if user is not None:
            params.append(("user", user))
        body = self._call("GET", "/events", params=params)
        return Page(event_rows(body["items"]), body.get("next_cursor"))

    def revoke_tag(self, tag_id: int) -> Tag:
        return Tag.from_json(self._call("DELETE", f"/tags/{int(tag_id)}"))

    # -- live stream --
    def stream(self, last_id: str = "", *, heartbeat: int = 5, stop: Any = None) -> Iterator[StreamMessage]:
        """Server-sent events until the connection ends. `stop()` returning True ends it early.

        Raises Unreachable / Unauthorized like the other calls; the caller reconnects.
        """
        headers = {"Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        # a heartbeat arrives every `heartbeat` s: no byte for 3 of them means the line is dead
        timeout = httpx.Timeout(10.0, read=max(3.0, heartbeat * 3.0))
        try:
            with self._http.stream("GET", "/stream", params={"heartbeat": heartbeat}, headers=headers,
                                   timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                data: list[str] = []
                kind, msg_id = "message", ""
                for line in response.iter_lines():
                    if stop is not None and stop():
                        return
                    if line == "":
                        if data and kind in ("event", "challenge"):
                            record = json.loads("\n".join(data))
                            parsed = Event.from_json(record) if kind == "event" else Challenge.from_json(record)
                            owner = record.get("user_id") if isinstance(record, dict) else None
                            yield StreamMessage(kind, parsed, msg_id, owner if isinstance(owner, int) else None,
                                                isinstance(record, dict) and "user_id" in record)
                        kind, data = "message", []
                        continue
                    if line.startswith(":"):
                        continue
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "event":
                        kind = value
                    elif name == "data":
                        data.append(value)
                    elif name == "id":
                        msg_id = value
        except httpx.TimeoutException:
            raise Unreachable(f"the live stream from {self.base_url} went quiet") from None
        except httpx.TransportError as exc:
            why = _one_line(exc) or type(exc).__name__
            raise Unreachable(f"lost the live stream from {self.base_url}: {why}") from None
