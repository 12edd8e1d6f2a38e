"""SMTP reply text: safe to send, at most 512 octets a line (RFC 5321 §4.5.3.1.5).

A newline in an admin's template is a line break of a multi-line reply (each
line carries the code); values filled into a template never break a line.
The challenge's link is always on the first line: some sending servers and
bounce renderers show only the first line of a reply.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import lru_cache

MAX_LINE = 512  # octets, including "550-5.7.1 " and CRLF
_UNSAFE = re.compile(r"[^\x20-\x7e]")
_PLACEHOLDER = re.compile(r"{(\w+)}")
_ROOM_550 = MAX_LINE - len("550-5.7.1 ") - 2  # text octets on one line of a 550 5.7.1 reply
LINK_TOKEN_CHARS = 22  # store.engine.new_token(): 16 bytes in base64url (tests check they agree)
_MIN_RECIPIENT = 40  # challenge_text shortens the recipient to this before it puts the link first


def safe(value: str, limit: int = 200) -> str:
    """Client-supplied text made safe for a reply: printable ASCII only, bounded."""
    out = _UNSAFE.sub("?", str(value))
    return out if len(out) <= limit else out[: limit - 3] + "..."


@lru_cache(maxsize=64)
def template_lines(template: str) -> tuple[str, ...]:
    """The template's lines: a newline (or CRLF) in it is a line break of the reply. (Templates are
    the admin's few configured texts: worked out once each.)"""
    return tuple(line.strip() for line in template.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def fill(template: str, **values: object) -> str:
    """Fill a reply template; every value is made safe first. Unknown names stay visible.
    The result keeps the template's line breaks as "\\n" (render() makes them reply lines)."""
    safe_values = {k: safe(str(v)) for k, v in values.items()}

    def sub(m: re.Match[str]) -> str:
        return safe_values.get(m.group(1), m.group(0))

    return "\n".join(safe(_PLACEHOLDER.sub(sub, line), 4000) for line in template_lines(template))


def lines(code: int, status: str, text: str) -> list[str]:
    """Split a reply text into lines that each fit in 512 octets; a URL is never broken."""
    prefix_len = len(f"{code}-{status} ") + 2
    room = MAX_LINE - prefix_len
    out: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split():
            if len(word) > room:  # cannot happen for our URLs; cut rather than exceed
                word = word[:room]
            if not current:
                current = word
            elif len(current) + 1 + len(word) <= room:
                current += " " + word
            else:
                out.append(current)
                current = word
        if current:
            out.append(current)
    return out or [""]


def render(code: int, status: str, text: str) -> str:
    """A complete (possibly multi-line) reply, without the final CRLF."""
    parts = lines(code, status, text)
    return "\r\n".join(
        f"{code}{'-' if i < len(parts) - 1 else ' '}{status} {line}" for i, line in enumerate(parts)
    )


def recipient_list(recipients: Sequence[str], others_after: int | None = None) -> str:
    """"a", "a and b", "a, b and c"; with `others_after`: "a, b and 3 others"."""
    names = [str(r) for r in recipients]
    if others_after is not None and len(names) > others_after + 1:
        rest = len(names) - others_after
        names = names[:others_after] + [f"{rest} others"]
    if len(names) <= 1:
        return names[0] if names else ""
    return ", ".join(names[:-1]) + " and " + names[-1]


def challenge_text(template: str, recipients: str | Sequence[str], sender: str, url: str) -> str:
    """The refusal for an unknown sender, as text for render(): the first reply line holds the link.
    The template's first line up to its first {url} is kept to one reply line (the recipient list and
    the sender are shortened until it fits); what follows the link on that line, and the template's
    further lines, follow as wrapped lines. A template whose first line holds no {url} (check-config
    refuses those) gets the link as its first line."""
    names = [recipients] if isinstance(recipients, str) else list(recipients)
    first, *rest = template_lines(template)
    tail = [fill(line, recipient=recipient_list(names), sender=sender, url=url) for line in rest]
    if "{url}" not in first:
        return "\n".join([url, fill(first, recipient=recipient_list(names), sender=sender), *tail])
    head, _, after = first.partition("{url}")
    head += "{url}"
    after_text = fill(after, recipient=recipient_list(names), sender=sender, url=url).strip()
    for who, by in _shorter_values(names, sender):
        line = _fill_first(head, who, by, url)
        if len(line) <= _ROOM_550:
            joined = f"{line} {after_text}".strip()
            # the rest of the template's first line joins the link's line when it fits, else wraps below
            lines = [joined] if len(joined) <= _ROOM_550 else [line, after_text]
            return "\n".join([*lines, *tail])
    return "\n".join([url, _fill_first(first, recipient_list(names, 1), "", url).strip(), *tail])


def _shorter_values(names: list[str], sender: str) -> Iterator[tuple[str, str]]:
    """(recipients, sender) for the line with the link, shorter and shorter until it fits."""
    yield recipient_list(names), sender
    for n in (3, 1):
        if len(names) > n + 1:
            yield recipient_list(names, n), sender
    for n in (60, 20):
        yield recipient_list(names, 1), sender[:n]
    yield (f"{len(names)} recipients" if len(names) > 1 else names[0][:_MIN_RECIPIENT]), ""


def _fill_first(line: str, recipient: str, sender: str, url: str) -> str:
    values = {"recipient": safe(recipient, 400), "sender": safe(sender, 400), "url": url}
    return " ".join(_PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), line).split())


def link_length(public_url: str) -> int:
    """Characters of the longest link a refusal carries: the public URL, "/c/" and the token."""
    return len(public_url.rstrip("/")) + len("/c/") + LINK_TOKEN_CHARS


def public_url_problem(public_url: str) -> str | None:
    """Why links under this public URL cannot be sent whole on one reply line, or None."""
    if not re.fullmatch(r"[!-~]+", public_url):
        return ("the links in SMTP replies must be printable ASCII without spaces: write an international "
                "domain name in its xn-- form and percent-encode the path")
    if link_length(public_url) > _ROOM_550:
        return (f"too long: a link ({link_length(public_url)} characters with /c/ and the "
                f"{LINK_TOKEN_CHARS}-character token) must fit in one {_ROOM_550}-character reply line; "
                "use a shorter URL")
    return None


def challenge_template_problem(template: str, public_url: str) -> str | None:
    """Why a challenge reply template cannot keep the link on the first reply line, or None. One
    check for `check-config` and the gateway's own start (config.from_dict); each answer says how to fix it."""
    lines = template_lines(template)
    at = next((i for i, line in enumerate(lines) if "{url}" in line), None)
    if at is None:
        return ("has no {url}: a refused stranger would get no link to confirm with; put {url} on its first line, "
                "as the default does (remove challenge.reply to use the default)")
    if at > 0:
        return (f"{{url}} is on line {at + 1}: the link must be on the first line of the reply (some sending "
                "servers and bounce renderers show only the first line); move {url} to the first line "
                "(text after it may stay on later lines)")
    head = lines[0].partition("{url}")[0]
    static = len(" ".join(_PLACEHOLDER.sub("", head).split()))
    # the least room the renderer shrinks the values to before it gives up the template's wording
    reserve = (_MIN_RECIPIENT + 1) * head.count("{recipient}")  # the value and its space
    over = static + (1 if static else 0) + reserve + link_length(public_url) - _ROOM_550
    if over > 0:
        return (f"the text before {{url}} is too long: with the longest link this configuration makes "
                f"({link_length(public_url)} characters: http.public_url, /c/ and a {LINK_TOKEN_CHARS}-character "
                f"token) the first reply line would pass 512 octets; shorten the text before {{url}} by {over} "
                "characters, or move some of it after {url}")
    return None
