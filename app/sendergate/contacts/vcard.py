"""vCard 2.1, 3.0 and 4.0 (RFC 2426, RFC 6350 and the 1996 versit 2.1 text).

A small tolerant reader rather than vobject: vobject needs ~2.3 s for 10,000
cards here (the target is < 2 s), and it rejects what Outlook really writes
for 2.1 — QUOTED-PRINTABLE soft line breaks (`=` at the end of a line, next
line not indented) — and raises on the first broken card, losing the rest.
Only what an allowlist needs is read: EMAIL (any group, `item1.EMAIL`),
FN / N / ORG for a name, and 4.0 group members given as `mailto:`.
"""

from __future__ import annotations

import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from sendergate.contacts.model import Collector, ContactsError, ImportResult
from sendergate.contacts.text import decode_legacy

_LINE_BREAK = re.compile(r"\r\n|\n|\r")
_ESCAPE = re.compile(r"\\(.)", re.S)
_MAILTO = re.compile(r"^\s*mailto:", re.I)


@dataclass(slots=True)
class Property:
    name: str  # upper case, group removed
    params: dict[str, list[str]]  # upper-case keys; bare 2.1 params under "TYPE"
    value: str  # raw (still escaped / encoded) value


@dataclass(slots=True)
class Card:
    version: str = ""
    properties: list[Property] = field(default_factory=list)
    finished: bool = False
    first_line: int = 0


def looks_like_vcard(text: str) -> bool:
    return re.search(r"^[ \t]*BEGIN[ \t]*:[ \t]*VCARD[ \t]*\r?$", text[:65536], re.I | re.M) is not None


def read_vcards(text: str, result: ImportResult, collector: Collector) -> None:
    """Add every card's addresses to `collector`; broken lines and cards become warnings."""
    cards = 0
    for card in parse_cards(text, result.warnings):
        cards += 1 if card.properties else 0
        if not card.finished:
            result.warnings.append(
                f"card starting at line {card.first_line} has no END:VCARD (file truncated?); "
                "its addresses were kept")
        name = card_name(card)
        seen: set[str] = set()
        for prop in card.properties:
            if prop.name == "EMAIL" or (prop.name == "MEMBER" and _MAILTO.match(prop.value)):
                raw = _MAILTO.sub("", property_text(prop, card.version)).strip()
                if raw.lower() in seen:  # the same address twice in one card is not a duplicate contact
                    continue
                seen.add(raw.lower())
                collector.add(raw, "" if prop.name == "MEMBER" else name)
    if cards == 0:
        raise ContactsError("no vCard could be read: BEGIN:VCARD is never followed by a card")


def parse_cards(text: str, warnings: list[str]) -> Iterator[Card]:
    """Split into cards of properties, unfolding continuation and QP soft-break lines."""
    card: Card | None = None
    depth = 0
    for lineno, line in _logical_lines(text):
        if not line.strip():
            continue
        name_part, sep, value = _split_value(line)
        if not sep:
            if card is not None:
                warnings.append(f"line {lineno}: not a vCard property, ignored: {line[:60]!r}")
            continue
        prop = _property(name_part, value)
        if prop.name == "BEGIN" and value.strip().upper() == "VCARD":
            if card is not None:  # a 2.1 AGENT card nests; anything else is a missing END
                if card.version.startswith("2"):
                    depth += 1
                    continue
                yield card
            card, depth = Card(first_line=lineno), 0
            continue
        if card is None:
            continue
        if prop.name == "END" and value.strip().upper() == "VCARD":
            if depth:
                depth -= 1
                continue
            card.finished = True
            yield card
            card = None
            continue
        if depth:
            continue
        if prop.name == "VERSION":
            card.version = value.strip()
        card.properties.append(prop)
    if card is not None:
        yield card


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Unfolded lines with the number of their first physical line."""
    current: list[str] = []
    start = 0
    qp_soft = False
    for number, line in enumerate(_LINE_BREAK.split(text), 1):
        if current and (line[:1] in (" ", "\t") or qp_soft):
            # RFC folding drops one blank; a QP soft break (`=` at the end) joins as is.
            current.append(line if qp_soft else line[1:])
        else:
            if current:
                yield start, "".join(current)
            current, start = [line], number
        qp_soft = line.endswith("=") and _is_quoted_printable_line("".join(current))
        if qp_soft:
            current[-1] = current[-1][:-1]
    if current:
        yield start, "".join(current)


def _is_quoted_printable_line(line: str) -> bool:
    head = line.split(":", 1)[0].upper()
    return "QUOTED-PRINTABLE" in head


def _split_value(line: str) -> tuple[str, str, str]:
    """Split `NAME;PARAM="a:b":value` at the first colon outside quotes."""
    if '"' not in line:
        return line.partition(":")
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == ":" and not quoted:
            return line[:i], ":", line[i + 1:]
    return line, "", ""


def _property(name_part: str, value: str) -> Property:
    pieces = name_part.split(";")
    name = pieces[0].strip().upper().rsplit(".", 1)[-1]  # `item1.EMAIL` -> EMAIL
    params: dict[str, list[str]] = {}
    for piece in pieces[1:]:
        key, eq, val = piece.partition("=")
        if eq:
            params.setdefault(key.strip().upper(), []).extend(
                v.strip().strip('"') for v in val.split(","))
        elif key.strip():  # 2.1 bare parameter: `EMAIL;INTERNET;PREF`, `;QUOTED-PRINTABLE`
            bare = key.strip().upper()
            if bare in ("QUOTED-PRINTABLE", "BASE64", "8BIT", "7BIT"):
                params.setdefault("ENCODING", []).append(bare)
            else:
                params.setdefault("TYPE", []).append(bare)
    return Property(name, params, value)


def property_text(prop: Property, version: str) -> str:
    """A property's value as text: QUOTED-PRINTABLE decoded in its CHARSET, escapes undone."""
    value = prop.value
    encodings = [e.upper() for e in prop.params.get("ENCODING", ())]
    if "QUOTED-PRINTABLE" in encodings:
        charset = (prop.params.get("CHARSET") or ["utf-8"])[0]
        raw = quopri.decodestring(value.encode("latin-1", errors="replace"))
        value = decode_legacy(raw, charset)
    if not version.startswith("2"):  # 2.1 has no backslash escapes in most values
        value = _ESCAPE.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)
    return value


def card_name(card: Card) -> str:
    """FN, else the N components in reading order, else ORG."""
    by_name: dict[str, Property] = {}
    for prop in card.properties:
        by_name.setdefault(prop.name, prop)
    if "FN" in by_name:
        fn = property_text(by_name["FN"], card.version).strip()
        if fn:
            return fn
    if "N" in by_name:
        parts = _split_structured(by_name["N"], card.version)
        family, given, middle, prefix, suffix = (parts + [""] * 5)[:5]
        name = " ".join(p for p in (prefix, given, middle, family, suffix) if p.strip())
        if name:
            return name
    if "ORG" in by_name:
        return _split_structured(by_name["ORG"], card.version)[0]
    return ""


def _split_structured(prop: Property, version: str) -> list[str]:
    parts = re.split(r"(?<!\\);", prop.value)
    return [property_text(Property(prop.name, prop.params, p), version).strip() for p in parts]
