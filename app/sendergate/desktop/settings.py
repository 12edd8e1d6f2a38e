"""Every setting the app keeps, through one typed wrapper around QSettings (STYLE.md).

Secrets never pass through here: they go to secrets.py (the OS keychain).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

log = logging.getLogger("sendergate.desktop.settings")

ORGANIZATION = "SenderGate"
APPLICATION = "SenderGate Desktop"
RESYNC_MINUTES = 15  # the default Sent re-sync interval once a mail account is set up


class Settings:
    """Typed properties over one QSettings scope. Tests and the demo pass their own (an INI file)."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self._s = qsettings if qsettings is not None else QSettings(ORGANIZATION, APPLICATION)

    @classmethod
    def at_path(cls, path: str) -> Settings:
        """Settings in a file of their own (the demo, tests): the user's real settings stay untouched."""
        return cls(QSettings(path, QSettings.Format.IniFormat))

    def _str(self, key: str, default: str = "") -> str:
        value = self._s.value(key, default)
        return "" if value is None else str(value)

    def _bool(self, key: str, default: bool) -> bool:
        value = self._s.value(key, default)
        if isinstance(value, str):  # INI files give strings back
            return value.lower() in ("1", "true", "yes")
        return bool(value)

    def _int(self, key: str, default: int) -> int:
        try:
            value: Any = self._s.value(key, default)  # QSettings values are untyped (str from an .ini)
            return int(value)
        except (TypeError, ValueError):
            return default

    def _bytes(self, key: str) -> QByteArray:
        value = self._s.value(key)
        return value if isinstance(value, QByteArray) else QByteArray()

    def sync(self) -> None:
        self._s.sync()

    def clear(self) -> None:
        self._s.clear()

    # -- the gateway --
    @property
    def gateway_url(self) -> str:
        return self._str("gateway/url")

    @gateway_url.setter
    def gateway_url(self, url: str) -> None:
        self._s.setValue("gateway/url", url)

    @property
    def insecure_http_accepted(self) -> str:
        """The plain-http URL the user agreed to send the token over (empty: none)."""
        return self._str("gateway/insecure_http_accepted")

    @insecure_http_accepted.setter
    def insecure_http_accepted(self, url: str) -> None:
        self._s.setValue("gateway/insecure_http_accepted", url)

    @property
    def is_configured(self) -> bool:
        return bool(self.gateway_url)

    # -- the IMAP account (password in the keychain) --
    @property
    def imap_host(self) -> str:
        return self._str("imap/host")

    @imap_host.setter
    def imap_host(self, host: str) -> None:
        self._s.setValue("imap/host", host)

    @property
    def imap_port(self) -> int:
        return self._int("imap/port", 993)

    @imap_port.setter
    def imap_port(self, port: int) -> None:
        self._s.setValue("imap/port", int(port))

    @property
    def imap_tls(self) -> bool:
        return self._bool("imap/tls", True)

    @imap_tls.setter
    def imap_tls(self, on: bool) -> None:
        self._s.setValue("imap/tls", bool(on))

    @property
    def imap_user(self) -> str:
        return self._str("imap/user")

    @imap_user.setter
    def imap_user(self, user: str) -> None:
        self._s.setValue("imap/user", user)

    @property
    def imap_security(self) -> str:
        """'tls' (implicit, 993), 'starttls' (143) or 'none' (a server on this computer only)."""
        value = self._str("imap/security")
        if value in ("tls", "starttls", "none"):
            return value
        return "tls" if self.imap_tls else "starttls"  # settings saved before there was a choice

    @imap_security.setter
    def imap_security(self, security: str) -> None:
        if security not in ("tls", "starttls", "none"):
            raise ValueError(security)
        self._s.setValue("imap/security", security)
        self.imap_tls = security == "tls"

    @property
    def imap_auth(self) -> str:
        """How the app logs in to the IMAP account: 'password' (or app password) or 'oauth2' (a sign-in)."""
        return "oauth2" if self._str("imap/auth") == "oauth2" else "password"

    @imap_auth.setter
    def imap_auth(self, auth: str) -> None:
        if auth not in ("password", "oauth2"):
            raise ValueError(auth)
        self._s.setValue("imap/auth", auth)

    # -- OAuth2 sign-in (tokens in the keychain; client ids here: we ship none of our own) --
    @property
    def oauth_provider(self) -> str:
        """'microsoft', 'google' or 'custom' (endpoints below)."""
        value = self._str("oauth/provider")
        return value if value in ("microsoft", "google", "custom") else "microsoft"

    @oauth_provider.setter
    def oauth_provider(self, key: str) -> None:
        if key not in ("microsoft", "google", "custom"):
            raise ValueError(key)
        self._s.setValue("oauth/provider", key)

    def oauth_client_id(self, provider: str) -> str:
        return self._str(f"oauth/{provider}/client_id")

    def set_oauth_client_id(self, provider: str, client_id: str) -> None:
        self._s.setValue(f"oauth/{provider}/client_id", client_id.strip())

    def oauth_client_secret(self, provider: str) -> str:
        """An installed app's client "secret" is not confidential (RFC 8252 §8.5), so it may live here."""
        return self._str(f"oauth/{provider}/client_secret")

    def set_oauth_client_secret(self, provider: str, secret: str) -> None:
        self._s.setValue(f"oauth/{provider}/client_secret", secret.strip())

    @property
    def oauth_custom_endpoints(self) -> tuple[str, str, str]:
        """The custom provider's authorization URL, token URL and scopes (space-separated)."""
        return (self._str("oauth/custom/authorization_url"), self._str("oauth/custom/token_url"),
                self._str("oauth/custom/scopes"))

    @oauth_custom_endpoints.setter
    def oauth_custom_endpoints(self, value: tuple[str, str, str]) -> None:
        authorization_url, token_url, scopes = value
        self._s.setValue("oauth/custom/authorization_url", authorization_url.strip())
        self._s.setValue("oauth/custom/token_url", token_url.strip())
        self._s.setValue("oauth/custom/scopes", " ".join(scopes.split()))

    @property
    def oauth_custom_revocation_url(self) -> str:
        """The custom provider's RFC 7009 revocation URL; empty: it has none."""
        return self._str("oauth/custom/revocation_url")

    @oauth_custom_revocation_url.setter
    def oauth_custom_revocation_url(self, url: str) -> None:
        self._s.setValue("oauth/custom/revocation_url", url.strip())

    def imap_harvest_state(self, account: str) -> dict[str, Any] | None:
        """Where the last IMAP import of `account` (user@host) stopped, so the next reads only new mail."""
        return self._harvest_states().get(account)

    def set_imap_harvest_state(self, account: str, state: dict[str, Any] | None) -> None:
        states = self._harvest_states()
        if state is None:
            states.pop(account, None)
        else:
            states[account] = state
        self._s.setValue("imap/harvest_state", json.dumps(states, sort_keys=True))

    def _harvest_states(self) -> dict[str, Any]:
        raw = self._str("imap/harvest_state")
        if not raw:
            return {}
        try:
            states = json.loads(raw)
        except ValueError:
            # costs only a full re-read of the mailbox next time; the import is idempotent
            log.warning("the saved IMAP import state is not JSON; the next import reads all mail again")
            return {}
        return states if isinstance(states, dict) else {}

    @property
    def imap_resync_minutes(self) -> int:
        """Re-sync the IMAP account every this many minutes; 0 is off. On by default, every
        RESYNC_MINUTES: the gateway recognises bounces and replies only by the sent Message-IDs the
        app uploads (SPEC §4.2 items 5 and 8), so a stale upload screens real bounces."""
        if self._s.contains("imap/resync_minutes"):
            return max(0, self._int("imap/resync_minutes", RESYNC_MINUTES))
        if self._s.contains("imap/resync_hours"):  # an earlier version's setting: the user's choice stands
            return max(0, self._int("imap/resync_hours", 0)) * 60
        return RESYNC_MINUTES

    @imap_resync_minutes.setter
    def imap_resync_minutes(self, minutes: int) -> None:
        self._s.setValue("imap/resync_minutes", max(0, int(minutes)))
        self._s.remove("imap/resync_hours")

    # -- behaviour --
    @property
    def notifications_enabled(self) -> bool:
        return self._bool("ui/notifications", True)

    @notifications_enabled.setter
    def notifications_enabled(self, on: bool) -> None:
        self._s.setValue("ui/notifications", bool(on))

    @property
    def keep_running(self) -> bool:
        """Closing the window hides it to the tray (where a tray exists) instead of quitting."""
        return self._bool("ui/keep_running", True)

    @keep_running.setter
    def keep_running(self, on: bool) -> None:
        self._s.setValue("ui/keep_running", bool(on))

    @property
    def told_still_running(self) -> bool:
        """The one-off "still running in the tray" message was shown."""
        return self._bool("ui/told_still_running", False)

    @told_still_running.setter
    def told_still_running(self, told: bool) -> None:
        self._s.setValue("ui/told_still_running", bool(told))

    @property
    def last_page(self) -> str:
        return self._str("ui/last_page", "overview")

    @last_page.setter
    def last_page(self, name: str) -> None:
        self._s.setValue("ui/last_page", name)

    @property
    def window_geometry(self) -> QByteArray:
        return self._bytes("ui/geometry")

    @window_geometry.setter
    def window_geometry(self, data: QByteArray) -> None:
        self._s.setValue("ui/geometry", data)

    @property
    def window_state(self) -> QByteArray:
        return self._bytes("ui/state")

    @window_state.setter
    def window_state(self, data: QByteArray) -> None:
        self._s.setValue("ui/state", data)

    @property
    def language(self) -> str:
        """'' follows the system; 'en', 'de' override it."""
        return self._str("ui/language")

    @language.setter
    def language(self, code: str) -> None:
        self._s.setValue("ui/language", code)

    # -- the first-run checklist --
    @property
    def checklist_closed(self) -> bool:
        """Every step done or the user dismissed it: the Overview no longer shows it."""
        return self._bool("ui/checklist_closed", False)

    @checklist_closed.setter
    def checklist_closed(self, closed: bool) -> None:
        self._s.setValue("ui/checklist_closed", bool(closed))
