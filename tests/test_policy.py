"""The pure policy: addresses, list precedence, the RCPT and end-of-DATA decision tables."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendergate.policy import replies
from sendergate.policy.address import AddressError, Pattern, parse, parse_pattern
from sendergate.policy.automated import automated_reason, is_role_local_part, null_report, referenced_message_ids
from sendergate.policy.decide import (
    KNOWN,
    NULL,
    UNKNOWN,
    AuthResults,
    MessageFacts,
    ScanOutcome,
    Verdict,
    allowlist_counts,
    check_recipient_address,
    decide_data,
    decide_rcpt,
    list_authenticated,
    route,
    sender_authenticated,
)
from sendergate.policy.lists import ListEntry, match_list, match_sender

pytestmark = pytest.mark.fast  # in process: no daemon, no subprocess

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
LOCAL = frozenset({"example.org", "sub.example.org"})


def entry(i: int, action: str, pattern: str, *, user: int | None = 1, expires: datetime | None = None) -> ListEntry:
    return ListEntry(i, action, parse_pattern(pattern), expires, user)


# -- addresses ---------------------------------------------------------------

@pytest.mark.parametrize("raw,key", [
    ("Bob@Example.ORG", "bob@example.org"),
    ("bob+news@example.org", "bob@example.org"),
    ("<bob@example.org>", "bob@example.org"),
    ("prvs=1234567890=bob@example.org", "bob@example.org"),
    ("SRS0=HHH=TT=example.org=bob@forwarder.net", "bob@example.org"),
    ("SRS1=XXX=forwarder.net==HHH=TT=example.org=bob@second.net", "bob@example.org"),
    ("bob@bücher.example", "bob@xn--bcher-kva.example"),
    ("bob@example.org.", "bob@example.org"),
])
def test_sender_normalisation(raw: str, key: str) -> None:
    assert parse(raw, unwrap=True).key == key


@pytest.mark.parametrize("raw", [
    "", "bob", "@example.org", "bob@", "bob@@example.org", "bob@[127.0.0.1]", "bob\r\n@example.org",
    "bob@exa mple.org", "@relay.test:bob@example.org", "bob@-bad-.org", "bo\x00b@example.org",
    "a" * 65 + "@example.org",
])
def test_invalid_addresses_are_refused(raw: str) -> None:
    with pytest.raises(AddressError):
        parse(raw)


def test_patterns() -> None:
    assert parse_pattern("@Shop.Example") == Pattern("domain", "shop.example")
    assert parse_pattern("list:<Dev.Lists.Example.org>") == Pattern("list", "dev.lists.example.org")
    assert parse_pattern("Bob+x@Example.org") == Pattern("address", "bob@example.org")
    with pytest.raises(AddressError):
        parse_pattern("list:")


# -- relaying ----------------------------------------------------------------

@pytest.mark.parametrize("rcpt", [
    "victim@elsewhere.test", "victim%elsewhere.test@example.org", '"victim@elsewhere.test"@example.org',
    "@example.org:victim@elsewhere.test", "victim@[127.0.0.1]", "elsewhere.test!victim@example.org",
    "victim@example.org.elsewhere.test", "victim@notexample.org",
])
def test_relay_tricks_are_denied(rcpt: str) -> None:
    check = check_recipient_address(rcpt, LOCAL)
    assert check.verdict is Verdict.RELAY_DENIED
    assert (check.refusal.code, check.refusal.status) == (550, "5.7.1")


@pytest.mark.parametrize("rcpt", ["alice@example.org", "Alice@EXAMPLE.org", "alice+tag@sub.example.org",
                                  "<alice@example.org>"])
def test_local_recipients_pass_the_relay_check(rcpt: str) -> None:
    check = check_recipient_address(rcpt, LOCAL)
    assert check.refusal is None and check.address is not None


# -- lists ---------------------------------------------------------------------

def test_most_specific_wins_and_block_beats_allow_at_a_tie() -> None:
    bob = parse("bob@mail.shop.example")
    entries = [entry(1, "block", "@shop.example"), entry(2, "allow", "@mail.shop.example")]
    assert match_sender(entries, bob, NOW).id == 2
    entries.append(entry(3, "block", "@mail.shop.example"))
    assert match_sender(entries, bob, NOW).id == 3
    entries.append(entry(4, "allow", "bob@mail.shop.example"))
    assert match_sender(entries, bob, NOW).id == 4
    assert match_sender(entries, parse("eve@other.example"), NOW) is None


def test_expired_entries_do_not_match() -> None:
    bob = parse("bob@shop.example")
    e = entry(1, "allow", "@shop.example", expires=NOW - timedelta(seconds=1))
    assert match_sender([e], bob, NOW) is None
    e2 = entry(2, "allow", "@shop.example", expires=NOW + timedelta(hours=48))
    assert match_sender([e, e2], bob, NOW).id == 2


def test_tags_are_ignored_when_matching() -> None:
    assert match_sender([entry(1, "allow", "bob@x.example")], parse("Bob+lists@X.example"), NOW).id == 1


def test_list_matching() -> None:
    entries = [entry(1, "allow", "list:dev.lists.example.net"), entry(2, "allow", "dev@lists.example.net")]
    assert match_list(entries, "dev.lists.example.net", None, NOW).id == 1
    assert match_list(entries, "other.example.net", parse("dev@lists.example.net"), NOW).id == 2
    assert match_list(entries, "other.example.net", parse("x@lists.example.net"), NOW) is None


# -- RCPT decision table --------------------------------------------------------

def rcpt(sender: str | None, entries: list[ListEntry], accepted: list[str] | None = None, exists: bool = True,
         max_rcpt: int = 100):
    return decide_rcpt(sender=parse(sender, unwrap=True) if sender else None, recipient_exists=exists,
                       entries=entries, accepted_classes=accepted or [], max_recipients=max_rcpt, now=NOW)


def test_rcpt_table() -> None:
    allow = [entry(1, "allow", "bob@friend.example")]
    assert rcpt("bob@friend.example", allow).sender_class == KNOWN
    assert rcpt("eve@stranger.example", allow).sender_class == UNKNOWN
    assert rcpt(None, allow).sender_class == NULL
    d = rcpt("bob@friend.example", allow, exists=False)
    assert (d.verdict, d.reply.code, d.reply.status) == (Verdict.UNKNOWN_RECIPIENT, 550, "5.1.1")
    d = rcpt("spam@bad.example", [entry(1, "block", "@bad.example", user=None)])
    assert (d.verdict, d.reply.code, d.reply.status) == (Verdict.BLOCKED, 550, "5.7.1")
    assert "globally" in d.reason


def test_recipients_share_a_transaction_but_the_null_sender_gets_one() -> None:
    allow = [entry(1, "allow", "bob@friend.example")]
    # known and unknown recipients together: no 452 (Exim fails a 452'd recipient with the first
    # transaction's 5xx); settle_recipients keeps the one end-of-DATA reply true for all
    d = rcpt("bob@friend.example", allow, accepted=[UNKNOWN])
    assert (d.reply.code, d.sender_class) == (250, KNOWN)
    assert rcpt("bob@friend.example", allow, accepted=[KNOWN, KNOWN]).reply.code == 250
    assert rcpt("eve@stranger.example", [], accepted=[UNKNOWN, UNKNOWN]).reply.code == 250
    assert rcpt("eve@stranger.example", [], accepted=[KNOWN]).reply.code == 250
    # the null sender: one recipient per transaction (SPEC §4.2 item 5)
    d = rcpt(None, [], accepted=[NULL])
    assert (d.reply.code, d.reply.status) == (452, "4.5.3")
    assert rcpt(None, [], accepted=[]).reply.code == 250


def test_max_recipients() -> None:
    d = rcpt("bob@friend.example", [entry(1, "allow", "bob@friend.example")], accepted=[KNOWN] * 3, max_rcpt=3)
    assert (d.reply.code, d.reply.status) == (452, "4.5.3")


# -- end of DATA -------------------------------------------------------------------

NO_SCAN = ScanOutcome()


def data(facts: MessageFacts, scan: ScanOutcome = NO_SCAN, on_failure: str = "tempfail"):
    return decide_data(facts, route(facts), scan, on_failure=on_failure, spam_threshold=5.0,
                       reply_text=lambda verdict: verdict.value)  # "virus", "spam", "bulk"


BOB = parse("bob@friend.example")


def test_data_table() -> None:
    known = MessageFacts(KNOWN, BOB, auth_mode="off")
    unknown = MessageFacts(UNKNOWN, BOB)
    authenticated = MessageFacts(KNOWN, BOB, auth=AuthResults(spf="pass", spf_domain="friend.example"))
    assert data(known).verdict is Verdict.DELIVERED
    assert data(unknown).verdict is Verdict.CHALLENGED
    v = data(known, ScanOutcome(virus="Eicar-Test-Signature"))
    assert (v.verdict, v.reply.code, v.reply.status) == (Verdict.VIRUS, 554, "5.7.0")
    s = data(unknown, ScanOutcome(spam_score=1000.0))
    assert (s.verdict, s.reply.code, s.reply.status) == (Verdict.SPAM, 554, "5.7.1")
    # Only an allowlisted sender authenticated for its own domain skips spamd (SPEC §4.5 item 1);
    # "off" mode matches on the address alone, so it is spam-scanned.
    assert data(authenticated, ScanOutcome(spam_score=1000.0)).verdict is Verdict.DELIVERED
    assert not route(authenticated).needs_spam_scan
    assert data(known, ScanOutcome(spam_score=1000.0)).verdict is Verdict.SPAM
    assert data(unknown, ScanOutcome(spam_score=4.9)).verdict is Verdict.CHALLENGED


def test_null_sender() -> None:
    """SPEC §4.2 item 5: a report about mail the recipient sent is delivered, one about nothing we
    know is screened, anything else refused without a link; all of it spam-scanned."""
    dsn = "delivery status notification (RFC 3464)"
    known = data(MessageFacts(NULL, None, null_report=dsn, reply_known=True))
    assert known.verdict is Verdict.DELIVERED and "about a message the recipient sent" in known.reason
    assert data(MessageFacts(NULL, None, null_report=dsn)).verdict is Verdict.SCREENED
    other = data(MessageFacts(NULL, None))
    assert (other.verdict, other.reply.code, other.reply.status) == (Verdict.BULK, 550, "5.7.1")
    assert data(MessageFacts(NULL, None, null_report=dsn, reply_known=True),
                ScanOutcome(spam_score=50.0)).verdict is Verdict.SPAM
    assert all(route(MessageFacts(NULL, None, null_report=r)).needs_spam_scan for r in (dsn, None))
    # a local failure of the sender check changes nothing for <>: its route does not depend on it
    assert data(MessageFacts(NULL, None, null_report=dsn, auth_unavailable="queue full")).verdict \
        is Verdict.SCREENED


def test_scanner_failure_policy() -> None:
    unknown = MessageFacts(UNKNOWN, BOB)
    t = data(unknown, ScanOutcome(virus_failed="timeout"))
    assert (t.verdict, t.reply.code, t.reply.status) == (Verdict.TEMPFAIL, 451, "4.7.0")
    a = data(unknown, ScanOutcome(virus_failed="timeout"), on_failure="accept")
    assert a.verdict is Verdict.CHALLENGED and "not scanned by clamd" in a.scan_note
    authenticated = MessageFacts(KNOWN, BOB, auth=AuthResults(dkim_pass_domains=("friend.example",)))
    assert data(authenticated, ScanOutcome(spam_failed="x")).verdict is Verdict.DELIVERED
    assert data(MessageFacts(KNOWN, BOB, auth_mode="off"), ScanOutcome(spam_failed="x")).verdict is Verdict.TEMPFAIL


def test_automated_mail() -> None:
    signed = AuthResults(dkim_pass_domains=("shop.example",), from_domain="shop.example")
    f = MessageFacts(UNKNOWN, parse("orders@shop.example"), from_domain="shop.example", auth=signed,
                     automated="machine role")
    assert data(f).verdict is Verdict.SCREENED
    unsigned = MessageFacts(UNKNOWN, parse("orders@shop.example"), from_domain="shop.example",
                            automated="machine role")
    b = data(unsigned)
    assert (b.verdict, b.reply.code, b.reply.status) == (Verdict.BULK, 550, "5.7.1")
    refuse = MessageFacts(UNKNOWN, parse("orders@shop.example"), from_domain="shop.example", auth=signed,
                          automated="machine role", automated_mode="refuse")
    assert data(refuse).verdict is Verdict.BULK
    assert data(f, ScanOutcome(spam_score=999)).verdict is Verdict.SPAM


def test_replies_count_only_when_authenticated_for_their_own_domain() -> None:
    spf = AuthResults(spf="pass", spf_domain="friend.example")
    dkim = AuthResults(dkim_pass_domains=("friend.example",))
    for auth in (spf, dkim):
        d = data(MessageFacts(UNKNOWN, BOB, from_domain="friend.example", auth=auth, reply_known=True))
        assert d.verdict is Verdict.DELIVERED and d.reason.startswith("reply to a message the recipient sent")
    for auth in (None, AuthResults(spf="softfail", spf_domain="friend.example"),
                 AuthResults(dkim_pass_domains=("esp.example",))):
        assert data(MessageFacts(UNKNOWN, BOB, from_domain="friend.example", auth=auth,
                                 reply_known=True)).verdict is Verdict.CHALLENGED
    assert route(MessageFacts(UNKNOWN, BOB, from_domain="friend.example", auth=spf, reply_known=True)).needs_spam_scan
    assert data(MessageFacts(UNKNOWN, BOB, list_known="list:x")).verdict is Verdict.DELIVERED
    assert route(MessageFacts(UNKNOWN, BOB, list_known="list:x")).needs_spam_scan


def test_list_authenticated_against_the_matched_entry() -> None:
    orgs = (("lists.proj.example", "proj.example"), ("dev.lists.proj.example", "proj.example"),
            ("evil.example", "evil.example"))
    by_list = AuthResults(dkim_pass_domains=("lists.proj.example",), org_domains=orgs)
    assert list_authenticated("list:dev.lists.proj.example", "dev.lists.proj.example", by_list)
    by_evil = AuthResults(spf="pass", spf_domain="evil.example", dkim_pass_domains=("evil.example",),
                          org_domains=orgs)
    assert not list_authenticated("list:dev.lists.proj.example", "dev.lists.proj.example", by_evil)
    for spf in ("softfail", "neutral", "none"):
        assert not list_authenticated("dev@lists.proj.example", "lists.proj.example",
                                      AuthResults(spf=spf, spf_domain="lists.proj.example", org_domains=orgs))
    assert list_authenticated("dev@lists.proj.example", "lists.proj.example",
                              AuthResults(spf="pass", spf_domain="lists.proj.example", org_domains=orgs))


def test_allowlist_auth_modes() -> None:
    forged = AuthResults(spf="fail", spf_domain="friend.example")
    signed = AuthResults(spf="fail", spf_domain="friend.example", dkim_pass_domains=("friend.example",))
    dmarc_fail = AuthResults(spf="pass", spf_domain="friend.example", dmarc="fail", dmarc_policy="reject")
    none = AuthResults()
    assert allowlist_counts("off", forged, "friend.example")[0]
    assert not allowlist_counts("relaxed", forged, "friend.example")[0]
    assert allowlist_counts("relaxed", signed, "friend.example")[0]  # forwarded with an intact signature
    assert not allowlist_counts("relaxed", dmarc_fail, "friend.example")[0]
    assert allowlist_counts("relaxed", none, "friend.example")[0]
    assert not allowlist_counts("strict", none, "friend.example")[0]
    assert allowlist_counts("strict", AuthResults(spf="pass", spf_domain="friend.example"), "friend.example")[0]
    assert allowlist_counts("strict", AuthResults(dkim_pass_domains=("mail.friend.example",)), "friend.example")[0]
    assert not allowlist_counts("strict", AuthResults(dkim_pass_domains=("example",)), "friend.example")[0]
    # SRS: SPF passed for the forwarder's domain, not for the allowlisted one (SPEC §4.5 item 2)
    srs = AuthResults(spf="pass", spf_domain="attacker.example")
    assert not allowlist_counts("strict", srs, "friend.example")[0]
    assert not sender_authenticated(srs, "friend.example")
    relaxed_srs = route(MessageFacts(KNOWN, BOB, auth=srs, auth_mode="relaxed"))
    assert relaxed_srs.known and relaxed_srs.needs_spam_scan
    demoted = MessageFacts(KNOWN, BOB, auth=forged, auth_mode="relaxed")
    d = data(demoted)  # shown forged: no link (SPEC §4.5 item 3)
    assert (d.verdict, d.reply.code, d.reply.status) == (Verdict.BLOCKED, 550, "5.7.1") and "SPF fail" in d.reason
    not_proven = data(MessageFacts(KNOWN, BOB, auth=none, auth_mode="strict"))
    assert not_proven.verdict is Verdict.CHALLENGED and "strict authentication failed" in not_proven.reason


def test_forged_stranger_gets_no_link() -> None:
    for auth in (AuthResults(spf="fail", spf_domain="friend.example"),
                 AuthResults(spf="softfail", dmarc="fail", dmarc_policy="reject", from_domain="friend.example")):
        d = data(MessageFacts(UNKNOWN, BOB, auth=auth))
        assert (d.verdict, d.reply.code) == (Verdict.BLOCKED, 550) and "no confirmation link" in d.reason
    for auth in (AuthResults(spf="softfail"), AuthResults(spf="temperror"), AuthResults(spf="none"),
                 AuthResults(spf="fail", spf_domain="friend.example", dkim_pass_domains=("friend.example",))):
        assert data(MessageFacts(UNKNOWN, BOB, auth=auth)).verdict is Verdict.CHALLENGED


def test_sender_check_unavailable_is_a_tempfail() -> None:
    """SPEC §4.5 item 5: a check that could not run here is never "not forged"."""
    for cls in (KNOWN, UNKNOWN):
        d = data(MessageFacts(cls, BOB, auth_mode="relaxed", auth_unavailable="queue full"))
        assert (d.verdict, d.reply.code, d.reply.status) == (Verdict.TEMPFAIL, 451, "4.7.0")
    assert data(MessageFacts(UNKNOWN, BOB, auth_unavailable="queue full"),
                ScanOutcome(spam_score=99.0)).verdict is Verdict.SPAM  # spam is refused whatever the check
    assert data(MessageFacts(KNOWN, BOB, auth_mode="off", auth_unavailable="x")).verdict is Verdict.DELIVERED


@pytest.mark.parametrize("local,expected", [
    ("no-reply", True), ("noreply", True), ("do-not-reply", True), ("orders", True), ("order", True),
    ("billing", True), ("calendar-notification", True), ("alerts2", True), ("bounces+123=x", True),
    ("mailer-daemon", True), ("receipts", True), ("ticket", True),
    ("info", False), ("news", False), ("support", False), ("team", False), ("bob", False), ("ordersmith", False),
])
def test_role_local_parts(local: str, expected: bool) -> None:
    assert is_role_local_part(local) is expected


def test_automated_headers() -> None:
    assert automated_reason({"auto-submitted": "auto-replied"}, "bob", "bob")
    assert automated_reason({"auto-submitted": "no"}, "bob", "bob") is None
    assert automated_reason({"precedence": "bulk"}, "bob", "bob")
    assert automated_reason({"list-unsubscribe": "<mailto:x@y>"}, "bob", "bob")
    assert automated_reason({}, "bob", "no-reply")
    assert automated_reason({}, "bob", "bob") is None


# -- replies ---------------------------------------------------------------------------

def test_challenge_reply_fits_and_link_is_whole() -> None:
    url = "https://mx.example.org/c/" + "A" * 22
    text = replies.challenge_text("{recipient} accepts mail only from known senders. Confirm you are a person "
                                  "at {url} and send your message again.", "alice@example.org", "x@y", url)
    out = replies.render(550, "5.7.1", text)
    assert out.startswith("550 5.7.1 alice@example.org accepts")
    assert url in out and all(len(ln) + 2 <= 512 for ln in out.split("\r\n"))


def test_long_reply_is_split_with_link_on_its_own_line() -> None:
    url = "https://mx.example.org/c/" + "B" * 22
    text = replies.challenge_text("{recipient} " + "word " * 120 + "{url} end", "alice@example.org", "x@y", url)
    lines = replies.render(550, "5.7.1", text).split("\r\n")
    assert len(lines) > 1
    assert all(len(ln.encode()) + 2 <= 512 for ln in lines)
    assert any(ln.endswith(url) and ln[10:] == url for ln in lines)
    assert all(ln.startswith("550-5.7.1 ") for ln in lines[:-1]) and lines[-1].startswith("550 5.7.1 ")


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=2000))
def test_reply_text_never_injects_lines(s: str) -> None:
    out = replies.render(550, "5.7.1", replies.fill("{sender} said {x}", sender=s, x=s))
    for line in out.split("\r\n"):
        assert line.startswith(("550-5.7.1 ", "550 5.7.1 "))
        assert len(line.encode()) + 2 <= 512
        assert "\r" not in line and "\n" not in line


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_parse_never_crashes_and_never_accepts_controls(s: str) -> None:
    try:
        a = parse(s, unwrap=True)
    except AddressError:
        return
    assert not any(ord(c) < 32 for c in str(a))
    assert a.domain == a.domain.lower() and a.domain.isascii()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["allow", "block"]),
                          st.sampled_from(["bob@a.b.example", "@a.b.example", "@b.example", "@example"])),
                max_size=8))
def test_precedence_property(spec: list[tuple[str, str]]) -> None:
    entries = [entry(i, a, p) for i, (a, p) in enumerate(spec)]
    got = match_sender(entries, parse("bob@a.b.example"), NOW)
    if not entries:
        assert got is None
        return
    order = ["bob@a.b.example", "@a.b.example", "@b.example", "@example"]
    best = min(order.index(p) for _, p in spec)
    winners = {a for a, p in spec if order.index(p) == best}
    assert str(got.pattern) == order[best]
    assert got.action == ("block" if "block" in winners else "allow")


# -- the null sender's report forms (SPEC §4.2 item 5) ----------------------------------------

def test_null_report_forms() -> None:
    dsn = {"content-type": 'multipart/report; report-type="delivery-status"; boundary=x'}
    assert null_report(dsn) == "delivery status notification (RFC 3464)"
    assert null_report({"content-type": "Multipart/Report; boundary=x; report-type=disposition-notification"}) \
        == "disposition notification (RFC 8098)"
    assert null_report({"auto-submitted": "auto-replied; owner=x"}) == "auto-reply (RFC 3834)"
    for headers in ({}, {"auto-submitted": "auto-generated"}, {"content-type": "multipart/mixed; report-type=x"},
                    {"content-type": "multipart/report; report-type=feedback-report"}, {"precedence": "bulk"}):
        assert null_report(headers) is None, headers


def test_referenced_message_ids_of_a_report() -> None:
    body = (b"Subject: x\r\nIn-Reply-To: <a@x>\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n"
            b"Message-ID:\r\n <returned@example.org>\r\n\r\nbody\r\n--b\r\n"
            b"Original-Message-ID: <mdn@example.org>\r\n quoted Message-ID: <not-at-line-start@x>\r\n")
    refs = referenced_message_ids({"in-reply-to": "<a@x>", "references": "<r1@x> <r2@x>"}, body)
    assert refs == ["<a@x>", "<r1@x>", "<r2@x>", "<returned@example.org>", "<mdn@example.org>"]
    # the message's own header block is not searched: its Message-ID is not a reference
    assert referenced_message_ids({}, b"Message-ID: <own@x>\r\n\r\nhello\r\n") == []
