"""How the gateway's log lines look: the format (`sendergate gateway` logs in it) and key=value values."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

PIPE_BUF = 4096  # bytes a write to a pipe is atomic up to (POSIX: at least 512; Linux: 4096)

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


class LoopBufferedHandler(logging.StreamHandler):
    """The gateway's log handler: a line logged on a thread running an event loop is written with the
    others of the same loop turn, in one write at the turn's end (a busy worker decides several
    messages a turn); a line from any other thread first writes what is held, then itself, at once.
    Lines keep their order. What is held is written by flush(): at the turn's end, when HOLD lines
    are held, and by logging.shutdown() / Runtime.close() when a worker ends. The log is not the
    durable record (the store is): a process killed outright loses at most its current turn's lines."""

    HOLD = 256

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._held: list[str] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on
        self._flush_thread = 0  # that loop's thread

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_line(self.format(record))
        except Exception:  # noqa: BLE001 - logging's own rule: a failed log line never fails the caller
            self.handleError(record)

    def write_line(self, text: str) -> None:
        """One formatted line (without its line end), held until the loop turn ends or written now."""
        thread = threading.get_ident()
        with self.lock:  # type: ignore[union-attr]
            held = self._held
            held.append(text)
            scheduled = self._flush_on
            if len(held) >= self.HOLD:
                self._write_held()
            elif scheduled is not None and self._flush_thread == thread and scheduled.is_running():
                return  # this thread's loop flushes at the turn's end (asking for the running loop costs a getpid())
            loop = asyncio._get_running_loop()  # the public get_running_loop() raises where none runs
            if loop is None:
                self._write_held()
            elif scheduled is not loop:  # (a loop that ended before its flush ran: this one flushes)
                self._flush_on, self._flush_thread = loop, thread
                loop.call_soon(self.flush)

    def _write_held(self) -> None:
        """What is held, in writes of whole lines of at most PIPE_BUF bytes (a longer line alone): the
        workers share stderr, and on a pipe only such a write is never interleaved with another's."""
        if not self._held:
            return
        held, self._held = self._held, []
        chunk: list[str] = []
        size = 0
        for line in held:
            n = (len(line) if line.isascii() else len(line.encode("utf-8", "surrogateescape"))) + 1
            if chunk and size + n > PIPE_BUF:
                self._write(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += n
        self._write(chunk)

    def _write(self, lines: list[str]) -> None:
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._flush_on = None
            try:
                self._write_held()
            except (OSError, ValueError):  # the stream is gone (closed at exit): nothing to write to
                self._held.clear()


def configure(level: int | str) -> LoopBufferedHandler:
    """The gateway's and the milter's logging: LOG_FORMAT lines on stderr through one LoopBufferedHandler."""
    handler = LoopBufferedHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    return handler


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
