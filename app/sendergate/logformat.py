"""How the gateway's log lines look: the format (`sendergate gateway` logs in it) and key=value values."""

from __future__ import annotations

import json
import re
from typing import Any

# The format `sendergate gateway` logs in (cli.py).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_KV_PLAIN = re.compile(r"[\w@.\-:+/<>=]+")  # \w: what str.isalnum() accepts, and "_"


def kv(value: Any) -> str:
    """A key=value log value: as it is when plain, else a JSON string (quotes, escapes)."""
    s = str(value)
    if _KV_PLAIN.fullmatch(s):
        return s
    return json.dumps(s, ensure_ascii=False)
