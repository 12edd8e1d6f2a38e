"""STARTTLS towards the mail server behind the gateway ([delivery] tls, SPEC §3).

The levels, in Postfix's terms (smtp_tls_security_level):

- "off"            Postfix `none`: never STARTTLS, even when offered.
- "opportunistic"  Postfix `may`: STARTTLS when offered, the certificate not checked; no STARTTLS
                   offered, or STARTTLS refused -> plaintext on the same connection; a failed
                   handshake -> the transaction again in plaintext on a new connection.
- "required"       Postfix `secure` (tls_verify = true, the default): STARTTLS must succeed and the
                   certificate must chain to tls_ca_file (or the system store) and name the target's
                   host name (an IP address target: an IP SAN). With tls_verify = false, Postfix
                   `encrypt`: encrypted, the certificate not checked. Any failure: 451 4.7.x to the
                   sending client, nothing said in plaintext after EHLO.

The SSLContext is built once per process (here, at start), never per message.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from ..config import DeliveryConfig

# RFC 3463 / Postfix's choices: 4.7.4 "security features not supported" (no STARTTLS offered),
# 4.7.5 "cryptographic failure" (refused STARTTLS, handshake or certificate).
NOT_OFFERED = "4.7.4"
TLS_FAILED = "4.7.5"


def client_context(cfg: DeliveryConfig, *, verify: bool | None = None) -> ssl.SSLContext | None:
    """The context for STARTTLS to cfg.target, or None when TLS is not used.

    verify=None: as configured (only "required" with tls_verify checks the certificate);
    True/False: forced (check-config reports verification whatever the level)."""
    if verify is None:
        if cfg.tls == "off" or not cfg.tcp:
            return None
        verify = cfg.tls == "required" and cfg.tls_verify
    if verify:
        # cafile given: only it (Postfix's smtp_tls_CAfile); none: the system's store.
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cfg.tls_ca_file or None)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.tls_cert:
        ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    return ctx


def describe_error(exc: BaseException) -> str:
    """One line for the log and the event: why the handshake or the certificate failed."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not verified: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, (ConnectionError, EOFError)) or isinstance(exc, asyncio.IncompleteReadError):
        return "TLS handshake failed: connection closed by downstream"
    return f"TLS handshake failed: {exc}"


@dataclass(frozen=True)
class TLSState:
    """What a delivery's connection used, for the event and the log."""

    version: str = ""  # "" = plaintext
    cipher: str = ""
    verified: bool = False

    def __str__(self) -> str:
        if not self.version:
            return "plaintext"
        return f"{self.version} {self.cipher}" + (" verified" if self.verified else " unverified")


def tls_state(writer: asyncio.StreamWriter, verified: bool) -> TLSState:
    obj = writer.get_extra_info("ssl_object")
    if obj is None:
        return TLSState()
    cipher = obj.cipher()
    return TLSState(obj.version() or "", cipher[0] if cipher else "", verified)
