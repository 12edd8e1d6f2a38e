"""Reading back what a person pastes into the setup: a pairing code, its https link or its sendergate://
link (written by the gateway's sendergate/pairing.py, which the desktop app may not import; a test in
tests/test_api_inprocess.py checks that this reads what that writes)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

APP_SCHEME = "sendergate"


@dataclass(frozen=True)
class PairInput:
    code: str
    gateway: str | None  # the gateway's base URL when the link named it


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
