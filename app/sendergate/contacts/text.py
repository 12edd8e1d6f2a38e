"""Turning an export's bytes into text, whatever the exporter's era.

Google and macOS write UTF-8 (Google CSV with a BOM), Outlook writes
windows-1252 ("ANSI") or UTF-16 with a BOM, old phones write ISO-8859-x.
"""

from __future__ import annotations

import codecs


def decode_export(data: bytes) -> tuple[str, str]:
    """Decode an address-book export; return (text, encoding used).

    BOMs win; then strict UTF-8; then UTF-16 without BOM (NUL every other
    byte); then windows-1252, with latin-1 for the five bytes cp1252 leaves
    undefined so nothing is lost.
    """
    for bom, enc in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                     (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return data[len(bom):].decode(enc, errors="replace"), enc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    head = data[:200]
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4:
        return data.decode("utf-16-le", errors="replace"), "utf-16-le"
    if len(head) >= 4 and head[0::2].count(0) > len(head) // 4:
        return data.decode("utf-16-be", errors="replace"), "utf-16-be"
    return decode_legacy(data, "windows-1252"), "windows-1252"


def decode_legacy(data: bytes, charset: str) -> str:
    """Decode with a declared charset; unknown charset names fall back to windows-1252."""
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "windows-1252"
    if charset.lower().replace("-", "") in ("windows1252", "cp1252"):
        return "".join(_cp1252_char(b) for b in data) if _has_cp1252_holes(data) else data.decode("cp1252")
    return data.decode(charset, errors="replace")


_CP1252_HOLES = frozenset((0x81, 0x8D, 0x8F, 0x90, 0x9D))


def _has_cp1252_holes(data: bytes) -> bool:
    return any(b in _CP1252_HOLES for b in data)


def _cp1252_char(b: int) -> str:
    return chr(b) if b in _CP1252_HOLES else bytes((b,)).decode("cp1252")
