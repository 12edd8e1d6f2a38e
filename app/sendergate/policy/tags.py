"""Sign-up addresses (issue 19): `alice+acme@example.org` hands a site an address of its own.

Pure functions, no I/O and no clock (`now` is passed in). A tag is the part of the local part after the
recipient delimiter (`[domains] recipient_delimiter`, default "+"). A *dated* tag carries its last day and
a MAC over (owner address, name, day) made with a secret of the store: `alice+acme.20270105.k3x9...@`.
Editing the day or guessing the MAC gives an address that is not a tag (the normal rules apply).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from .decide import DataDecision, Verdict

NAME_MAX = 32
# Lower-case ASCII letters and digits, '-' and '_' inside: nothing that routes (% ! @ :), quotes, makes a
# path (/ .), or looks like another letter (non-ASCII). The same name is the per-tag folder's last part.
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,30}[a-z0-9])?$")
DELIMITERS = ("+", "-", "_", "=")  # what [domains] recipient_delimiter may be
MAC_LENGTH = 12  # base32 characters: 60 bits, checked online only (the secret never leaves the store)
_DATED = re.compile(rf"^(?P<name>[a-z0-9_-]+)\.(?P<day>\d{{8}})\.(?P<mac>[a-z2-7]{{{MAC_LENGTH}}})$")
LOCAL_MAX = 64  # RFC 5321 §4.5.3.1.1: the whole local part of the address handed out
FOLDERS = ("inbox", "tag", "screened")  # where a tag's mail goes: the inbox, its own folder, the Screened folder

LIVE, EXPIRED, REVOKED = "live", "expired", "revoked"


class TagError(ValueError):
    """A name or address that cannot be a tag, with a reason fit for a person."""


def check_name(name: str, delimiter: str = "+") -> str:
    """The tag name as stored (lower case), or TagError saying what is wrong."""
    n = name.strip().lower()
    if not n:
        raise TagError("a sign-up address needs a name, e.g. the site's: acme")
    if len(n) > NAME_MAX:
        raise TagError(f"a name is at most {NAME_MAX} characters")
    if not _NAME.fullmatch(n):
        raise TagError("a name is lower-case letters a-z, digits, and '-' or '_' between them "
                       "(no dots, slashes, quotes, spaces, @, %, ! or :)")
    if delimiter in n:
        raise TagError(f"a name cannot hold the recipient delimiter {delimiter!r}")
    return n


def split_local(local: str, delimiter: str) -> tuple[str, str] | None:
    """`alice+acme` -> ("alice", "acme"), lower-cased, at the first delimiter; None without a tag."""
    base, sep, rest = local.partition(delimiter)
    if not sep or not base or not rest:
        return None
    return base.lower(), rest.lower()


@dataclass(frozen=True, slots=True)
class TagPart:
    """What follows the delimiter: a name, and for a dated tag its last day and MAC."""

    name: str
    day: date | None = None
    mac: str = ""


def parse_part(part: str) -> TagPart | None:
    """The tag part of a recipient's local part, or None when it cannot be a tag (then the normal rules)."""
    p = part.lower()
    if _NAME.fullmatch(p):
        return TagPart(p)
    m = _DATED.fullmatch(p)
    if not m or not _NAME.fullmatch(m["name"]):
        return None
    try:
        day = datetime.strptime(m["day"], "%Y%m%d").date()
    except ValueError:
        return None
    return TagPart(m["name"], day, m["mac"])


def dated_mac(secret: str, owner: str, name: str, day: date) -> str:
    """The MAC of a dated tag: HMAC-SHA256 over (owner address key, name, last day), base32, lower case."""
    msg = f"sendergate-tag\0{owner.lower()}\0{name}\0{day:%Y%m%d}".encode()
    digest = hmac.new(secret.encode(), msg, hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:MAC_LENGTH]


def mac_ok(secret: str, owner: str, part: TagPart) -> bool:
    assert part.day is not None
    return hmac.compare_digest(dated_mac(secret, owner, part.name, part.day), part.mac)


def last_day(expires_at: float) -> date:
    """The last UTC day a dated tag works: the day before the midnight its expiry was rounded up to."""
    return (datetime.fromtimestamp(expires_at, timezone.utc) - timedelta(seconds=1)).date()


def dated_expiry(expires_at: float) -> float:
    """An expiry rounded up to the next UTC midnight: a dated address says a day, and works all of it."""
    when = datetime.fromtimestamp(expires_at, timezone.utc)
    midnight = datetime(when.year, when.month, when.day, tzinfo=timezone.utc)
    if midnight.timestamp() < expires_at:
        midnight += timedelta(days=1)
    return midnight.timestamp()


def tag_address(owner: str, name: str, delimiter: str, *, secret: str = "", expires_at: float | None = None) -> str:
    """The address to hand out: `alice+acme@example.org`, or the dated form when `secret` is given."""
    local, _, domain = owner.rpartition("@")
    part = name
    if secret:
        assert expires_at is not None
        day = last_day(expires_at)
        part = f"{name}.{day:%Y%m%d}.{dated_mac(secret, owner, name, day)}"
    return f"{local}{delimiter}{part}@{domain}"


def check_length(address: str) -> None:
    local = address.rpartition("@")[0]
    if len(local) > LOCAL_MAX:
        raise TagError(f"the address would be {len(local)} characters before the @ (at most {LOCAL_MAX}): "
                       "choose a shorter name")


def status(revoked_at: float | None, expires_at: float | None, now: float) -> str:
    if revoked_at is not None:
        return REVOKED
    if expires_at is not None and expires_at <= now:
        return EXPIRED
    return LIVE


@dataclass(frozen=True, slots=True)
class TagMatch:
    """A recipient's tag as RCPT sees it. `status` LIVE delivers; EXPIRED and REVOKED refuse (550 5.1.1)."""

    tag_id: int
    name: str
    status: str
    folder: str  # inbox | tag | screened
    user_id: int


def judge(part: TagPart, row_dated: bool, revoked_at: float | None, expires_at: float | None, *,
          secret: str, owner: str, now: float) -> str | None:
    """The tag's status for this address, or None when the address is not this tag (the normal rules):
    a dated tag only in its dated form with the right MAC and day, a plain tag only in its plain form."""
    if row_dated != (part.day is not None):
        return None
    if part.day is not None:
        if not secret or not mac_ok(secret, owner, part):
            return None
        if expires_at is None or part.day != last_day(expires_at):
            return None  # a MAC for another day (the tag was made anew with another expiry)
    return status(revoked_at, expires_at, now)


# -- end of DATA ---------------------------------------------------------------------------------------------

# What a live tag turns into delivery: what the gate would refuse or challenge because of who the sender is
# (a stranger, an unsigned newsletter). A virus, spam, a scanner failure or a forged sender stays refused.
_TAG_LIFTS = (Verdict.CHALLENGED, Verdict.BULK)


def apply_tag(decision: DataDecision, name: str, folder: str, *, spam_marked: bool = False) -> DataDecision:
    """A recipient's end-of-DATA decision for mail that came in by their live tag `name` (issue 19). Lifted
    decisions never vouch for another recipient of the message; `folder` "screened" files the mail screened.
    `spam_marked`: the spam scanner asked for the message to be screened (rspamd's add header), which stays."""
    v = decision.verdict
    if v in _TAG_LIFTS or v is Verdict.DELIVERED or (v is Verdict.SCREENED and not spam_marked):
        verdict = Verdict.SCREENED if folder == "screened" else Verdict.DELIVERED
        would = decision.reason if v is Verdict.DELIVERED else f"would have been {v.value}: {decision.reason}"
        reason = f"sign-up address {name}; {would}"
        return DataDecision(verdict, None, reason, decision.scan_note,
                            vouches=decision.vouches and v is Verdict.DELIVERED)
    return decision
