"""DKIM (RFC 6376) through dkimpy: every signature on the message, keys fetched through our DNSClient."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from .resolver import DNSClient, DNSTemporaryError

log = logging.getLogger(__name__)

# A message can carry any number of signatures; each costs a key lookup and an
# RSA verification, so a sender cannot make us do unbounded work.
MAX_SIGNATURES = 5


class _KeyLookupTimedOut(Exception):
    """Raised through dkimpy (it is no DKIMException, so dkimpy does not turn it into a plain fail)."""


@dataclass(frozen=True, slots=True)
class DKIMOutcome:
    pass_domains: tuple[str, ...] = ()
    fail_domains: tuple[str, ...] = ()
    temperror_domains: tuple[str, ...] = ()


def _signing_domain(value: bytes) -> str:
    try:
        tags = parse_tag_value(value)
    except InvalidTagValueList:
        return ""
    return tags.get(b"d", b"").decode("ascii", "replace").strip().lower().rstrip(".")


_SIGNATURE_FIELD = re.compile(rb"(?:^|\n)dkim-signature[ \t]*:", re.I)


def has_signature(message: bytes) -> bool:
    """Does the header block hold a DKIM-Signature field? (No thread, no parse, when it does not.)"""
    end = message.find(b"\r\n\r\n")
    return _SIGNATURE_FIELD.search(message, 0, end if end >= 0 else len(message)) is not None


def verify_dkim(client: DNSClient, message: bytes) -> DKIMOutcome:
    """Verify each DKIM-Signature (up to MAX_SIGNATURES). Blocking: run it on a worker thread."""

    def key_record(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            records = client.txt(name)
        except DNSTemporaryError as exc:
            raise _KeyLookupTimedOut(str(exc)) from exc
        return records[0] if records else None

    try:
        verifier = dkim.DKIM(message, timeout=client.timeout)
    except dkim.DKIMException as exc:
        log.info("message headers cannot be parsed for DKIM: %s", exc)
        return DKIMOutcome()
    signatures = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    passed: list[str] = []
    failed: list[str] = []
    temperror: list[str] = []
    for idx, value in enumerate(signatures[:MAX_SIGNATURES]):
        domain = _signing_domain(value)
        try:
            ok = verifier.verify(idx=idx, dnsfunc=key_record)
        except _KeyLookupTimedOut as exc:
            log.info("DKIM key for d=%s not available: %s", domain, exc)
            temperror.append(domain)
            continue
        except dkim.DKIMException as exc:  # malformed signature or key: the signature does not verify
            log.info("DKIM signature d=%s invalid: %s", domain, exc)
            ok = False
        if domain:  # a signature without d= names nobody: nothing to report it under
            (passed if ok else failed).append(domain)
    return DKIMOutcome(tuple(dict.fromkeys(passed)), tuple(dict.fromkeys(failed)),
                       tuple(dict.fromkeys(temperror)))
