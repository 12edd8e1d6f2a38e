"""The one DNS client sender authentication uses: our nameservers, our timeouts, one cache.

SPF (pyspf), DKIM (dkimpy) and DMARC all look names up through `DNSClient`, so
`[dns] nameservers` is honoured everywhere and a repeated sender costs no
queries. The client is blocking (both libraries are); the `Authenticator` runs
it on worker threads, never on the event loop.
"""

from __future__ import annotations

from typing import Any

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

# Longest wait for one server's answer before asking the next (dnspython's default).
_MAX_ATTEMPT_TIMEOUT = 2.0


class DNSTemporaryError(Exception):
    """The answer is unknown (timeout, SERVFAIL, no server reachable): not the same as "no record"."""


class ResolverConfigError(Exception):
    """No nameserver to ask: the system has none configured and `[dns] nameservers` is empty."""


class DNSClient:
    """Blocking lookups with a per-lookup time limit and a shared TTL cache.

    Thread-safe: dnspython's Resolver creates per-query state, and its
    LRUCache locks internally and honours each answer's TTL (negative answers
    included, via the SOA minimum).
    """

    def __init__(self, nameservers: list[tuple[str, int]], timeout: float, cache_size: int = 4096) -> None:
        if nameservers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in nameservers]
        else:
            try:
                resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration as exc:
                raise ResolverConfigError(
                    "the system has no DNS resolver configured; set [dns] nameservers") from exc
        # EDNS with the DNS-flag-day payload: DKIM keys fit in one UDP answer;
        # anything larger comes back truncated and is retried over TCP.
        resolver.use_edns(0, 0, 1232)
        resolver.lifetime = timeout
        # A dead server is only noticed by its silence (UDP): give each server a
        # share of the lookup's time, so the next one is still asked in time.
        resolver.timeout = min(_MAX_ATTEMPT_TIMEOUT, timeout / max(1, len(resolver.nameservers)))
        resolver.cache = dns.resolver.LRUCache(cache_size)
        self._resolver = resolver
        self.timeout = timeout

    def lookup(self, name: str | bytes, rdtype: str) -> list[Any]:
        """The records of one type at a name; [] when the name or the type does not exist.
        (Each an rdata of the class for `rdtype`, dnspython's A, MX, TXT…: typed Any for that reason.)

        Raises DNSTemporaryError when the answer could not be had in time.
        """
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        try:
            qname = dns.name.from_text(name.rstrip(".") + ".")
        except (dns.exception.DNSException, UnicodeError, ValueError):
            return []  # a name that cannot exist in DNS has no records
        try:
            answer = self._resolver.resolve(qname, rdtype, raise_on_no_answer=False, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN):
            return []
        except dns.resolver.NoNameservers as exc:  # every server answered SERVFAIL/REFUSED or failed
            raise DNSTemporaryError(f"{name} {rdtype}: no nameserver gave an answer ({exc})") from exc
        except dns.exception.Timeout as exc:
            raise DNSTemporaryError(f"{name} {rdtype}: timed out after {self.timeout:g}s") from exc
        return list(answer.rrset) if answer.rrset is not None else []

    def txt(self, name: str | bytes) -> list[bytes]:
        """Each TXT record at a name, its character-strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2)."""
        return [b"".join(r.strings) for r in self.lookup(name, "TXT")]
