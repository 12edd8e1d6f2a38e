"""Thunderbird's own address book (`abook.sqlite`, `history.sqlite`; Thunderbird 78+).

Schema: `properties(card, name, value)` holds one row per field of a card
(`PrimaryEmail`, `SecondEmail`, `DisplayName`, `FirstName`, `LastName`; since
Thunderbird 102 also `_vCard`, the whole card as vCard 4.0, which may list
more addresses); `lists(uid, name, nickName, description)` and
`list_cards(list, card)` are mailing lists, whose members are cards already.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path

from sendergate.contacts.model import Collector, ContactsError, ImportResult
from sendergate.contacts.vcard import card_name, parse_cards, property_text

SQLITE_MAGIC = b"SQLite format 3\x00"
MORK_MAGIC = b"// <!-- <mdb:mork"


def read_abook(path: Path, result: ImportResult, collector: Collector) -> None:
    try:
        # Read-only: Thunderbird may be running and holding the file.
        db = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ContactsError(f"cannot open Thunderbird address book {path}: {exc}") from None
    try:
        rows = db.execute("SELECT card, name, value FROM properties ORDER BY rowid").fetchall()
    except sqlite3.Error as exc:
        raise ContactsError(
            f"{path} is not a Thunderbird address book (abook.sqlite): {exc}") from None
    finally:
        db.close()
    cards: dict[str, dict[str, str]] = defaultdict(dict)
    for card, name, value in rows:
        if card is not None and name is not None and value is not None:
            cards[str(card)][str(name)] = str(value)
    for fields in cards.values():
        emails = [fields.get("PrimaryEmail", ""), fields.get("SecondEmail", "")]
        name = fields.get("DisplayName", "") or " ".join(
            p for p in (fields.get("FirstName", ""), fields.get("LastName", "")) if p)
        if "_vCard" in fields:
            for card in parse_cards(fields["_vCard"], result.warnings):
                name = name or card_name(card)
                emails += [property_text(p, card.version) for p in card.properties if p.name == "EMAIL"]
        seen: set[str] = set()
        for raw in emails:
            raw = raw.strip()
            if raw and raw.lower() not in seen:
                seen.add(raw.lower())
                collector.add(raw, name)
