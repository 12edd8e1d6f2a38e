"""The two link forms of a pairing code (printed by `users invite`, returned by the API).

The https form (`https://gateway/pair#ABCDE-23456`) is what a person can click anywhere: a mail client or
chat opens it in the browser, and the gateway's page shows the code and what to do with it. The code is
in the fragment, which browsers never send: it reaches no proxy or server log. The `sendergate://` form
only opens the app where the scheme is registered (the installers do not register it yet). The desktop
app reads both back in desktop/pairing_link.py (it may not import the gateway's modules);
tests/test_api_inprocess.py checks that it reads what this writes.
"""

from __future__ import annotations

from urllib.parse import quote

APP_SCHEME = "sendergate"


def pair_links(public_url: str, code: str) -> tuple[str, str]:
    """(https link, sendergate:// link) for a code on the gateway at public_url."""
    base = public_url.rstrip("/")
    return f"{base}/pair#{code}", f"{APP_SCHEME}://pair?gateway={quote(base, safe='')}&code={quote(code)}"
