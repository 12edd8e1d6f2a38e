"""How the gateway's log lines look: the format (`sendergate gateway` logs in it) and key=value values."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

# The format `sendergate gateway` logs in (cli.py).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_KV_PLAIN = re.compile(r"[\w@.\-:+/<>=]+")  # \w: what str.isalnum() accepts, and "_"
# What JSON leaves raw with ensure_ascii=False but a reader may take for a line end or a terminal control:
# C1 controls (U+0085 NEL among them), U+2028/U+2029, and the bidi overrides that reorder what is shown.
_UNSAFE = re.compile("[\u0080-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def kv(value: Any) -> str:
    """A key=value log value: as it is when plain, else a JSON string (quotes, escapes)."""
    s = str(value)
    if _KV_PLAIN.fullmatch(s):
        return s
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(s, ensure_ascii=False))


def line_prefix(name: str, levelname: str = "INFO") -> Callable[[], str]:
    """What LOG_FORMAT puts before a record's message ("2026-12-06 18:22:30,123 INFO name: "), for a
    line written without a LogRecord; the date part is made once a second."""
    cache: list[Any] = [None, ""]
    tail = f" {levelname} {name}: "

    def prefix() -> str:
        now = time.time()
        sec = int(now)
        if cache[0] != sec:
            cache[0], cache[1] = sec, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sec))
        return f"{cache[1]},{int((now - sec) * 1000):03d}{tail}"

    return prefix
