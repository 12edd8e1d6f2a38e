"""Is this message sent by a machine rather than a person? (SPEC §4.2 item 7)

Nobody opens a confirmation link sent to a no-reply address, so automated
mail is never challenged: it is screened or refused as bulk instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Machine roles. Broad words (info, news, support, team) are deliberately
# absent: measured, they let spam skip the challenge.
_ROLE_WORDS = (
    r"no-?reply|do-?not-?reply|donotreply|mailer|mailer-daemon|bounces?|bounce[a-z0-9]*"
    r"|notifications?|alerts?|orders?|billing|invoices?|receipts?|statements?"
    r"|bookings?|reservations?|confirmations?|tickets?|calendar[a-z0-9]*"
)
_ROLE = re.compile(rf"^(?:{_ROLE_WORDS})(?:[-_.](?:{_ROLE_WORDS}))*\d*$", re.I)
_ROLE_TAGGED = re.compile(r"^(bounces?|bounce)[-+=_.]", re.I)  # VERP: bounces+abc=x@…, bounce-123@…


def is_role_local_part(local: str) -> bool:
    """`no-reply`, `orders`, `calendar-notification`, `alerts2`, `bounces+123=x`: machine roles."""
    base = local.split("+", 1)[0]
    return bool(_ROLE.match(base) or _ROLE_TAGGED.match(local))


def automated_reason(headers: Mapping[str, str], envelope_local: str | None,
                     from_local: str | None) -> str | None:
    """Why this message counts as automated, or None when it looks written by a person.

    `headers` maps lower-case header names to their (first) value.
    """
    auto = headers.get("auto-submitted", "").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto.split(';')[0].strip()}"
    prec = headers.get("precedence", "").strip().lower()
    if prec in ("bulk", "junk", "list"):
        return f"Precedence: {prec}"
    for name in ("list-id", "list-unsubscribe", "list-post", "list-help", "list-subscribe"):
        if headers.get(name):
            return f"{name.title()} header"
    for what, local in (("envelope sender", envelope_local), ("From", from_local)):
        if local and is_role_local_part(local):
            return f"{what} {local.split('+', 1)[0]!r} is a machine role"
    return None


# -- the null sender's reports (SPEC §4.2 item 5) ------------------------------------

_REPORT_TYPE = re.compile(r"""report-type\s*=\s*"?([a-z0-9-]+)""", re.I)
_REPORTS = {"delivery-status": "delivery status notification (RFC 3464)",
            "disposition-notification": "disposition notification (RFC 8098)"}
# A Message-ID field at the start of a line in the body: the returned message (message/rfc822),
# its headers (text/rfc822-headers) or an MDN's Original-Message-ID; the value may be folded.
_BODY_MSGID = re.compile(rb"^(?:original-)?message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]{1,900}>)", re.I | re.M)
_MSGID = re.compile(r"<[^<>\s]+>")
REPORT_SCAN_BYTES = 1_000_000  # the original's headers come first in every report form
MAX_REFERENCES = 50


def null_report(headers: Mapping[str, str]) -> str | None:
    """The report form a null-sender message has: a DSN or an MDN (multipart/report with its
    report-type), or an auto-reply (`Auto-Submitted: auto-replied`); None for anything else."""
    ctype = headers.get("content-type", "")
    if ctype.strip().lower().startswith("multipart/report"):
        m = _REPORT_TYPE.search(ctype)
        if m and m.group(1).lower() in _REPORTS:
            return _REPORTS[m.group(1).lower()]
    if headers.get("auto-submitted", "").split(";")[0].strip().lower() == "auto-replied":
        return "auto-reply (RFC 3834)"
    return None


def referenced_message_ids(headers: Mapping[str, str], message: bytes) -> list[str]:
    """Message-IDs a reply or report refers to: In-Reply-To and References, and for reports the
    Message-ID fields in the body (the returned original or its headers, Original-Message-ID).
    Bounded: at most MAX_REFERENCES of each kind, the body's from the first REPORT_SCAN_BYTES of the message."""
    refs = _MSGID.findall(headers.get("in-reply-to", "") + " " + headers.get("references", ""))
    refs = refs[-MAX_REFERENCES:]  # the newest references come last
    end = message.find(b"\r\n\r\n", 0, REPORT_SCAN_BYTES)
    if end >= 0:
        for m in _BODY_MSGID.finditer(message, end, REPORT_SCAN_BYTES):
            refs.append(m.group(1).decode("ascii", "replace"))
            if len(refs) >= 2 * MAX_REFERENCES:
                break
    return list(dict.fromkeys(refs))
