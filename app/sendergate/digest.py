"""The digest (issue 16 item 4): a summary mail of a user's new pending senders, each with Approve / Deny
links to a gateway page, delivered through the configured delivery target to the user's own mailbox.

Links are signed (HMAC-SHA256 with a secret kept in the store's settings, so every node checks them),
expire, and are single use. Opening one changes nothing: the page asks, and only its POST (CSRF-bound)
decides (web/digest_page.py), so link scanners that fetch every URL in a mail approve no one.

Which node sends: any node's housekeeping may try; the store's compare-and-set on the user's
`last_sent_at` (Store.claim_digest) lets exactly one of them send each digest.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from typing import Any, TypeVar

from .config import Config
from .delivery import DeliveryError, Outbound
from .store import Store, StoreError

log = logging.getLogger("sendergate.digest")

SECRET_KEY = "digest_link_secret"  # settings key: signs digest links (separate from the confirmation page's)
ACTIONS = {"a": "approve", "d": "deny"}
T = TypeVar("T")
Call = Callable[..., Awaitable[Any]]


# -- links ------------------------------------------------------------------------------------


def link_secret(store: Store) -> str:
    value = store.get_setting(SECRET_KEY, lambda: secrets.token_urlsafe(32))
    assert value is not None
    return value


def _mac(secret: str, body: str) -> str:
    return hmac.new(secret.encode(), b"digest-link\0" + body.encode(), hashlib.sha256).hexdigest()[:32]


def make_link_token(secret: str, user_id: int, challenge_id: int, action: str, expires: int) -> str:
    """`uid.cid.a|d.expires.nonce.mac`: the mac covers everything before it (128 bits)."""
    body = f"{user_id}.{challenge_id}.{action}.{expires}.{secrets.token_urlsafe(12)}"
    return f"{body}.{_mac(secret, body)}"


@dataclass(frozen=True)
class Link:
    user_id: int
    challenge_id: int
    action: str  # approve | deny
    expires: int
    nonce: str


class LinkError(Exception):
    """Why a link is refused: `malformed`, `forged`, `expired`, `used`, `gone` (the page names each)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_link_token(secret: str, token: str, now: float | None = None) -> Link:
    """The link, signature and expiry checked (not its use: that is the store's)."""
    parts = token.split(".")
    if len(parts) != 6 or len(token) > 200:
        raise LinkError("malformed")
    uid, cid, act, exp, nonce, mac = parts
    if not (uid.isdigit() and cid.isdigit() and exp.isdigit() and act in ACTIONS and nonce and mac):
        raise LinkError("malformed")
    if not hmac.compare_digest(_mac(secret, ".".join(parts[:5])), mac):
        raise LinkError("forged")
    if int(exp) < (now or time.time()):
        raise LinkError("expired")
    return Link(int(uid), int(cid), ACTIONS[act], int(exp), nonce)


# -- authentication seen ----------------------------------------------------------------------


def authenticated_domain(sender: str, auth: str | None) -> str | None:
    """The sender's domain when the challenge's stored authentication vouches for it (SPF pass for a
    domain of the same organisational domain, or a DKIM pass aligned with it), else None."""
    from .senderauth.dmarc import aligned

    if not auth or "@" not in sender:
        return None
    domain = sender.rsplit("@", 1)[1].lower()
    words = dict(w.split("=", 1) for w in auth.split() if "=" in w)
    spf = words.get("spf", "")
    if spf.startswith("pass:") and aligned(spf[5:], domain, "r"):
        return domain
    dkim = words.get("dkim", "")
    if dkim.startswith("pass:") and any(aligned(d, domain, "r") for d in dkim[5:].split(",")):
        return domain
    return None


# -- when a digest is due ---------------------------------------------------------------------


def period_start(now: float, frequency: str, hour: int) -> float:
    """The start of the current digest period: today's `hour` (UTC), or this week's Monday's."""
    t = datetime.fromtimestamp(now, UTC)
    start = t.replace(hour=hour, minute=0, second=0, microsecond=0)
    if frequency == "weekly":
        start -= timedelta(days=t.weekday())
    if start > t:
        start -= timedelta(days=7 if frequency == "weekly" else 1)
    return start.timestamp()


def is_due(frequency: str, last_sent: float | None, now: float, hour: int) -> bool:
    if frequency not in ("daily", "weekly"):
        return False
    return last_sent is None or last_sent < period_start(now, frequency, hour)


# -- the mail ---------------------------------------------------------------------------------


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def build_message(cfg: Config, address: str, entries: list[dict[str, Any]], total: int,
                  links: dict[int, tuple[str, str]], now: float) -> bytes:
    """The digest mail: text and HTML parts, no remote content, no tracking."""
    more = total - len(entries)
    n = total
    subject = f"SenderGate: {n} new sender{'s' if n != 1 else ''} waiting for your decision"
    sender = cfg.notify.sender or f"postmaster@{cfg.smtp.hostname}"
    text = [(f"{n} new sender{'s' if n != 1 else ''} tried to write to you and {'were' if n != 1 else 'was'} "
            "asked to confirm. Approve the ones you know; deny the others."), ""]
    rows = []
    for e in entries:
        name, _ = parseaddr(e.get("from_header") or "")
        verified = authenticated_domain(e["sender"], e.get("auth"))
        auth_line = f"verified domain {verified}" if verified else "domain not verified"
        approve, deny = links[e["id"]]
        who = f"{name} <{e['sender']}>" if name else e["sender"]
        text += [f"* {who}", f"  Subject: {e['subject'] or '(none)'}",
                 f"  First tried: {_when(e['created_at'])}; attempts: {e['attempts']}; {auth_line}",
                 f"  To: {e['recipient']}", f"  Approve: {approve}", f"  Deny:    {deny}", ""]
        esc = html.escape
        rows.append(
            "<tr><td style=\"padding:8px;border-bottom:1px solid #ddd\">"
            f"<strong>{esc(name) if name else ''}</strong> {esc('<' + e['sender'] + '>') if name else esc(e['sender'])}"
            f"<br>Subject: {esc(e['subject'] or '(none)')}"
            f"<br><small>First tried {esc(_when(e['created_at']))} &middot; attempts: {int(e['attempts'])} "
            f"&middot; {esc(auth_line)} &middot; to {esc(e['recipient'])}</small></td>"
            "<td style=\"padding:8px;border-bottom:1px solid #ddd;white-space:nowrap\">"
            f"<a href=\"{esc(approve)}\" style=\"background:#1a7f37;color:#fff;padding:6px 12px;"
            "text-decoration:none;border-radius:4px\">Approve</a> "
            f"<a href=\"{esc(deny)}\" style=\"background:#b42318;color:#fff;padding:6px 12px;"
            "text-decoration:none;border-radius:4px\">Deny</a></td></tr>")
    if more > 0:
        text += [f"... and {more} more in the app.", ""]
        rows.append(f"<tr><td colspan=\"2\" style=\"padding:8px\">&hellip; and {more} more in the app.</td></tr>")
    text += [("Each button opens a page at your gateway that asks before it changes anything; "
             f"the links work once and expire after {int(cfg.digest.link_ttl // 86400) or 1} day(s)."),
             "Change how often you get this summary in the SenderGate app's settings."]
    body_html = (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>" + html.escape(subject) + "</title></head>"
        "<body style=\"font-family:sans-serif\"><p>" + html.escape(text[0]) + "</p>"
        "<table style=\"border-collapse:collapse\">" + "".join(rows) + "</table>"
        "<p><small>" + html.escape(text[-2]) + "<br>" + html.escape(text[-1]) + "</small></p></body></html>")
    msg = EmailMessage()
    msg["From"] = formataddr(("SenderGate", sender))
    msg["To"] = address
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(now, UTC))
    msg["Message-ID"] = make_msgid(domain=cfg.smtp.hostname or "sendergate.invalid")
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to it
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content("\n".join(text))
    msg.add_alternative(body_html, subtype="html")
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# -- sending ----------------------------------------------------------------------------------


async def _sync(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return fn(*args, **kwargs)


@dataclass
class Sent:
    address: str
    entries: int  # 0: claimed, nothing new, no mail


async def send_digests(cfg: Config, store: Store, deliverer: Any, *, address: str | None = None,
                       force: bool = False, call: Call = _sync, now: float | None = None) -> list[Sent]:
    """Send every due digest (or `address`'s; `force`: whether due or not). Each is claimed in the
    store first, so two nodes (or a node and cron) never send the same one. `call` runs a store method
    (the worker's thread pool in the gateway, directly in the CLI)."""
    now = now or time.time()
    wanted = None
    if address is not None:
        wanted = (await call(store.user_by_address, address)).id
    out: list[Sent] = []
    secret: str = await call(link_secret, store)
    for uid, freq, last in await call(store.digest_candidates):
        if wanted is not None and uid != wanted:
            continue
        frequency = freq or cfg.digest.default
        if not (force and (wanted is not None or frequency != "off")) and not is_due(frequency, last, now,
                                                                                        cfg.digest.hour):
            continue
        if not await call(store.claim_digest, uid, last, now):
            continue  # another node (or run) sent it
        try:
            sent = await _send_one(cfg, store, deliverer, call, secret, uid, last, now)
        except (DeliveryError, StoreError) as exc:
            log.error("digest for user %d not sent: %s", uid, exc)
            await call(store.unclaim_digest, uid, now, last)
            continue
        if sent is not None:
            out.append(sent)
    return out


async def _send_one(cfg: Config, store: Store, deliverer: Any, call: Call, secret: str, uid: int,
                    since: float | None, now: float) -> Sent | None:
    user = await call(store.get_user, uid)
    address = next((a for a in user.addresses if not a.startswith("@")), None)
    if address is None:
        return None  # a catch-all alone names no mailbox to send to
    entries, total = await call(store.digest_pending, uid, since, cfg.digest.max_entries, now)
    if not entries:
        return Sent(address, 0)
    froms = await call(store.challenge_from_headers, uid, [e["id"] for e in entries])
    for e in entries:
        e["from_header"] = froms.get(e["id"], "")
    base = cfg.public_url
    expires = int(now + cfg.digest.link_ttl)
    links = {e["id"]: (f"{base}/d/{make_link_token(secret, uid, e['id'], 'a', expires)}",
                       f"{base}/d/{make_link_token(secret, uid, e['id'], 'd', expires)}") for e in entries}
    message = build_message(cfg, address, entries, total, links, now)
    await deliverer.deliver(Outbound(mail_from="", recipients=[address], message=message, mailboxes=(address,)))
    log.info("digest sent to %s: %d of %d new pending senders", address, len(entries), total)
    return Sent(address, len(entries))
