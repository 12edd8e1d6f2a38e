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
