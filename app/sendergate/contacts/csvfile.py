"""CSV exports of Outlook, Google Contacts and Thunderbird, told apart by their header.

- Google (contacts.google.com "Google CSV"): `E-mail 1 - Value`, several
  addresses in one cell joined by ` ::: `; names in `Name` (old) or
  `First Name`/`Last Name` (2023 export).
- Outlook (desktop "Export to a file" and outlook.com): `E-mail Address`,
  `E-mail 2 Address`, `E-mail 3 Address`; Exchange contacts carry an X.500
  path (`/o=…/cn=…`) instead of an address, which is reported invalid.
- Thunderbird: `Primary Email`, `Secondary Email`, `Display Name`.
- Anything else (localised headers, hand-made lists): every column whose
  header mentions e-mail, or failing that, whose cells hold addresses.
"""

from __future__ import annotations

import csv
import io
import re

from sendergate.contacts.model import Collector, ContactsError, ImportResult

_GOOGLE_MULTI = ":::"
_MAIL_HEADER = re.compile(r"e-?mail|courriel|correo|posta elettronica|mailadres", re.I)
_NOT_ADDRESS_HEADER = re.compile(r"type|typ\b|label|display|name|kind|angezeigt", re.I)

DIALECTS = ("google", "outlook", "thunderbird", "generic")


def looks_like_csv(text: str) -> bool:
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    if not first.strip() or "\x00" in text[:4096]:
        return False
    return any(d in first for d in ",;\t") or "@" in first or bool(_MAIL_HEADER.search(first))


def detect_dialect(header: list[str]) -> str:
    names = {h.strip().lower() for h in header}
    if any(re.fullmatch(r"e-mail \d+ - value", n) for n in names):
        return "google"
    if "e-mail address" in names and ("e-mail 2 address" in names or "e-mail display name" in names):
        return "outlook"
    if "primary email" in names and "secondary email" in names:
        return "thunderbird"
    return "generic"


def read_csv(text: str, result: ImportResult, collector: Collector) -> str:
    """Add every row's addresses; return the dialect detected."""
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise ContactsError("the CSV file has no header line")
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)  # Outlook uses ";" where "," is the decimal mark
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
        rows = list(reader)
    except csv.Error as exc:
        raise ContactsError(f"the CSV file is malformed: {exc}") from None
    dialect = detect_dialect(header)
    index = {h.strip().lower(): i for i, h in enumerate(header)}
    mail_columns = _mail_columns(dialect, header, rows)
    if not mail_columns:
        result.warnings.append("no e-mail column found in the CSV header "
                               f"({', '.join(h for h in header[:8] if h)}…): nothing to import")
        return dialect
    result.source = f"csv:{dialect}"
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        name = _row_name(dialect, index, row)
        seen: set[str] = set()
        for col in mail_columns:
            if col >= len(row):
                continue
            for raw in row[col].split(_GOOGLE_MULTI) if dialect in ("google", "generic") else [row[col]]:
                raw = raw.strip()
                if raw and raw.lower() not in seen:
                    seen.add(raw.lower())
                    collector.add(raw, name)
    return dialect


def _mail_columns(dialect: str, header: list[str], rows: list[list[str]]) -> list[int]:
    lower = [h.strip().lower() for h in header]
    if dialect == "google":
        return [i for i, h in enumerate(lower) if re.fullmatch(r"e-mail \d+ - value", h)]
    if dialect == "outlook":
        return [i for i, h in enumerate(lower) if re.fullmatch(r"e-mail( \d)? address", h)]
    if dialect == "thunderbird":
        return [lower.index("primary email"), lower.index("secondary email")]
    by_header = [i for i, h in enumerate(header)
                 if _MAIL_HEADER.search(h) and not _NOT_ADDRESS_HEADER.search(h)]
    if by_header:
        return by_header
    if "@" in "".join(header):  # a bare list of addresses: the first line is data, not a header
        rows.insert(0, header)
    # No telling header: columns where most filled cells look like addresses.
    found = []
    for i in range(len(header)):
        cells = [r[i].strip() for r in rows if i < len(r) and r[i].strip()]
        if cells and sum("@" in c for c in cells) * 2 > len(cells):
            found.append(i)
    return found


def _row_name(dialect: str, index: dict[str, int], row: list[str]) -> str:
    def cell(*names: str) -> str:
        for n in names:
            i = index.get(n)
            if i is not None and i < len(row) and row[i].strip():
                return row[i].strip()
        return ""

    if dialect == "thunderbird":
        explicit = cell("display name")
    elif dialect == "google":
        explicit = cell("name")
    else:
        explicit = cell("name", "display name", "full name")
    if explicit:
        return explicit
    first = cell("first name", "given name", "vorname", "prénom")
    middle = cell("middle name", "additional name", "weitere vornamen")
    last = cell("last name", "family name", "nachname", "nom")
    return " ".join(p for p in (first, middle, last) if p)
