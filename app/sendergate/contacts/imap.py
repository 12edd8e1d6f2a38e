"""Harvest known correspondents from the user's IMAP account.

Who the user wrote to (To/Cc/Bcc of the Sent folder) and who they replied to
(From of \\Answered messages in INBOX) are people they know. The Message-IDs
of sent mail are hashed for reply recognition (SPEC §4.2 item 8).

Only headers are fetched (BODY.PEEK, so nothing is marked read), in batches,
UIDs ascending, so that after each batch the state can say "read up to UID
n": a second run, or a run after a dropped connection, reads only what is
new. A change of UIDVALIDITY means the server renumbered the folder; then it
is read again from the start.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imapclient import SENT, SocketTimeout

from sendergate.contacts.model import (
    OWN_ADDRESS,
    Collector,
    ContactsError,
    HarvestResult,
    Skipped,
    own_address_keys,
)
from sendergate.policy.address import AddressError, hash_message_id, parse

STATE_VERSION = 1
SECURITY = ("tls", "starttls", "none")
# Names clients give the Sent folder when the server does not flag it (RFC 6154);
# compared case-insensitively, with and without an `INBOX.` prefix.
FALLBACK_SENT_NAMES = (
    "Sent", "Sent Items", "Sent Messages", "Sent Mail", "[Gmail]/Sent Mail", "[Google Mail]/Sent Mail",
    "Gesendet", "Gesendete Elemente", "Gesendete Objekte", "Envoyés", "Éléments envoyés",
    "Elementos enviados", "Enviados", "Posta inviata", "Inviati", "Verzonden items", "Verzonden",
    "Skickat", "Skickade objekt", "Sendt", "Sendte elementer", "Lähetetyt", "Wysłane",
    "Odeslaná pošta", "Отправленные",
)
_SENT_FIELDS = b"BODY.PEEK[HEADER.FIELDS (FROM TO CC BCC MESSAGE-ID DATE)]"
_ANSWERED_FIELDS = b"BODY.PEEK[HEADER.FIELDS (FROM DATE)]"

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


class LoginRefused(ContactsError):
    """The server refused these credentials (not a network fault): an OAuth2 caller refreshes and retries once."""


class ImapHarvester:
    """One IMAP account to harvest. Construct, then call `harvest(state)`.

    `security`: "tls" (implicit TLS, port 993), "starttls" (port 143, upgraded
    before login) or "none" (loopback tests, trusted networks only).
    Give `password` (or an app password) or `oauth2_token` (an OAuth2 access token:
    OAUTHBEARER, RFC 7628, when the server offers it, else XOAUTH2).
    `sent_folder` overrides the SPECIAL-USE / name lookup.
    `ssl_context` defaults to the system's verified context.
    """

    def __init__(self, host: str, port: int | None = None, *, security: str = "tls",
                 username: str, password: str | None = None, oauth2_token: str | None = None,
                 sent_folder: str | None = None, own_addresses: Iterable[str] = (),
                 answered_folders: Sequence[str] = ("INBOX",), batch_size: int = 1000,
                 timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None) -> None:
        if security not in SECURITY:
            raise ContactsError(f"IMAP security must be one of {', '.join(SECURITY)}, not {security!r}")
        if (password is None) == (oauth2_token is None):
            raise ContactsError("give either an IMAP password or an OAuth2 token")
        self.host = host
        self.port = port or (993 if security == "tls" else 143)
        self.security = security
        self.username = username
        self._password = password
        self._oauth2_token = oauth2_token
        self.sent_folder = sent_folder
        self.own = own_address_keys(own_addresses)
        self.answered_folders = tuple(answered_folders)
        self.batch_size = batch_size
        self.timeout = timeout
        self.ssl_context = ssl_context

    @property
    def account(self) -> str:
        # Not the port: switching 143/STARTTLS to 993/TLS keeps the same mailbox and state.
        return f"{self.username}@{self.host}"

    # -- the shell: network --------------------------------------------------

    def harvest(self, state: Mapping[str, Any] | None = None, progress: Progress | None = None,
                cancelled: CancelCheck | None = None) -> HarvestResult:
        """Read new sent and answered mail since `state`; return contacts, hashes and the new state.

        Raises ContactsError for what a user can fix (server unreachable,
        login refused, no Sent folder). When the connection drops mid-way the
        error's `partial` holds everything read so far and a state the next
        run resumes from.
        """
        state = _usable_state(state, self.account)
        result = HarvestResult("imap", state=state)
        own = set(self.own) | set(state.get("own", ()))
        run = _Run(self, result, own, progress or (lambda done, total: None),
                   cancelled or (lambda: False))
        client = self._connect()
        try:
            self._login(client)
            run.client = client
            try:
                run.execute()
            except (imaplib.IMAP4.abort, OSError) as exc:
                run.finish()
                raise ContactsError(
                    f"the connection to {self.host} was lost after {result.messages_read} messages "
                    f"({_reason(exc)}); what was read is kept and the next import continues from there",
                    partial=result) from None
            except IMAPClientError as exc:
                run.finish()
                raise ContactsError(f"IMAP server {self.host} refused a command: {_reason(exc)}",
                                    partial=result) from None
            run.finish()
            return result
        finally:
            _close_quietly(client)

    def sent_folder_name(self) -> str:
        """Connect, log in and tell which folder would be harvested as Sent (for the setup dialog)."""
        client = self._connect()
        try:
            self._login(client)
            return find_sent_folder(client.list_folders(), self.sent_folder)
        finally:
            _close_quietly(client)

    def _connect(self) -> IMAPClient:
        where = f"{self.host}:{self.port}"
        try:
            client = IMAPClient(self.host, self.port, ssl=self.security == "tls",
                                ssl_context=self._context(),
                                # documented to take a SocketTimeout; annotated float | None
                                timeout=SocketTimeout(connect=self.timeout, read=self.timeout))  # type: ignore[arg-type]
        except socket.gaierror as exc:
            raise ContactsError(f"cannot find IMAP server {self.host}: {exc.strerror}") from None
        except ssl.SSLError as exc:
            raise ContactsError(f"TLS with IMAP server {where} failed: {_reason(exc)}") from None
        except TimeoutError:
            raise ContactsError(f"IMAP server {where} did not answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise ContactsError(f"cannot connect to IMAP server {where}: {_reason(exc)}") from None
        except (imaplib.IMAP4.error, IMAPClientError) as exc:
            raise ContactsError(f"{where} does not talk IMAP: {_reason(exc)}") from None
        if self.security == "starttls":
            try:
                client.starttls(self._context())
            except ssl.SSLError as exc:
                _close_quietly(client)
                raise ContactsError(f"STARTTLS with IMAP server {where} failed: {_reason(exc)}") from None
            except (imaplib.IMAP4.error, IMAPClientError, OSError) as exc:
                _close_quietly(client)
                raise ContactsError(f"IMAP server {where} does not offer STARTTLS: {_reason(exc)}") from None
        return client

    def _context(self) -> ssl.SSLContext | None:
        if self.security == "none":
            return None
        return self.ssl_context or ssl.create_default_context()

    def _login(self, client: IMAPClient) -> None:
        try:
            if self._oauth2_token is not None:
                if client.has_capability("AUTH=OAUTHBEARER"):
                    client.oauthbearer_login(self.username, self._oauth2_token)
                else:  # Microsoft 365 offers only XOAUTH2
                    client.oauth2_login(self.username, self._oauth2_token)
            else:
                client.login(self.username, self._password or "")  # one of the two is set (__init__)
        except LoginError as exc:
            _close_quietly(client)
            how = "OAuth2 token" if self._oauth2_token is not None else "password"
            raise LoginRefused(f"IMAP server {self.host} refused the login of {self.username} "
                                f"with this {how}: {_reason(exc)}") from None
        except (imaplib.IMAP4.error, IMAPClientError, OSError) as exc:
            _close_quietly(client)
            raise ContactsError(f"login to IMAP server {self.host} failed: {_reason(exc)}") from None


class _Run:
    """One harvest's progress through its folders; keeps `result` consistent after every batch."""

    def __init__(self, harvester: ImapHarvester, result: HarvestResult, own: set[str],
                 progress: Progress, cancelled: CancelCheck) -> None:
        self.h = harvester
        self.result = result
        self.own = own
        self.progress = progress
        self.cancelled = cancelled
        self.collector = Collector(result, frozenset(own), report_duplicates=False, drop_roles=True)
        self.client: IMAPClient | None = None
        self.done = 0
        self.total = 0
        self.selected: str | None = None
        self._sent_ids: set[str] = set()

    def execute(self) -> None:
        assert self.client is not None
        sent = find_sent_folder(self.client.list_folders(), self.h.sent_folder)
        plan = [(sent, True)] + [(f, False) for f in self.h.answered_folders if f != sent]
        # Look up new UIDs with Sent last and fetch it first: on a big Maildir
        # every SELECT costs a directory scan, so Sent is selected only once.
        todo: list[tuple[str, bool, list[int]]] = []
        for folder, is_sent in reversed(plan):
            uids = self._new_uids(folder, is_sent)
            todo.insert(0, (folder, is_sent, uids))
            self.total += len(uids)
        self.progress(0, self.total)
        for folder, is_sent, uids in todo:
            if uids and self.selected != folder:
                self._select(folder)
            for start in range(0, len(uids), self.h.batch_size):
                if self.cancelled():
                    self.result.cancelled = True
                    return
                batch = uids[start:start + self.h.batch_size]
                fields = _SENT_FIELDS if is_sent else _ANSWERED_FIELDS
                fetched = self.client.fetch(batch, [fields])
                self._digest(fetched, is_sent)
                self._advance(folder, batch[-1])
                self.done += len(batch)
                self.result.messages_read += len(batch)
                self.progress(self.done, self.total)

    def _select(self, folder: str) -> dict[bytes, Any]:
        assert self.client is not None
        info = self.client.select_folder(folder, readonly=True)
        self.selected = folder
        return info

    def _new_uids(self, folder: str, is_sent: bool) -> list[int]:
        assert self.client is not None
        folders = self.result.state.setdefault("folders", {})
        known = folders.get(folder)
        try:
            if known:
                # STATUS first: when nothing arrived, no SELECT (a Maildir scan) is needed.
                status = self.client.folder_status(folder, [b"UIDVALIDITY", b"UIDNEXT"])
                if (int(status.get(b"UIDVALIDITY", -1)) == known.get("uidvalidity")
                        and int(status.get(b"UIDNEXT", 0)) <= int(known.get("last_uid", 0)) + 1):
                    return []
            info = self._select(folder)
        except IMAPClientError as exc:
            if is_sent:
                raise ContactsError(f"cannot open the Sent folder {folder!r}: {_reason(exc)}") from None
            self.result.warnings.append(f"folder {folder!r} skipped: {_reason(exc)}")
            return []
        uidvalidity = int(info.get(b"UIDVALIDITY", 0))
        last_uid = 0
        if known and known.get("uidvalidity") == uidvalidity:
            last_uid = int(known.get("last_uid", 0))
        elif known:
            self.result.warnings.append(f"folder {folder!r} was renumbered by the server (UIDVALIDITY "
                                        "changed): it is read again from the start")
        folders[folder] = {"uidvalidity": uidvalidity, "last_uid": last_uid}
        if int(info.get(b"EXISTS", 0)) == 0:
            return []
        # A reply to an old message flags that old message \Answered after our
        # last run; its recipient is in the new Sent mail anyway, so new UIDs suffice.
        criteria: list[Any] = ["UID", f"{last_uid + 1}:*"]
        if not is_sent:
            criteria = ["ANSWERED", *criteria]
        # `n:*` always matches the highest UID, even below n: filter.
        return sorted(uid for uid in self.client.search(criteria) if uid > last_uid)

    def _digest(self, fetched: Mapping[int, Mapping[bytes, Any]], is_sent: bool) -> None:
        headers = [_header_bytes(data) for _uid, data in sorted(fetched.items())]
        parsed = [_HEADER_PARSER.parsebytes(h) for h in headers if h is not None]
        if is_sent:
            # Whatever the Sent folder says it is From is one of the user's own addresses (aliases too).
            for msg in parsed:
                for _name, raw in getaddresses(msg.get_all("from", [])):
                    self._learn_own(raw)
        for msg in parsed:
            when = _date(msg.get("date"))
            if is_sent:
                mid = msg.get("message-id")
                if mid and mid.strip():
                    digest = hash_message_id(mid)
                    if digest not in self._sent_ids:
                        self._sent_ids.add(digest)
                        self.result.sent_message_id_hashes.append(digest)
                values = msg.get_all("to", []) + msg.get_all("cc", []) + msg.get_all("bcc", [])
            else:
                values = msg.get_all("from", [])
            for name, raw in getaddresses([str(v) for v in values]):
                if raw:
                    self.collector.add(raw, _decode_name(name), when)

    def _learn_own(self, raw: str) -> None:
        try:
            key = parse(raw).key
        except AddressError:
            return
        if key not in self.own:
            self.own.add(key)
            self.collector = Collector(self.result, frozenset(self.own), report_duplicates=False, drop_roles=True)

    def _advance(self, folder: str, last_uid: int) -> None:
        self.result.state["folders"][folder]["last_uid"] = last_uid

    def finish(self) -> None:
        """Drop contacts later recognised as the user's own, remember own addresses for next time."""
        kept = []
        for contact in self.result.contacts:
            if contact.address in self.own - self.h.own:
                self.result.skipped.append(Skipped(contact.address, OWN_ADDRESS))
            else:
                kept.append(contact)
        self.result.contacts[:] = kept
        self.result.state["own"] = sorted(self.own - self.h.own)


_HEADER_PARSER = BytesHeaderParser(policy=compat32)


def _usable_state(state: Mapping[str, Any] | None, account: str) -> dict[str, Any]:
    """A copy of the previous state if it belongs to this account and version, else a fresh one."""
    if state and state.get("version") == STATE_VERSION and state.get("account") == account:
        return {"version": STATE_VERSION, "account": account,
                "folders": {k: dict(v) for k, v in dict(state.get("folders", {})).items()},
                "own": list(state.get("own", []))}
    return {"version": STATE_VERSION, "account": account, "folders": {}, "own": []}


def find_sent_folder(folders: Sequence[tuple[Sequence[bytes], Any, str]], override: str | None) -> str:
    """The Sent folder: the user's override, else the \\Sent SPECIAL-USE flag, else a known name."""
    names = [name for _flags, _delim, name in folders]
    if override:
        if override in names:
            return override
        raise ContactsError(f"the IMAP account has no folder {override!r} "
                            f"(it has: {', '.join(sorted(names)[:20])})")
    for flags, _delim, name in folders:
        if SENT in flags or SENT.lower() in (f.lower() for f in flags):
            return name
    by_lower = {name.lower(): name for name in names}
    for candidate in FALLBACK_SENT_NAMES:
        for prefix in ("", "inbox.", "inbox/"):
            found = by_lower.get(prefix + candidate.lower())
            if found is not None:
                return found
    raise ContactsError("no Sent folder found on the IMAP account (no folder is flagged \\Sent and "
                        "none has a usual name): choose it in the import settings")


def _header_bytes(data: Mapping[bytes, Any]) -> bytes | None:
    for key, value in data.items():
        if key.startswith(b"BODY[") and isinstance(value, bytes):
            return value
    return None


def _decode_name(name: str) -> str:
    if "=?" not in name:
        return name
    try:
        return str(make_header(decode_header(name)))
    except (UnicodeError, LookupError, ValueError):
        return name


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, (bytes, bytearray)):
        text = exc.decode(errors="replace")
    text = text.strip() or type(exc).__name__
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return " ".join(text.split())


def _close_quietly(client: IMAPClient) -> None:
    """Log out if the connection still works; a dead one only needs its socket closed."""
    try:
        client.logout()
    except (imaplib.IMAP4.error, IMAPClientError, OSError):
        try:
            client.shutdown()
        except (imaplib.IMAP4.error, OSError):
            pass  # the socket is already gone; nothing left to release
