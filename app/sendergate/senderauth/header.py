"""The Authentication-Results header (RFC 8601) SenderGate adds to mail it delivers."""

from __future__ import annotations

import re

import authres
import authres.dmarc

from ..policy import headers
from ..policy.decide import AuthResults

_HEADER_NAME = "Authentication-Results"
_DOMAIN = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?$")


def _domain_value(domain: str) -> str | None:
    """A domain fit to stand in the header as a bare token, or None.

    Domains here come from the sender (HELO, MAIL FROM, d=, From:); anything that
    is not a plain (A-label) host name is left out rather than echoed.
    """
    domain = domain.strip().rstrip(".")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return domain if _DOMAIN.match(domain) else None


def _property(**kwargs: str | None) -> dict[str, str]:
    return {k: v for k, v in kwargs.items() if v}


def authentication_results_header(authserv_id: str, results: AuthResults, *, linesep: str = "\r\n") -> str:
    """The whole header field, folded one method per line, without a final line ending.

    `authserv_id` is the gateway's host name (`smtp.hostname`); downstream
    filters trust results only under the id they know.
    """
    clauses: list[authres.core.AuthenticationResult] = []
    spf_domain = _domain_value(results.spf_domain)
    if results.spf_scope == "helo":
        clauses.append(authres.SPFAuthenticationResult(result=results.spf, **_property(smtp_helo=spf_domain)))
    else:
        clauses.append(authres.SPFAuthenticationResult(result=results.spf, **_property(smtp_mailfrom=spf_domain)))
    dkim_clauses = [(r, d) for r, domains in (("pass", results.dkim_pass_domains),
                                              ("fail", results.dkim_fail_domains),
                                              ("temperror", results.dkim_temperror_domains))
                    for d in domains]
    for result, domain in dkim_clauses:
        clauses.append(authres.DKIMAuthenticationResult(result=result, **_property(header_d=_domain_value(domain))))
    if not dkim_clauses:
        clauses.append(authres.DKIMAuthenticationResult(result="none"))
    clauses.append(authres.dmarc.DMARCAuthenticationResult(
        result=results.dmarc,
        **_property(header_from=_domain_value(results.from_domain), policy=results.dmarc_policy or None)))
    server = _domain_value(authserv_id) or "localhost"
    return f"{_HEADER_NAME}: {server};" + ";".join(f"{linesep}\t{c}" for c in clauses)


def remove_results_claiming(message: bytes, authserv_id: str) -> bytes:
    """Drop incoming headers that only the gateway may write (SPEC §4.5 item 4).

    Authentication-Results carrying our own authserv-id (RFC 8601 §5): a
    sender could otherwise forge "dkim=pass" under our name for the mail
    filters behind us; other servers' results are kept. And every
    X-SenderGate-* field: a sender could otherwise have its message filed as
    screened. Fields are found by the one header rule (policy.headers), so a
    bare CR or LF, odd folding or `Name :` cannot hide one from us and show it
    to the mailbox. Line ends come back normalised to CRLF.
    """
    owned = headers.gateway_owned(authserv_id)
    # A header block that begins with a folded line would continue the trace field the gateway
    # puts above it (our Received line): that nameless first field goes too.
    return headers.remove(message, owned, drop_leading_continuation=True)
