"""What we answer this sender, for this recipient, with this message.

A pure function of plain data: no sockets, no database, no clock (`now` is
passed in). The SMTP handler gathers the facts, calls these, records the
event and sends the reply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from .address import Address, AddressError, is_relay_trick, normalise_domain, parse
from .lists import ALLOW, BLOCK, ListEntry, match_sender


class Verdict(str, Enum):
    DELIVERED = "delivered"
    SCREENED = "screened"
    CHALLENGED = "challenged"
    BULK = "bulk"
    VIRUS = "virus"
    SPAM = "spam"
    BLOCKED = "blocked"
    RELAY_DENIED = "relay_denied"
    UNKNOWN_RECIPIENT = "unknown_recipient"
    TEMPFAIL = "tempfail"
    OBSERVED = "observed"  # a mailbox in observe mode delivered what would have been challenged or refused
    # What people did about a challenge (SPEC §4.3): events too, so Activity tells the whole story, but no
    # mail: never counted as a refusal or a delivery (stats keep them apart, metrics and the digest skip them)
    CONFIRMED = "confirmed"  # the sender solved the CAPTCHA
    APPROVED = "approved"  # the user approved the challenge (or allowed the sender's domain)
    DENIED = "denied"  # the user denied it (the sender is blocklisted)


VERDICTS = [v.value for v in Verdict]
# The verdicts that are a person's action on a challenge, not a decision about mail.
ACTION_VERDICTS = frozenset({Verdict.CONFIRMED.value, Verdict.APPROVED.value, Verdict.DENIED.value})
MAIL_VERDICTS = [v for v in VERDICTS if v not in ACTION_VERDICTS]  # SMTP decisions (§4.3's first list)

# Sender classes within one transaction (SPEC §4.1): recipients of different
# classes get different end-of-DATA outcomes, so they never share a transaction.
KNOWN = "known"
UNKNOWN = "unknown"
NULL = "null"  # the null sender <>: never challenged; one recipient per transaction (§4.2 item 5)

# Mailbox modes (SPEC §4.6): enforce challenges; observe delivers and records what would have been
# challenged as `observed`; off only scans. ROLE is the mode of postmaster@/abuse@ (RFC 2142): off.
ENFORCE = "enforce"
OBSERVE = "observe"
OFF = "off"
MODES = (ENFORCE, OBSERVE, OFF)
ROLE = "role"
ROLE_LOCALS = ("postmaster", "abuse")


def role_mailbox(local: str) -> str:
    """The role name when `local` is exactly postmaster or abuse (any case, RFC 5321 §4.5.1), else "".
    No +tag, no quoting: a sender cannot dress another mailbox up as a role one."""
    low = local.lower()
    return low if low in ROLE_LOCALS else ""


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    status: str  # RFC 3463 enhanced code
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"


@dataclass(frozen=True, slots=True)
class RecipientCheck:
    """The outcome of looking at RCPT TO's address alone (before any lookup)."""

    address: Address | None
    refusal: Reply | None
    verdict: Verdict | None
    reason: str = ""


def check_recipient_address(raw: str, local_domains: frozenset[str]) -> RecipientCheck:
    """Never an open relay: anything but a plain address in a local domain is refused."""
    s = raw.strip()
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1].strip()
    if s.startswith("@") or "," in s.split(":", 1)[0] and ":" in s:
        return _relay_denied("source route")
    local, sep, domain = s.rpartition("@")
    if not sep:
        return _relay_denied("no domain")
    if domain.startswith("["):
        return _relay_denied("address literal")
    if local.startswith('"') or is_relay_trick(local):
        return _relay_denied("routing in local part")
    try:
        dom = normalise_domain(domain)
    except AddressError as exc:
        return RecipientCheck(None, Reply(501, "5.1.3", "Bad recipient address syntax"), None, str(exc))
    if dom not in local_domains:
        return _relay_denied(f"domain {dom} is not local")
    try:
        addr = parse(s)
    except AddressError as exc:
        return RecipientCheck(None, Reply(501, "5.1.3", "Bad recipient address syntax"), None, str(exc))
    return RecipientCheck(addr, None, None)


def _relay_denied(reason: str) -> RecipientCheck:
    return RecipientCheck(None, Reply(550, "5.7.1", "Relaying denied"), Verdict.RELAY_DENIED, reason)


@dataclass(frozen=True, slots=True)
class RcptDecision:
    reply: Reply
    verdict: Verdict | None  # None: accepted for now; the verdict comes at end of DATA
    sender_class: str | None = None
    reason: str = ""
    entry: ListEntry | None = None


ACCEPTED = Reply(250, "2.1.5", "Recipient ok")
SPLIT = Reply(452, "4.5.3", "Too many recipients; send the others in a new transaction")
TOO_MANY = Reply(452, "4.5.3", "Too many recipients")


def decide_rcpt(*, sender: Address | None, recipient_exists: bool, entries: list[ListEntry],
                accepted_classes: list[str], max_recipients: int, now: datetime,
                gated: bool = True, accepted_gated: Sequence[bool] = ()) -> RcptDecision:
    """Per recipient, at RCPT (SPEC §4.1). `entries` are the recipient's and the global entries. A block's
    reply text is the gateway's `challenge.blocked_reply`, filled by the caller only when it is the answer."""
    if not recipient_exists:
        return RcptDecision(Reply(550, "5.1.1", "No such user here"), Verdict.UNKNOWN_RECIPIENT,
                            reason="no such user or alias")
    entry = match_sender(entries, sender, now)
    if entry is not None and entry.action == BLOCK:
        scope = "globally" if entry.user_id is None else "by recipient"
        return RcptDecision(Reply(550, "5.7.1", "Sender blocked"), Verdict.BLOCKED,
                            reason=f"blocked {scope} ({entry.pattern})", entry=entry)
    if len(accepted_classes) >= max_recipients:
        return RcptDecision(TOO_MANY, None, reason="max_recipients reached")
    if sender is None:
        sender_class = NULL
    elif entry is not None and entry.action == ALLOW:
        sender_class = KNOWN
    else:
        sender_class = UNKNOWN
    if accepted_classes:
        # Recipients who know the sender and recipients who do not share the transaction: a 452 here
        # is what real servers handle worst (Exim 4.96 fails the deferred recipient with the end-of-DATA
        # 5xx of the first transaction, so a known recipient lost his mail to a stranger's challenge;
        # Postfix and OpenSMTPD retry minutes later). settle_recipients keeps the one reply true for
        # all; a stranger's several recipients get one refusal with one link. The null sender gets one
        # recipient per transaction (SPEC §4.2 item 5): its report is matched to one recipient's mail.
        if sender_class == NULL or NULL in accepted_classes:
            return RcptDecision(SPLIT, None, sender_class, reason="recipient class split")
        # A stranger's mail to a mailbox that does not challenge (observe, off, a role mailbox) is
        # delivered; in one transaction with a challenged recipient, settle_recipients would screen the
        # challenged one's copy on its account. Each goes in a transaction of its own (SPEC §4.6).
        if sender_class == UNKNOWN and any(c == UNKNOWN and g != gated
                                           for c, g in zip(accepted_classes, accepted_gated, strict=False)):
            return RcptDecision(SPLIT, None, sender_class, reason="recipient mode split")
    return RcptDecision(ACCEPTED, None, sender_class, entry=entry)


# ---------------------------------------------------------------------------
# End of DATA


@dataclass(frozen=True, slots=True)
class AuthResults:
    """SPF, DKIM and DMARC as seen for one message (filled by senderauth)."""

    spf: str = "none"  # pass | fail | softfail | neutral | none | temperror | permerror
    spf_domain: str = ""
    dkim_pass_domains: tuple[str, ...] = ()  # d= of every valid signature
    dkim_fail_domains: tuple[str, ...] = ()
    dmarc: str = "none"  # pass | fail | none | temperror
    dmarc_policy: str = ""  # p= when the From domain publishes a DMARC record
    from_domain: str = ""
    spf_scope: str = "mailfrom"  # mailfrom | helo (the null sender's SPF is checked for HELO)
    dkim_temperror_domains: tuple[str, ...] = ()  # d= whose key lookup timed out: neither pass nor fail
    # (domain, organisational domain) pairs from the Public Suffix List, filled by the caller:
    # the policy imports nothing, so the list lookup arrives as data.
    org_domains: tuple[tuple[str, str], ...] = ()

    def dkim_aligned(self, domain: str) -> bool:
        """A valid signature whose d= shares the domain's organisational domain (relaxed alignment)."""
        orgs = dict(self.org_domains)
        return any(_aligned(d, domain, orgs) for d in self.dkim_pass_domains)

    def summary(self) -> str:
        dk = ",".join(self.dkim_pass_domains) or "none"
        return f"spf={self.spf} dkim={'pass:' + dk if self.dkim_pass_domains else 'none'} dmarc={self.dmarc}"


def _aligned(a: str, b: str, orgs: dict[str, str]) -> bool:
    """Relaxed alignment (RFC 7489 §3.1.1): same organisational domain. Without both
    organisational domains at hand, approximated: one domain is the other or a subdomain
    of it, and the shorter has at least two labels (so a bare TLD never aligns)."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if a == b:
        return True
    if a in orgs and b in orgs:
        return orgs[a] == orgs[b]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return short.count(".") >= 1 and long_.endswith("." + short)


def sender_authenticated(auth: AuthResults | None, domain: str) -> str:
    """How the sender is authenticated *for `domain` itself* (SPEC §4.5 item 1), "" when it is not:
    SPF pass for a MAIL FROM domain with the same organisational domain, or a valid DKIM signature
    aligned with it. An SRS/BATV-unwrapped address keeps the domain SPF was checked for in
    `spf_domain`, so one domain's pass never stands for another's."""
    if auth is None or not domain:
        return ""
    orgs = dict(auth.org_domains)
    if auth.spf == "pass" and auth.spf_scope == "mailfrom" and auth.spf_domain and \
            _aligned(auth.spf_domain, domain, orgs):
        return f"SPF pass for {auth.spf_domain}"
    for d in auth.dkim_pass_domains:
        if _aligned(d, domain, orgs):
            return f"DKIM signature by {d}"
    return ""


def forged_reason(auth: AuthResults | None, domain: str, *, enforced_dmarc_only: bool = False) -> str:
    """Why the session is shown forged (SPEC §4.4 relaxed, §4.5 item 3), "" when it is not: DMARC
    fails for a From domain that publishes a policy (p=none included: the failure is published), or
    SPF fails for the envelope and no valid DKIM signature is aligned with the sender's domain.
    `temperror`, `softfail`, `neutral` and `none` show nothing.

    `enforced_dmarc_only`: a DMARC fail counts only under p=quarantine or p=reject. Used for the
    confirmation link: p=none is a domain owner saying "my mail may fail, do not act on it" (mail
    through unaligned services and lists); refusing such a stranger the link would lose real first
    contacts, while a p=none domain's forgery still only gets a link (a CAPTCHA, then spamd)."""
    if auth is None:
        return ""
    if auth.dmarc == "fail" and auth.dmarc_policy and \
            (not enforced_dmarc_only or auth.dmarc_policy in ("quarantine", "reject")):
        return f"forged sender: DMARC fail ({auth.summary()})"
    if auth.spf == "fail" and auth.spf_scope == "mailfrom" and not auth.dkim_aligned(domain):
        return f"forged sender: SPF fail and no aligned DKIM ({auth.summary()})"
    return ""


def allowlist_counts(mode: str, auth: AuthResults | None, sender_domain: str) -> tuple[bool, str]:
    """Does an allowlist match stand, given the sender's authentication? (SPEC §4.4)"""
    if mode == "off":
        return True, ""
    if auth is None:  # not checked (no resolver): relaxed trusts, strict cannot
        return (mode != "strict"), ("" if mode != "strict" else "sender authentication unavailable")
    if mode == "strict":
        if sender_authenticated(auth, sender_domain):
            return True, ""
        return False, forged_reason(auth, sender_domain) or f"strict authentication failed ({auth.summary()})"
    why = forged_reason(auth, sender_domain)
    return not why, why


def reply_authenticated(auth: AuthResults | None, from_domain: str) -> str:
    """A reply counts only when it passes authentication for its own domain (SPEC §4.5 item 2): SPF
    pass for its envelope domain, or a valid DKIM signature aligned with its From domain."""
    if auth is None:
        return ""
    if auth.spf == "pass" and auth.spf_scope == "mailfrom" and auth.spf_domain:
        return f"SPF pass for {auth.spf_domain}"
    if from_domain and auth.dkim_aligned(from_domain):
        return f"DKIM signature aligned with {from_domain}"
    return ""


def list_authenticated(pattern: str, domain: str, auth: AuthResults | None) -> str | None:
    """List mail counts as known only when authenticated for the domain of the allowlist entry that
    matched (SPEC §4.5 item 2): a valid DKIM signature aligned with it, or SPF *pass* for an
    envelope domain in it. Domains taken from the message's own List-* headers prove nothing."""
    if not domain:
        return None
    how = sender_authenticated(auth, domain)
    return f"list mail ({pattern}), authenticated for {domain}: {how}" if how else None


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    virus: str | None = None
    virus_failed: str | None = None  # why clamd did not answer; None when it did (or is off)
    virus_skipped: str | None = None  # e.g. "over size cap"
    spam_score: float | None = None
    spam_symbols: tuple[str, ...] = ()
    spam_failed: str | None = None
    spam_skipped: str | None = None
    spam_partial: str | None = None  # e.g. "first 500000 of 1048576 bytes" (big messages, as spamc)
    spam_scanner: str = "spamd"  # which scanner the spam_* fields come from: "spamd" | "rspamd"
    spam_action: str | None = None  # rspamd's action ("reject", "add header", ...), when it answered
    spam_required: float | None = None  # rspamd's required_score (its reject score)
    scan_id: str = ""  # the Queue-Id rspamd logged the message under


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """Everything the end-of-DATA decision needs, for one transaction."""

    sender_class: str  # KNOWN | UNKNOWN | NULL, from RCPT
    sender: Address | None
    from_domain: str = ""
    auth: AuthResults | None = None
    auth_mode: str = "relaxed"
    automated: str | None = None  # reason, when the message is automated
    list_known: str | None = None  # reason, when a list entry authenticated as the list matches
    reply_known: bool = False  # In-Reply-To/References (or a report's parts) name a Message-ID the recipient sent
    automated_mode: str = "screen"
    null_report: str | None = None  # for <>: the DSN / MDN / auto-reply form the message has, if any
    auth_unavailable: str = ""  # the sender check could not run for a local reason (SPEC §4.5 item 5)


@dataclass(frozen=True, slots=True)
class Route:
    """Before the scan results: is this message treated as known, and does it need the spam scan?"""

    known: bool
    reason: str
    needs_spam_scan: bool
    screen: bool = False  # known, but delivered into the Screened folder with the mark
    refuse: str = ""  # refused without a link (550 5.7.1): why
    forged: str = ""  # not known, and the session failed authentication: no link (SPEC §4.5 item 3)
    tempfail: str = ""  # the decision needs a sender check that could not run here: 451


def auth_needed(sender_class: str, auth_mode: str) -> bool:
    """Does this transaction's route depend on the sender check (or carry its results)? Everything
    but an allowlist match in "off" mode, which is spam-scanned without it."""
    return not (sender_class == KNOWN and auth_mode == "off")


def route(facts: MessageFacts) -> Route:
    """Only an allowlisted sender authenticated for its own domain skips spamd (SPEC §4.5 item 1)."""
    if facts.sender_class == NULL:
        return _null_route(facts)
    domain = facts.sender.domain if facts.sender else ""
    if facts.auth_unavailable and auth_needed(facts.sender_class, facts.auth_mode):
        return Route(False, f"sender check unavailable: {facts.auth_unavailable}", True,
                     tempfail=facts.auth_unavailable)
    if facts.sender_class == KNOWN:
        counts, why = allowlist_counts(facts.auth_mode, facts.auth, domain)
        if counts:
            if facts.auth_mode != "off" and sender_authenticated(facts.auth, domain):
                return Route(True, "allowlisted sender", False)
            return Route(True, "allowlisted sender, not authenticated (spam-scanned)", True)
        return Route(False, why, True, forged=forged_reason(facts.auth, domain, enforced_dmarc_only=True))
    if facts.reply_known:
        how = reply_authenticated(facts.auth, facts.from_domain)
        if how:
            return Route(True, f"reply to a message the recipient sent ({how})", True)
    if facts.list_known:
        return Route(True, facts.list_known, True)
    return Route(False, "unknown sender", True, forged=forged_reason(facts.auth, domain, enforced_dmarc_only=True))


def _null_route(facts: MessageFacts) -> Route:
    """The null sender (SPEC §4.2 item 5): nobody to challenge, so a report or auto-reply about mail
    the recipient sent is delivered, one about nothing we know is screened, the rest refused."""
    if not facts.null_report:
        return Route(False, "null sender, but not a delivery or disposition report or an auto-reply", True,
                     refuse="null sender without a report form")
    if facts.reply_known:
        return Route(True, f"{facts.null_report} about a message the recipient sent", True)
    return Route(True, f"{facts.null_report} about no message the recipient is known to have sent", True,
                 screen=True)


@dataclass(frozen=True, slots=True)
class DataDecision:
    verdict: Verdict
    reply: Reply | None  # None for CHALLENGED (the handler adds the link) and DELIVERED (after downstream)
    reason: str
    scan_note: str = ""
    vouches: bool = True  # accepted on the sender's merits (not only the mailbox's mode): may carry others


SENDER_CHECK_TEMPFAIL = Reply(451, "4.7.0", "Sender authentication could not be checked now; try again later")


SPAM_FILTER_TEMPFAIL = Reply(451, "4.7.1", "Message deferred by the spam filter; try again later")

# rspamd's actions (rspamd's milter: reject -> 554 5.7.1, soft reject -> 451 4.7.1, add header and
# rewrite subject mark the message, greylist and no action accept it). "greylist" is only a score
# band: rspamd's greylist module turns it into "soft reject" when it defers a message, and leaves
# "greylist" on the retry it lets through, so deferring on "greylist" would defer that mail forever.
# "discard" and "quarantine" would hold or drop mail unseen; the gateway refuses it openly instead.
RSPAMD_REFUSE = ("reject", "discard", "quarantine")
RSPAMD_MARK = ("add header", "rewrite subject")
RSPAMD_DEFER = ("soft reject",)
RSPAMD_PASS = ("no action", "greylist")


def judge_spam(scan: ScanOutcome, spam_threshold: float, *, honour_action: bool = False,
               marked: str = "refuse") -> tuple[str, str]:
    """The spam scanner's verdict on the message: ("spam" | "defer" | "screen" | "", why).

    By score (`spam_score >= spam_threshold`) unless `honour_action` and the scanner gave an action
    (rspamd): then its action decides, and `marked` ("refuse" | "screen") says what its "add header"
    and "rewrite subject" mean here."""
    if honour_action and scan.spam_action is not None:
        action = scan.spam_action
        why = f"{scan.spam_scanner} action {action!r} (score {scan.spam_score or 0:g})"
        if action in RSPAMD_REFUSE:
            return "spam", why
        if action in RSPAMD_DEFER:
            return "defer", why
        if action in RSPAMD_MARK:
            return ("spam" if marked == "refuse" else "screen"), why
        if action in RSPAMD_PASS:
            return "", ""
        return "", f"{scan.spam_scanner} action {action[:40]!r} unknown here, taken as no action"
    if scan.spam_score is not None and scan.spam_score >= spam_threshold:
        return "spam", f"spam score {scan.spam_score:g} >= {spam_threshold:g}"
    return "", ""


def decide_data(facts: MessageFacts, routed: Route, scan: ScanOutcome, *, on_failure: str,
                spam_threshold: float, reply_text: Callable[[Verdict], str], honour_action: bool = False,
                marked: str = "refuse") -> DataDecision:
    """The end-of-DATA decision (SPEC §4.2). `reply_text` gives the refusal text for VIRUS, SPAM,
    BULK or BLOCKED (a forged sender: no link); it is called only for the verdict decided.
    `honour_action` and `marked`: see judge_spam."""
    notes = []
    if scan.virus:
        return DataDecision(Verdict.VIRUS, Reply(554, "5.7.0", reply_text(Verdict.VIRUS)), f"virus {scan.virus}")
    spam_scanner = scan.spam_scanner
    for name, failed in (("clamd", scan.virus_failed),
                         (spam_scanner, scan.spam_failed if routed.needs_spam_scan else None)):
        if failed:
            if on_failure == "tempfail":
                return DataDecision(Verdict.TEMPFAIL,
                                    Reply(451, "4.7.0", "Temporary failure scanning the message; try again later"),
                                    f"{name} failed: {failed}")
            notes.append(f"not scanned by {name}: {failed}")
    for name, skipped in (("clamd", scan.virus_skipped), (spam_scanner, scan.spam_skipped)):
        if skipped:
            notes.append(f"not scanned by {name}: {skipped}")
    if scan.spam_partial:
        notes.append(f"{spam_scanner} scanned the {scan.spam_partial}")
    judged, why = judge_spam(scan, spam_threshold, honour_action=honour_action, marked=marked)
    if not routed.needs_spam_scan:  # scanned for another recipient of the message: not for this one
        judged, why = "", ""
    elif why and not judged:
        notes.append(why)
    note = "; ".join(notes)
    if judged == "spam":
        return DataDecision(Verdict.SPAM, Reply(554, "5.7.1", reply_text(Verdict.SPAM)), why, note)
    if judged == "defer":
        return DataDecision(Verdict.TEMPFAIL, SPAM_FILTER_TEMPFAIL, why, note)
    if routed.tempfail:
        return DataDecision(Verdict.TEMPFAIL, SENDER_CHECK_TEMPFAIL, routed.reason, note)
    if routed.refuse:
        return DataDecision(Verdict.BULK, Reply(550, "5.7.1", reply_text(Verdict.BULK)), routed.reason, note)
    if routed.known:
        if judged == "screen" and not routed.screen:
            return DataDecision(Verdict.SCREENED, None, f"{routed.reason}; screened: {why}", note)
        return DataDecision(Verdict.SCREENED if routed.screen else Verdict.DELIVERED, None, routed.reason, note)
    if judged == "screen":  # not known: what follows decides (the link asks a person to answer)
        note = "; ".join([*notes, why])
    if routed.forged:
        # A link is never handed to a session that fails authentication for its envelope (§4.5 item 3).
        return DataDecision(Verdict.BLOCKED, Reply(550, "5.7.1", reply_text(Verdict.BLOCKED)),
                            f"{routed.forged}; no confirmation link", note)
    if facts.automated:
        signed = facts.auth is not None and facts.from_domain and facts.auth.dkim_aligned(facts.from_domain)
        if facts.automated_mode == "screen" and signed:
            return DataDecision(Verdict.SCREENED, None,
                                f"automated ({facts.automated}), DKIM-signed by {facts.from_domain}", note)
        why = "no aligned DKIM signature" if facts.automated_mode == "screen" else "automated mail refused"
        return DataDecision(Verdict.BULK, Reply(550, "5.7.1", reply_text(Verdict.BULK)),
                            f"automated ({facts.automated}); {why}", note)
    return DataDecision(Verdict.CHALLENGED, None, routed.reason, note)


# The decisions a mailbox's mode turns into delivery: what the gate would refuse because of who the
# sender is. Virus, spam and scanner failures are never among them (observe and off scan the same).
_MODE_LIFTS = (Verdict.CHALLENGED, Verdict.BULK, Verdict.BLOCKED)


def apply_mode(decision: DataDecision, mode: str, role: str = "") -> DataDecision:
    """The recipient's mailbox mode applied to their end-of-DATA decision (SPEC §4.6). `mode` is
    ENFORCE, OBSERVE, OFF or ROLE (`role` names it: postmaster or abuse). Only challenges and the
    refusals about the sender are lifted; a lifted decision never vouches for another recipient."""
    if mode == ENFORCE or decision.verdict not in _MODE_LIFTS:
        return decision
    would = f"would have been {decision.verdict.value}: {decision.reason}"
    if mode == OBSERVE:
        return DataDecision(Verdict.OBSERVED, None, f"observe mode; {would}", decision.scan_note, vouches=False)
    why = f"role mailbox {role}@ (RFC 2142), not challenged" if mode == ROLE else "mode off (scan only)"
    return DataDecision(Verdict.DELIVERED, None, f"{why}; {would}", decision.scan_note, vouches=False)


ACCEPTING = (Verdict.DELIVERED, Verdict.SCREENED, Verdict.OBSERVED)
# Refusals that depend on who the recipient is (their lists, the mail they sent), and so may
# differ between recipients of one message; a virus, spam or a scanner failure concerns the
# message itself and is the same for all.
_PER_RECIPIENT_REFUSALS = (Verdict.CHALLENGED, Verdict.BULK)
_REFUSAL_ORDER = (Verdict.VIRUS, Verdict.SPAM, Verdict.TEMPFAIL, Verdict.BLOCKED, Verdict.BULK, Verdict.CHALLENGED)


def settle_recipients(decisions: Sequence[DataDecision]) -> list[DataDecision]:
    """Make one end-of-DATA reply true for every recipient of the transaction (SPEC §4.2).

    Recipients of one transaction can differ: one knows the sender, one has the list allowlisted or
    sent the message this one answers, another does not. When some would receive the message and
    others would be challenged or refused as bulk, the others get it screened (their Screened
    folder, with the mark: never the inbox), because the single reply cannot be both "accepted" and
    "refused". A refusal that concerns the message itself (virus, spam, a scanner or sender-check
    failure, a forged sender) stands for everyone; among refusals, the one without a link wins.
    """
    accepted = [d for d in decisions if d.verdict in ACCEPTING]
    if len(accepted) == len(decisions):
        return list(decisions)
    if not any(d.vouches for d in accepted):
        # Delivered only by a mailbox's mode: that vouches for nobody else. RCPT keeps such recipients
        # apart from challenged ones (decide_rcpt); if they meet anyway, the refusal stands for all.
        refused = [d for d in decisions if d.verdict not in ACCEPTING]
        first = next(d for v in _REFUSAL_ORDER for d in refused if d.verdict is v)
        return [first] * len(decisions)
    if not accepted:  # refused for all: the refusal that says the most (a link only when all get one)
        verdicts = {d.verdict for d in decisions}
        if len(verdicts) == 1:
            return list(decisions)
        first = next(d for v in _REFUSAL_ORDER for d in decisions if d.verdict is v)
        return [first] * len(decisions)
    message_wide = [d for d in decisions if d.verdict not in ACCEPTING and d.verdict not in _PER_RECIPIENT_REFUSALS]
    if message_wide:
        return [message_wide[0]] * len(decisions)
    vouched = accepted[0].reason
    return [d if d.verdict in ACCEPTING else
            DataDecision(Verdict.SCREENED, None,
                         f"{d.reason}; screened: another recipient of the message accepts it ({vouched})",
                         d.scan_note)
            for d in decisions]


@dataclass
class EventRecord:
    """One final decision, as stored and logged (SPEC §4.3). The one declaration of an event's fields: the
    store writes them as they are; the API's and the desktop client's Event are checked against them
    (tests/test_event_schema.py)."""

    ts: datetime
    verdict: Verdict
    reason: str
    client_ip: str = ""
    helo: str = ""
    sender: str = ""
    recipient: str = ""
    user_id: int | None = None
    subject: str = ""
    from_header: str = ""
    message_id: str = ""
    size: int | None = None
    spam_score: float | None = None
    virus: str = ""
    challenge_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    tag: str | None = None  # the sign-up address's name the message came in by (issue 19)
