"""The confirmation page (SPEC §5): GET/POST /c/{token}, its CAPTCHA picture and sound.

The sender opens the link from their bounce, reads six digits (or listens to
them), types them, and is allowlisted for that recipient. Pages are plain
HTML from Jinja templates under resources/web/ (no JavaScript), in the
language the browser asks for. An admin overrides any template, the CSS or a
message catalogue (or adds a language) by putting a file of the same name in
a `web/` directory next to the config file, e.g. /etc/sendergate/web/.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
import re
import secrets
import time
import zlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from ..logformat import kv
from ..policy.replies import recipient_list
from ..runtime import Runtime
from ..store import StoreError
from ..store import confirm as confirm_store
from .captcha import answer_matches, csrf_ok, csrf_value, new_answer, new_nonce, nonce_ok, render_png, render_wav
from .clientip import client_address, parse_networks, rate_key
from .deps import run
from .errors import store_status

log = logging.getLogger("sendergate.confirm")

TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")  # new_token(16): 128 bits in base64url
COOKIE = "sg_form"
CSRF_MAX_AGE = 12 * 3600  # a page left open over lunch still works; overnight it is renewed
DEFAULT_LANGUAGE = "en"
ASSET = re.compile(r"^[A-Za-z0-9_-]+\.(css|png|svg|ico|webp)$")

# Rate limits: (events, window seconds). Answers per challenge stop online guessing of
# one link; answers per client IP stop one client spraying links; views per IP cap the
# CPU a client can spend on pictures and sounds (each page view is a new CAPTCHA). Counted
# in the store, so every node shares them, per client address (clientip.py: behind
# http.trusted_proxies, IPv6 per /64).
ANSWERS_PER_CHALLENGE = (5, 600.0)
ANSWERS_PER_IP = (20, 600.0)
VIEWS_PER_IP = (120, 600.0)

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; media-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never hand it to another site
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


# -- pure helpers ---------------------------------------------------------------


def best_language(accept_language: str, available: set[str], default: str = DEFAULT_LANGUAGE) -> str:
    """The first language of Accept-Language (by q, then order) that we have; `de-CH` matches `de`."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag:
            continue
        q = 1.0
        m = re.search(r"q\s*=\s*([0-9.]+)", params)
        if m:
            try:
                q = float(m.group(1))
            except ValueError:
                q = 0.0
        if q > 0:
            ranked.append((-q, i, tag))
    for _, _, tag in sorted(ranked):
        if tag == "*":
            return default
        for candidate in (tag, tag.split("-")[0]):
            if candidate in available:
                return candidate
    return default


def canonical_token(raw: str) -> str | None:
    """A token with the punctuation mail clients glue onto links ('…/c/TOKEN.') removed."""
    if TOKEN.match(raw):
        return raw
    head, tail = raw[:22], raw[22:]
    if TOKEN.match(head) and tail and all(c in ".,;:)]>'\"" for c in tail):
        return head
    return None


# -- templates and catalogues ---------------------------------------------------


def override_dir(config_path: str) -> Path | None:
    """The admin's `web/` directory next to the config file, when there is one."""
    if not config_path:
        return None
    d = Path(config_path).resolve().parent / "web"
    return d if d.is_dir() else None


class Pages:
    """Templates and message catalogues: the admin's files first, then the shipped ones."""

    def __init__(self, overrides: Path | None) -> None:
        self.overrides = overrides
        loaders: list[Any] = [PackageLoader("sendergate.resources", "web")]
        if overrides is not None:
            loaders.insert(0, FileSystemLoader(str(overrides)))
        self.env = Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(default=True),
                               auto_reload=True)
        self.catalogs = self._load_catalogs()

    def _load_catalogs(self) -> dict[str, dict[str, str]]:
        catalogs: dict[str, dict[str, str]] = {}
        shipped = resources.files("sendergate.resources") / "web" / "messages"
        sources = [(p.name, p.read_text(encoding="utf-8")) for p in shipped.iterdir() if p.name.endswith(".json")]
        if self.overrides is not None and (self.overrides / "messages").is_dir():
            sources += [(p.name, p.read_text(encoding="utf-8"))
                        for p in sorted((self.overrides / "messages").glob("*.json"))]
        for name, text in sources:
            lang = name[:-5].lower()
            try:
                entries = json.loads(text)
            except json.JSONDecodeError as exc:
                log.error("message catalogue %s is not valid JSON (%s); ignored", name, exc)
                continue
            catalogs.setdefault(lang, {}).update({k: str(v) for k, v in entries.items()})
        return catalogs

    @property
    def languages(self) -> set[str]:
        return set(self.catalogs)

    def translator(self, lang: str) -> Callable[..., Markup]:
        catalog = self.catalogs.get(lang, {})
        fallback = self.catalogs.get(DEFAULT_LANGUAGE, {})

        def t(key: str, **values: Any) -> Markup:
            # Catalogue text and values are both escaped: an admin's catalogue or a sender's
            # subject can never inject markup.
            text = str(escape(catalog.get(key) or fallback.get(key) or key))
            safe = {k: str(escape(str(v))) for k, v in values.items()}
            return Markup(re.sub(r"{(\w+)}", lambda m: safe.get(m.group(1), m.group(0)), text))

        return t

    def render(self, name: str, lang: str, **context: Any) -> str:
        return self.env.get_template(name).render(lang=lang, t=self.translator(lang), **context)

    def asset(self, name: str) -> bytes | None:
        if self.overrides is not None and (self.overrides / name).is_file():
            return (self.overrides / name).read_bytes()
        shipped = resources.files("sendergate.resources") / "web" / name
        return shipped.read_bytes() if shipped.is_file() else None


# -- the routes -------------------------------------------------------------------


class ConfirmPage:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.pages = Pages(override_dir(rt.cfg.path))
        self.trusted = parse_networks(rt.cfg.http.trusted_proxies)
        self._secret: str | None = None
        public = urlsplit(rt.cfg.public_url)
        self.public_origin = f"{public.scheme}://{public.netloc}".lower()

    async def limited(self, kind: str, key: str, limit: tuple[int, float]) -> float:
        """Count one hit in the store (shared by every node); 0 if allowed, else seconds to wait."""
        return await run(self.rt, self.rt.store.rate_hit, f"{kind}:{key}", *limit)

    async def secret(self) -> str:
        if self._secret is None:
            self._secret = await run(self.rt, self.rt.store.page_secret)
        return self._secret

    # -- responses ----------------------------------------------------------
    def language(self, request: Request) -> str:
        return best_language(request.headers.get("accept-language", ""), self.pages.languages)

    def html(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = self.pages.render(template, self.language(request), asset_base="assets/", **context)
        resp = HTMLResponse(body, status_code=status)
        resp.headers.update(SECURITY_HEADERS)
        resp.headers["Vary"] = "Accept-Language"
        return resp

    def message(self, request: Request, kind: str, status: int, retry_after: float = 0) -> HTMLResponse:
        minutes = max(1, int(retry_after // 60) + 1) if retry_after else 0
        resp = self.html(request, "message.html", status, kind=kind, minutes=minutes)
        if retry_after:
            resp.headers["Retry-After"] = str(int(retry_after) + 1)
        return resp

    def for_status(self, request: Request, state: confirm_store.LinkState) -> HTMLResponse | None:
        """The page for a link that cannot take an answer (any more), or None while it can."""
        if state.status in confirm_store.DONE:
            return self.html(request, "confirmed.html", recipient=recipient_list(state.recipients))
        if state.status == confirm_store.EXPIRED:
            return self.message(request, "expired", 410)
        if state.status != confirm_store.PENDING:  # denied (or a status this page does not know)
            return self.message(request, "gone", 410)
        return None

    async def form(self, request: Request, token: str, state: confirm_store.LinkState, *,
                   notice: str = "", status: int = 200) -> HTMLResponse:
        cookie = request.cookies.get(COOKIE, "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{22}", cookie):
            cookie = secrets.token_urlsafe(16)
        # Every form is a new CAPTCHA with a new answer, replacing the one shown before: "a different
        # picture" never shows the same answer again, so renderings cannot be compared.
        nonce = new_nonce()
        await run(self.rt, self.rt.store.issue_captcha, state.challenge_id, nonce,
                                 new_answer())
        csrf = csrf_value(await self.secret(), cookie, token, int(time.time()))
        resp = self.html(request, "confirm.html", status, notice=notice,
                         recipient=recipient_list(state.recipients),
                         sender=state.sender, subject=state.subject[:200], csrf=csrf, nonce=nonce,
                         form_action=token, image_url=f"{token}/captcha.png?n={nonce}",
                         audio_url=f"{token}/captcha.wav?n={nonce}")
        resp.set_cookie(COOKIE, cookie, httponly=True, samesite="lax", path="/c/",
                        secure=request.url.scheme == "https")
        return resp

    async def state(self, token: str) -> confirm_store.LinkState | None:
        return await run(self.rt, self.rt.store.link_state, token)

    def client_ip(self, request: Request) -> str:
        peer = request.client.host if request.client else "unknown"
        return client_address(peer, request.headers.getlist("x-forwarded-for"), self.trusted)

    def cross_site(self, request: Request) -> bool:
        """A browser telling us the form was posted from another site (Fetch metadata, Origin)."""
        if request.headers.get("sec-fetch-site", "") == "cross-site":
            return True
        origin = request.headers.get("origin", "").lower()
        if not origin or origin == "null":  # no-referrer pages post with Origin: null
            return False
        own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
        return origin not in (own, self.public_origin)

    # -- handlers -----------------------------------------------------------
    async def get_page(self, request: Request, raw: str) -> Response:
        token = canonical_token(raw)
        if token is None:
            return self.message(request, "notfound", 404)
        if token != raw:
            return RedirectResponse(token, status_code=308, headers=SECURITY_HEADERS)
        state = await self.state(token)  # a read: an unknown token costs the store no write
        if state is None:
            return self.message(request, "notfound", 404)
        if wait := await self.limited("view", rate_key(self.client_ip(request)), VIEWS_PER_IP):
            return self.message(request, "limited", 429, wait)
        return self.for_status(request, state) or await self.form(request, token, state)

    async def post_answer(self, request: Request, token: str) -> Response:
        if not TOKEN.match(token):
            return self.message(request, "notfound", 404)
        ip = self.client_ip(request)
        state = await self.state(token)
        if state is None:
            return self.message(request, "notfound", 404)
        if wait := await self.limited("answer-ip", rate_key(ip), ANSWERS_PER_IP):
            log.warning("confirmation answers rate-limited client_ip=%s", ip)
            return self.message(request, "limited", 429, wait)
        if (page := self.for_status(request, state)) is not None:
            return page
        form = await request.form()
        secret = await self.secret()
        csrf_field, nonce_field, answer = (str(form.get(k, "")) for k in ("csrf", "nonce", "answer"))
        if self.cross_site(request) or not csrf_ok(secret, request.cookies.get(COOKIE, ""), token,
                                                           csrf_field, now=time.time(), max_age=CSRF_MAX_AGE):
            return await self.form(request, token, state, notice="bad_form", status=403)
        # Counted after the CSRF check: a forged cross-site post must not use up the sender's attempts.
        if wait := await self.limited("answer-challenge", str(state.challenge_id), ANSWERS_PER_CHALLENGE):
            log.warning("confirmation answers rate-limited challenge_id=%d client_ip=%s", state.challenge_id, ip)
            return self.message(request, "limited", 429, wait)
        current = await run(self.rt, self.rt.store.current_captcha, state.challenge_id)
        if current is None or not nonce_ok(nonce_field) or nonce_field != current.nonce:
            return await self.form(request, token, state, notice="stale_captcha", status=400)
        if not answer.strip():  # not an answer: the CAPTCHA stays as it is
            return await self.form(request, token, state, notice="empty_answer", status=400)
        if answer_matches(current.answer, answer):
            if await run(self.rt, self.rt.store.confirm, state.challenge_id, current.nonce,
                                        None, state.others, ip):
                self.log_confirmed(state, ip)
                self.rt.metrics.count_confirmation()
                return self.html(request, "confirmed.html", recipient=recipient_list(state.recipients))
            # someone answered in between, or a block now covers the sender: show what the link is now
            fresh = await self.state(token)
            if fresh is None:
                return self.message(request, "notfound", 404)
            return self.for_status(request, fresh) or await self.form(request, token, fresh,
                                                                      notice="stale_captcha", status=400)
        # A wrong answer retires this CAPTCHA; the next form is a new one with a new answer.
        counted = await run(self.rt, self.rt.store.record_wrong_answer, state.challenge_id,
                                           current.nonce)
        fresh = await self.state(token) or state
        if (page := self.for_status(request, fresh)) is not None:
            return page
        return await self.form(request, token, fresh, notice="wrong_answer" if counted else "stale_captcha",
                               status=400)

    async def captcha_media(self, request: Request, token: str, kind: str) -> Response:
        """The CAPTCHA's one rendering: made on the first fetch and stored, so every later fetch (a
        replay of the sound, another node) gets the same bytes, never a second rendering to compare."""
        if not TOKEN.match(token):
            return _plain(404, "no such link")
        nonce = request.query_params.get("n", "")
        if not nonce_ok(nonce):
            return _plain(404, "no such picture")
        state = await self.state(token)
        if state is None:
            return _plain(404, "no such link")
        if wait := await self.limited("view", rate_key(self.client_ip(request)), VIEWS_PER_IP):
            resp = _plain(429, "too many requests")
            resp.headers["Retry-After"] = str(int(wait) + 1)
            return resp
        current = await run(self.rt, self.rt.store.current_captcha, state.challenge_id)
        if state.status != confirm_store.PENDING or current is None or current.nonce != nonce:
            return _plain(410, "this picture was already used; load the page again for a new one")
        column = "png" if kind == "png" else "wav"
        body = getattr(current, column)
        if body is None:
            if kind == "png":
                rendered = await asyncio.to_thread(render_png, current.answer)
            else:
                wav = await asyncio.to_thread(render_wav, current.answer, self.language(request))
                rendered = zlib.compress(wav, 6)  # half the size in the store
            body = await run(self.rt, self.rt.store.keep_rendering, state.challenge_id,
                                            nonce, column, rendered)
            if body is None:
                return _plain(410, "this picture was already used; load the page again for a new one")
        if kind == "png":
            resp = Response(bytes(body), media_type="image/png")
        else:
            resp = Response(zlib.decompress(bytes(body)), media_type="audio/wav")
        resp.headers.update(SECURITY_HEADERS)
        return resp

    async def asset(self, request: Request, name: str) -> Response:
        body = self.pages.asset(name) if ASSET.match(name) else None
        if body is None:
            return _plain(404, "not found")
        resp = Response(body, media_type=mimetypes.guess_type(name)[0] or "application/octet-stream")
        resp.headers.update(SECURITY_HEADERS)
        resp.headers["Cache-Control"] = "public, max-age=3600"
        return resp

    def log_confirmed(self, state: confirm_store.LinkState, ip: str) -> None:
        fields = {"challenge_id": state.challenge_id, "recipient": state.recipient, "sender": state.sender,
                  "client_ip": ip, "allowlisted": state.sender, "source": "confirmed"}
        if self.rt.log_format == "json":
            log.info(json.dumps({"event": "confirmed", **fields}, ensure_ascii=False))
        else:
            log.info("confirmed " + " ".join(f"{k}={kv(v)}" for k, v in fields.items()))


def _plain(status: int, text: str) -> Response:
    resp = Response(text + "\n", status_code=status, media_type="text/plain")
    resp.headers.update(SECURITY_HEADERS)
    return resp


async def page_of(request: Request) -> ConfirmPage:
    """The app's confirmation page (create_app puts one on app.state)."""
    page: ConfirmPage = request.app.state.confirm_page
    return page


PageDep = Annotated[ConfirmPage, Depends(page_of)]

confirm_router = APIRouter(include_in_schema=False)


# Literal paths before the /c/{token} patterns.
@confirm_router.get("/c/assets/{name}")
async def confirm_asset(request: Request, page: PageDep, name: str) -> Response:
    return await page.asset(request, name)


@confirm_router.get("/c/{token}")
async def confirm_get(request: Request, page: PageDep, token: str) -> Response:
    try:
        return await page.get_page(request, token)
    except StoreError as exc:
        return _store_failure(exc)


@confirm_router.post("/c/{token}")
async def confirm_post(request: Request, page: PageDep, token: str) -> Response:
    try:
        return await page.post_answer(request, token)
    except StoreError as exc:
        return _store_failure(exc)


@confirm_router.get("/c/{token}/captcha.png")
async def confirm_png(request: Request, page: PageDep, token: str) -> Response:
    try:
        return await page.captcha_media(request, token, "png")
    except StoreError as exc:
        return _store_failure(exc)


@confirm_router.get("/c/{token}/captcha.wav")
async def confirm_wav(request: Request, page: PageDep, token: str) -> Response:
    try:
        return await page.captcha_media(request, token, "wav")
    except StoreError as exc:
        return _store_failure(exc)


def _store_failure(exc: StoreError) -> Response:
    """The store's exception as a page for a person: its status from errors.py; store trouble says to try later."""
    status = store_status(exc)
    if status != 503:
        return _plain(status, "no such link")
    log.error("confirmation page: store unavailable: %s", exc)
    resp = _plain(503, "temporarily unavailable; please try again in a few minutes")
    resp.headers["Retry-After"] = "60"
    return resp


def expected_answer(store: Any, token: str, nonce: str) -> str:
    """The answer to the CAPTCHA issued as `nonce` for `token`, from the store (admins, tests)."""
    state = store.link_state(token)
    current = store.current_captcha(state.challenge_id) if state is not None else None
    if current is None or current.nonce != nonce:
        raise ValueError(f"{nonce!r} is not the current CAPTCHA of this link")
    return str(current.answer)
