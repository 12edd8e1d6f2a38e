"""A FAKE OAuth2 authorization server on loopback, for the desktop app's sign-in tests.

Microsoft's and Google's real authorization servers cannot run here (and the tests reach loopback
only), so this small server stands in for them. It follows the RFCs the app and Dovecot rely on:

- GET  /authorize   authorization code grant (RFC 6749 §4.1) with PKCE S256 (RFC 7636); no login
                    page: it auto-approves as `user` (the test plays the browser) and redirects to
                    the client's loopback redirect_uri with `code` and `state`;
- POST /token       `authorization_code` (code single-use, redirect_uri and code_verifier checked)
                    and `refresh_token` (rotated on every use); errors as RFC 6749 §5.2 JSON;
- POST /revoke      token revocation (RFC 7009): a refresh token and the access tokens it gave;
- POST /introspect  token introspection (RFC 7662), what Dovecot's `passdb { driver = oauth2 }`
                    asks with `introspection_mode = post`.

    with FakeAuthorizationServer(client_id="sendergate-test") as auth:
        auth.user = "alice@example.test"
        auth.url("/authorize"), auth.url("/token"), auth.url("/introspect")
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class _Grant:
    user: str
    client_id: str
    scope: str
    redirect_uri: str = ""
    challenge: str = ""


@dataclass
class FakeAuthorizationServer:
    client_id: str = "sendergate-test-client"
    user: str = ""  # whom /authorize approves
    access_lifetime: int = 3600
    scopes_required: tuple[str, ...] = ()
    # what happened, for the tests' assertions
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    token_errors: list[str] = field(default_factory=list)  # why /token refused, newest last
    introspections: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._access: dict[str, tuple[_Grant, float, str]] = {}  # token -> grant, expiry, its refresh token
        self._httpd: ThreadingHTTPServer | None = None

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        server = self

        class Handler(_Handler):
            auth = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="fake-oauth2").start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def url(self, path: str) -> str:
        assert self._httpd is not None, "not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    # --- what a test does to the server -----------------------------------

    def expire_access_tokens(self) -> None:
        """Every access token expires now (the refresh tokens stay good)."""
        with self._lock:
            self._access = {t: (g, 0.0, r) for t, (g, _exp, r) in self._access.items()}

    def revoke_all(self, user: str) -> None:
        """The user (or their admin) withdrew the app's access: every token of `user` dies."""
        with self._lock:
            self._refresh = {t: g for t, g in self._refresh.items() if g.user != user}
            self._access = {t: v for t, v in self._access.items() if v[0].user != user}

    def grant_types(self) -> list[str]:
        return [r.get("grant_type", "") for r in self.token_requests]

    def active_refresh_tokens(self) -> set[str]:
        with self._lock:
            return set(self._refresh)

    # --- the protocol -----------------------------------------------------

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """(status, headers, body) for GET /authorize."""
        self.authorize_requests.append(query)
        redirect = query.get("redirect_uri", "")
        parts = urlsplit(redirect)
        # RFC 8252 §7.3: a loopback redirect of any port; anything else is not a registered redirect
        if query.get("client_id") != self.client_id or parts.scheme != "http" or parts.hostname != "127.0.0.1":
            return 400, {}, "unknown client or redirect_uri not registered"
        state = query.get("state", "")

        def back(**params: str) -> tuple[int, dict[str, str], str]:
            sep = "&" if parts.query else "?"
            return 302, {"Location": redirect + sep + urlencode({**params, "state": state})}, ""

        if query.get("response_type") != "code":
            return back(error="unsupported_response_type")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 required")
        scope = query.get("scope", "")
        if any(s not in scope.split() for s in self.scopes_required):
            return back(error="invalid_scope")
        if not self.user:
            return back(error="access_denied")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Grant(self.user, self.client_id, scope, redirect, query["code_challenge"])
        return back(code=code)

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        self.token_requests.append(form)
        if form.get("client_id") != self.client_id:
            return 401, {"error": "invalid_client"}
        grant_type = form.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                grant = self._codes.pop(form.get("code", ""), None)  # single use, RFC 6749 §4.1.2
                if grant is None:
                    return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
                if grant.redirect_uri != form.get("redirect_uri"):
                    return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
                if not verifier or challenge.decode() != grant.challenge:
                    return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
            elif grant_type == "refresh_token":
                grant = self._refresh.pop(form.get("refresh_token", ""), None)  # rotated: each is good once
                if grant is None:
                    return 400, {"error": "invalid_grant", "error_description": "refresh token revoked"}
            else:
                return 400, {"error": "unsupported_grant_type"}
            access, refresh = "at-" + secrets.token_urlsafe(24), "rt-" + secrets.token_urlsafe(24)
            self._refresh[refresh] = grant
            self._access[access] = (grant, time.time() + self.access_lifetime, refresh)
        return 200, {"access_token": access, "token_type": "Bearer", "expires_in": self.access_lifetime,
                     "refresh_token": refresh, "scope": grant.scope}

    def revoke(self, form: dict[str, str]) -> int:
        token = form.get("token", "")
        with self._lock:
            self._refresh.pop(token, None)
            self._access = {t: v for t, v in self._access.items() if t != token and v[2] != token}
        return 200  # RFC 7009 §2.2: also for unknown tokens

    def introspect(self, form: dict[str, str]) -> dict[str, object]:
        self.introspections += 1
        with self._lock:
            found = self._access.get(form.get("token", ""))
        if found is None or found[1] <= time.time():
            return {"active": False}
        grant, expiry, _refresh = found
        return {"active": True, "username": grant.user, "client_id": grant.client_id, "scope": grant.scope,
                "token_type": "Bearer", "exp": int(expiry)}


class _Handler(BaseHTTPRequestHandler):
    auth: FakeAuthorizationServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/authorize":
            self._send(404, {}, b"")
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        status, headers, text = self.auth.authorize(query)
        self._send(status, headers, text.encode(), "text/plain")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        path = urlsplit(self.path).path
        if path == "/token":
            status, body = self.auth.token(form)
            if status != 200:
                self.auth.token_errors.append(str(body.get("error_description") or body.get("error")))
            self._json(status, body)
        elif path == "/revoke":
            self._send(self.auth.revoke(form), {}, b"")
        elif path == "/introspect":
            self._json(200, self.auth.introspect(form))
        else:
            self._send(404, {}, b"")

    def _json(self, status: int, body: dict[str, object]) -> None:
        self._send(status, {"Cache-Control": "no-store"}, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, headers: dict[str, str], body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # tests assert on the recorded requests instead
