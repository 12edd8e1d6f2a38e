"""The API's request and response bodies (SPEC §6): the contract the desktop app codes against.

Times are ISO 8601 in UTC (`2024-05-01T12:00:00Z`). Cursors are opaque
strings: pass `next_cursor` back as `cursor` to get the next (older) page;
`next_cursor` is null on the last page. Field names here are stable; new
optional fields may be added, none will be renamed or removed.
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..policy.decide import Verdict

__all__ = [
    "Role", "ChallengeStatus", "EntryKind", "EntrySource", "ImportStatus", "Me", "Event", "EventPage",
    "Challenge", "ChallengePage", "ChallengeDecision", "ListEntryOut", "ListEntryPage", "ListEntryIn",
    "ListEntryPatch", "ImportRequest", "ImportItem", "ImportResult", "SentIdsIn", "SentIdsResult",
    "StatsDay", "Stats", "Error", "StreamEvent", "StreamChallenge", "Verdict", "ChallengeIds",
    "ChallengeBatchItem", "ChallengeBatch", "Listed", "ScreenedSender", "ScreenedPage",
    "DeviceOut", "PairIn", "PairOut", "PairingCode", "UserOut", "UserList", "UserIn", "UserCreated",
    "Mode", "ModeIn", "UserMode", "TagIn", "TagPatch", "TagOut", "TagList", "TagSender",
]

Role = Literal["user", "admin"]
EntryKind = Literal["address", "domain", "list"]
EntrySource = Literal["manual", "confirmed", "approved", "import"]
ImportStatus = Literal["added", "present", "invalid"]


class ChallengeStatus(str, Enum):
    PENDING = "pending"
    CONFIRMED = "confirmed"  # the sender solved the CAPTCHA
    APPROVED = "approved"  # the user approved the sender in the app
    DENIED = "denied"  # the user denied: sender blocklisted, link dead
    EXPIRED = "expired"


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


Mode = Literal["enforce", "observe", "off"]
_MODE_TEXT = ("The mailbox mode (SPEC §4.6): 'enforce' challenges unknown senders; 'observe' delivers their mail "
              "and records what would have been challenged as 'observed'; 'off' only scans (virus and spam are "
              "refused in every mode).")


class Me(_Out):
    """GET /api/v1/me: who the token belongs to."""

    id: int
    name: str
    role: Role
    addresses: list[str] = Field(description="Addresses the user receives mail at; the primary one first. "
                                             "'@example.org' is a catch-all for a domain.")
    mode: Mode = Field("enforce", description=_MODE_TEXT)
    mode_is_default: bool = Field(True, description="The mode is the gateway's default ([challenge] default_mode), "
                                                    "not one set for this user.")
    address_modes: dict[str, Mode] = Field(default_factory=dict,
                                           description="Addresses with a mode of their own (an alias such as info@).")
    recipient_delimiter: Literal["+", "-", "_", "="] = Field(
        "+", description="The gateway's recipient delimiter ([domains] recipient_delimiter): what joins an address "
                         "and a sign-up address's name (alice+acme@…); a tag name cannot hold it.")


class ModeIn(BaseModel):
    """PATCH /api/v1/me, PATCH /api/v1/users/{id}: the new mode; 'default' returns to the gateway's default."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["enforce", "observe", "off", "default"]


class UserMode(_Out):
    """PATCH /api/v1/users/{id}: the user's mode after the change."""

    id: int
    mode: Mode = Field(description=_MODE_TEXT)
    mode_is_default: bool


class Event(_Out):
    """One final SMTP decision (SPEC §4.3): the gateway's policy.decide.EventRecord and its id (checked
    against each other by tests/test_event_schema.py)."""

    id: int
    ts: datetime = Field(description="When the decision was made (UTC).")
    verdict: Verdict
    reason: str
    client_ip: str
    helo: str
    sender: str = Field(description="Envelope sender as given in MAIL FROM; empty for the null sender <>.")
    recipient: str
    user_id: int | None = Field(description="The user the recipient belongs to; null for unknown recipients.")
    subject: str = ""
    from_header: str = ""
    message_id: str = ""
    size: int | None = None
    spam_score: float | None = None
    virus: str = ""
    challenge_id: int | None = None
    details: dict[str, Any] = Field(default_factory=dict,
                                    description="Auth results (spf, dkim, dmarc), spam symbols, scanner notes.")
    tag: str | None = Field(None, description="The sign-up address's name the message came in by "
                                              "(`alice+acme@` -> 'acme'); null for mail by no sign-up address.")


class EventPage(_Out):
    items: list[Event]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next (older) page; null at the end. "
                                    "With `q`, a page may hold fewer than `limit` items, or none, and still have a "
                                    "cursor: keep following it until it is null.")
    partial: bool = Field(False, description="True when a text search (`q`) stopped before `limit` matches because "
                          "it had read as many events as one request may (a bounded number, in a bounded time): "
                          "older events are still to be searched through `next_cursor`.")


class ChallengeHistory(_Out):
    """A pending sender's history with us, as far as the caller may see it."""

    earlier_refusals: int = Field(description=(
        "Earlier refused messages from this sender (challenged, bulk, virus, spam, blocked, tempfail) to the "
        "challenge's user, not counting this challenge's own."))
    first_refused: datetime | None = Field(None, description="The first of those; null when there are none.")
    other_recipients: list[str] = Field(description=(
        "Other recipients this sender was refused for that the caller may see: a user's own other addresses; "
        "for an admin, anyone in the office. At most 5."))
    other_recipient_count: int = Field(description="How many other recipients in all.")


class Challenge(_Out):
    """A challenge: an unknown sender was refused with a confirmation link."""

    id: int
    user_id: int
    recipient: str
    sender: str = Field(description="The sender's normalised address (lower-case, no +tag).")
    status: ChallengeStatus
    subject: str = Field("", description="Subject of the latest refused message.")
    attempts: int = Field(description="Messages refused for this challenge.")
    confirm_failures: int = Field(0, description="Wrong CAPTCHA answers so far.")
    client_ip: str = ""
    auth: str | None = Field(None, description="SPF, DKIM and DMARC as seen when the latest link was issued, e.g. "
                             "'spf=pass:friend.example dkim=pass:friend.example dmarc=pass'; null when not checked.")
    created_at: datetime = Field(description="First seen.")
    updated_at: datetime
    expires_at: datetime
    display_name: str = Field("", description=(
        "The name in the From header of the latest refused message, made safe to show next to the address "
        "(never instead of it): RFC 2047 decoded, control and format characters (bidi overrides) removed, one "
        "line, at most 80 characters. Empty when there is none, when it only repeats the sender's address, "
        "or when it looks like an address (see display_name_hidden)."))
    display_name_hidden: bool = Field(False, description=(
        "The From header's name looked like an address (e.g. 'service@bank.example' <x@elsewhere.example>) "
        "and is not shown: shown, it would pass for the sender's address."))
    auth_status: Literal["verified", "unverified", "failed", "unchecked"] = Field("unchecked", description=(
        "Authentication seen for the envelope sender's domain when the latest link was issued: 'verified' "
        "(SPF pass or a valid DKIM signature aligned with the sender's own domain), 'unverified' (none, "
        "neutral, softfail, temperror), 'failed' (SPF or DMARC failed, yet the session got a link: e.g. a "
        "p=none policy), 'unchecked' (the checks did not run)."))
    auth_detail: str = Field("", description="One line: how it was verified, or what SPF, DKIM and DMARC said.")
    history: ChallengeHistory | None = Field(None, description=(
        "The sender's history with the caller (in GET /challenges and GET /challenges/{id}; null in the live "
        "stream and in decisions)."))


class ChallengePage(_Out):
    items: list[Challenge]
    next_cursor: str | None = None


class ListEntryOut(_Out):
    """An allowlist or blocklist entry."""

    id: int
    entry: str = Field(description="'bob@x.org', '@x.org' (the domain and its subdomains) or 'list:dev.x.org'.")
    kind: EntryKind
    action: Literal["allow", "block"]
    source: str = Field(description="manual, confirmed (CAPTCHA), approved (in the app), import.")
    note: str = ""
    created_at: datetime
    expires_at: datetime | None = None
    user_id: int | None = Field(description="Owner; null for a global entry (admins).")
    owner: str | None = Field(None, description="The owner's primary address; null for a global entry.")
    auth: str | None = Field(None, description="For an entry made by a confirmation: SPF, DKIM and DMARC as seen "
                             "when the sender's link was issued; null otherwise.")


class ListEntryPage(_Out):
    items: list[ListEntryOut]
    next_cursor: str | None = None


class ListEntryIn(BaseModel):
    """POST /api/v1/allowlist or /blocklist: add one entry (idempotent: an existing entry is returned)."""

    model_config = ConfigDict(extra="forbid")

    entry: str = Field(min_length=1, max_length=400,
                       examples=["bob@example.com", "@shop.example", "list:dev.lists.example.org"])
    note: str = Field("", max_length=1000)
    expires_at: datetime | None = Field(None, description=(
        "Optional expiry, e.g. 'expect mail from @shop.example for 48 h'."))
    owner: str | None = Field(None, max_length=320, description="Admins only: an address of the user the entry is for "
                                                                 "(default: the caller).")
    global_entry: bool = Field(False, description="Admins only: an entry for every user.")


class ListEntryPatch(BaseModel):
    """PATCH /api/v1/allowlist/{id}: change the note or expiry."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=1000)
    expires_at: datetime | None = None
    clear_expiry: bool = Field(False, description="Make the entry permanent.")


class ChallengeDecision(_Out):
    """What approve / deny / allow-domain did: the challenge after it, and the list entry it made."""

    challenge: Challenge
    entry: ListEntryOut
    changed: bool = Field(description="False when the call repeated an earlier identical decision (idempotent).")


class ChallengeIds(BaseModel):
    """POST /api/v1/challenges/approve, /deny, /allow-domain: several challenges at once."""

    model_config = ConfigDict(extra="forbid")

    ids: list[int] = Field(min_length=1, max_length=1000, description="Challenge ids; repeats are decided once.")


class ChallengeBatchItem(_Out):
    """One id of a batch decision: what happened to it."""

    id: int
    status: Literal["changed", "unchanged", "missing"] = Field(description=(
        "changed: decided now; unchanged: it already was (idempotent); missing: the caller has no such challenge."))
    challenge: Challenge | None = None
    entry: ListEntryOut | None = Field(default=None, description="The list entry the decision stands on.")
    error: str | None = None


class ChallengeBatch(_Out):
    changed: int
    unchanged: int
    missing: int
    results: list[ChallengeBatchItem] = Field(description="One per distinct id, in the order sent.")


class Listed(_Out):
    """The list entry that decides for a sender (most specific wins; a block beats an allow)."""

    action: Literal["allow", "block"]
    entry: str = Field(description="'bob@x.org' or '@x.org'.")


class ScreenedSender(_Out):
    """An automated sender whose mail was screened or refused as bulk (SPEC §4.2 item 7)."""

    sender: str = Field(description="Envelope sender, lower-cased.")
    count: int = Field(description="Messages in the period.")
    screened: int = Field(description="Of them delivered as screened.")
    bulk: int = Field(description="Of them refused as bulk.")
    latest_subject: str
    first_seen: datetime
    last_seen: datetime
    listed: Listed | None = Field(None, description=(
        "The caller's (or a global) allow or block entry that decides for this sender or its domain now; "
        "null when the sender is still undecided."))


class ScreenedPage(_Out):
    items: list[ScreenedSender] = Field(description="Most recently seen first.")
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null at the end.")


class ImportRequest(BaseModel):
    """POST /api/v1/allowlist/import: many allow entries at once (idempotent)."""

    model_config = ConfigDict(extra="forbid")

    entries: list[str] = Field(max_length=50_000)
    note: str = Field("", max_length=1000)
    dry_run: bool = Field(False, description="Report what would happen, change nothing (the app's preview).")
    owner: str | None = Field(None, max_length=320, description="Admins only: import for this user.")


class ImportItem(_Out):
    entry: str = Field(description="Normalised entry, or the input as given when invalid.")
    status: ImportStatus
    error: str | None = None
    covered_by: str | None = Field(None, description=(
        "For an address not listed itself: the caller's (or a global) @domain allow entry that already lets it in."))


class ImportResult(_Out):
    added: int
    present: int
    invalid: int
    results: list[ImportItem]


class SentIdsIn(BaseModel):
    """POST /api/v1/sent-ids: hashes of Message-IDs the user sent (reply recognition, SPEC §4.2 item 8)."""

    model_config = ConfigDict(extra="forbid")

    hashes: list[str] = Field(max_length=100_000, description=(
        "sha256 hex (lower-case) of each Message-ID without angle brackets and surrounding blanks, UTF-8."))
    owner: str | None = Field(None, max_length=320, description="Admins only: upload for this user.")


class SentIdsResult(_Out):
    received: int
    added: int = Field(description="Hashes that were new.")


class StatsDay(_Out):
    date: dt.date = Field(description="UTC day.")
    counts: dict[str, int] = Field(description="verdict -> events that day; every verdict is present (0 if none).")


class Stats(_Out):
    days: list[StatsDay] = Field(description="Oldest first, one entry per day up to and including today (UTC).")
    totals: dict[str, int]
    pending_challenges: int


class Error(BaseModel):
    """Every error response."""

    detail: str = Field(description="One line, fit to show to a person.")
    errors: list[dict[str, Any]] | None = Field(None, description="Field-level problems (422 only).")


class StreamEvent(_Out):
    """`event: event` on /api/v1/stream: a new decision."""

    type: Literal["event"] = "event"
    event: Event


class StreamChallenge(_Out):
    """`event: challenge` on /api/v1/stream: a challenge was opened or changed status."""

    type: Literal["challenge"] = "challenge"
    challenge: Challenge


# -- devices, pairing and the owner's view (issue 16 items 1, 2) ------------------------------------------
class DeviceOut(_Out):
    """A device: one API token of a user, named after the computer it was paired from."""

    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None = Field(None, description="Rounded: written at most once a minute.")
    current: bool = Field(False, description="The device whose token made this request.")


class PairIn(BaseModel):
    """POST /api/v1/pair: trade a one-time pairing code for this device's own token."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=40, examples=["ABCDE-23456"],
                      description="The code from `sendergate users invite` or the Staff page; "
                                  "case, spaces and dashes do not matter.")
    device: str = Field(min_length=1, max_length=100, examples=["alice-laptop"],
                        description="A name for this device (e.g. the computer's host name).")


class PairOut(_Out):
    """The new device's token (shown once), the device and whose it is."""

    token: str
    device: DeviceOut
    user: Me


class PairingCode(_Out):
    """A one-time pairing code for a user: single use, until `expires_at` (24 hours)."""

    code: str = Field(examples=["ABCDE-23456"])
    expires_at: datetime
    link: str = Field(description="The https form: a page on the gateway that shows the code; the desktop "
                                  "app's setup also accepts this link pasted whole.")
    app_link: str = Field(description="sendergate://pair?gateway=…&code=…, for a desktop app registered "
                                      "for the scheme; the setup accepts it pasted too.")


class UserOut(_Out):
    """A user as an admin sees them (GET /api/v1/users)."""

    id: int
    name: str
    role: Role
    addresses: list[str] = Field(description="The primary address first, then aliases and catch-alls.")
    devices: list[DeviceOut]
    mode: str | None = Field(None, description="The mailbox mode, where the gateway has modes.")


class UserList(_Out):
    items: list[UserOut]


class UserIn(BaseModel):
    """POST /api/v1/users: add a person; the answer carries their first pairing code."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(min_length=3, max_length=320, examples=["bob@example.org"])
    name: str = Field("", max_length=200)
    admin: bool = False


class UserCreated(_Out):
    user: UserOut
    pairing: PairingCode


# -- sign-up addresses (issue 19) ----------------------------------------------------------------------------
TagFolder = Literal["inbox", "tag", "screened"]
_FOLDER_TEXT = ("Where its mail goes: 'inbox', 'tag' (a folder of its own, [tags] folder_prefix + '.' + name) or "
                "'screened' (the Screened folder, marked); null: the gateway's default ([tags] folder).")


class TagIn(BaseModel):
    """POST /api/v1/tags: a sign-up address on one of the caller's addresses."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(min_length=3, max_length=320, examples=["alice@example.org"],
                         description="The caller's own address (an admin: anyone's), without a tag.")
    name: str = Field(min_length=1, max_length=32, examples=["acme"],
                      description="The site's name: a-z, 0-9, and '-' or '_' between them; case does not matter.")
    expires: str | None = Field(None, max_length=20, examples=["30d"],
                                description="A duration (30d, 12h, 2w) after which mail to it is refused; "
                                            "null: until revoked (a dated address: 30d).")
    dated: bool = Field(False, description="The expiry is written into the address with a MAC, so it cannot be "
                                           "edited or guessed (`alice+acme.20270105.k3x9q2m7p4ab@`).")
    folder: TagFolder | None = Field(None, description=_FOLDER_TEXT)


class TagPatch(BaseModel):
    """PATCH /api/v1/tags/{id}: change where the tag's mail goes."""

    model_config = ConfigDict(extra="forbid")
    folder: TagFolder | None = Field(description=_FOLDER_TEXT)


class TagSender(_Out):
    sender: str = Field(description="An envelope sender that wrote to the tag (lower case).")
    count: int


class TagOut(_Out):
    """A sign-up address: accepts mail from any sender (virus- and spam-scanned) until revoked or expired."""

    id: int
    user_id: int = Field(description="Whose it is: an admin passes it as `user` to GET /events with `tag`.")
    address: str = Field(description="The full address to hand out, e.g. alice+acme@example.org.")
    owner_address: str = Field(description="The user's address it is made on.")
    name: str
    dated: bool
    folder: TagFolder | None = Field(None, description=_FOLDER_TEXT)
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    status: Literal["live", "expired", "revoked"] = Field(
        description="live: mail to it is delivered; expired or revoked: refused (550 5.1.1).")
    received: int = Field(description="Messages delivered by it.")
    refused: int = Field(0, description="Messages refused at it: spam, viruses, and any after it was revoked "
                                        "or expired.")
    last_received_at: datetime | None = None
    senders: list[TagSender] = Field(default_factory=list, description="Its top five senders by messages.")


class TagList(_Out):
    items: list[TagOut]


class HistorySummary(_Out):
    """What we have seen from a sender (or their domain), in the caller's events."""

    counts: dict[str, int] = Field(description="verdict -> events counted; only verdicts seen.")
    total: int = Field(description="Events counted: all of them, or the newest few thousand (see `complete`).")
    complete: bool = Field(True, description="False: there are older events than those counted (a big domain); "
                           "`first_seen` is still the oldest of all.")
    first_seen: datetime | None = None
    last_seen: datetime | None = None


class HistoryEntry(ListEntryOut):
    """An allow or block entry that matches the sender (their address, their domain or a parent domain) or
    that one of the page's events names (`list:<id>`)."""

    deciding: bool = Field(description="This entry decides for the sender today, for its owner (most specific "
                           "wins; block beats allow), as the gateway would at RCPT.")


class SenderHistory(_Out):
    """One sender's history: their events (or their whole domain's), summaries, and the matching entries."""

    sender: str | None = Field(description="The address asked for, as given; null when a domain was asked for.")
    domain: str
    whole_domain: bool = Field(description="True: `items` are every event from the domain; false: from the sender.")
    items: list[Event] = Field(description="Newest first.")
    next_cursor: str | None = None
    sender_summary: HistorySummary | None = Field(None, description="On the first page (no cursor), for the "
                                                  "address; null for a domain or on later pages.")
    domain_summary: HistorySummary | None = Field(None, description="On the first page, for the whole domain.")
    entries: list[HistoryEntry]
