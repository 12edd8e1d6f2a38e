"""The header fast paths of policy/headers.py against what they replace (issue 14, deliverable 5), by
hypothesis:
- `addresses()`: its regular expression for the usual From field against email.utils.getaddresses;
- `first_values()`: its one-pass reading of an ASCII header block against the module's general reader
  (fields + display, the one header rule, SPEC §4.5 item 4) for any block, well-formed or not, and
  against the email package's parser for the well-formed blocks where the two rules agree."""

from __future__ import annotations

import email
import email.utils
from email.policy import compat32

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from sendergate.policy import headers

# -- addresses() ---------------------------------------------------------------------------------------

_ATOM = st.text(alphabet="abcXYZ019!#$%&'*+/=?^_`{|}~.-", min_size=1, max_size=12)
_DOMAIN = st.text(alphabet="abz09.-", min_size=1, max_size=12)
_NAME = st.one_of(
    st.text(alphabet="Ab ._'-", max_size=12),  # what the fast path takes unquoted
    st.builds(lambda s: f'"{s}"', st.text(alphabet='Ab ,.<>@:;()\\', max_size=10)),  # quoted, anything inside
    st.text(alphabet='Ab ,.<>@:;()"\\[]', max_size=12),  # what it must leave to the email package
)
_SPACE = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def from_values(draw: st.DrawFn) -> str:
    addr = f"{draw(_ATOM)}@{draw(_DOMAIN)}"
    shape = draw(st.sampled_from(["bare", "angle", "named", "noise"]))
    if shape == "bare":
        value = addr
    elif shape == "angle":
        value = f"<{addr}>"
    else:
        value = f"{draw(_NAME)}{draw(_SPACE)}<{addr}>"
    if shape == "noise":  # one character more somewhere: a comment, a second address, a broken bracket
        at = draw(st.integers(0, len(value)))
        value = value[:at] + draw(st.sampled_from(list(',;:<>()"@\\ '))) + value[at:]
    return draw(_SPACE) + value + draw(_SPACE)


@settings(max_examples=500, deadline=None)
@given(value=from_values())
@example(value="J.R. Smith <a@b>")
@example(value='"Smith, J" <a@b>')
@example(value="a..b@c")
def test_addresses_finds_what_getaddresses_finds(value: str) -> None:
    assert headers.addresses(value) == [addr for _name, addr in email.utils.getaddresses([value])]


# -- first_values() ------------------------------------------------------------------------------------

_FIELD_NAME = st.one_of(st.sampled_from(["From", "from", "Subject", "To", "List-Id", "Message-ID", "X-A", "x-a"]),
                        st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True))
_VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
_EOL = st.sampled_from(["\r\n", "\r\n", "\r\n", "\n", "\r"])


@st.composite
def header_blocks(draw: st.DrawFn, *, well_formed: bool) -> bytes:
    """A message: a header block, then (usually) an empty line and a body."""
    eol = (lambda: "\r\n") if well_formed else (lambda: draw(_EOL))
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        kind = "field" if well_formed else draw(st.sampled_from(["field"] * 5 + ["spaced", "no-colon", "mbox",
                                                                              "lead-fold"]))
        if kind == "field":
            lines.append(f"{draw(_FIELD_NAME)}:{draw(_SPACE)}{draw(_VALUE)}")
        elif kind == "spaced":  # the obsolete `Name : value`
            lines.append(draw(_FIELD_NAME) + draw(st.sampled_from([" ", "\t "])) + ":" + draw(_VALUE))
        elif kind == "no-colon":
            lines.append(draw(_VALUE).replace(":", "") or "x")
        elif kind == "mbox":
            lines.append(f"From {draw(_VALUE)}")
        else:
            lines.append(f" {draw(_VALUE)}")
        for _ in range(draw(st.integers(0, 2))):  # folded continuation lines
            lines.append(draw(st.sampled_from([" ", "\t", "  "])) + draw(_VALUE).strip() + "x")
    head = "".join(line + eol() for line in lines)
    if draw(st.booleans()) or well_formed:
        head += eol() + draw(_VALUE) + "\r\n"
    elif head and draw(st.booleans()):
        head = head.rstrip("\r\n")  # a header block without a final line end
    return head.encode("ascii")


def general_reading(message: bytes) -> dict[str, str]:
    """first_values as the general reader gives it (the path non-ASCII blocks take)."""
    head, _ = headers.split(message)
    out: dict[str, str] = {}
    for name, raw in headers.fields(head):
        if name is not None and name not in out:
            out[name] = headers.display(name, raw)
    return out


@settings(max_examples=500, deadline=None)
@given(message=header_blocks(well_formed=False))
@example(message=b"From sender Mon\r\nSubject: a\r\n\r\n")
@example(message=b" lead\r\nX-A : b\r\n c\r\nX-A: second")
def test_first_values_fast_path_reads_as_the_general_reader(message: bytes) -> None:
    assume(b"=?" not in headers.split(message)[0])  # the fast path's domain: ASCII, no encoded words
    assert headers.first_values(message) == general_reading(message)


@settings(max_examples=300, deadline=None)
@given(message=header_blocks(well_formed=True))
def test_first_values_reads_a_well_formed_block_as_the_email_package(message: bytes) -> None:
    parsed = email.message_from_bytes(message, policy=compat32)
    theirs = {}
    for name, value in parsed.items():
        if name.lower() not in theirs:
            theirs[name.lower()] = " ".join(str(value).split())
    assert headers.first_values(message) == theirs


# -- get_all() -----------------------------------------------------------------------------------------

def general_get_all(message: bytes, name: str) -> list[object]:
    """get_all as the general reader gives it (the path non-ASCII blocks take)."""
    head, _ = headers.split(message)
    return [compat32.header_fetch_parse(n, headers._raw_value(raw)) for n, raw in headers.fields(head)
            if n == name.lower()]


@settings(max_examples=500, deadline=None)
@given(message=header_blocks(well_formed=False), name=st.sampled_from(["from", "From", "x-a", "subject", "to"]))
@example(message=b"From sender Mon\r\nFrom: a@b\r\n\r\n", name="from")
@example(message=b"From : a@b\r\nfrom:\r\n c@d\r\n\r\n", name="from")
@example(message=b" lead\r\nX-A : b\r\n c\r\nX-A: second", name="x-a")
def test_get_all_fast_path_reads_as_the_general_reader(message: bytes, name: str) -> None:
    assert headers.get_all(message, name) == general_get_all(message, name)


def test_get_all_of_an_8bit_block_still_gives_the_email_package_header() -> None:
    message = "From: Jörg <j@b.example>\r\nFrom: x@y\r\n\r\nbody".encode()
    values = headers.get_all(message, "from")
    assert len(values) == 2 and str(values[1]) == "x@y" and not isinstance(values[0], str)
