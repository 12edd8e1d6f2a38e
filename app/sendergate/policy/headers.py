"""The one reading of a message's header block that every part of the gateway uses (SPEC §4.5 item 4).

The handler's field lookup, the DMARC From lookup, the removal of headers only
the gateway may write (`Authentication-Results` under our name, `X-SenderGate-*`)
and the screening mark all read fields through this module, so a sender cannot
shape a header that one reader sees and another does not.

The rule:

- Line ends: CRLF, a bare LF or a bare CR each end one line. The SMTP boundary
  rewrites bare ones to CRLF before anything reads the message (`normalise`);
  the functions here apply the same rule to whatever they are given.
- The header block runs from the first line to the first empty line (or to the
  end of a message that has none).
- A field starts on a line that does not begin with SP or HT and takes every
  following line that does (folding). Its name is the text before the first
  ':' with trailing white space removed: the obsolete `Name : value` form,
  which mail readers still show, counts. A line without ':' (or a leading
  mbox `From ` line) is a field without a name: kept, never matched.

The email package stops reading headers at the first line that is not
`Name:`-shaped and treats the rest as body; mail stores and readers (Dovecot)
read on. Readers here read on too, so the field a mailbox shows is the field
the gateway checked.

Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email.header import Header, decode_header, make_header
from email.policy import compat32

CRLF = b"\r\n"
SCREENED_MARK = "X-SenderGate-Screened: yes"  # the screening mark (SPEC §4.2 item 7); only the gateway writes it
OWN_PREFIX = b"x-sendergate-"  # every field with this name prefix is the gateway's

_LINE_END = re.compile(rb"\r\n|\r|\n")
_SPACES = re.compile(r"\s+")
_COMMENT = re.compile(rb"\([^()]*\)")


def is_clean(data: bytes) -> bool:
    """True when every CR and LF in data is part of a CRLF pair (counts only: no copy)."""
    crlf = data.count(CRLF)
    return data.count(b"\n") == crlf and data.count(b"\r") == crlf


def normalise(data: bytes) -> bytes:
    """data with every bare CR and bare LF made a CRLF; data itself when it is already clean.

    What Postfix's `smtpd_forbid_bare_newline = normalize` does for LF, and for a
    bare CR too: some servers end lines (and DATA) on it, so it must not reach them.
    """
    if is_clean(data):
        return data
    return _LINE_END.sub(CRLF, data)


def split(message: bytes) -> tuple[bytes, bytes]:
    """(header block with the CRLF of its last line, body after the empty line), line ends normalised.

    The empty line itself belongs to neither. No empty line: all of it is header.
    """
    if message.startswith(CRLF):
        return (b"", message[2:]) if is_clean(message[:2]) else split(normalise(message))
    end = message.find(b"\r\n\r\n")
    # Only the header block need be clean here (counted, not copied): a bare line end in it could
    # make an earlier empty line, one after it changes nothing.
    if not is_clean(message if end < 0 else message[:end + 4]):
        message = normalise(message)
        if message.startswith(CRLF):
            return b"", message[2:]
        end = message.find(b"\r\n\r\n")
    if end < 0:
        return message, b""
    return message[:end + 2], message[end + 4:]


def fields(head: bytes) -> list[tuple[str | None, bytes]]:
    """The fields of a header block (as `split` gives it): (lower-case name or None, raw bytes with CRLFs)."""
    out: list[tuple[str | None, bytes]] = []
    lines = normalise(head).split(CRLF)
    if lines and lines[-1] == b"":
        lines.pop()
    raw: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and raw:  # folding: the previous field goes on
            raw.append(line)
            continue
        if raw:
            out.append((_name(raw[0]), CRLF.join(raw) + CRLF))
        raw = [line]
    if raw:
        out.append((_name(raw[0]), CRLF.join(raw) + CRLF))
    return out


def _name(first_line: bytes) -> str | None:
    if first_line[:1] in (b" ", b"\t") or first_line.startswith(b"From "):
        return None  # a continuation with nothing to continue, or an mbox separator
    name, colon, _ = first_line.partition(b":")
    name = name.rstrip(b" \t")
    if not colon or not name:
        return None
    return name.decode("ascii", "surrogateescape").lower()


def _raw_value(raw: bytes) -> str:
    """The field's value as the email package keeps it (compat32): after the colon, left-trimmed,
    continuation lines kept, the final line end removed."""
    value = raw.split(b":", 1)[1].decode("ascii", "surrogateescape")
    return value.lstrip(" \t").rstrip("\r\n")


def display(name: str, raw: bytes) -> str:
    """A field's value unfolded and decoded for display (encoded words, 8-bit text), one line."""
    value = _raw_value(raw)
    if value.isascii() and "=?" not in value:
        return _SPACES.sub(" ", value).strip()
    return decode_display(compat32.header_fetch_parse(name, value))


def decode_display(value: object) -> str:
    try:
        text = str(make_header(decode_header(str(value))))
    except Exception:  # noqa: BLE001  any failure on a hostile encoded word: show it raw, never lose the header
        text = str(value)
    return _SPACES.sub(" ", text).strip()


def first_values(message: bytes) -> dict[str, str]:
    """Lower-case field name -> its first value, unfolded and decoded for display."""
    head, _ = split(message)
    if not head.isascii() or b"=?" in head:
        out: dict[str, str] = {}
        for name, raw in fields(head):
            if name is not None and name not in out:
                out[name] = display(name, raw)
        return out
    # The usual header block (ASCII, no encoded words): the same answers in one pass over its lines,
    # values worked out only for each name's first field (its cost: benchmarks.md, "Copied fast paths").
    out = {}
    name = None
    parts: list[bytes] = []
    for line in head.split(CRLF):
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                parts.append(line)
            continue
        if name is not None:
            out[name] = _SPACES.sub(" ", b" ".join(parts).decode("ascii")).strip()
        name = None
        if line.startswith(b"From "):
            continue
        field, colon, value = line.partition(b":")
        field = field.rstrip(b" \t")
        if colon and field:
            key = field.decode("ascii").lower()
            if key not in out:
                name, parts = key, [value]
    if name is not None:  # a header block without a final line end
        out[name] = _SPACES.sub(" ", b" ".join(parts).decode("ascii")).strip()
    return out


def get_all(message: bytes, name: str) -> list[str | Header]:
    """Every value of one field, raw (as the email package's compat32 get_all gives them: a Header,
    not a str, for a value with 8-bit bytes; str() of it is the text)."""
    head, _ = split(message)
    name = name.lower()
    if not head.isascii():
        return [compat32.header_fetch_parse(n, _raw_value(raw)) for n, raw in fields(head) if n == name]
    # ASCII (split made its line ends CRLF): only the fields of this name are taken apart, as fields()
    # does, and their values are plain str (compat32 makes a Header only of 8-bit text).
    out: list[str | Header] = []
    want = name.encode("ascii", "surrogateescape")
    size = len(want)
    raw: list[bytes] | None = None  # the lines of the field of this name being read
    for line in head.split(CRLF):
        if line[:1] in (b" ", b"	"):
            if raw is not None:
                raw.append(line)
            continue
        if raw is not None:
            out.append(_raw_value(CRLF.join(raw) + CRLF))
            raw = None
        if line[:size].lower() == want and _name(line) == name:
            raw = [line]
    if raw is not None:
        out.append(_raw_value(CRLF.join(raw) + CRLF))
    return out


def remove(message: bytes, unwanted: Callable[[str, bytes], bool], *,
           drop_leading_continuation: bool = False) -> bytes:
    """The message, line ends normalised, without the header fields for which unwanted(name, raw) holds
    (and without a first field that is a folded line, if asked: it would continue a field put above).

    The body is never touched."""
    message = normalise(message)
    head, body = split(message)
    found = fields(head)
    kept = [raw for name, raw in found if name is None or not unwanted(name, raw)]
    if drop_leading_continuation and kept and kept[0][:1] in (b" ", b"\t"):
        kept.pop(0)
    if len(kept) == len(found):
        return message
    if len(head) == len(message):  # no empty line: all header
        return b"".join(kept)
    return b"".join(kept) + CRLF + body


def authserv_id(raw: bytes) -> bytes:
    """The authserv-id of an Authentication-Results field (RFC 8601 §2.2), lower-case, comments and
    quotes removed, trailing dot dropped: what a filter behind us compares with its trusted ids."""
    value = raw.split(b":", 1)[1].split(b";", 1)[0]
    value = value.replace(b"\r\n", b" ")
    for _ in range(5):  # comments nest; five levels is more than any honest header uses
        value = _COMMENT.sub(b" ", value)
    words = value.replace(b'"', b" ").split()
    return words[0].lower().rstrip(b".") if words else b""


def gateway_owned(authserv: str) -> Callable[[str, bytes], bool]:
    """The predicate for `remove`: fields only this gateway may write."""
    ours = authserv.strip().lower().rstrip(".").encode("ascii", "replace")

    def owned(name: str, raw: bytes) -> bool:
        if name.startswith("x-sendergate-"):
            return True
        return name == "authentication-results" and authserv_id(raw) == ours
    return owned


# `Name <local@domain>`, `"Name" <local@domain>` or a bare `local@domain`: what nearly every From
# field holds. Taken apart here without the email package's address parser (its cost: benchmarks.md,
# "Copied fast paths"); anything else goes the email package's way.
_SIMPLE_ADDRESS = re.compile(
    r"""\s*(?:(?:[A-Za-z0-9 ._'-]*|"[^"\\\r\n]*")\s*<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+)>"""
    r"""|([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+))\s*""")


def addresses(value: str) -> list[str]:
    """The addresses in an address-list field (From, To), as email.utils.getaddresses finds them."""
    m = _SIMPLE_ADDRESS.fullmatch(value)
    if m is not None:
        return [m.group(1) or m.group(2)]
    import email.utils
    return [addr for _name, addr in email.utils.getaddresses([value])]
