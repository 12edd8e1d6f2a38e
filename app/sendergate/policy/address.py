"""Mail addresses as the policy sees them: parsed, validated, normalised.

Pure functions, no I/O. The same normalisation is used by the gateway, the
API and the contacts importers so an address imported from a vCard matches
the envelope sender that later arrives.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

# RFC 5321 dot-atom local part characters (we also allow UTF-8 for SMTPUTF8).
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_DOT_ATOM = re.compile(rf"^[{_ATEXT}\u0080-\U0010ffff]+(\.[{_ATEXT}\u0080-\U0010ffff]+)*$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_BATV = re.compile(r"^prvs=[0-9a-z]{10}=(.+)$", re.I)
_BATV_ALT = re.compile(r"^prvs=(.+)=[0-9a-z]{10}$", re.I)  # older local-part-first form
_SRS0 = re.compile(r"^srs0[=+-][^=]+=[^=]+=([^=]+)=(.+)$", re.I)
_SRS1 = re.compile(r"^srs1[=+-][^=]+=[^=]+==[^=]+=[^=]+=([^=]+)=(.+)$", re.I)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AddressError(ValueError):
    """An address that cannot be accepted, with a reason fit for a person."""


@dataclass(frozen=True, slots=True)
class Address:
    """A normalised address: `local` keeps its case and tag, `domain` is lower-case ASCII (IDNA)."""

    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def key(self) -> str:
        """What list matching compares: lower-cased local part without +tag, at the domain."""
        return f"{base_local(self.local)}@{self.domain}"


def base_local(local: str) -> str:
    return local.split("+", 1)[0].lower() if not local.startswith("+") else local.lower()


# Every message asks this of the same few domains (the sender's twice, the recipient's, From's); only
# names that pass are kept (an exception is not cached), each at most a command or header line long.
@lru_cache(maxsize=2048)
def normalise_domain(domain: str) -> str:
    """Lower-case and IDNA-map a domain; raise AddressError if it is not a host name."""
    d = domain.strip().rstrip(".")
    if not d:
        raise AddressError("empty domain")
    if _CONTROL.search(d):
        raise AddressError("control characters in domain")
    try:
        d = d.encode("idna").decode("ascii").lower() if not d.isascii() else d.lower()
    except UnicodeError:
        raise AddressError("invalid international domain name") from None
    labels = d.split(".")
    if len(d) > 253 or not all(_LABEL.match(lbl) for lbl in labels):
        raise AddressError("invalid domain name")
    return d


def unwrap_sender(local: str, domain: str) -> tuple[str, str]:
    """Remove BATV (prvs=) and SRS0/SRS1 wrappers so the original sender is matched."""
    for _ in range(3):  # wrappers can nest (SRS of a BATV address); bounded
        m = _SRS1.match(local)
        if m:
            domain, local = m.group(1), m.group(2)
            continue
        m = _SRS0.match(local)
        if m:
            domain, local = m.group(1), m.group(2)
            continue
        m = _BATV.match(local)
        if m:
            local = m.group(1)
            continue
        m = _BATV_ALT.match(local)
        if m and "=" not in m.group(1):
            local = m.group(1)
            continue
        break
    return local, domain


def parse(raw: str, *, unwrap: bool = False) -> Address:
    """Parse a bare `local@domain` (angle brackets allowed) into a normalised Address.

    Rejects control characters, source routes, quoted local parts with `@`,
    address literals and missing parts. With `unwrap`, BATV and SRS wrappers
    are removed (for envelope senders).
    """
    s = raw.strip()
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1].strip()
    if not s:
        raise AddressError("empty address")
    if _CONTROL.search(s):
        raise AddressError("control characters in address")
    if len(s) > 320:
        raise AddressError("address too long")
    if s.startswith("@"):
        raise AddressError("source routes are not accepted")
    if s.startswith('"'):
        end = s.rfind('"')
        if end <= 0 or not s[end + 1:].startswith("@"):
            raise AddressError("malformed quoted local part")
        quoted = s[1:end]
        if "@" in quoted or "%" in quoted or "!" in quoted:
            raise AddressError("routing characters in quoted local part")
        local, domain = s[: end + 1], s[end + 2:]
    else:
        if s.count("@") != 1:
            raise AddressError("an address has exactly one @")
        local, domain = s.split("@")
        if not local:
            raise AddressError("empty local part")
        if len(local) > 64 and not unwrap:
            raise AddressError("local part too long")
        if not _DOT_ATOM.match(local):
            raise AddressError("invalid characters in local part")
    if domain.startswith("["):
        raise AddressError("address literals are not accepted")
    domain = normalise_domain(domain)
    if unwrap:
        local, domain = unwrap_sender(local, domain)
        domain = normalise_domain(domain)
    return Address(local, domain)


def is_relay_trick(local: str) -> bool:
    """Local parts that ask the receiver to route onward: percent hack, bang paths, quoted @."""
    return "%" in local or "!" in local or "@" in local


@dataclass(frozen=True, slots=True)
class Pattern:
    """A list entry's pattern: an address, `@domain` (also matches subdomains), or `list:<id>`."""

    kind: str  # "address" | "domain" | "list"
    value: str

    def __str__(self) -> str:
        if self.kind == "domain":
            return "@" + self.value
        if self.kind == "list":
            return "list:" + self.value
        return self.value


def parse_pattern(raw: str) -> Pattern:
    """Validate and normalise what a user typed as an allow/block entry."""
    s = raw.strip()
    if not s:
        raise AddressError("empty entry")
    if _CONTROL.search(s):
        raise AddressError("control characters in entry")
    if s.lower().startswith("list:"):
        list_id = s[5:].strip().strip("<>").strip().lower()
        if not list_id or " " in list_id:
            raise AddressError("a list entry is list:<list-id>, e.g. list:dev.lists.example.org")
        return Pattern("list", list_id)
    if s.startswith("@"):
        return Pattern("domain", normalise_domain(s[1:]))
    addr = parse(s, unwrap=False)
    return Pattern("address", addr.key)


def list_id_from_header(value: str) -> str | None:
    """`List-Id: Developers <dev.lists.example.org>` -> `dev.lists.example.org`."""
    if not value:
        return None
    m = re.search(r"<([^<>\s]+)>", value)
    ident = m.group(1) if m else value.strip()
    ident = ident.strip().lower()
    return ident or None


def domain_suffixes(domain: str) -> list[str]:
    """`a.b.example.org` -> [`a.b.example.org`, `b.example.org`, `example.org`, `org`]; most specific first."""
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


def hash_message_id(message_id: str) -> str:
    """How a Message-ID is compared for reply recognition: without angle brackets and blanks, sha256 hex.

    The desktop app uploads only these hashes of the user's sent mail; the
    gateway hashes In-Reply-To/References the same way.
    """
    mid = message_id.strip().strip("<>").strip()
    return hashlib.sha256(mid.encode("utf-8", "surrogateescape")).hexdigest()
