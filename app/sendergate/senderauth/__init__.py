"""Sender authentication: SPF, DKIM and DMARC for one message (SPEC §4.4, §4.2 items 6–7).

`Authenticator.check` gathers the facts; what they mean for the sender is
decided by the pure policy (`policy.decide.allowlist_counts`, `route`,
`decide_data`). The libraries doing the work (pyspf, dkimpy) block, so every
check runs on a worker thread with a time limit per lookup and for the whole
check: a slow DNS answer delays only its own message, never the event loop.

DNS trouble is reported, never guessed: a lookup that does not answer in time
makes that check `temperror` (see resources/docs/sender-authentication.md).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from ..config import DNSConfig
from ..policy import headers
from ..policy.address import AddressError, normalise_domain
from ..policy.decide import AuthResults
from . import dmarc
from .dkimcheck import DKIMOutcome, verify_dkim
from .header import authentication_results_header, remove_results_claiming
from .resolver import DNSClient, DNSTemporaryError, ResolverConfigError
from .spfcheck import check_spf, spf_identity

__all__ = [
    "Authenticator", "AuthResults", "DNSClient", "DNSTemporaryError", "ResolverConfigError",
    "authentication_results_header", "remove_results_claiming", "from_header_domain",
    "organisational_domain",
]

organisational_domain = dmarc.organisational_domain

log = logging.getLogger(__name__)

# Each check uses up to three threads at once (SPF, DKIM, DMARC); most of
# their time is spent waiting on DNS, so many threads cost little.
DEFAULT_WORKERS = 64


def from_header_domain(message: bytes) -> str:
    """The RFC 5322 From domain DMARC is about; "" when there is not exactly one.

    Several From fields, or addresses in different domains, have no single
    author domain (RFC 7489 §6.6.1): DMARC is then not evaluated ("none").
    """
    fields = headers.get_all(message, "from")  # the one header rule (policy.headers), as the mailbox reads it
    if len(fields) != 1:
        return ""
    domains = set()
    for _name, address in email.utils.getaddresses([str(fields[0])]):
        domain = address.rpartition("@")[2]
        try:
            domains.add(normalise_domain(domain))
        except AddressError:
            return ""
    return domains.pop() if len(domains) == 1 else ""


class Authenticator:
    """SPF, DKIM and DMARC checks against the configured nameservers, with a shared answer cache."""

    def __init__(self, config: DNSConfig, *, workers: int = DEFAULT_WORKERS) -> None:
        self.dns = DNSClient(list(config.nameservers), config.timeout)
        # The whole check may take two lookups' time: enough for an SPF include
        # chain against a healthy server, short against a dead one.
        self.time_budget = 2 * config.timeout
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="senderauth")

    def close(self) -> None:
        """Let running lookups finish (each is time-limited) and stop the worker threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def check(self, message: bytes, *, envelope_sender: str | None, helo: str,
                    client_ip: str) -> AuthResults:
        """SPF for MAIL FROM (HELO for the null sender), every DKIM signature, DMARC for From."""
        loop = asyncio.get_running_loop()
        from_domain = from_header_domain(message)
        spf_job = loop.run_in_executor(self._executor, partial(
            check_spf, self.dns, client_ip=client_ip, envelope_sender=envelope_sender, helo=helo,
            time_budget=self.time_budget))
        dkim_job = loop.run_in_executor(self._executor, verify_dkim, self.dns, message)
        dmarc_job = (loop.run_in_executor(self._executor, dmarc.find_policy, self.dns, from_domain)
                     if from_domain else None)
        jobs = [j for j in (spf_job, dkim_job, dmarc_job) if j is not None]
        _done, late = await asyncio.wait(jobs, timeout=self.time_budget)
        for job in late:
            job.cancel()  # a lookup already running still ends at its own timeout

        scope, spf_domain, _sender = spf_identity(envelope_sender, helo)
        spf_result = _outcome(spf_job, late, "SPF", envelope_sender or helo)
        spf_value, spf_domain, scope = spf_result if spf_result else ("temperror", spf_domain, scope)

        dkim_result = _outcome(dkim_job, late, "DKIM", from_domain)
        dkim: DKIMOutcome = dkim_result if dkim_result is not None else DKIMOutcome()

        record, policy = None, ""
        dmarc_value = "none"
        if dmarc_job is not None:
            found = _outcome(dmarc_job, late, "DMARC", from_domain)
            if found is None:
                dmarc_value = "temperror"
            else:
                record, policy = found
                dmarc_value = dmarc.evaluate(record, from_domain, spf=spf_value, spf_domain=spf_domain,
                                             dkim_pass_domains=dkim.pass_domains,
                                             dkim_temperror_domains=dkim.temperror_domains)
                if dkim_result is None and dmarc_value == "fail":
                    dmarc_value = "temperror"  # DKIM ran out of time: it might have passed
        results = AuthResults(spf=spf_value, spf_domain=spf_domain, dkim_pass_domains=dkim.pass_domains,
                              dkim_fail_domains=dkim.fail_domains, dmarc=dmarc_value, dmarc_policy=policy,
                              from_domain=from_domain, spf_scope=scope,
                              dkim_temperror_domains=dkim.temperror_domains)
        log.debug("sender authentication client_ip=%s sender=%r helo=%r: %s", client_ip, envelope_sender,
                  helo, results.summary())
        return results


def _outcome(job: asyncio.Future, late: set[Any], what: str, subject: str) -> Any:
    """A check's result, or None when it ran out of time or could not get its DNS answers."""
    if job in late:
        log.info("%s check for %r did not finish in time", what, subject)
        return None
    exc = job.exception()
    if exc is None:
        return job.result()
    if isinstance(exc, DNSTemporaryError):
        log.info("%s check for %r: %s", what, subject, exc)
        return None
    if isinstance(exc, ValueError) and what == "SPF":
        raise exc  # a client address that is no IP address: the caller's bug, not the sender's
    # A library failing on a strange message must not lose the mail: report "could not tell".
    log.error("%s check for %r failed", what, subject, exc_info=exc)
    return None
