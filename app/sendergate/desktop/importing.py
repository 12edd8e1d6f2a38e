"""The Import page's work, without widgets: read a source, preview it against the allowlist, import it
in chunks, harvest the IMAP account and upload the hashes of sent Message-IDs.

Pure pieces (`preview_rows`, `chunked`, `ImportTally`) are plain data in,
plain data out. The `read_*` and `resync` functions are the shell: they run
on a worker thread (through operations.Operation) and talk to the gateway
and the IMAP server. Every mistake a user can cause becomes an `ImportProblem`,
an ApiError, so Operation routes it to the page's message and not to the
crash dialog.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from ..contacts import Contact, ContactsError, HarvestResult, ImapHarvester, ImportResult, read_file
from ..contacts.imap import LoginRefused
from .api_client import ApiError, GatewayClient, ImportItem
from .i18n import tr
from .oauth import TokenSource

# How the app logs in to the mail account: its password (or app password), or OAuth2 access tokens.
Credential = str | TokenSource

T = TypeVar("T")

NEW, PRESENT, INVALID = "new", "present", "invalid"
IMPORT_CHUNK = 250  # entries per POST: small enough that progress moves and Cancel answers within a request
DRY_RUN_CHUNK = 5000
SENT_IDS_CHUNK = 10_000  # the API takes up to 100,000 per call; smaller calls keep each one short


class ImportProblem(ApiError):
    """A source could not be read (bad file, wrong IMAP password, server gone): one line for a person."""


@dataclass(slots=True)
class PreviewRow:
    """One address of the preview: the contact, and what the gateway says it already has."""

    address: str
    name: str
    source: str
    count: int
    last_seen: datetime | None
    status: str  # NEW, PRESENT (already allowed) or INVALID (the gateway refuses it)
    error: str = ""
    covered_by: str = ""  # NEW but already let in by this @domain allow entry


@dataclass(frozen=True)
class SourceRead:
    """What reading one source gave: the preview, and for IMAP the state to save once it is imported."""

    label: str  # "contacts.vcf", "IMAP alice@imap.example.org"
    rows: list[PreviewRow]
    skipped: int
    warnings: tuple[str, ...]
    problem: str = ""  # the read stopped early (e.g. the connection dropped); rows hold what was read
    account: str = ""  # IMAP: user@host
    imap_state: dict[str, Any] | None = None
    messages_read: int = 0
    sent_ids_added: int = 0
    cancelled: bool = False


@dataclass
class ImportTally:
    """Running totals of a chunked import."""

    total: int
    done: int = 0
    added: int = 0
    present: int = 0
    invalid: int = 0
    imported: list[str] = field(default_factory=list)  # entries the gateway now has (added or present)

    def add(self, items: Sequence[ImportItem]) -> None:
        self.done += len(items)
        for item in items:
            if item.status == "added":
                self.added += 1
            elif item.status == "present":
                self.present += 1
            else:
                self.invalid += 1
            if item.status in ("added", "present"):
                self.imported.append(item.entry)


@dataclass(frozen=True)
class ImapAccount:
    host: str
    port: int
    security: str  # 'tls', 'starttls', 'none'
    user: str

    @property
    def key(self) -> str:
        """How the harvest state is filed (ImapHarvester.account: the same mailbox on any port)."""
        return f"{self.user}@{self.host}"

    def check(self) -> None:
        """Raises ImportProblem for an account that cannot be used as entered."""
        if not self.host.strip():
            raise ImportProblem(tr("Enter the IMAP server's name."))
        if not self.user.strip():
            raise ImportProblem(tr("Enter the IMAP user name."))
        if self.security == "none" and not is_this_computer(self.host):
            raise ImportProblem(tr("%1 is not this computer: use TLS or STARTTLS, or the password would travel "
                                   "over the network unencrypted.").replace("%1", self.host))

    def harvester(self, password: str | None = None, own_addresses: Iterable[str] = (), *,
                  oauth2_token: str | None = None) -> ImapHarvester:
        self.check()
        try:
            return ImapHarvester(self.host.strip(), self.port, security=self.security, username=self.user.strip(),
                                 password=password, oauth2_token=oauth2_token, own_addresses=own_addresses,
                                 timeout=30)
        except ContactsError as exc:
            raise ImportProblem(str(exc)) from None

    def with_login(self, credential: Credential, work: Callable[[ImapHarvester], T],
                   own_addresses: Iterable[str] = ()) -> T:
        """Run `work` with a harvester logged in by `credential`. An OAuth2 access token the server
        refuses is refreshed once and tried again (revoked early, or the clocks disagree)."""
        if isinstance(credential, str):
            return work(self.harvester(credential, own_addresses))
        token = credential.access_token()
        try:
            return work(self.harvester(own_addresses=own_addresses, oauth2_token=token))
        except LoginRefused:
            token = credential.access_token(force_refresh=True)
        return work(self.harvester(own_addresses=own_addresses, oauth2_token=token))


def is_this_computer(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- pure ----------------------------------------------------------------------------------------
def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def preview_rows(contacts: Sequence[Contact], verdicts: Sequence[ImportItem]) -> list[PreviewRow]:
    """Contacts and the gateway's dry-run answer for each (same order) -> the preview's rows."""
    if len(contacts) != len(verdicts):
        raise ValueError(f"{len(contacts)} contacts but {len(verdicts)} dry-run results")
    rows = []
    for contact, item in zip(contacts, verdicts, strict=True):
        status = {"added": NEW, "present": PRESENT}.get(item.status, INVALID)
        rows.append(PreviewRow(item.entry if status != INVALID else contact.address, contact.name, contact.source,
                               contact.count, contact.last_seen, status, item.error, item.covered_by))
    return rows


# -- the shell: runs on a worker thread -----------------------------------------------------------
def dry_run(client: GatewayClient, contacts: Sequence[Contact]) -> list[PreviewRow]:
    items: list[ImportItem] = []
    for chunk in chunked([c.address for c in contacts], DRY_RUN_CHUNK):
        items += client.import_allow(list(chunk), dry_run=True).items
    return preview_rows(contacts, items)


def own_addresses(client: GatewayClient) -> tuple[str, ...]:
    """The user's own addresses (never worth allowing), from the gateway."""
    return client.me().addresses


def read_address_book(client: GatewayClient, path: str) -> SourceRead:
    try:
        result: ImportResult = read_file(path, own_addresses(client))
    except ContactsError as exc:
        raise ImportProblem(str(exc)) from None
    return SourceRead(os.path.basename(path), dry_run(client, result.contacts), len(result.skipped),
                      tuple(result.warnings))


@dataclass(frozen=True)
class Harvested:
    result: HarvestResult
    problem: str
    sent_ids_added: int


def harvest_and_upload(client: GatewayClient, account: ImapAccount, credential: Credential,
                       state: dict[str, Any] | None, progress: Callable[[int, int], None],
                       cancelled: Callable[[], bool]) -> Harvested:
    """Read new sent and answered mail, then upload the hashes of the sent Message-IDs.

    A harvest cut short (connection dropped) keeps what it read: its hashes are
    uploaded and its contacts offered, and `problem` says what happened.
    """
    problem = ""
    try:
        result = account.with_login(
            credential, lambda h: h.harvest(state, progress=progress, cancelled=cancelled), own_addresses(client))
    except ContactsError as exc:
        if not isinstance(exc.partial, HarvestResult):
            raise ImportProblem(str(exc)) from None
        result, problem = exc.partial, str(exc)
    added = 0
    for chunk in chunked(result.sent_message_id_hashes, SENT_IDS_CHUNK):
        added += client.upload_sent_ids(list(chunk))
    return Harvested(result, problem, added)


def read_imap(client: GatewayClient, account: ImapAccount, credential: Credential, state: dict[str, Any] | None,
              progress: Callable[[int, int], None], cancelled: Callable[[], bool]) -> SourceRead:
    h = harvest_and_upload(client, account, credential, state, progress, cancelled)
    r = h.result
    return SourceRead(f"IMAP {account.user} ({account.host})", dry_run(client, r.contacts), len(r.skipped),
                      tuple(r.warnings), h.problem, account.key, r.state, r.messages_read, h.sent_ids_added,
                      r.cancelled)


@dataclass(frozen=True)
class Resynced:
    account: str
    imap_state: dict[str, Any]
    messages_read: int
    sent_ids_added: int
    added: int
    present: int
    problem: str


def resync(client: GatewayClient, account: ImapAccount, credential: Credential, state: dict[str, Any] | None,
           note: str, cancelled: Callable[[], bool]) -> Resynced:
    """The periodic re-sync: new mail since `state`; its correspondents are allowed without a preview
    (the user turned this on), its sent Message-IDs uploaded."""
    h = harvest_and_upload(client, account, credential, state, lambda done, total: None, cancelled)
    tally = ImportTally(len(h.result.contacts))
    for chunk in chunked([c.address for c in h.result.contacts], IMPORT_CHUNK):
        if cancelled():
            raise ImportProblem(tr("The re-sync was stopped before it finished; the next one carries on."))
        tally.add(client.import_allow(list(chunk), note=note).items)
    return Resynced(account.key, h.result.state, h.result.messages_read, h.sent_ids_added, tally.added,
                    tally.present, h.problem)


def file_filter() -> str:
    """The open dialog's filter: every format read_file detects."""
    return "*.vcf *.vcard *.csv *.ldif *.ldi *.sqlite *.txt"


__all__ = ["NEW", "PRESENT", "INVALID", "IMPORT_CHUNK", "ImportProblem", "PreviewRow", "SourceRead", "ImportTally",
           "ImapAccount", "chunked", "preview_rows", "read_address_book", "read_imap", "resync"]
