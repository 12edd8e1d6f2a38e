"""The one header rule (sendergate.policy.headers) against the email package, and as an attacker shapes it.

Differential (issue 12 deliverable 3): for header blocks the email package reads
in full (every line `Name:` or a folded continuation), the gateway's field
lookup gives the same first value for every name as `BytesHeaderParser(compat32)`
plus the display decoding the handler always used, whatever the line ends,
folding, encoded words or 8-bit text. Where the two part (lines that are not
`Name:`-shaped), the rule reads on as mail stores do: tested below.
"""

from __future__ import annotations

import base64
import email.utils
import re
from email.parser import BytesHeaderParser
from email.policy import compat32

from hypothesis import given, settings
from hypothesis import strategies as st

from sendergate.policy import headers as rule
from sendergate.senderauth import from_header_domain, remove_results_claiming
from sendergate.smtp.handler import _decode_header, _headers

NAME = st.text(st.sampled_from("!#$%&'*+-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`abcdefghijklmnopqrstuvwxyz|~"),
               min_size=1, max_size=12)
WORD = st.one_of(
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=10),
    st.text(st.characters(min_codepoint=0xA0, max_codepoint=0x24F), min_size=1, max_size=5),  # raw 8-bit
    st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_characters="?"), min_size=1,
            max_size=8).map(lambda t: "=?utf-8?b?" + base64.b64encode(t.encode()).decode() + "?="),
    st.text(st.sampled_from("abcXYZ_=20"), min_size=1, max_size=8).map(lambda t: f"=?iso-8859-1?q?{t}?="),
)
END = st.sampled_from(["\r\n", "\n", "\r"])


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    out = []
    for _ in range(draw(st.integers(1, 6))):
        name = draw(NAME)
        words = draw(st.lists(WORD, max_size=5))
        line = name + ":" + draw(st.sampled_from(["", " ", "  ", "\t"]))
        for i, word in enumerate(words):
            if i:
                line += draw(st.sampled_from([" ", "  ", "\t"]))
                if draw(st.booleans()):  # fold here
                    line = line.rstrip(" \t") + draw(END) + draw(st.sampled_from([" ", "\t", "  "]))
            line += word
        out.append(line + draw(END))
    text = "".join(out)
    last = text[-1]
    sep = draw(END)
    if last == "\r" and sep == "\n":  # would join the last line end into one CRLF, not make an empty line
        sep = "\r"
    return text.encode("utf-8") + sep.encode() + b"body line\r\n"


def reference(message: bytes) -> dict[str, str]:
    """What the handler computed before the one rule: the email package, then display decoding."""
    parsed = BytesHeaderParser(policy=compat32).parsebytes(message)
    out: dict[str, str] = {}
    for name, value in parsed.items():
        out.setdefault(name.lower(), _decode_header(value))
    return out


@settings(max_examples=600, deadline=None)
@given(message=header_blocks())
def test_header_lookup_matches_the_email_package(message: bytes) -> None:
    assert _headers(message) == reference(message)


@settings(max_examples=300, deadline=None)
@given(message=header_blocks())
def test_header_get_all_matches_the_email_package(message: bytes) -> None:
    """Raw values too (the DMARC From lookup reads these), folding kept, its line ends made CRLF."""
    parsed = BytesHeaderParser(policy=compat32).parsebytes(message)
    for name in {n.lower() for n in parsed.keys()}:
        expected = [re.sub(r"\r\n|\r|\n", "\r\n", str(v)) for v in parsed.get_all(name)]
        assert [str(v) for v in rule.get_all(message, name)] == expected


@settings(max_examples=300, deadline=None)
@given(message=header_blocks(), forged=st.lists(st.sampled_from([
    "Authentication-Results: mx.example.org; dkim=pass", "X-SenderGate-Screened: yes",
    "Authentication-Results :  (x) MX.Example.Org. 1; spf=pass", "x-sendergate-other:\r\n\t1",
    "Authentication-Results: other.example; dkim=pass"]), max_size=3), where=st.integers(0, 10), end=END)
def test_stripping_removes_only_our_fields_and_keeps_the_rest(message: bytes, forged: list[str], where: int,
                                                              end: str) -> None:
    head, _ = rule.split(message)
    fields = rule.fields(head)
    where = min(where, len(fields))
    injected = [(None, (f + end).encode()) for f in forged]
    block = b"".join(raw for _, raw in fields[:where] + injected + fields[where:])
    attacked = block + b"\r\nbody line\r\n"
    cleaned = remove_results_claiming(attacked, "mx.example.org")
    left = rule.fields(rule.split(cleaned)[0])
    assert not [raw for name, raw in left if name and name.startswith("x-sendergate-")]
    assert not [raw for name, raw in left if name == "authentication-results" and b"example.org" in raw.lower()
                and b"other.example" not in raw]
    kept_before = [(n, raw) for n, raw in rule.fields(rule.split(attacked)[0])
                   if not (n and (n.startswith("x-sendergate-") or
                                  (n == "authentication-results" and b"other.example" not in raw)))]
    assert left == kept_before
    assert cleaned.endswith(b"\r\n\r\nbody line\r\n")


def test_fields_hidden_behind_a_line_the_email_package_stops_at_are_still_read() -> None:
    """`Subject : x` (obsolete syntax) and a line without a colon end the email package's header
    block, but not Dovecot's or a mail reader's: the From behind them is the one the mailbox shows,
    so it is the one DMARC is evaluated for, and our own fields behind them are removed."""
    message = (b"Subject : hidden\r\nnot a header\r\nFrom: CEO <ceo@bank.example>\r\n"
               b"X-SenderGate-Screened: yes\r\nAuthentication-Results: mx.example.org; dmarc=pass\r\n\r\nbody\r\n")
    assert BytesHeaderParser(policy=compat32).parsebytes(message).get_all("From") is None  # what it missed
    assert from_header_domain(message) == "bank.example"
    assert _headers(message)["from"] == "CEO <ceo@bank.example>" and _headers(message)["subject"] == "hidden"
    cleaned = remove_results_claiming(message, "mx.example.org")
    assert cleaned == b"Subject : hidden\r\nnot a header\r\nFrom: CEO <ceo@bank.example>\r\n\r\nbody\r\n"


def test_bare_line_ends_cannot_join_a_forged_field_to_another() -> None:
    for end in (b"\n", b"\r"):
        message = b"Subject: hi" + end + b"Authentication-Results: mx.example.org; dkim=pass" + end + \
            b"X-SenderGate-Screened: yes\r\nFrom: a@b.example\r\n\r\nbody" + end + b".\r\n"
        cleaned = remove_results_claiming(message, "mx.example.org")
        assert cleaned == b"Subject: hi\r\nFrom: a@b.example\r\n\r\nbody\r\n.\r\n"
        assert from_header_domain(message) == "b.example"


def test_a_leading_folded_line_cannot_continue_the_gateways_own_trace_field() -> None:
    """The gateway puts its Received (and Authentication-Results) above the message: a message whose
    first line is folded would be read as part of that field."""
    message = b"\tdkim=pass (via mx.example.org)\r\nSubject: hi\r\n\r\nbody\r\n"
    assert remove_results_claiming(message, "mx.example.org") == b"Subject: hi\r\n\r\nbody\r\n"


def test_two_from_fields_split_by_a_bare_cr_have_no_single_author_domain() -> None:
    message = b"From: a@bank.example\rFrom: b@evil.example\r\n\r\nbody\r\n"
    assert from_header_domain(message) == ""
    assert email.utils.getaddresses(rule.get_all(message, "from")) == [("", "a@bank.example"),
                                                                        ("", "b@evil.example")]


def test_normalise_counts_and_copies_nothing_when_clean() -> None:
    clean = b"Subject: x\r\n\r\nbody\r\n"
    assert rule.normalise(clean) is clean
    assert rule.normalise(b"a\nb\rc\r\nd\r\r\n") == b"a\r\nb\r\nc\r\nd\r\n\r\n"


_NAME = st.text(alphabet=st.sampled_from(list("Ab z._'-\"(),;:<>@\\é")), max_size=20)
_LOCAL = st.text(alphabet=st.sampled_from(list("ab0+._-!#")), min_size=1, max_size=12)
_DOMAIN = st.text(alphabet=st.sampled_from(list("ab0.-")), min_size=1, max_size=12)


@st.composite
def address_fields(draw: st.DrawFn) -> str:
    """From-field values: the common shapes and the odd ones around them (quotes, comments, groups)."""
    addr = f"{draw(_LOCAL)}@{draw(_DOMAIN)}"
    shape = draw(st.sampled_from(["bare", "angle", "named", "quoted", "free"]))
    name = draw(_NAME)
    value = {"bare": addr, "angle": f"<{addr}>", "named": f"{name} <{addr}>", "quoted": f'"{name}" <{addr}>',
             "free": f"{name}{addr}{draw(_NAME)}"}[shape]
    return draw(st.sampled_from(["", " ", "\t"])) + value + draw(st.sampled_from(["", " "]))


@settings(max_examples=800, deadline=None)
@given(value=address_fields())
def test_from_address_fast_path_matches_the_email_package(value: str) -> None:
    """The From field's addresses without the email package (a tenth of a refusal's CPU) are the ones the
    email package finds, whenever the fast path takes the value at all."""
    expected = [addr for _name, addr in email.utils.getaddresses([value])]
    assert rule.addresses(value) == expected, value
