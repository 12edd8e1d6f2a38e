"""Background operations: run a callable off the GUI thread, get success or failure back on it.

Modelled on Anki's aqt/operations (QueryOp): every network call in the app
goes through `Operation`, so no widget code ever blocks the GUI thread.

    Operation(parent, lambda: client.stats(30), on_stats).failure(on_error).run()

Failures that are the world's fault (`ApiError`: gateway down, token refused,
bad input) go to the `failure` callback or, without one, to the app's message
bar. Anything else is a bug: it goes to the crash report dialog instead of
killing the app.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from .api_client import ApiError

log = logging.getLogger("sendergate.desktop.operations")
T = TypeVar("T")

_pool: QThreadPool | None = None


def _log_error(message: str) -> None:
    log.error("%s", message)


def _log_crash(exc: BaseException, tb: str) -> None:
    log.error("unexpected error: %s\n%s", exc, tb)


_show_error: Callable[[str], None] = _log_error  # until the app installs its message bar
_show_crash: Callable[[BaseException, str], None] = _log_crash
_running = 0
_in_flight: set[_Relay] = set()  # relays must outlive their job: Python would collect them mid-flight


def pool() -> QThreadPool:
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setObjectName("sendergate-operations")
        _pool.setMaxThreadCount(4)  # a few calls in flight; the gateway is one server
        _pool.setExpiryTimeout(30_000)
    return _pool


def set_handlers(show_error: Callable[[str], None], show_crash: Callable[[BaseException, str], None]) -> None:
    """Where failures without their own callback go (the main window's message bar and crash dialog)."""
    global _show_error, _show_crash
    _show_error, _show_crash = show_error, show_crash


def report_unexpected(exc: BaseException, tb: str = "") -> None:
    _show_crash(exc, tb or "".join(traceback.format_exception(exc)))


def running() -> int:
    """Operations started and not yet delivered (tests wait for 0)."""
    return len(_in_flight)


class _Relay(QObject):
    """Lives on the GUI thread; a queued signal carries the worker's outcome over to it."""

    done = Signal(object, object, str)  # result, exception, traceback text

    def __init__(self, op: Operation[Any]) -> None:
        super().__init__()
        self._op: Operation[Any] | None = op
        self.done.connect(self._deliver)

    @Slot(object, object, str)
    def _deliver(self, result: Any, exc: BaseException | None, tb: str) -> None:
        global _running
        _running -= 1
        _in_flight.discard(self)
        op, self._op = self._op, None
        if op is not None:
            op._finish(result[0] if exc is None else None, exc, tb)
        self.deleteLater()


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._fn = fn
        self._relay = relay

    def run(self) -> None:
        try:
            result = self._fn()
        except BaseException as exc:  # noqa: BLE001  handed to the GUI thread, which decides; nothing is lost
            self._relay.done.emit(None, exc, "".join(traceback.format_exception(exc)))
        else:
            # boxed: PySide6 6.12.0 loses a reference to True/False when a bare bool crosses a signal
            self._relay.done.emit((result,), None, "")


class Operation(Generic[T]):
    """One background call. `parent` ties the callbacks to a widget: if it is gone, they are dropped."""

    def __init__(self, parent: QObject | None, fn: Callable[[], T], success: Callable[[T], Any] | None = None) -> None:
        self._parent = parent
        self._fn = fn
        self._success = success
        self._failure: Callable[[ApiError], Any] | None = None
        self._finally: Callable[[], Any] | None = None

    def failure(self, fn: Callable[[ApiError], Any]) -> Operation[T]:
        self._failure = fn
        return self

    def finally_(self, fn: Callable[[], Any]) -> Operation[T]:
        self._finally = fn
        return self

    def run(self) -> None:
        global _running
        _running += 1
        relay = _Relay(self)
        _in_flight.add(relay)
        pool().start(_Job(self._fn, relay))

    def _finish(self, result: Any, exc: BaseException | None, tb: str) -> None:
        if self._parent is not None and not shiboken6.isValid(self._parent):
            return  # the page closed while the call was in flight
        try:
            if exc is None:
                if self._success is not None:
                    self._success(result)
            elif isinstance(exc, ApiError):
                if self._failure is not None:
                    self._failure(exc)
                else:
                    _show_error(str(exc))
            else:
                log.error("background operation failed unexpectedly:\n%s", tb)
                _show_crash(exc, tb)
        except Exception as callback_exc:  # noqa: BLE001  a bug in a callback: report it, keep the app alive
            report_unexpected(callback_exc)
        finally:
            if self._finally is not None:
                self._finally()
