"""How the gateway writes its log lines: the format, key=value values, and the decision log's direct
write (the same line logging.Formatter would give, without the logging machinery's cost)."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

# The format `sendergate gateway` logs in (cli.py). The decision log writes one line per message; when
# nothing but that plain handler would see the record, the same line is written to its stream directly
# (what that saves: resources/docs/benchmarks.md, "Copied fast paths").
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def plain_stream_handler(logger: logging.Logger) -> logging.StreamHandler | None:
    """The one StreamHandler in LOG_FORMAT that every record of `logger` reaches, if that is all."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters or current.disabled:
            return None
        found += current.handlers
        current = current.parent if current.propagate else None
    if len(found) != 1:
        return None
    handler = found[0]
    if type(handler) is not logging.StreamHandler or handler.filters or handler.level > logging.INFO:
        return None
    fmt = handler.formatter
    if fmt is None or type(fmt) is not logging.Formatter or fmt._fmt != LOG_FORMAT or fmt.datefmt is not None \
            or fmt.converter is not time.localtime or type(fmt._style) is not logging.PercentStyle:
        return None
    return handler


_second: tuple[int, str] = (-1, "")


def write_line(handler: logging.StreamHandler, level: str, name: str, message: str) -> None:
    """What logging.Formatter(LOG_FORMAT) and StreamHandler.emit write for this record."""
    global _second
    now = time.time()
    second = int(now)
    if _second[0] != second:  # Formatter.formatTime: "%Y-%m-%d %H:%M:%S,mmm" in local time
        _second = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)))
    msecs = int((now - second) * 1000)
    line = f"{_second[1]},{msecs:03d} {level} {name}: {message}{handler.terminator}"
    handler.acquire()
    try:
        try:
            handler.stream.write(line)
            handler.flush()
        except Exception:  # noqa: BLE001 - as logging does: report on stderr, never raise into the caller
            handler.handleError(logging.makeLogRecord({"msg": message, "levelname": level, "name": name}))
    finally:
        handler.release()


_KV_PLAIN = re.compile(r"[\w@.\-:+/<>=]+")  # \w: what str.isalnum() accepts, and "_"


def kv(value: Any) -> str:
    """A key=value log value: as it is when plain, else a JSON string (quotes, escapes)."""
    s = str(value)
    if _KV_PLAIN.fullmatch(s):
        return s
    return json.dumps(s, ensure_ascii=False)
