"""SMTP reply text: safe to send, at most 512 octets a line (RFC 5321 §4.5.3.1.5)."""

from __future__ import annotations

import re

MAX_LINE = 512  # octets, including "550-5.7.1 " and CRLF
_UNSAFE = re.compile(r"[^\x20-\x7e]")


def safe(value: str, limit: int = 200) -> str:
    """Client-supplied text made safe for a reply: printable ASCII only, bounded."""
    out = _UNSAFE.sub("?", str(value))
    return out if len(out) <= limit else out[: limit - 3] + "..."


def fill(template: str, **values: object) -> str:
    """Fill a reply template; every value is made safe first. Unknown names stay visible."""
    safe_values = {k: safe(str(v)) for k, v in values.items()}

    def sub(m: re.Match[str]) -> str:
        return safe_values.get(m.group(1), m.group(0))

    return safe(re.sub(r"{(\w+)}", sub, template), 4000)


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


def challenge_text(template: str, recipient: str, sender: str, url: str) -> str:
    """The refusal for an unknown sender. The link goes on its own line if the text would not fit one."""
    text = fill(template, recipient=recipient, sender=sender, url=url)
    room = MAX_LINE - len("550-5.7.1 ") - 2
    if len(text) > room and url in text:
        before, _, after = text.partition(url)
        text = f"{before.rstrip()}\n{url}\n{after.strip()}"
    return text
