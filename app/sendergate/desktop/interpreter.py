"""Interpreter settings the desktop app depends on, applied once when `sendergate.desktop` is imported.

1. PySide6 6.12.0 gives back one reference too many to Python's singletons on hot paths (measured
   here, tests/desktop/test_interpreter.py): every emit of a Python-declared signal with an `object`
   parameter takes one from True, whatever is emitted; every Python slot run from a Qt signal (a
   QTimer tick, a queued delivery) and every Python override of a void virtual (QRunnable.run,
   fetchMore, paintEvent) takes one or two from None. On CPython before 3.12 these are ordinary
   counted objects (True starts near 400): once a count reaches zero the interpreter aborts
   ("deallocating True or False"), after a few thousand background operations — an afternoon of
   scrolling the Activity log. CPython 3.12 makes them immortal (PEP 683); here they get the same
   treatment: a count no session can use up. Over-counting a singleton costs nothing.
2. The GIL switch interval from 5 ms to 1 ms: while a worker thread runs Python code (reading a
   page of events), the GUI thread, which takes the GIL for each of the ~1,500 `data()` calls of a
   frame, waits at most 1 ms for it instead of 5 (measured: the longest stalls while scrolling
   came from this convoy).
"""

from __future__ import annotations

import ctypes
import sys

SWITCH_INTERVAL = 0.001
_RESERVE = 1 << 60  # references added to each singleton; a leak of millions per second would need decades


def _immortalise(*objects: object) -> None:
    for obj in objects:
        # CPython's object header starts with the reference count (Py_ssize_t) at the object's address
        ctypes.c_ssize_t.from_address(id(obj)).value += _RESERVE


def prepare() -> None:
    if sys.implementation.name == "cpython" and sys.version_info < (3, 12) \
            and sys.getrefcount(None) < _RESERVE:  # once per process
        _immortalise(None, True, False)
    sys.setswitchinterval(SWITCH_INTERVAL)
