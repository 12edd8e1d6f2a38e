"""OAuth2 sign-in for the IMAP account: Microsoft 365 and Gmail refuse password IMAP.

Authorization code with PKCE (RFC 7636, S256) through a loopback redirect, as RFC 8252 describes for
native apps: a one-shot HTTP listener on 127.0.0.1 with a port the system picks, the system browser
opened on the provider's page, the `state` of the answer checked before its code is used. The
tokens (refresh token, access token and its expiry) live in the keychain through secrets.py; an
access token is refreshed before it expires, and once more when the IMAP server refuses it. A
refresh token the provider no longer honours (revoked, expired, password changed) raises
`SignInRequired`: the app asks the user to sign in again and keeps everything else.

No widgets here: `SignIn.run` and `TokenSource.access_token` run on a worker thread
(operations.Operation); signin.py is the panel that drives them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from .api_client import ApiError
from .i18n import tr
from .secrets import NoKeychain, Placement, SecretStore

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger("sendergate.desktop.oauth")

TOKENS = "imap-oauth2"  # the keychain entry holding the tokens (JSON)
REFRESH_MARGIN = 300  # seconds before expiry an access token is renewed: a long harvest outlives none
SIGN_IN_TIMEOUT = 15 * 60  # the browser wait gives up after this; the user can cancel any time
HTTP_TIMEOUT = 30.0


class SignInProblem(ApiError):
    """The sign-in could not be done (bad settings, provider unreachable, refused): one line for a person."""


class SignInRequired(SignInProblem):
    """No usable tokens: never signed in, or the provider no longer honours the refresh token."""


class SignInCancelled(SignInProblem):
    """The user stopped waiting for the browser."""


# -- providers -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Provider:
    key: str  # 'microsoft', 'google', 'custom'
    label: str
    authorization_url: str
    token_url: str
    scopes: tuple[str, ...]
    extra_params: tuple[tuple[str, str], ...] = ()
    imap_host: str = ""  # the preset's IMAP server (TLS, port 993)
    revocation_url: str = ""  # RFC 7009; Microsoft's identity platform has none


MICROSOFT = Provider(
    "microsoft", "Microsoft 365",
    "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    # offline_access: without it Microsoft issues no refresh token
    ("https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"),
    imap_host="outlook.office365.com")
GOOGLE = Provider(
    "google", "Google",
    "https://accounts.google.com/o/oauth2/v2/auth",
    "https://oauth2.googleapis.com/token",
    ("https://mail.google.com/",),
    # Google issues a refresh token only with access_type=offline, and again on a later sign-in only with consent
    (("access_type", "offline"), ("prompt", "consent")),
    imap_host="imap.gmail.com", revocation_url="https://oauth2.googleapis.com/revoke")
PRESETS = {p.key: p for p in (MICROSOFT, GOOGLE)}


def custom_provider(authorization_url: str, token_url: str, scopes: str, revocation_url: str = "") -> Provider:
    try:
        label = urlsplit(authorization_url.strip()).hostname or tr("your provider")
    except ValueError:
        label = tr("your provider")
    return Provider("custom", label, authorization_url.strip(), token_url.strip(),
                    tuple(scopes.split()), revocation_url=revocation_url.strip())


@dataclass(frozen=True)
class OAuthClient:
    """The app as the provider knows it. We ship no client id of our own: the user's admin registers one."""

    provider: Provider
    client_id: str
    # An installed app's "secret" is no secret (RFC 8252 §8.5); Google's desktop clients still send one.
    client_secret: str = ""

    def check(self) -> None:
        """Raises SignInProblem for settings that cannot work, before any browser opens."""
        if not self.client_id.strip():
            raise SignInProblem(tr("Enter the client ID your administrator registered with %1 for SenderGate.")
                                .replace("%1", self.provider.label))
        for what, url in ((tr("authorization address"), self.provider.authorization_url),
                          (tr("token address"), self.provider.token_url)):
            if not _safe_endpoint(url):
                raise SignInProblem(tr("The %1 %2 must be an https:// address (plain http only to this computer).")
                                    .replace("%1", what).replace("%2", url or "''"))
        if not self.provider.scopes:
            raise SignInProblem(tr("Enter the scopes that allow IMAP access (your provider documents them)."))


def _safe_endpoint(url: str) -> bool:
    """https, or http to this computer only: codes and tokens must not cross a network in clear."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def client_for(settings: Settings, provider_key: str | None = None) -> OAuthClient:
    """The OAuth2 client the settings describe (the saved provider unless one is named)."""
    key = provider_key or settings.oauth_provider
    provider = PRESETS.get(key) or custom_provider(*settings.oauth_custom_endpoints,
                                                   settings.oauth_custom_revocation_url)
    return OAuthClient(provider, settings.oauth_client_id(key), settings.oauth_client_secret(key))


# -- tokens --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_at: float  # seconds since the epoch

    def fresh(self, now: float, margin: float = REFRESH_MARGIN) -> bool:
        return bool(self.access_token) and now < self.expires_at - margin

    def to_json(self) -> str:
        return json.dumps({"access_token": self.access_token, "refresh_token": self.refresh_token,
                           "expires_at": self.expires_at}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Tokens | None:
        try:
            data = json.loads(text)
            return cls(str(data["access_token"]), str(data["refresh_token"]), float(data["expires_at"]))
        except (ValueError, KeyError, TypeError):
            return None


def _tokens_from_response(data: dict[str, Any], previous_refresh: str, now: float) -> Tokens:
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise SignInProblem(tr("The sign-in server answered without an access token."))
    refresh = data.get("refresh_token") or previous_refresh  # providers may rotate it, or keep the old one
    if not isinstance(refresh, str) or not refresh:
        raise SignInProblem(tr("The sign-in server gave no refresh token, so SenderGate would have to ask you "
                               "to sign in every hour. Check the scopes (offline access)."))
    try:
        lifetime = float(data.get("expires_in", 3600))
    except (TypeError, ValueError):
        lifetime = 3600.0
    return Tokens(access, refresh, now + lifetime)


class TokenVault(Protocol):
    def load(self) -> Tokens | None: ...
    def save(self, tokens: Tokens) -> None: ...
    def forget(self) -> None: ...


class KeychainTokens:
    """The tokens in the keychain (or this session's memory, wherever the user chose to keep secrets)."""

    def __init__(self, store: SecretStore) -> None:
        self.store = store

    def load(self) -> Tokens | None:
        text = self.store.get_large(TOKENS)
        return Tokens.from_json(text) if text else None

    def save(self, tokens: Tokens, *, session_only: bool | None = None) -> None:
        if session_only is None:  # a refresh keeps the tokens where the user put them
            where = self.store.where(TOKENS)
            if where is None:  # signing in again: the keychain, or this session where there is none
                session_only = self.store.keychain() is None
            else:
                session_only = where.placement is Placement.SESSION
        try:
            self.store.put_large(TOKENS, tokens.to_json(), session_only=session_only)
        except NoKeychain as exc:
            raise SignInProblem(str(exc)) from None

    def forget(self) -> None:
        self.store.forget_large(TOKENS)


@dataclass
class HeldTokens:
    """Tokens held in memory only: a sign-in in the setup dialog, before the user saves."""

    tokens: Tokens | None = None

    def load(self) -> Tokens | None:
        return self.tokens

    def save(self, tokens: Tokens) -> None:
        self.tokens = tokens

    def forget(self) -> None:
        self.tokens = None


_refresh_lock = threading.Lock()  # one refresh at a time: a rotated refresh token is good for one use


class TokenSource:
    """Access tokens for the IMAP login, refreshed before they expire. Call on a worker thread."""

    def __init__(self, client: OAuthClient, vault: TokenVault, *, clock: Callable[[], float] = time.time,
                 http: httpx.Client | None = None) -> None:
        self.client = client
        self.vault = vault
        self.clock = clock
        self._http = http

    def access_token(self, *, force_refresh: bool = False) -> str:
        with _refresh_lock:
            tokens = self.vault.load()
            if tokens is None:
                raise SignInRequired(tr("You are not signed in to the mail account (%1): sign in again.")
                                     .replace("%1", self.client.provider.label))
            if force_refresh or not tokens.fresh(self.clock()):
                try:
                    tokens = refresh(self.client, tokens, http=self._http, now=self.clock())
                except SignInRequired:
                    self.vault.forget()  # dead: keeping it would only fail again
                    raise
                self.vault.save(tokens)
            return tokens.access_token


# -- the token endpoint --------------------------------------------------------------------------
def _post_token(client: OAuthClient, form: dict[str, str], http: httpx.Client | None) -> dict[str, Any]:
    form = {**form, "client_id": client.client_id}
    if client.client_secret:
        form["client_secret"] = client.client_secret
    url = client.provider.token_url
    if not _safe_endpoint(url):
        raise SignInProblem(tr("The token address must be an https:// address (plain http only to this computer)."))
    own = http is None
    http = http or httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False)
    try:
        response = http.post(url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise SignInProblem(tr("Cannot reach the sign-in server %1 (%2); try again later. Nothing was lost.")
                            .replace("%1", urlsplit(url).netloc).replace("%2", str(exc) or type(exc).__name__)) \
            from None
    finally:
        if own:
            http.close()
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise SignInProblem(tr("The sign-in server %1 answered HTTP %2 without a readable reply.")
                            .replace("%1", urlsplit(url).netloc).replace("%2", str(response.status_code)))
    if response.status_code != 200 or "error" in data:
        error = str(data.get("error", "")) or f"HTTP {response.status_code}"
        detail = str(data.get("error_description", ""))[:300]
        if error in ("invalid_grant", "interaction_required", "consent_required"):
            # RFC 6749 §5.2: the grant is expired, revoked or was issued to another client
            raise SignInRequired(tr("Your sign-in to the mail account (%1) has expired or was withdrawn: sign in "
                                    "again. Nothing was lost; the import carries on where it stopped.")
                                 .replace("%1", client.provider.label))
        raise SignInProblem(tr("The sign-in server refused: %1").replace("%1", f"{error} {detail}".strip()))
    return data


def exchange_code(client: OAuthClient, code: str, redirect_uri: str, verifier: str, *,
                  http: httpx.Client | None = None, now: float | None = None) -> Tokens:
    try:
        data = _post_token(client, {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                    "code_verifier": verifier}, http)
    except SignInRequired:
        # the code is not this sign-in's (PKCE or redirect mismatch), used already, or too old
        raise SignInProblem(tr("The sign-in server did not accept the answer from the browser: sign in again.")) \
            from None
    return _tokens_from_response(data, "", time.time() if now is None else now)


def refresh(client: OAuthClient, tokens: Tokens, *, http: httpx.Client | None = None,
            now: float | None = None) -> Tokens:
    data = _post_token(client, {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}, http)
    return _tokens_from_response(data, tokens.refresh_token, time.time() if now is None else now)


def revoke(client: OAuthClient, tokens: Tokens, *, http: httpx.Client | None = None) -> bool:
    """Ask the provider to withdraw the refresh token (RFC 7009), so a copy of it is worth nothing.
    Best effort: True if the provider confirmed; a provider without the endpoint, or down, is logged."""
    url = client.provider.revocation_url
    if not url or not _safe_endpoint(url):
        return False
    form = {"token": tokens.refresh_token, "token_type_hint": "refresh_token", "client_id": client.client_id}
    if client.client_secret:
        form["client_secret"] = client.client_secret
    own = http is None
    http = http or httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False)
    try:
        response = http.post(url, data=form)
    except httpx.HTTPError as exc:
        log.warning("revoking the mail sign-in at %s failed: %s", urlsplit(url).netloc, exc)
        return False
    finally:
        if own:
            http.close()
    if response.status_code != 200:
        log.warning("revoking the mail sign-in at %s: HTTP %s", urlsplit(url).netloc, response.status_code)
    return response.status_code == 200


# -- the sign-in: PKCE and the loopback redirect -------------------------------------------------
def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge), RFC 7636 §4.1-4.2: 64 characters from 48 random bytes."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=")
    return verifier, challenge.decode("ascii")


@dataclass
class _Answer:
    code: str = ""
    error: str = ""
    refused: int = 0  # answers with a wrong state: ignored
    done: threading.Event = field(default_factory=threading.Event)


_DONE_PAGE = ("<!doctype html><meta charset=utf-8><title>SenderGate</title>"
              "<p>{text}</p>")


class SignIn:
    """One sign-in: a loopback listener, the authorization URL to open, the wait for the redirect and
    the code exchange. Create on the GUI thread, `run` on a worker, `paste` and `close` from anywhere."""

    def __init__(self, client: OAuthClient, login_hint: str = "", *, http: httpx.Client | None = None) -> None:
        client.check()
        self.client = client
        self.state = secrets.token_urlsafe(32)
        self.verifier, challenge = pkce_pair()
        self._http = http
        self._answer = _Answer()
        self._pasted: queue.Queue[str] = queue.Queue()
        self._server = _LoopbackServer(self)
        self.redirect_uri = f"http://127.0.0.1:{self._server.server_address[1]}/"
        params = [("response_type", "code"), ("client_id", client.client_id),
                  ("redirect_uri", self.redirect_uri), ("scope", " ".join(client.provider.scopes)),
                  ("state", self.state), ("code_challenge", challenge), ("code_challenge_method", "S256"),
                  *client.provider.extra_params]
        if login_hint:
            params.append(("login_hint", login_hint))
        sep = "&" if urlsplit(client.provider.authorization_url).query else "?"
        self.authorization_url = client.provider.authorization_url + sep + urlencode(params)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def refused(self) -> int:
        """How many answers were refused for a wrong `state` (forged or from another sign-in)."""
        return self._answer.refused

    def paste(self, text: str) -> None:
        """The fallback: the address the browser ended on (or just its code), pasted by the user."""
        self._pasted.put(text)

    def run(self, cancelled: Callable[[], bool], timeout: float = SIGN_IN_TIMEOUT) -> Tokens:
        """Wait for the browser's redirect (or a paste), then trade the code for tokens."""
        try:
            code = self._wait(cancelled, timeout)
        finally:
            self.close()
        return exchange_code(self.client, code, self.redirect_uri, self.verifier, http=self._http)

    def close(self) -> None:
        self._server.server_close()

    def _wait(self, cancelled: Callable[[], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        answer = self._answer
        while not answer.done.is_set():
            if cancelled():
                raise SignInCancelled(tr("Sign-in cancelled."))
            if time.monotonic() > deadline:
                raise SignInProblem(tr("No answer from the browser within %1 minutes: sign in again.")
                                    .replace("%1", str(int(timeout // 60))))
            try:
                self._take_paste(self._pasted.get_nowait())
                continue
            except queue.Empty:
                pass
            self._server.handle_request()  # returns after one request or its 0.2 s timeout
        if answer.error:
            raise SignInProblem(answer.error)
        return answer.code

    def _take_paste(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        if "code=" in text or "error=" in text:
            query = urlsplit(text).query if "://" in text else text.lstrip("?")
            if not self.accept(parse_qs(query)):
                raise SignInProblem(tr("The pasted address does not belong to this sign-in (its state differs): "
                                       "sign in again."))
        else:
            # A bare code cannot be checked by state; PKCE binds it: a code from any other sign-in fails.
            self._answer.code = text
            self._answer.done.set()

    def accept(self, query: dict[str, list[str]]) -> bool:
        """Take a redirect's parameters if their state is ours; False (refused) otherwise."""
        state = (query.get("state") or [""])[0]
        if not hmac.compare_digest(state.encode(), self.state.encode()):
            self._answer.refused += 1
            log.warning("a sign-in answer with a wrong state was refused")
            return False
        error = (query.get("error") or [""])[0]
        code = (query.get("code") or [""])[0]
        if error:
            detail = (query.get("error_description") or [""])[0][:300]
            self._answer.error = (tr("You did not allow SenderGate to read your mail.") if error == "access_denied"
                                  else tr("The sign-in failed: %1").replace("%1", f"{error} {detail}".strip()))
        elif not code:
            self._answer.error = tr("The sign-in answer held no code.")
        self._answer.code = code
        self._answer.done.set()
        return True


class _LoopbackServer(HTTPServer):
    """127.0.0.1 only, a port the system picks; served one request at a time by SignIn._wait."""

    timeout = 0.2  # handle_request returns this often, so a cancel is seen promptly

    def __init__(self, sign_in: SignIn) -> None:
        self.sign_in = sign_in
        super().__init__(("127.0.0.1", 0), _RedirectHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's name (a DNS query): needless for a loopback listener
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()


class _RedirectHandler(BaseHTTPRequestHandler):
    server: _LoopbackServer
    timeout = 5  # a connection that sends nothing cannot hold the wait

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/":
            self._reply(404, tr("Not found."))
            return
        sign_in = self.server.sign_in
        if not sign_in.accept(parse_qs(parts.query)):
            self._reply(400, tr("This answer does not belong to the sign-in SenderGate started, so it was ignored."))
            return
        if sign_in._answer.error:
            self._reply(200, sign_in._answer.error + " " + tr("You can close this tab."))
        else:
            self._reply(200, tr("Signed in. You can close this tab and go back to SenderGate."))

    def _reply(self, status: int, text: str) -> None:
        body = _DONE_PAGE.format(text=_html(text)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the query holds the code: keep it out of any log


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


__all__ = [
    "GOOGLE",
    "MICROSOFT",
    "PRESETS",
    "TOKENS",
    "HeldTokens",
    "KeychainTokens",
    "OAuthClient",
    "Provider",
    "SignIn",
    "SignInCancelled",
    "SignInProblem",
    "SignInRequired",
    "TokenSource",
    "Tokens",
    "client_for",
    "custom_provider",
    "exchange_code",
    "pkce_pair",
    "refresh",
]
