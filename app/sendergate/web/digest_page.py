"""The digest's decision page (issue 16 item 4): GET/POST /d/{link}.

GET only shows what the link would do, with a button: link scanners (Safe Links, Proofpoint) fetch
every URL of a mail and must approve no one. POST decides, when the form's CSRF field matches the
page's cookie and the request is not cross-site; the link is then used up (single use, every node:
the store keeps its nonce). A forged, expired, used or foreign link gets a clear page and changes nothing.
"""

from __future__ import annotations

import logging
import secrets
import time
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import escape

from .. import notify
from ..digest import Link, LinkError, authenticated_domain, link_secret, parse_link_token
from ..runtime import Runtime
from ..store import NotFound, StoreError
from .captcha import csrf_ok, csrf_value
from .confirm import SECURITY_HEADERS
from .deps import RuntimeDep, run

log = logging.getLogger("sendergate.digest")

COOKIE = "sg_digest"
CSRF_MAX_AGE = 3600

REFUSALS = {  # reason -> (status, title, text)
    "malformed": (404, "This link is not valid", ("Open the button from your digest mail again; the link may have "
                  "been cut off.")),
    "forged": (404, "This link is not valid", "It was not made by this gateway. Nothing was changed."),
    "gone": (404, "This link is not valid", "Its sender is not in your pending list. Nothing was changed."),
    "expired": (410, "This link has expired", ("Decide in the SenderGate app, or wait for your next digest. "
                "Nothing was changed.")),
    "used": (410, "This link was already used", "Each digest button works once. Nothing more was changed."),
    "csrf": (403, "Please open the link again", ("This form expired or did not come from this page. "
             "Nothing was changed.")),
}

digest_router = APIRouter(include_in_schema=False)


def page(title: str, body: str, status: int = 200, cookie: tuple[str, bool] | None = None) -> HTMLResponse:
    doc = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
           f"<meta name=\"robots\" content=\"noindex\"><title>{escape(title)}</title></head>"
           f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>")
    resp = HTMLResponse(doc, status_code=status)
    for k, v in SECURITY_HEADERS.items():
        resp.headers[k] = v
    if cookie is not None:
        resp.set_cookie(COOKIE, cookie[0], httponly=True, samesite="strict", path="/d/", secure=cookie[1])
    return resp


def refused(reason: str) -> HTMLResponse:
    status, title, text = REFUSALS[reason]
    return page(title, f"<p id=\"refused\" data-reason=\"{reason}\">{escape(text)}</p>", status)


def cross_site(rt: Runtime, request: Request) -> bool:
    """A browser telling us the form was posted from another site (Fetch metadata, Origin)."""
    if request.headers.get("sec-fetch-site", "") == "cross-site":
        return True
    origin = request.headers.get("origin", "").lower()
    if not origin or origin == "null":
        return False
    public = urlsplit(rt.cfg.public_url)
    own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    return origin not in (own, f"{public.scheme}://{public.netloc}".lower())


async def check(rt: Runtime, token: str) -> tuple[Link, dict[str, object]]:
    """The link and its challenge, or LinkError: signature, expiry, use, and that the challenge is the
    link's user's (a link never reaches another user's challenge, whatever its numbers say)."""
    link = parse_link_token(await run(rt, link_secret, rt.store), token)
    if await run(rt, rt.store.digest_link_used, link.nonce):
        raise LinkError("used")
    try:
        ch = await run(rt, rt.store.get_challenge, link.user_id, link.challenge_id)
    except NotFound:
        raise LinkError("gone") from None
    return link, ch


def describe(ch: dict[str, object]) -> str:
    sender = str(ch["sender"])
    auth = ch.get("auth")
    verified = authenticated_domain(sender, auth if isinstance(auth, str) else None)
    return (f"<dl><dt>Sender</dt><dd id=\"sender\">{escape(sender)}</dd>"
            f"<dt>Subject</dt><dd>{escape(str(ch.get('subject') or '(none)'))}</dd>"
            f"<dt>Wrote to</dt><dd>{escape(str(ch['recipient']))}</dd>"
            f"<dt>Attempts</dt><dd>{int(str(ch.get('attempts') or 0))}</dd>"
            f"<dt>Authentication</dt><dd>{'verified domain ' + escape(verified) if verified else 'domain not verified'}"
            "</dd></dl>")


def already(ch: dict[str, object]) -> HTMLResponse:
    return page("Already decided", f"<p id=\"decided\" data-status=\"{escape(str(ch['status']))}\">"
                f"This sender is already {escape(str(ch['status']))}. Nothing was changed.</p>{describe(ch)}")


@digest_router.get("/d/{token}")
async def digest_get(request: Request, rt: RuntimeDep, token: str) -> Response:
    try:
        link, ch = await check(rt, token)
    except LinkError as exc:
        return refused(exc.reason)
    except StoreError:
        return page("Temporarily unavailable", "<p>Please try again in a few minutes.</p>", 503)
    if ch["status"] != "pending":
        return already(ch)
    cookie = request.cookies.get(COOKIE) or secrets.token_urlsafe(16)
    csrf = csrf_value(await run(rt, link_secret, rt.store), cookie, token, int(time.time()))
    verb = "Approve" if link.action == "approve" else "Deny"
    what = ("This sender will be allowed to write to you." if link.action == "approve"
            else "This sender will be blocked; their confirmation link stops working.")
    body = (f"<p>{escape(what)}</p>{describe(ch)}"
            f"<form method=\"post\" action=\"/d/{escape(token)}\">"
            f"<input type=\"hidden\" name=\"csrf\" value=\"{escape(csrf)}\">"
            f"<button type=\"submit\" id=\"decide\">{verb} {escape(str(ch['sender']))}</button></form>"
            "<p>Nothing changes until you press the button.</p>")
    return page(f"{verb} this sender?", body, cookie=(cookie, request.url.scheme == "https"))


@digest_router.post("/d/{token}")
async def digest_post(request: Request, rt: RuntimeDep, token: str) -> Response:
    try:
        form = await request.form()
        secret = await run(rt, link_secret, rt.store)
        if cross_site(rt, request) or not csrf_ok(secret, request.cookies.get(COOKIE, ""), token,
                                                  str(form.get("csrf", "")), now=time.time(),
                                                  max_age=CSRF_MAX_AGE):
            return refused("csrf")
        link, ch = await check(rt, token)
        if ch["status"] != "pending":
            return already(ch)
        if not await run(rt, rt.store.use_digest_link, link.nonce, float(link.expires)):
            return refused("used")
        decided, _, changed = await run(rt, rt.store.decide_challenge, link.user_id, link.challenge_id,
                                        link.action, None, "from the digest email")
    except LinkError as exc:
        return refused(exc.reason)
    except StoreError:
        return page("Temporarily unavailable", "<p>Please try again in a few minutes.</p>", 503)
    log.info("digest: user %d %s challenge %d (%s -> %s)", link.user_id, link.action, link.challenge_id,
             decided["sender"], decided["recipient"])
    if changed and link.action == "approve":
        notify.schedule(rt.cfg, rt.store, decided, str(ch["status"]), rt.astore.run)
    title = "Approved" if link.action == "approve" else "Denied"
    text = ("They can write to you now." if link.action == "approve"
            else "They are blocked; their messages are refused.")
    return page(title, f"<p id=\"done\" data-status=\"{escape(str(decided['status']))}\">"
                f"{escape(str(decided['sender']))}: {escape(text)}</p>")
