"""What every importer yields: contacts to allow, and what was dropped and why.

Every raw address goes through one `Collector`, so a vCard, a CSV row, a
Thunderbird card and a To: header of sent mail are validated, normalised and
deduplicated exactly the way the gateway later matches envelope senders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sendergate.policy.address import AddressError, parse, parse_pattern
from sendergate.policy.automated import is_role_local_part

# Reasons a raw address is dropped; the desktop preview groups by these.
INVALID = "invalid"
OWN_ADDRESS = "own address"
MACHINE_ROLE = "machine role"
DUPLICATE = "duplicate"


class ContactsError(Exception):
    """A mistake a user can cause (unreadable file, wrong password, server gone).

    `str()` is one readable line. `partial` holds what was imported before the
    failure, when that is worth keeping (e.g. an IMAP connection dropped after
    half the Sent folder; its state lets the next run resume).
    """

    def __init__(self, message: str, partial: ImportResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass(slots=True)
class Contact:
    """A correspondent worth allowing.

    `address` is the allowlist key (`parse_pattern(...).value`: lower-cased
    local part without +tag, IDNA domain), so importing it twice or from two
    sources lands on the same entry. `count` is how often it was seen (cards,
    or sent messages); `last_seen` is the newest Date of those messages.
    """

    address: str
    name: str = ""
    source: str = ""
    count: int = 1
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    raw: str
    reason: str


@dataclass(slots=True)
class ImportResult:
    """Contacts in first-seen order, what was skipped, and non-fatal warnings."""

    source: str
    contacts: list[Contact] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def addresses(self) -> set[str]:
        return {c.address for c in self.contacts}


@dataclass(slots=True)
class HarvestResult(ImportResult):
    """An IMAP harvest: contacts plus hashed Message-IDs of sent mail and the state to resume from.

    `sent_message_id_hashes` are `sendergate.policy.address.hash_message_id` values for
    POST /api/v1/sent-ids. `state` is JSON-serialisable; pass it to the next
    harvest so only new mail is read. `cancelled` is True when the cancel
    check stopped the harvest (the state then covers what was read).
    """

    sent_message_id_hashes: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    messages_read: int = 0
    cancelled: bool = False


def own_address_keys(addresses: Iterable[str]) -> frozenset[str]:
    """The user's own addresses as allowlist keys; an invalid one is a user error."""
    keys = set()
    for raw in addresses:
        try:
            keys.add(parse_pattern(raw).value)
        except AddressError as exc:
            raise ContactsError(f"own address {raw!r} is not valid: {exc}") from None
    return frozenset(keys)


class Collector:
    """Validates, normalises and deduplicates raw addresses into an ImportResult.

    `report_duplicates`: an address book listing the same address twice is
    worth telling (Skipped "duplicate"); for mail, repetition is the point and
    only raises `count`. `drop_roles`: addresses harvested from mail whose
    local part names a machine role (no-reply@, bookings@) are dropped; an
    address book's are kept, since the user chose to save them. Invalid and role addresses are reported once per
    distinct raw text, so 10,000 mails to one bad address give one line.
    """

    def __init__(self, result: ImportResult, own: frozenset[str] = frozenset(),
                 report_duplicates: bool = True, drop_roles: bool = True) -> None:
        self.result = result
        self._drop_roles = drop_roles
        self._own = own
        self._report_duplicates = report_duplicates
        self._by_key: dict[str, Contact] = {c.address: c for c in result.contacts}
        self._skipped_raw: set[tuple[str, str]] = {(s.raw, s.reason) for s in result.skipped}

    def add(self, raw: str, name: str = "", when: datetime | None = None) -> Contact | None:
        raw = raw.strip()
        if not raw:
            return None
        try:
            addr = parse(raw)
        except AddressError as exc:
            self._skip(raw, f"{INVALID}: {exc}")
            return None
        key = addr.key  # what parse_pattern(raw).value gives for an address
        if key in self._own:
            self._skip(raw, OWN_ADDRESS)
            return None
        if self._drop_roles and is_role_local_part(addr.local):
            self._skip(raw, MACHINE_ROLE)
            return None
        name = _clean_name(name, raw)
        known = self._by_key.get(key)
        if known is not None:
            known.count += 1
            if when is not None and (known.last_seen is None or when > known.last_seen):
                known.last_seen = when
            if not known.name and name:
                known.name = name
            if self._report_duplicates:
                self.result.skipped.append(Skipped(raw, DUPLICATE))
            return known
        contact = Contact(key, name, self.result.source, 1, when)
        self._by_key[key] = contact
        self.result.contacts.append(contact)
        return contact

    def _skip(self, raw: str, reason: str) -> None:
        if (raw, reason) not in self._skipped_raw:
            self._skipped_raw.add((raw, reason))
            self.result.skipped.append(Skipped(raw, reason))


def _clean_name(name: str, raw: str) -> str:
    """Drop names that only repeat the address (Outlook writes `jane@x (jane@x)`)."""
    name = " ".join(name.split()).strip(" '\"")
    if not name or name.lower() == raw.lower() or "@" in name and raw.lower() in name.lower():
        return ""
    return name
