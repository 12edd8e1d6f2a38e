"""Generated mailboxes for IMAP harvest tests and benchmarks.

Each generated message states what a correct harvest must take from it
(`contacts`), written down here rather than parsed back, so a test compares
the harvester's header parsing against intent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from imapclient import IMAPClient

OWNER = "alice@example.test"
OWNER_ALIAS = "alice.alias@example.test"  # only known from the From of sent mail
_EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)


@dataclass
class Generated:
    raw: bytes
    message_id: str
    contacts: set[str] = field(default_factory=set)  # allowlist keys a harvest must yield
    flags: tuple[bytes, ...] = ()


def sent_messages(count: int, start: int = 0, pool: str = "friend", pool_size: int = 300) -> Iterator[Generated]:
    """Mail the owner sent: To a pool of friends, some Cc/Bcc, the odd machine or own address."""
    for i in range(start, start + count):
        friend = f"{pool}{i % pool_size}@example.net"
        to = [f"Friend {i % pool_size} <{friend}>"]
        contacts = {friend}
        cc: list[str] = []
        bcc: list[str] = []
        sender = OWNER_ALIAS if i % 10 == 3 else OWNER
        if i % 7 == 0:
            colleague = f"colleague{i % 50}@corp.example"
            cc.append(f'"Colleague, No. {i % 50}" <{colleague}>')
            contacts.add(colleague)
        if i % 11 == 0:
            hidden = f"hidden{i % 20}@bcc.example"
            bcc.append(hidden)
            contacts.add(hidden)
        if i % 97 == 1:
            to.append("Shop <no-reply@shop.example>")  # a machine role: skipped
        if i % 101 == 2:
            cc.append(f"Myself <{OWNER}>, Alias <{OWNER_ALIAS.upper()}>")  # own addresses: skipped
        if i % 89 == 4:
            to.append("=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <juergen@xn--mller-kva.example>")  # RFC 2047 name
            contacts.add("juergen@xn--mller-kva.example")
        if i % 113 == 5:
            to = ["undisclosed-recipients:;"]
            contacts = set()
            if i % 7 == 0:
                contacts.add(f"colleague{i % 50}@corp.example")
            if i % 11 == 0:
                contacts.add(f"hidden{i % 20}@bcc.example")
        mid = f"<sent-{pool}-{i}@mail.example.test>"
        headers = [
            f"From: Alice <{sender}>",
            f"To: {', '.join(to)}",
            *([f"Cc: {', '.join(cc)}"] if cc else []),
            *([f"Bcc: {', '.join(bcc)}"] if bcc else []),
            f"Subject: Message {i}",
            f"Date: {(_EPOCH + timedelta(minutes=i)).strftime('%a, %d %b %Y %H:%M:%S +0000')}",
            f"Message-ID: {mid}",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
        ]
        body = f"Hello,\r\n\r\nthis is message {i}.\r\n" + "Some body text to make it realistic.\r\n" * 5
        yield Generated(("\r\n".join(headers) + "\r\n\r\n" + body).encode(), mid, contacts)


def inbox_messages(count: int, start: int = 0, pool: str = "fan") -> Iterator[Generated]:
    """Mail the owner received; every 5th was answered (its sender is a contact)."""
    for j in range(start, start + count):
        answered = j % 5 == 0
        if j % 50 == 25:
            sender, name = "notifications@service.example", "Service"  # answered, but a machine
        else:
            sender, name = f"{pool}{j % 100}@inbox.example", f"Fan {j % 100}"
        contacts = {sender} if answered and not sender.startswith("notifications") else set()
        mid = f"<in-{pool}-{j}@inbox.example>"
        raw = (f"From: {name} <{sender}>\r\nTo: {OWNER}\r\nSubject: Question {j}\r\n"
               f"Date: {(_EPOCH + timedelta(minutes=j)).strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
               f"Message-ID: {mid}\r\n\r\nDo you have a minute?\r\n").encode()
        yield Generated(raw, mid, contacts, (b"\\Seen", b"\\Answered") if answered else (b"\\Seen",))


def append(client: IMAPClient, folder: str, messages: Iterable[Generated], chunk: int = 2000) -> int:
    """MULTIAPPEND in chunks (one command per chunk: ~10x faster than one APPEND each)."""
    batch: list[dict[str, object]] = []
    total = 0
    for msg in messages:
        batch.append({"msg": msg.raw, "flags": msg.flags})
        if len(batch) >= chunk:
            client.multiappend(folder, batch)
            total += len(batch)
            batch = []
    if batch:
        client.multiappend(folder, batch)
        total += len(batch)
    return total


def expected_contacts(messages: Iterable[Generated]) -> set[str]:
    found: set[str] = set()
    for msg in messages:
        found |= msg.contacts
    return found
