"""`read_file`: one entry point for every address-book file, format detected from the content."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from pathlib import Path

from sendergate.contacts.csvfile import looks_like_csv, read_csv
from sendergate.contacts.model import Collector, ContactsError, ImportResult, own_address_keys
from sendergate.contacts.text import decode_export
from sendergate.contacts.thunderbird import MORK_MAGIC, SQLITE_MAGIC, read_abook
from sendergate.contacts.vcard import looks_like_vcard, read_vcards

_LDIF_START = re.compile(r"^(version:\s*1\s*\n)?dn::?", re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")


def read_file(path: str | Path, own_addresses: Iterable[str] = ()) -> ImportResult:
    """Read a vCard, CSV (Outlook/Google/Thunderbird), LDIF or Thunderbird abook.sqlite file.

    Raises ContactsError with a one-line message when the file cannot be read
    or is none of these formats. Problems inside a readable file (a broken
    card, an invalid address) are warnings and Skipped entries instead, so
    one bad card does not cost the other 500.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise ContactsError(f"cannot read {path}: {exc.strerror or exc}") from None
    own = own_address_keys(own_addresses)
    if head == SQLITE_MAGIC:
        result = ImportResult("thunderbird")
        read_abook(path, result, Collector(result, own, drop_roles=False))
        return result
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ContactsError(f"cannot read {path}: {exc.strerror or exc}") from None
    return read_bytes(data, own, name=str(path))


def read_bytes(data: bytes, own: frozenset[str] = frozenset(), name: str = "the file") -> ImportResult:
    """Like read_file for bytes already in memory (drag and drop, clipboard, upload)."""
    if not data.strip():
        raise ContactsError(f"{name} is empty")
    if data.startswith(MORK_MAGIC):
        raise ContactsError(f"{name} is an old Thunderbird address book (.mab, before version 78): "
                            "export it from Thunderbird as vCard or CSV, or open it in a current Thunderbird")
    if data.startswith(SQLITE_MAGIC):
        raise ContactsError(f"{name} is a database file: read it with read_file(path)")
    text, encoding = decode_export(data)
    if len(_CONTROL.findall(text[:4096])) > 8:
        raise ContactsError(f"{name} is not an address book (vCard, CSV, LDIF or Thunderbird abook.sqlite)")
    if looks_like_vcard(text):
        result = ImportResult("vcard")
        read_vcards(text, result, Collector(result, own, drop_roles=False))
    elif _LDIF_START.match(text.lstrip("\ufeff")):
        result = ImportResult("ldif")
        read_ldif(text, Collector(result, own, drop_roles=False))
    elif looks_like_csv(text):
        result = ImportResult("csv")
        read_csv(text, result, Collector(result, own, drop_roles=False))
    else:
        raise ContactsError(f"{name} is not an address book (vCard, CSV, LDIF or Thunderbird abook.sqlite)")
    if encoding not in ("utf-8", "utf-16-le", "utf-16-be"):
        result.warnings.append(f"{name} is not UTF-8; read as {encoding}")
    if not result.contacts and not result.warnings:
        result.warnings.append(f"no e-mail addresses found in {name}")
    return result


def read_ldif(text: str, collector: Collector) -> None:
    """Thunderbird/Netscape LDIF: `mail:` and `mozillaSecondEmail:`, base64 (`::`) values too."""
    for record in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\n ", "")):
        attrs: dict[str, list[str]] = {}
        for line in record.split("\n"):
            key, sep, value = line.partition(":")
            if not sep or line.startswith("#"):
                continue
            if value.startswith(":"):
                try:
                    value = base64.b64decode(value[1:].strip()).decode("utf-8", errors="replace")
                except ValueError:
                    continue
            attrs.setdefault(key.strip().lower(), []).append(value.strip())
        name = (attrs.get("cn") or attrs.get("displayname") or [""])[0]
        for key in ("mail", "mozillasecondemail"):
            for raw in attrs.get(key, []):
                collector.add(raw, name)
