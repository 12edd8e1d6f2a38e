"""The two link forms of a pairing code, and reading back what a person pastes into the desktop app's setup.

The https form (`https://gateway/pair#ABCDE-23456`) is what a person can click anywhere: a mail client or
chat opens it in the browser, and the gateway's page shows the code and what to do with it. The code is
in the fragment, which browsers never send: it reaches no proxy or server log. The `sendergate://` form
only opens the app where the scheme is registered (the installers do not register it yet), so it is
printed as a second form; the setup accepts either one pasted whole, or the bare code.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

APP_SCHEME = "sendergate"


@dataclass(frozen=True)
class PairInput:
    code: str
    gateway: str | None  # the gateway's base URL when the link named it


def pair_links(public_url: str, code: str) -> tuple[str, str]:
    """(https link, sendergate:// link) for a code on the gateway at public_url."""
    base = public_url.rstrip("/")
    return f"{base}/pair#{code}", f"{APP_SCHEME}://pair?gateway={quote(base, safe='')}&code={quote(code)}"


def parse_pair_input(text: str) -> PairInput:
    """A pasted code, https link or sendergate:// link; ValueError when it is none of these."""
    t = text.strip()
    if "://" not in t:
        if not t:
            raise ValueError("empty")
        return PairInput(t, None)
    parts = urlsplit(t)
    if parts.scheme == APP_SCHEME:
        q = parse_qs(parts.query)
        code, gw = q.get("code", [""])[0], q.get("gateway", [""])[0]
        if not code:
            raise ValueError("the link has no code")
        return PairInput(code, gw.rstrip("/") or None)
    if parts.scheme in ("https", "http") and parts.path.rstrip("/").endswith("/pair") and parts.fragment:
        base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')[:-len('/pair')]}"
        return PairInput(unquote(parts.fragment).removeprefix("code="), base)
    raise ValueError("not a pairing link")
