"""Sender authentication: SPF, DKIM and DMARC for one message (SPEC §4.4, §4.2 items 6–7).

`Authenticator.check` gathers the facts; what they mean for the sender is
decided by the pure policy (`policy.decide.allowlist_counts`, `route`,
`decide_data`). The libraries doing the work (pyspf, dkimpy) block, so every
check runs on a worker thread with a time limit per lookup and for the whole
check: a slow DNS answer delays only its own message, never the event loop.

DNS trouble is reported, never guessed. Two kinds are kept apart (see
resources/docs/sender-authentication.md):
- the sender's DNS does not answer (SERVFAIL, timeout of a lookup): that check
  is `temperror`, a fact about the sender's domain;
- the check could not run here (our queue of checks is full, or a check spent
  its whole time budget): `SenderCheckUnavailable`, which the SMTP side
  answers with 451 — never read as "not forged".
Checks are admitted through a bounded queue: `dns.max_checks` run at once
(each on its own three threads, so a running check never waits for a thread),
`dns.max_waiting` more may wait for a slot, for at most the time budget.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from ..config import DNSConfig
from ..policy import headers
from ..policy.address import AddressError, normalise_domain
from ..policy.decide import AuthResults
from . import dmarc
from .dkimcheck import DKIMOutcome, has_signature, verify_dkim
from .header import authentication_results_header, remove_results_claiming
from .resolver import DNSClient, DNSTemporaryError, ResolverConfigError
from .spfcheck import check_spf, spf_identity

__all__ = [
    "Authenticator", "AuthResults", "DNSClient", "DNSTemporaryError", "ResolverConfigError",
    "SenderCheckUnavailable",
    "authentication_results_header", "remove_results_claiming", "from_header_domain",
    "organisational_domain",
]

organisational_domain = dmarc.organisational_domain

log = logging.getLogger(__name__)

# Each check uses up to three threads at once (SPF, DKIM, DMARC); most of
# their time is spent waiting on DNS, so many threads cost little.
THREADS_PER_CHECK = 3
RECENT_SECONDS = 30.0


class SenderCheckUnavailable(Exception):
    """The check could not run for a local reason (our queue full, our time budget spent): the
    answer is 451, never a guess about the sender (SPEC §4.5 item 5)."""


def from_header_domain(message: bytes) -> str:
    """The RFC 5322 From domain DMARC is about; "" when there is not exactly one.

    Several From fields, or addresses in different domains, have no single
    author domain (RFC 7489 §6.6.1): DMARC is then not evaluated ("none").
    """
    fields = headers.get_all(message, "from")  # the one header rule (policy.headers), as the mailbox reads it
    if len(fields) != 1:
        return ""
    domains = set()
    for address in headers.addresses(str(fields[0])):
        domain = address.rpartition("@")[2]
        try:
            domains.add(normalise_domain(domain))
        except AddressError:
            return ""
    return domains.pop() if len(domains) == 1 else ""


class Authenticator:
    """SPF, DKIM and DMARC checks against the configured nameservers, with a shared answer cache."""

    def __init__(self, config: DNSConfig) -> None:
        self.dns = DNSClient(list(config.nameservers), config.timeout)
        # The whole check may take two lookups' time: enough for an SPF include
        # chain against a healthy server, short against a dead one.
        self.time_budget = 2 * config.timeout
        self.max_checks = config.max_checks
        self.max_waiting = config.max_waiting
        self._executor = ThreadPoolExecutor(max_workers=THREADS_PER_CHECK * config.max_checks,
                                            thread_name_prefix="senderauth")
        self._slots: asyncio.Semaphore | None = None  # made on first use, in the event loop's thread
        self._waiting = 0
        self._recent_spf = _Recent()
        self._recent_dmarc = _Recent()

    def close(self) -> None:
        """Let running lookups finish (each is time-limited) and stop the worker threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _admit(self) -> None:
        """Take a check slot, or raise SenderCheckUnavailable: queue full, or no slot within the budget."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_checks)
        if self._slots.locked() and self._waiting >= self.max_waiting:
            raise SenderCheckUnavailable(f"{self._waiting} sender checks already waiting for one of "
                                         f"{self.max_checks} slots")
        self._waiting += 1
        try:
            async with asyncio.timeout(self.time_budget):
                await self._slots.acquire()
        except TimeoutError:
            raise SenderCheckUnavailable(f"no free sender check slot within {self.time_budget:g} s") from None
        finally:
            self._waiting -= 1

    def _release_when_done(self, futures: list[concurrent.futures.Future]) -> None:
        """Give the slot back when the last of its threads is free (a late lookup still holds one)."""
        loop = asyncio.get_running_loop()
        slots = self._slots
        assert slots is not None
        remaining = [len(futures)]

        def one_done(_f: concurrent.futures.Future) -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                slots.release()

        def finished(fut: concurrent.futures.Future) -> None:  # on the worker thread
            try:
                loop.call_soon_threadsafe(one_done, fut)
            except RuntimeError:  # that loop is closed: nobody is waiting on it any more
                one_done(fut)

        for f in futures:
            f.add_done_callback(finished)

    async def check(self, message: bytes, *, envelope_sender: str | None, helo: str,
                    client_ip: str) -> AuthResults:
        """SPF for MAIL FROM (HELO for the null sender), every DKIM signature, DMARC for From."""
        from_domain = from_header_domain(message)
        spf_key = (client_ip, envelope_sender or "", helo)
        spf_result = self._recent_spf.get(spf_key)
        found = self._recent_dmarc.get(from_domain) if from_domain else None
        signed = has_signature(message)  # most unknown senders' mail is not: no thread for it then
        calls: dict[str, Callable[[], object]] = {}
        if spf_result is None:
            calls["SPF"] = partial(check_spf, self.dns, client_ip=client_ip, envelope_sender=envelope_sender,
                                   helo=helo, time_budget=self.time_budget)
        if signed:
            calls["DKIM"] = partial(verify_dkim, self.dns, message)
        if from_domain and found is None:
            calls["DMARC"] = partial(dmarc.find_policy, self.dns, from_domain)
        jobs = await self._run(calls, envelope_sender or helo) if calls else {}

        scope, spf_domain, _sender = spf_identity(envelope_sender, helo)
        if "SPF" in jobs:
            spf_result = _outcome(jobs["SPF"], "SPF", envelope_sender or helo)
            if spf_result is not None and spf_result[0] != "temperror":
                self._recent_spf.put(spf_key, spf_result)
        spf_value, spf_domain, scope = spf_result if spf_result else ("temperror", spf_domain, scope)

        dkim_result = _outcome(jobs["DKIM"], "DKIM", from_domain) if signed else DKIMOutcome()
        dkim: DKIMOutcome = dkim_result if dkim_result is not None else DKIMOutcome()

        record, policy = None, ""
        dmarc_value = "none"
        if from_domain:
            if "DMARC" in jobs:
                found = _outcome(jobs["DMARC"], "DMARC", from_domain)
                if found is not None:
                    self._recent_dmarc.put(from_domain, found)
            if found is None:
                dmarc_value = "temperror"
            else:
                record, policy = found
                dmarc_value = dmarc.evaluate(record, from_domain, spf=spf_value, spf_domain=spf_domain,
                                             dkim_pass_domains=dkim.pass_domains,
                                             dkim_temperror_domains=dkim.temperror_domains)
                if dkim_result is None and dmarc_value == "fail":
                    dmarc_value = "temperror"  # DKIM could not be checked: it might have passed
        results = AuthResults(spf=spf_value, spf_domain=spf_domain, dkim_pass_domains=dkim.pass_domains,
                              dkim_fail_domains=dkim.fail_domains, dmarc=dmarc_value, dmarc_policy=policy,
                              from_domain=from_domain, spf_scope=scope,
                              dkim_temperror_domains=dkim.temperror_domains)
        if log.isEnabledFor(logging.DEBUG):  # (summary() would be made for every message otherwise)
            log.debug("sender authentication client_ip=%s sender=%r helo=%r: %s", client_ip, envelope_sender,
                      helo, results.summary())
        return results

    async def _run(self, calls: dict[str, Callable[[], object]], subject: str) -> dict[str, asyncio.Future]:
        """Run the blocking checks on their own threads, in one admitted slot, within the budget."""
        await self._admit()
        try:
            futures = {name: self._executor.submit(call) for name, call in calls.items()}
        except RuntimeError as exc:  # the executor is shut down: the process is stopping
            assert self._slots is not None
            self._slots.release()
            raise SenderCheckUnavailable(f"sender checks stopped: {exc}") from exc
        self._release_when_done(list(futures.values()))
        jobs = {name: asyncio.wrap_future(f) for name, f in futures.items()}
        _done, late = await asyncio.wait(jobs.values(), timeout=self.time_budget)
        if late:
            for job in late:
                job.cancel()  # a lookup already running still ends at its own timeout (and holds the slot)
            # Our budget is spent (lookups in a row, or this process starved): the answer is unknown,
            # and "not forged" is what a sender slowing our checks down would hope for. 451, not a guess.
            what = ", ".join(name for name, job in jobs.items() if job in late)
            log.info("sender check for %r did not finish in %g s (%s)", subject, self.time_budget, what)
            raise SenderCheckUnavailable(f"{what} check did not finish within {self.time_budget:g} s")
        return jobs


class _Recent:
    """Results of recent checks for exactly the same inputs, kept RECENT_SECONDS (shorter than
    almost any DNS TTL): a sender repeating itself costs no thread. Only definitive results are
    put here (never temperror), and only on the event loop's thread."""

    def __init__(self, size: int = 4096) -> None:
        self._items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._size = size

    def get(self, key: Any) -> Any:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self._items[key]
            return None
        return item[1]

    def put(self, key: Any, value: Any) -> None:
        self._items[key] = (time.monotonic() + RECENT_SECONDS, value)
        self._items.move_to_end(key)
        if len(self._items) > self._size:
            self._items.popitem(last=False)


def _outcome(job: asyncio.Future, what: str, subject: str) -> Any:
    """A check's result, or None when it could not get its DNS answers."""
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
