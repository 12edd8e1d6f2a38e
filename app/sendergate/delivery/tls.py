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
import hashlib
import ssl
from dataclasses import dataclass
from typing import Any

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


@dataclass
class ProbeReport:
    """What `check-config` found at the downstream, without sending mail."""

    target: str
    reachable: bool = False
    error: str = ""  # why not reachable, or why the conversation stopped
    starttls: bool = False  # offered in the EHLO/LHLO reply
    tls: str = ""  # "TLSv1.3 TLS_AES_256_GCM_SHA384" once a handshake worked
    verified: bool = False
    verify_error: str = ""  # why the certificate did not verify (tls_ca_file or the system store)
    certificate: str = ""  # subject, issuer and end date of the certificate shown

    def lines(self, cfg: DeliveryConfig) -> tuple[list[str], list[str]]:
        """(report lines, problems): a problem is what would make every delivery fail."""
        if not self.reachable:
            return [f"{self.target}: not reachable ({self.error})"], []
        info = [f"{self.target}: reachable"]
        problems = []
        required = cfg.tls == "required"
        if not self.starttls:
            info.append("STARTTLS not offered" + ("" if required else ": mail goes in plaintext"))
            if required:
                problems.append("tls = \"required\", but the downstream does not offer STARTTLS")
            return info, problems
        info.append("STARTTLS offered")
        if not self.tls:
            info.append(self.error)
            if required:
                problems.append(f"tls = \"required\": {self.error}")
            elif cfg.tls == "opportunistic":
                info.append("deliveries fall back to plaintext")
            return info, problems
        info.append(self.tls)
        info.append(f"certificate: {self.certificate}")
        if self.verified:
            info.append(f"certificate verified for {cfg.target.rsplit(':', 1)[0].strip('[]')}")
        else:
            info.append(self.verify_error)
            if required and cfg.tls_verify:
                problems.append(f"tls = \"required\" with tls_verify: {self.verify_error}")
        if cfg.tls == "off":
            info.append('tls = "off": mail goes in plaintext')
        return info, problems


def describe_certificate(obj: ssl.SSLObject | None) -> str:
    """Subject, issuer and end of a verified certificate; the SHA-256 fingerprint of any (what a
    provider's connector or Postfix's check_ccert_access would be given)."""
    if obj is None:
        return "(none shown)"
    der = obj.getpeercert(binary_form=True)
    if not der:
        return "(none shown)"
    fingerprint = hashlib.sha256(der).hexdigest().upper()
    shown = f"sha256 {':'.join(fingerprint[i:i + 2] for i in range(0, 64, 2))}"
    parsed = obj.getpeercert()  # filled only when the chain was verified
    if parsed:
        def name(rdns: Any) -> str:
            return ", ".join(f"{k}={v}" for rdn in rdns for k, v in rdn)
        shown = (f"subject {name(parsed.get('subject', ()))}, issuer {name(parsed.get('issuer', ()))}, "
                 f"valid until {parsed.get('notAfter', '?')}, {shown}")
    return shown
