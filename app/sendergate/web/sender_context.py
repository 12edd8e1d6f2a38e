"""What a person needs to decide on a pending sender (issue 17 item 1), from the challenge row alone:
the From header's display name made safe to show, and the authentication seen at challenge time.

A display name is attacker text. It is shown next to the address, never instead of it, so it must
not be able to pass for an address, reorder what is shown (bidi overrides), or carry control
characters; one that looks like an address is not shown at all (the row says so)."""

from __future__ import annotations

import re
import unicodedata
from email.header import decode_header, make_header
from email.utils import parseaddr
from typing import Any, Literal

from ..digest import authenticated_domain
from ..senderauth.dmarc import aligned

AuthStatus = Literal["verified", "unverified", "failed", "unchecked"]

MAX_NAME = 80  # characters shown; a longer name is cut with an ellipsis
# after NFKC (fullwidth ＠ and small ﹫ become @): something@something, however decorated
_LOOKS_LIKE_ADDRESS = re.compile(r"[^\s@]+@[^\s@]+")
_NAME_ADDR = re.compile(r"^(.*)<[^<>]*>\s*$", re.S)
# line and paragraph separators and controls: a space; format characters (bidi overrides and
# isolates, zero-width joiners, soft hyphen, BOM), private use, surrogates, unassigned: dropped
_SPACE_CATEGORIES = {"Cc", "Zl", "Zp", "Zs"}
_DROP_CATEGORIES = {"Cf", "Co", "Cs", "Cn"}


def _decoded(name: str) -> str:
    """RFC 2047 encoded words of a display name, decoded; the raw text when they are malformed."""
    if "=?" not in name:
        return name
    try:
        return str(make_header(decode_header(name)))
    except (ValueError, LookupError, UnicodeError, AssertionError):  # what the email package raises on junk
        return name


def clean_text(text: str, limit: int = MAX_NAME) -> str:
    """Printable text on one line: controls and separators become one space, format characters go."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in _DROP_CATEGORIES:
            continue
        out.append(" " if cat in _SPACE_CATEGORIES else ch)
    flat = " ".join("".join(out).split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "\u2026"


def display_name(from_header: str | None, sender: str) -> tuple[str, bool]:
    """(the name to show, hidden): "" when there is none or it only repeats the sender's address;
    hidden=True when the name looked like an address (shown as if it were one, it would lie)."""
    if not from_header:
        return "", False
    # The stored header is already decoded for display, so an encoded word may have added '<', '>' or
    # ',' of its own: the name is everything before the last <address>, whatever it holds.
    bracketed = _NAME_ADDR.match(from_header)
    name = bracketed.group(1) if bracketed else parseaddr(from_header)[0]
    name = clean_text(_decoded(name)).strip(" \"'")
    if not name:
        return "", False
    folded = unicodedata.normalize("NFKC", name).casefold()
    if folded.strip("<> ") == sender.casefold():
        return "", False
    if _LOOKS_LIKE_ADDRESS.search(folded):
        return "", True
    return name, False


def auth_status(sender: str, auth: str | None) -> tuple[AuthStatus, str]:
    """(status, detail) from the challenge's stored 'spf=... dkim=... dmarc=...' line (SPEC §4.4):
    verified = SPF pass or a valid DKIM signature aligned with the sender's own domain; failed = SPF
    or DMARC failed (a link is still issued when DKIM or a p=none policy saves the session, §4.5 item 3);
    unverified = none, neutral, softfail or temperror; unchecked = the checks did not run."""
    if not auth:
        return "unchecked", "not checked"
    words = dict(w.split("=", 1) for w in auth.split() if "=" in w)
    spf, _, spf_domain = words.get("spf", "none").partition(":")
    dkim, _, dkim_domains = words.get("dkim", "none").partition(":")
    dmarc = words.get("dmarc", "none")
    domain = sender.rsplit("@", 1)[-1].lower()
    if authenticated_domain(sender, auth):
        if spf == "pass" and aligned(spf_domain, domain, "r"):
            return "verified", f"SPF pass for {spf_domain}"
        signer = next((d for d in dkim_domains.split(",") if aligned(d, domain, "r")), domain)
        return "verified", f"DKIM signature by {signer}"
    parts = [f"SPF {spf}" + (f" for {spf_domain}" if spf_domain and spf_domain != domain else ""),
             f"DKIM {dkim}" + (f" by {dkim_domains}" if dkim_domains else ""), f"DMARC {dmarc}"]
    detail = clean_text(", ".join(parts), 200)
    failed = spf in ("fail", "permerror") or dmarc == "fail" or dkim == "fail"
    return ("failed" if failed else "unverified"), detail


def sender_context(row: dict[str, Any]) -> dict[str, Any]:
    """The fields a challenge row gains for the API (cheap: no store access)."""
    name, hidden = display_name(row.get("from_header"), row["sender"])
    status, detail = auth_status(row["sender"], row.get("auth"))
    return {"display_name": name, "display_name_hidden": hidden, "auth_status": status, "auth_detail": detail}
