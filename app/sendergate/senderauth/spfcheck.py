"""SPF (RFC 7208) through pyspf, resolving through our DNSClient.

pyspf looks every name up through its module-level `spf.DNSLookup` (its own
test suite replaces it the same way). We install one dispatcher that asks the
DNSClient bound to the current thread, so each check uses the configured
nameservers and the shared cache; a thread without a bound client (someone
else calling pyspf) gets pyspf's own lookup unchanged.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from typing import Any

import spf

from .resolver import DNSClient, DNSTemporaryError

SPF_RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")

_bound = threading.local()
_pyspf_lookup = spf.DNSLookup
# A host name SPF can be checked for: at least two labels, letters/digits/hyphens/underscores.
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$", re.I)


def _dns_lookup(name: str, qtype: str, strict: Any = True, timeout: float | None = None) -> list[tuple]:
    client: DNSClient | None = getattr(_bound, "client", None)
    if client is None:
        return _pyspf_lookup(name, qtype, strict, timeout)
    try:
        records = client.lookup(name, qtype)
    except DNSTemporaryError as exc:
        raise spf.TempError(f"DNS {exc}") from exc
    out: list[tuple] = []
    for rdata in records:  # the shapes pyspf's own dnspython lookup returns
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            out.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif qtype == "PTR":
            out.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), rdata.strings))
    return out


spf.DNSLookup = _dns_lookup


def spf_identity(envelope_sender: str | None, helo: str) -> tuple[str, str, str]:
    """(scope, domain, sender) SPF checks: MAIL FROM's domain, or HELO for the null sender (RFC 7208 §2.4)."""
    sender = (envelope_sender or "").strip().strip("<>")
    if sender:
        local, _, domain = sender.rpartition("@")
        domain = _a_label(domain)
        return "mailfrom", domain, f"{local}@{domain}"
    return "helo", _a_label(helo), ""


def _a_label(domain: str) -> str:
    """Lower-case, no trailing dot, IDNA-encoded when it is an international name (SMTPUTF8)."""
    domain = domain.strip().lower().rstrip(".")
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain  # not a valid name: check_spf answers "none"


def check_spf(client: DNSClient, *, client_ip: str, envelope_sender: str | None, helo: str,
              time_budget: float) -> tuple[str, str, str]:
    """(result, domain, scope) for one SMTP client. Blocking: run it on a worker thread.

    `time_budget` bounds the whole evaluation (pyspf's `querytime`), however
    many includes a record pulls in.
    """
    ip = ipaddress.ip_address(client_ip)  # the handler passes the peer's address; anything else is a bug
    scope, domain, sender = spf_identity(envelope_sender, helo)
    if not _HOSTNAME.match(domain):
        # An address literal HELO, a bare word, an address without a domain: nothing to look up.
        return "none", domain, scope
    query = spf.query(i=str(ip), s=sender, h=domain if scope == "helo" else helo.strip().rstrip("."),
                      timeout=client.timeout, querytime=time_budget)
    _bound.client = client
    try:
        result, _code, _explanation = query.check()
    finally:
        _bound.client = None
    result = result.lower()
    if result not in SPF_RESULTS:  # "ambiguous" exists only in pyspf's harsh mode, which we do not use
        result = "permerror"
    return result, domain, scope
