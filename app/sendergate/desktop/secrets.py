"""Secrets (API token, IMAP password) only through here: the OS keychain via keyring, or,
where there is none, this session's memory, and the user is told which (like Vorta's keyring module).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

log = logging.getLogger("sendergate.desktop.secrets")

SERVICE = "SenderGate"
TOKEN = "api-token"
IMAP_PASSWORD = "imap-password"


class Placement(Enum):
    KEYCHAIN = "keychain"
    SESSION = "session"  # kept in memory until the app quits


@dataclass(frozen=True)
class Stored:
    placement: Placement
    where: str  # a name a person recognises: "macOS Keychain", "this session only"


class NoKeychain(Exception):
    """No usable keychain: the message says so plainly."""


def _keyring_name(backend: object) -> str:
    name = getattr(backend, "name", "") or type(backend).__name__
    module = type(backend).__module__
    if "macOS" in module or "OS_X" in module:
        return "macOS Keychain"
    if "Windows" in module:
        return "Windows Credential Manager"
    if "SecretService" in module or "libsecret" in module:
        return "Secret Service (GNOME Keyring / KWallet)"
    if "kwallet" in module.lower():
        return "KWallet"
    return str(name)


class SecretStore:
    """The keychain when there is one; a session-only memory the user opted into otherwise."""

    def __init__(self, *, use_keychain: bool = True) -> None:
        self._session: dict[str, str] = {}
        self._use_keychain = use_keychain

    def keychain(self) -> str | None:
        """The keychain's name, or None when there is no usable one (fail/null backends, or disabled)."""
        if not self._use_keychain:
            return None
        try:
            import keyring
            from keyring.backends import fail, null
        except ImportError:
            return None
        backend = keyring.get_keyring()
        chained = getattr(backend, "backends", None)
        if chained is not None and not chained:
            return None
        if isinstance(backend, (fail.Keyring, null.Keyring)):
            return None
        return _keyring_name(backend)

    def put(self, key: str, secret: str, *, session_only: bool = False) -> Stored:
        """Store a secret. Raises NoKeychain when there is no keychain and session_only is False."""
        if session_only:
            self._session[key] = secret
            return Stored(Placement.SESSION, "this session only")
        name = self.keychain()
        if name is None:
            raise NoKeychain("This computer has no keychain that SenderGate can use, so the secret cannot be saved.")
        import keyring
        from keyring.errors import KeyringError
        try:
            keyring.set_password(SERVICE, key, secret)
        except KeyringError as exc:
            raise NoKeychain(f"The keychain ({name}) refused to store the secret: {exc}") from None
        self._session.pop(key, None)
        return Stored(Placement.KEYCHAIN, name)

    def get(self, key: str) -> str | None:
        if key in self._session:
            return self._session[key]
        if self.keychain() is None:
            return None
        import keyring
        from keyring.errors import KeyringError
        try:
            return keyring.get_password(SERVICE, key)
        except KeyringError as exc:
            log.warning("reading %s from the keychain failed: %s", key, exc)
            return None

    def where(self, key: str) -> Stored | None:
        if key in self._session:
            return Stored(Placement.SESSION, "this session only")
        if self.get(key) is not None:
            return Stored(Placement.KEYCHAIN, self.keychain() or "")
        return None

    def forget(self, key: str) -> None:
        self._session.pop(key, None)
        if self.keychain() is None:
            return
        import keyring
        from keyring.errors import KeyringError, PasswordDeleteError
        try:
            keyring.delete_password(SERVICE, key)
        except PasswordDeleteError:
            pass  # nothing stored: nothing to forget
        except KeyringError as exc:
            log.warning("removing %s from the keychain failed: %s", key, exc)

    # -- secrets longer than one keychain entry holds --
    # Windows' Credential Manager takes at most 2,560 bytes (1,280 UTF-16 characters) per entry, and OAuth2
    # tokens (a Microsoft access token is a JWT of ~2 KB) are longer: such secrets are kept in parts.
    PART = 1000

    def put_large(self, key: str, secret: str, *, session_only: bool = False) -> Stored:
        parts = [secret[i:i + self.PART] for i in range(0, len(secret), self.PART)] or [""]
        self.forget_large(key)
        try:
            for n, part in enumerate(parts[1:], start=1):
                self.put(f"{key}#{n}", part, session_only=session_only)
            # the head last, naming the number of parts: a half-written secret is never read as whole
            return self.put(key, f"{len(parts)}:{parts[0]}", session_only=session_only)
        except NoKeychain:
            self.forget_large(key)
            raise

    def get_large(self, key: str) -> str | None:
        head = self.get(key)
        if head is None:
            return None
        count, sep, first = head.partition(":")
        if not sep or not count.isdigit():
            return None
        parts = [first]
        for n in range(1, int(count)):
            part = self.get(f"{key}#{n}")
            if part is None:
                log.warning("part %d of %s is missing from the keychain", n, key)
                return None
            parts.append(part)
        return "".join(parts)

    def forget_large(self, key: str) -> None:
        head = self.get(key)
        count = head.partition(":")[0] if head else ""
        for n in range(1, int(count) if count.isdigit() else 0):
            self.forget(f"{key}#{n}")
        self.forget(key)
