"""The SMTP side: one aiosmtpd handler whose hooks gather facts, ask the policy, record, reply.

Each hook stays short: parse what the client said, look up what the store
knows, call the pure policy, record the event, return the reply string.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..config import DEFAULT_SPAM_REPLY, DEFAULT_SPAM_REPLY_BY_ACTION
from ..delivery import Delivered, DeliveryError, Outbound
from ..policy import headers as header_rule
from ..policy import replies
from ..policy.address import Address, AddressError, hash_message_id, list_id_from_header, parse
from ..policy.automated import automated_reason, null_report, referenced_message_ids
from ..policy.decide import (
    ACCEPTING,
    ENFORCE,
    KNOWN,
    NULL,
    ROLE,
    UNKNOWN,
    AuthResults,
    DataDecision,
    EventRecord,
    MessageFacts,
    Reply,
    ScanOutcome,
    Verdict,
    apply_mode,
    auth_needed,
    check_recipient_address,
    decide_data,
    decide_rcpt,
    judge_spam,
    list_authenticated,
    role_mailbox,
    route,
    sender_authenticated,
    settle_recipients,
)
from ..policy.lists import match_list
from ..policy.tags import LIVE, TagMatch, apply_tag, judge, parse_part, split_local
from ..runtime import Runtime
from ..senderauth import SenderCheckUnavailable, organisational_domain, remove_results_claiming
from ..store import StoreError, new_token
from .trace import trace_headers

if TYPE_CHECKING:  # the scanners' package loads aiospamc; only where one is configured
    from ..scan.rspamd import ScanEnvelope

log = logging.getLogger("sendergate.smtp")
TEMP_LOCAL = Reply(451, "4.3.0", "Temporary local problem; please try again later")
NO_SUCH_USER = Reply(550, "5.1.1", "No such user here")  # also a revoked or expired sign-up address: no link
_MSGID = re.compile(r"<[^<>\s]+>")
REFUSED_RCPT_EVENTS = 5  # refused-RCPT events stored per SMTP session (the rest: decision log only)
# The refusal without a link for a session that failed authentication for its envelope (§4.5 item 3).
FORGED_REPLY = ("{recipient} accepts mail only from known senders; this message failed sender authentication "
                "({why}), so no confirmation link is given.")


@dataclass(slots=True)
class Recipient:
    raw: str  # as handed on downstream (a role mailbox nobody has: its owner's address)
    address: Address
    user_id: int
    sender_class: str
    mode: str = ENFORCE  # the mailbox's mode (SPEC §4.6): enforce | observe | off | role
    role: str = ""  # postmaster | abuse, for a role mailbox
    tag: TagMatch | None = None  # the live sign-up address the mail came in by (issue 19)

    @property
    def gated(self) -> bool:
        """Challenged if a stranger writes: never split from a stranger's other such recipients (SPEC §4.6)."""
        return self.mode == ENFORCE and self.tag is None


@dataclass(slots=True)
class Transaction:
    raw_sender: str  # as given in MAIL FROM, "" for <>
    sender: Address | None  # normalised and unwrapped; None for <>
    recipients: list[Recipient] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class GatewayHandler:
    """aiosmtpd's handler (handle_EHLO/HELO/MAIL/RCPT/DATA/exception); everything it needs is in `runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.cfg = runtime.cfg
        self.local_domains = frozenset(runtime.cfg.domains.local)
        self._secret = ""  # the dated tags' MAC key (issue 19), read from the store when first needed

    # -- session ---------------------------------------------------------------
    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        out = [r for r in responses if not r.startswith("250-AUTH") and r != "250 HELP"]
        out += ["250-PIPELINING"]
        if getattr(server, "xforward_allowed", False):  # a Postfix proxying to us may tell the real client
            out += ["250-XFORWARD NAME ADDR PROTO HELO SOURCE"]
        out += ["250 ENHANCEDSTATUSCODES"]
        return out

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_exception(self, error: Exception) -> str:
        log.error("unexpected error in SMTP session: %r", error, exc_info=error)
        return str(TEMP_LOCAL)

    # -- MAIL --------------------------------------------------------------------
    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        if address in ("<>", ""):
            tx = Transaction("", None)
        else:
            try:
                tx = Transaction(address, parse(address, unwrap=True))
            except AddressError as exc:
                return f"553 5.1.7 Bad sender address syntax ({replies.safe(str(exc), 80)})"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.tx = tx
        return "250 2.1.0 Sender ok"

    # -- RCPT --------------------------------------------------------------------
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        tx: Transaction = envelope.tx
        if address.strip().strip("<>").strip().lower() == "postmaster" and self.cfg.domains.local:
            # RFC 5321 §4.5.1: <Postmaster> without a domain is accepted; it is the first local domain's
            address = f"postmaster@{self.cfg.domains.local[0]}"
        check = check_recipient_address(address, self.local_domains)
        if check.refusal is not None:
            if check.verdict is not None:
                await self._record_refused_rcpt(session, tx, address, check.verdict, check.reason, None)
            return str(check.refusal)
        assert check.address is not None
        role = role_mailbox(check.address.local)
        deliver_to = address
        lookup = check.address
        try:
            tagged = await self._tag(check.address) if not role else None
            if tagged is not None:
                lookup, tag = tagged
                if tag is not None and tag.status != LIVE:  # revoked or expired: refused, no link (issue 19)
                    await self._record_refused_rcpt(session, tx, str(check.address), Verdict.UNKNOWN_RECIPIENT,
                                                    f"sign-up address {tag.name} {tag.status}", tag.user_id,
                                                    tag=tag.name)
                    return str(NO_SUCH_USER)
            else:
                tag = None
            facts = await self.rt.astore.rcpt_lookup(lookup, tx.sender)
            if role and facts.user_id is None:  # postmaster@/abuse@ nobody has: its owner receives it (RFC 2142)
                owner = await self.rt.astore.run(self._role_owner)
                if owner is not None:
                    facts = await self.rt.astore.rcpt_lookup(owner, tx.sender)
                    deliver_to = str(owner)
        except StoreError as exc:
            log.error("store unavailable at RCPT: %s", exc)
            return str(TEMP_LOCAL)
        user_id, entries = facts.user_id, facts.entries
        # The mailbox's mode is the recipient's, looked up by its canonical key: nothing the sender
        # writes chooses it. A role mailbox is never challenged, whoever has it.
        mode = ROLE if role else (facts.mode or self.cfg.challenge.default_mode)
        decision = decide_rcpt(
            sender=tx.sender, recipient_exists=user_id is not None, entries=entries,
            accepted_classes=[r.sender_class for r in tx.recipients],
            max_recipients=self.cfg.smtp.max_recipients, now=_now(),
            gated=mode == ENFORCE and tag is None, accepted_gated=[r.gated for r in tx.recipients])
        if decision.verdict is not None:
            await self._record_refused_rcpt(session, tx, str(check.address), decision.verdict, decision.reason,
                                            user_id, tag=tag.name if tag else None)
            text = decision.reply.text
            if decision.verdict is Verdict.BLOCKED:  # the configured text, filled only when it is the answer
                text = replies.fill(self.cfg.challenge.blocked_reply, recipient=check.address,
                                    sender=tx.sender or "<>")
            return replies.render(decision.reply.code, decision.reply.status, text)
        if decision.reply.code != 250:
            return str(decision.reply)
        assert user_id is not None and decision.sender_class is not None
        tx.recipients.append(Recipient(deliver_to, check.address, user_id, decision.sender_class, mode, role, tag))
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return str(decision.reply)

    def _role_owner(self) -> Address | None:
        """The address role mail nobody has goes to: `[challenge] role_owner`, else the first admin's."""
        store = self.rt.store
        uid = store.role_owner(self.cfg.challenge.role_owner)
        if uid is None:
            return None
        if self.cfg.challenge.role_owner:
            return parse(self.cfg.challenge.role_owner)
        mailbox = next((a for a in store.get_user(uid).addresses if not a.startswith("@")), None)
        return parse(mailbox) if mailbox else None

    async def _tag(self, recipient: Address) -> tuple[Address, TagMatch | None] | None:
        """For `base+part@domain` (the configured delimiter) of a user's: the address to look the user up
        by, and their tag `part` (None: not a tag of theirs, or a forged dated one; the normal rules apply).
        None when the local part has no tag or the base is nobody's. Nothing here for an untagged
        recipient: the refusal path of a plain address pays no extra store round trip."""
        delimiter = self.cfg.domains.recipient_delimiter
        split = split_local(recipient.local, delimiter)
        if split is None:
            return None
        base, raw = split
        part = parse_part(raw)
        base_addr = Address(base, recipient.domain)
        if part is None:
            return None if delimiter == "+" else await self._plain_base(recipient, base_addr)
        found = await self.rt.astore.run(self.rt.store.tag_lookup, recipient.key, base_addr.key, part.name)
        if found.user_id is None:
            return None
        row = found.row
        if row is None:
            return base_addr, None
        secret = await self._tag_secret() if part.day is not None else ""
        status = judge(part, bool(row.dated), row.revoked_at, row.expires_at, secret=secret, owner=found.owner,
                       now=time.time())
        if status is None:
            return base_addr, None
        return base_addr, TagMatch(row.id, part.name, status, row.folder or self.cfg.tags.folder, found.user_id)

    async def _plain_base(self, recipient: Address, base_addr: Address) -> tuple[Address, None] | None:
        """A local part that holds the delimiter but no tag name (with "-": `first-last.x@`): the base
        address's user when the full address is nobody's own, as Postfix's recipient_delimiter does."""
        found = await self.rt.astore.run(self.rt.store.tag_lookup, recipient.key, base_addr.key, "")
        return (base_addr, None) if found.user_id is not None else None

    async def _tag_secret(self) -> str:
        """The dated tags' MAC key, made once in the store for every node; kept for the process's life."""
        if not self._secret:
            self._secret = await self.rt.astore.run(self.rt.store.tag_secret)
        return self._secret

    # -- DATA --------------------------------------------------------------------
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        tx: Transaction = envelope.tx
        message: bytes = envelope.original_content
        started = time.monotonic()
        try:
            reply = await self._data(server, session, envelope, tx, message)
        except StoreError as exc:
            log.error("store unavailable at end of DATA: %s", exc)
            reply = str(TEMP_LOCAL)
        self.rt.metrics.observe_data(time.monotonic() - started)
        return reply

    async def _data(self, server: Any, session: Any, envelope: Any, tx: Transaction, message: bytes) -> str:
        headers = _headers(message)
        facts, scan, spam_scanned = await self._facts(session, tx, headers, message)
        # Mail by a sign-up address is spam-scanned whoever sends it (issue 19): the tag vouches for nobody.
        routes = [replace(route(f), needs_spam_scan=True) if r.tag is not None else route(f)
                  for f, r in zip(facts, tx.recipients, strict=True)]
        if any(r.needs_spam_scan for r in routes) and not spam_scanned:  # an allowlisted sender it did not authenticate
            from ..scan import merge
            scan = merge(scan, await self._scan(message, spam=True, virus=False,
                                                envelope=_scan_envelope(session, tx)))
        cfg = self.cfg
        auth = facts[0].auth  # one sender check per message
        names = list(dict.fromkeys(str(r.address) for r in tx.recipients))

        honour_action = cfg.scan.rspamd_action == "honour"

        def reply_text(verdict: Verdict) -> str:
            values = {"recipient": replies.recipient_list(names, 3), "sender": tx.sender or "<>"}
            if verdict is Verdict.VIRUS:
                return replies.fill(cfg.scan.virus_reply, virus=scan.virus or "", **values)
            if verdict is Verdict.SPAM:
                template, threshold = cfg.scan.spam_reply, cfg.scan.spam_threshold
                if honour_action and scan.spam_action is not None:  # rspamd's action decided, not our threshold
                    template = DEFAULT_SPAM_REPLY_BY_ACTION if template == DEFAULT_SPAM_REPLY else template
                    threshold = scan.spam_required if scan.spam_required is not None else threshold
                return replies.fill(template, score=f"{scan.spam_score or 0:.1f}",
                                    threshold=f"{threshold:g}", **values)
            if verdict is Verdict.BLOCKED:  # a session that failed authentication gets no link (§4.5 item 3)
                return replies.fill(FORGED_REPLY, why=_forged_why(auth), **values)
            return replies.fill(cfg.challenge.bulk_reply, **values)

        # Each recipient is decided on their own facts (their lists, the mail they sent); one reply
        # must then be true for all of them (settle_recipients).
        # The mailbox's mode (SPEC §4.6) applies after the decision: the scans were the same.
        # A live sign-up address lets in what its user's rules would challenge (never the null sender's mail).
        spam_marked = judge_spam(scan, cfg.scan.spam_threshold, honour_action=honour_action,
                                 marked=cfg.scan.rspamd_add_header)[0] == "screen"

        def tagged(d: DataDecision, rcpt: Recipient) -> DataDecision:
            if rcpt.tag is None or rcpt.sender_class == NULL:
                return d
            return apply_tag(d, rcpt.tag.name, rcpt.tag.folder, spam_marked=spam_marked)

        decisions = settle_recipients([
            apply_mode(tagged(decide_data(f, r, scan, on_failure=cfg.scan.on_failure,
                                          spam_threshold=cfg.scan.spam_threshold, reply_text=reply_text,
                                          honour_action=honour_action, marked=cfg.scan.rspamd_add_header), rcpt),
                       rcpt.mode, rcpt.role)
            for f, r, rcpt in zip(facts, routes, tx.recipients, strict=True)])
        meta = _message_meta(headers, message, scan, auth)
        if auth is not None and tx.sender is not None:
            # what a confirmation of this sender would rest on (the confirmation page records it)
            meta["details"]["auth"]["sender_authenticated"] = sender_authenticated(auth, tx.sender.domain)
        if facts[0].auth_unavailable:
            meta["details"]["auth_unavailable"] = facts[0].auth_unavailable
        notes = [d.scan_note for d in decisions if d.scan_note]
        if notes:
            meta["details"]["scan"] = notes[0]
        metas = []
        for f, r, rcpt in zip(facts, routes, tx.recipients, strict=True):
            m = meta
            if f.sender_class == KNOWN and not r.known:  # an allowlisted sender shown forged (SPEC §4.4)
                m = {**m, "details": {**m["details"], "demoted": r.reason}}
            if rcpt.mode != ENFORCE:  # the app shows which mode decided
                m = {**m, "details": {**m["details"], "mode": rcpt.mode}}
            if rcpt.tag is not None:
                m = {**m, "tag": rcpt.tag.name}
            metas.append(m)
        if all(d.verdict in ACCEPTING for d in decisions):
            return await self._deliver(server, session, envelope, tx, message, decisions, auth, metas)
        if decisions[0].verdict is Verdict.CHALLENGED:
            return await self._challenge(session, tx, decisions, metas)
        for rcpt, d, m in zip(tx.recipients, decisions, metas, strict=True):
            await self._record(session, tx, str(rcpt.address), d.verdict, d.reason, rcpt.user_id, m)
        assert decisions[0].reply is not None
        return replies.render(decisions[0].reply.code, decisions[0].reply.status, decisions[0].reply.text)

    async def _facts(self, session: Any, tx: Transaction, headers: dict[str, str],
                     message: bytes) -> tuple[list[MessageFacts], ScanOutcome, bool]:
        """The decision's facts, one per recipient, and the scan: the store lookups first, then the
        sender check concurrently with the scans (the refusal path waits for the slower, not the sum).
        Returns (facts, scan, whether spamd was asked)."""
        from_addr = _from_address(headers.get("from", ""))
        automated = automated_reason(headers, tx.sender.local if tx.sender else None,
                                     from_addr.local if from_addr else None)
        list_id = list_id_from_header(headers.get("list-id", ""))
        list_post = _list_post_address(headers.get("list-post", ""))
        classes = {r.sender_class for r in tx.recipients}
        report = null_report(headers) if NULL in classes else None
        if report:  # a bounce or auto-reply: about mail this recipient sent? (one recipient: §4.2 item 5)
            refs = referenced_message_ids(headers, message)
        else:
            refs = _MSGID.findall(headers.get("in-reply-to", "") + " " + headers.get("references", ""))[-50:]
        # Per user: did they send what this answers, and which of their list entries match?
        lookups: dict[int, tuple[bool, Any]] = {}
        asked = [r.user_id for r in tx.recipients
                 if (r.sender_class == UNKNOWN and (refs or list_id or list_post)) or (report and refs)]
        if asked:
            hashes = [hash_message_id(m) for m in refs]
            unknown = UNKNOWN in classes
            lookups = await self.rt.astore.run(
                self._unknown_lookups, list(dict.fromkeys(asked)), hashes, list_id if unknown else None,
                list_post if unknown else None)
        candidates: dict[int, Any] = {}
        for user_id, (_, entries) in lookups.items():
            if list_id or list_post:
                found = match_list(entries, list_id, list_post, _now())
                if found is not None and found.action == "allow":
                    candidates[user_id] = found
        mode = self.cfg.challenge.allowlist_auth
        # Only an allowlisted sender authenticated for its own domain skips spamd (SPEC §4.5 item 1):
        # whether it is one is known only after its check, so spamd waits for that; every other path
        # is spam-scanned anyway, concurrently with the check.
        check = self.rt.authenticator is not None and any(auth_needed(c, mode) for c in classes)
        spam_now = not (check and classes == {KNOWN})
        scan_job: asyncio.Future[ScanOutcome]
        if self.rt.scanners is None:  # nothing to wait for: no task for it
            scan_job = asyncio.get_running_loop().create_future()
            scan_job.set_result(ScanOutcome())
        else:
            scan_job = asyncio.ensure_future(self._scan(message, spam=spam_now,
                                                        envelope=_scan_envelope(session, tx)))
        auth, unavailable = None, ""
        try:
            if check:
                assert self.rt.authenticator is not None
                try:
                    auth = await self.rt.authenticator.check(message, envelope_sender=tx.raw_sender or None,
                                                             helo=_helo(session), client_ip=_peer_ip(session))
                except SenderCheckUnavailable as exc:
                    unavailable = str(exc)
                    log.warning("sender check for %r not run: %s", tx.raw_sender or "<>", exc)
            if auth is not None:
                auth = _with_org_domains(auth, tx.sender.domain if tx.sender else "",
                                         from_addr.domain if from_addr else "",
                                         *(_entry_domain(c) for c in candidates.values()))
            list_known = {user_id: list_authenticated(str(c.pattern), _entry_domain(c), auth)
                          for user_id, c in candidates.items()}
            scan = await scan_job
        finally:
            if not scan_job.done():
                scan_job.cancel()
        facts = [MessageFacts(sender_class=r.sender_class, sender=tx.sender,
                              from_domain=from_addr.domain if from_addr else "", auth=auth, auth_mode=mode,
                              automated=automated, list_known=list_known.get(r.user_id),
                              reply_known=lookups.get(r.user_id, (False, None))[0],
                              automated_mode=self.cfg.challenge.automated, null_report=report,
                              auth_unavailable=unavailable)
                 for r in tx.recipients]
        return facts, scan, spam_now

    async def _scan(self, message: bytes, *, spam: bool, virus: bool = True,
                    envelope: ScanEnvelope | None = None) -> ScanOutcome:
        if self.rt.scanners is None:
            return ScanOutcome()
        return await self.rt.scanners.scan(message, spam=spam, virus=virus, envelope=envelope)

    def _unknown_lookups(self, user_ids: list[int], hashes: list[str], list_id: str | None,
                         list_post: Address | None) -> dict[int, tuple[bool, list]]:
        """For each user: whether they sent one of the referenced messages, and their list entries
        for the message's list identity (one worker-thread hop for all recipients)."""
        return {user_id: self._unknown_lookup(user_id, hashes, list_id, list_post) for user_id in user_ids}

    def _unknown_lookup(self, user_id: int, hashes: list[str], list_id: str | None,
                        list_post: Address | None) -> tuple[bool, list]:
        store = self.rt.store
        entries = store.list_entries_for_list(user_id, list_id, list_post) if (list_id or list_post) else []
        return store.has_sent_id(user_id, hashes), entries

    async def _deliver(self, server: Any, session: Any, envelope: Any, tx: Transaction, message: bytes,
                       decisions: list[DataDecision], auth: AuthResults | None, metas: list[dict[str, Any]]) -> str:
        # Only our own Authentication-Results may carry our name (RFC 8601 §5), checks run or not.
        message = remove_results_claiming(message, self.cfg.smtp.hostname)
        # The inbox copies, then the screened ones (their own mark and folder): two hand-overs when a
        # message is screened for some recipients only.
        # A sign-up address's own folder makes a hand-over of its own (issue 19).
        folders = [self._tag_folder(r) if d.verdict is not Verdict.SCREENED else None
                   for r, d in zip(tx.recipients, decisions, strict=True)]
        groups = [[i for i, f in enumerate(folders) if f == folder]
                  for folder in dict.fromkeys(f for f in folders if f is not None)]
        groups.append([i for i, f in enumerate(folders) if f is None])
        done: list[int] = []
        for group in (g for g in groups if g):
            screened = decisions[group[0]].verdict is Verdict.SCREENED
            started = time.monotonic()
            try:
                result = await self._hand_on(session, envelope, tx, message, group, auth, screened=screened)
            except DeliveryError as exc:
                self.rt.metrics.observe_delivery(time.monotonic() - started, ok=False)
                return await self._delivery_failed(session, tx, exc, decisions, metas, done)
            self.rt.metrics.observe_delivery(time.monotonic() - started, ok=True)
            for i in group:
                metas[i] = {**metas[i], "details": {**metas[i]["details"], "downstream": result.reply,
                                                    **({"downstream_tls": result.tls} if result.tls else {})}}
            done += group
        for r, d, m in zip(tx.recipients, decisions, metas, strict=True):
            reason = d.reason + (f"; {d.scan_note}" if d.scan_note else "")
            await self._record(session, tx, str(r.address), d.verdict, reason, r.user_id, m)
        return "250 2.0.0 Message accepted for delivery"

    async def _hand_on(self, session: Any, envelope: Any, tx: Transaction, message: bytes, group: list[int],
                       auth: AuthResults | None, *, screened: bool) -> Delivered:
        """Hand one group's copy on downstream (trace headers on top); raises DeliveryError. The seam
        where the milter (milter/filter.py) has Postfix deliver instead: it overrides this."""
        mailboxes = await self._mailboxes(tx) if self.cfg.delivery.mode == "maildir" else ()
        options = tuple(o for o in envelope.mail_options if o.startswith("BODY=") or o == "SMTPUTF8")
        trace = trace_headers(self.cfg.smtp.hostname, session, auth, screened=screened)
        out = Outbound(tx.raw_sender, [tx.recipients[i].raw for i in group], trace + message, options,
                       mailboxes=tuple(mailboxes[i] for i in group) if mailboxes else ())
        folder = self.cfg.delivery.screened_folder if screened else self._tag_folder(tx.recipients[group[0]])
        return await self.rt.deliverer.deliver(out, folder=folder)

    def _tag_folder(self, rcpt: Recipient) -> str:
        """The folder of the recipient's unscreened copy: a sign-up address's own when it has one, else
        the inbox (""). The name is [tags] folder_prefix (checked as a folder name) and the tag's name
        (a-z, 0-9, '-', '_': checked when made), so nothing a sender writes reaches it."""
        if rcpt.tag is None or rcpt.tag.folder != "tag":
            return ""
        return f"{self.cfg.tags.folder_prefix}.{rcpt.tag.name}"

    async def _delivery_failed(self, session: Any, tx: Transaction, exc: DeliveryError,
                               decisions: list[DataDecision], metas: list[dict[str, Any]], done: list[int]) -> str:
        """The downstream refused: its answer is the reply. Copies already handed on (the inbox
        group, when the screened group failed after it) are recorded as delivered; the sender's
        server will send those again with the rest, a duplicate rather than a loss (RFC 5321 §6.1)."""
        if exc.permanent:
            verdict = Verdict.UNKNOWN_RECIPIENT if exc.status.startswith("5.1.") else Verdict.BLOCKED
            reply = replies.render(exc.code, exc.status, replies.safe(exc.text, 300) or "Refused downstream")
        elif exc.tls:  # [delivery] tls: 4.7.4/4.7.5 as Postfix's client gives; the why is in the event only
            verdict = Verdict.TEMPFAIL
            reply = replies.render(451, exc.status, "TLS to the mail server behind the gateway failed; try again later")
        else:
            verdict = Verdict.TEMPFAIL
            reply = replies.render(451, "4.3.0", "Mail server behind the gateway unavailable; try again later")
        for i, r in enumerate(tx.recipients):
            if i in done:
                await self._record(session, tx, str(r.address), decisions[i].verdict, decisions[i].reason,
                                   r.user_id, metas[i])
            else:
                await self._record(session, tx, str(r.address), verdict, f"downstream refused: {exc}",
                                   r.user_id, metas[i])
        return reply

    async def _mailboxes(self, tx: Transaction) -> tuple[str, ...]:
        """Each recipient's canonical stored address, the Maildir directory name (SPEC §4.5 item 7):
        the address itself when the user owns it, else (a catch-all) the user's primary address."""
        found = []
        for r in tx.recipients:
            user = await self.rt.astore.run(self.rt.store.get_user, r.user_id)
            mailbox = next((a for a in user.addresses if not a.startswith("@")), user.addresses[0])
            found.append(r.address.key if r.address.key in user.addresses else mailbox)
        return tuple(found)

    async def _challenge(self, session: Any, tx: Transaction, decisions: list[DataDecision],
                         metas: list[dict[str, Any]]) -> str:
        assert tx.sender is not None
        token = new_token()
        max_pending = self.cfg.challenge.max_pending
        events = [self._event(session, tx, str(r.address), Verdict.CHALLENGED, d.reason, r.user_id, m)
                  for r, d, m in zip(tx.recipients, decisions, metas, strict=True)]
        if len(tx.recipients) == 1:
            # the challenge, its token and the event in one transaction (one group-commit wait)
            cid, _ = await self.rt.astore.write(self.rt.store.challenge_event_tx, events[0], tx.sender.key,
                                                self.cfg.challenge.ttl, token, max_pending)
            capped = cid is None
        else:
            # One link for every recipient (each keeps a challenge of their own): no recipient is shown
            # another's link, and no sending server needs a retry round to get a link for each.
            await self.rt.astore.write(self.rt.store.challenge_group_event_tx, events, tx.sender.key,
                                       self.cfg.challenge.ttl, token, max_pending)
            capped = any(ev.challenge_id is None for ev in events)
        for ev in events:  # an event at the cap was recorded as tempfail, with the reason
            self.rt.decision_log(ev)
        if capped:
            # A flood of strangers filled a recipient's Pending list: a real sender's server retries for
            # days, by when the flood's challenges have been denied or have expired (SPEC §4.5 item 5).
            return replies.render(451, "4.7.1", "Too many senders are waiting for confirmation at this "
                                                "mailbox; try again later")
        url = f"{self.rt.cfg.public_url}/c/{token}"
        names = list(dict.fromkeys(str(r.address) for r in tx.recipients))
        text = replies.challenge_text(self.cfg.challenge.reply_for(len(names)), names, tx.sender.key, url)
        return replies.render(550, "5.7.1", text)

    # -- events ------------------------------------------------------------------
    async def _record(self, session: Any, tx: Transaction | None, recipient: str, verdict: Verdict, reason: str,
                      user_id: int | None, meta: dict[str, Any] | None = None) -> None:
        ev = self._event(session, tx, recipient, verdict, reason, user_id, meta)
        self.rt.decision_log(ev)
        try:
            await self.rt.astore.record(ev)
        except StoreError as exc:  # the reply still goes out; the log line above keeps the decision
            log.error("event not stored (%s): %s", verdict.value, exc)

    async def _record_refused_rcpt(self, session: Any, tx: Transaction | None, recipient: str, verdict: Verdict,
                                   reason: str, user_id: int | None, *, tag: str | None = None) -> None:
        """A refused RCPT's event. Only the first REFUSED_RCPT_EVENTS of a session are stored (each is
        kept for events.retention); the rest go to the decision log only, so a flood of guessed
        recipients costs the store a few rows per session (smtp.error_limit ends it soon anyway)."""
        meta = {"tag": tag} if tag else None
        stored = getattr(session, "refused_rcpt_events", 0)
        if stored < REFUSED_RCPT_EVENTS:
            session.refused_rcpt_events = stored + 1
            await self._record(session, tx, recipient, verdict, reason, user_id, meta)
        else:
            self.rt.decision_log(self._event(session, tx, recipient, verdict, reason, user_id, meta))

    @staticmethod
    def _event(session: Any, tx: Transaction | None, recipient: str, verdict: Verdict, reason: str,
               user_id: int | None, meta: dict[str, Any] | None) -> EventRecord:
        meta = meta or {}
        return EventRecord(
            ts=_now(), verdict=verdict, reason=reason, client_ip=_peer_ip(session),
            helo=replies.safe(_helo(session), 255), sender=(tx.raw_sender if tx else "") or "",
            recipient=recipient, user_id=user_id, subject=meta.get("subject", ""),
            from_header=meta.get("from_header", ""), message_id=meta.get("message_id", ""),
            size=meta.get("size"), spam_score=meta.get("spam_score"), virus=meta.get("virus", ""),
            challenge_id=meta.get("challenge_id"), details=meta.get("details", {}), tag=meta.get("tag"))


def _peer_ip(session: Any) -> str:
    """The client's address: the original one when a trusted proxy forwarded it (XFORWARD)."""
    forwarded = getattr(session, "forwarded_ip", None)
    if forwarded:
        return forwarded
    peer = session.peer
    return peer[0] if isinstance(peer, tuple) else str(peer or "")


def _helo(session: Any) -> str:
    return getattr(session, "forwarded_helo", None) or session.host_name or ""


def _scan_envelope(session: Any, tx: Transaction) -> Any:
    """The SMTP facts rspamd scores with (a scan.ScanEnvelope)."""
    from ..scan import ScanEnvelope
    return ScanEnvelope(client_ip=_peer_ip(session), helo=_helo(session), sender=tx.raw_sender,
                        recipients=tuple(r.raw for r in tx.recipients))


def _headers(message: bytes) -> dict[str, str]:
    """Lower-case header name -> first value, unfolded and decoded for display (the one header rule)."""
    return header_rule.first_values(message)


def _decode_header(value: Any) -> str:
    return header_rule.decode_display(value)


def _from_address(value: str) -> Address | None:
    found = header_rule.addresses(value)
    addr = found[0] if len(found) == 1 else email.utils.parseaddr(value)[1]
    try:
        return parse(addr) if addr else None
    except AddressError:
        return None


def _list_post_address(value: str) -> Address | None:
    m = re.search(r"<mailto:([^>?]+)", value, re.I)
    if not m:
        return None
    try:
        return parse(m.group(1))
    except AddressError:
        return None


def _entry_domain(entry: Any) -> str:
    """The domain a matched list entry vouches for (SPEC §4.5 item 2): a `list:<id>` entry's id
    (`dev.lists.example.org` names a list at example.org, by organisational domain), or the
    allowlisted List-Post address's (or `@domain` entry's) domain. Never one from the headers."""
    kind, value = entry.pattern.kind, entry.pattern.value
    if kind == "address":
        return value.rpartition("@")[2]
    return value.lstrip("@")


def _forged_why(auth: AuthResults | None) -> str:
    """The refusal's reason in a few words (the details are in the event)."""
    if auth is None:
        return "sender authentication failed"
    if auth.dmarc == "fail" and auth.dmarc_policy:
        return f"DMARC fail for {auth.from_domain}"
    return f"SPF fail for {auth.spf_domain}"


def _with_org_domains(auth: AuthResults, *domains: str) -> AuthResults:
    """Hand the policy the organisational domain of every domain it may compare (it imports no PSL)."""
    return _org_domains_added(auth, domains)


# Pure, and a sender's results repeat (its SPF is cached: senderauth._Recent); replace() costs ~10 us.
@lru_cache(maxsize=1024)
def _org_domains_added(auth: AuthResults, domains: tuple[str, ...]) -> AuthResults:
    names = {d.lower().rstrip(".") for d in (*domains, auth.from_domain, auth.spf_domain, *auth.dkim_pass_domains)
             if d}
    return replace(auth, org_domains=tuple((d, organisational_domain(d)) for d in sorted(names)))


def _auth_details(auth: AuthResults) -> dict[str, Any]:
    """The results as recorded with the event: one word per method (as in Authentication-Results)
    for the app's details pane, and the domains each applies to."""
    dkim = ("pass" if auth.dkim_pass_domains else "fail" if auth.dkim_fail_domains
            else "temperror" if auth.dkim_temperror_domains else "none")
    return {"spf": auth.spf, "dkim": dkim, "dmarc": auth.dmarc,
            "auth": {"spf_domain": auth.spf_domain, "spf_scope": auth.spf_scope,
                     "dkim_pass": list(auth.dkim_pass_domains), "dkim_fail": list(auth.dkim_fail_domains),
                     "dkim_temperror": list(auth.dkim_temperror_domains), "from_domain": auth.from_domain,
                     "dmarc_policy": auth.dmarc_policy}}


def _message_meta(headers: dict[str, str], message: bytes, scan: ScanOutcome,
                  auth: AuthResults | None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if scan.spam_symbols:
        details["spam_symbols"] = list(scan.spam_symbols)
    if scan.spam_action is not None:  # rspamd: its action, and the Queue-Id it logged the message under
        details["spam_action"] = scan.spam_action
    if scan.scan_id:
        details["scan_id"] = scan.scan_id
    if auth is not None:
        details.update(_auth_details(auth))
    return {
        "subject": headers.get("subject", "")[:1000], "from_header": headers.get("from", "")[:1000],
        "message_id": headers.get("message-id", "")[:1000], "size": len(message),
        "spam_score": scan.spam_score, "virus": scan.virus or "", "details": details,
    }
