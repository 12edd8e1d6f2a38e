"""DMARC (RFC 7489): find the From domain's policy, decide alignment.

Organisational domains come from the Public Suffix List bundled in the
`publicsuffixlist` package (updated with each release of it; no network at
run time). A domain under a suffix the list does not know (such as `.test`)
is treated as sitting under a one-label public suffix, the list's own `*`
default rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from .resolver import DNSClient

_PSL = PublicSuffixList()

POLICIES = ("none", "quarantine", "reject")


@lru_cache(maxsize=4096)
def organisational_domain(domain: str) -> str:
    """The registered domain: `mail.example.co.uk` -> `example.co.uk`; a public suffix is its own."""
    domain = domain.lower().rstrip(".")
    return _PSL.privatesuffix(domain) or domain


def aligned(identifier: str, from_domain: str, mode: str) -> bool:
    """Identifier alignment (RFC 7489 §3.1): strict = same domain, relaxed = same organisational domain."""
    a, b = identifier.lower().rstrip("."), from_domain.lower().rstrip(".")
    if not a or not b:
        return False
    if mode == "s":
        return a == b
    return organisational_domain(a) == organisational_domain(b)


@dataclass(frozen=True, slots=True)
class DMARCRecord:
    policy: str  # p=
    subdomain_policy: str  # sp=, or p= when absent
    adkim: str = "r"
    aspf: str = "r"


def parse_dmarc_record(text: str) -> DMARCRecord | None:
    """A `v=DMARC1; p=...` record; None when it is not a usable DMARC record (RFC 7489 §6.6.3)."""
    parts = [p.strip() for p in text.split(";")]
    if parts[0].replace(" ", "").lower() != "v=dmarc1":  # v= must come first
        return None
    tags: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip())
    policy = tags.get("p", "").lower()
    if policy not in POLICIES:
        # A missing or unknown p= with a report address means "p=none"; without one the record is ignored.
        if "rua" not in tags:
            return None
        policy = "none"
    sp = tags.get("sp", "").lower()
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    return DMARCRecord(policy=policy, subdomain_policy=sp if sp in POLICIES else policy,
                       adkim=adkim if adkim in ("r", "s") else "r", aspf=aspf if aspf in ("r", "s") else "r")


def _record_at(client: DNSClient, domain: str) -> DMARCRecord | None:
    candidates = [t.decode("utf-8", "replace") for t in client.txt(f"_dmarc.{domain}")]
    candidates = [t for t in candidates if t.strip().lower().startswith("v=dmarc1")]
    if len(candidates) != 1:  # none, or several: "no DMARC policy" (RFC 7489 §6.6.3 step 5)
        return None
    return parse_dmarc_record(candidates[0])


def find_policy(client: DNSClient, from_domain: str) -> tuple[DMARCRecord | None, str]:
    """The record that governs `from_domain` and the policy that applies to it.

    Looks at `_dmarc.<from domain>`, then at the organisational domain, whose
    `sp=` applies to its subdomains. Raises DNSTemporaryError when DNS does not answer.
    Blocking: run it on a worker thread.
    """
    record = _record_at(client, from_domain)
    if record is not None:
        return record, record.policy
    org = organisational_domain(from_domain)
    if org != from_domain:
        record = _record_at(client, org)
        if record is not None:
            return record, record.subdomain_policy
    return None, ""


def evaluate(record: DMARCRecord | None, from_domain: str, *, spf: str, spf_domain: str,
             dkim_pass_domains: tuple[str, ...], dkim_temperror_domains: tuple[str, ...]) -> str:
    """pass | fail | none | temperror for one message, given the SPF and DKIM results (RFC 7489 §4.2)."""
    if record is None:
        return "none"
    if spf == "pass" and aligned(spf_domain, from_domain, record.aspf):
        return "pass"
    if any(aligned(d, from_domain, record.adkim) for d in dkim_pass_domains):
        return "pass"
    # An aligned identifier we could not check might have passed: that is not a fail.
    if spf == "temperror" and aligned(spf_domain, from_domain, record.aspf):
        return "temperror"
    if any(aligned(d, from_domain, record.adkim) for d in dkim_temperror_domains):
        return "temperror"
    return "fail"
