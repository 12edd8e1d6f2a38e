"""Follows /api/v1/stream on a worker thread; hands each message to the GUI thread as a signal.

Reconnects with exponential backoff when the gateway goes away, resuming
with Last-Event-ID so nothing in between is lost, and says what state it is
in so the window can show "offline — retrying".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from .api_client import ApiError, GatewayClient

log = logging.getLogger("sendergate.desktop.stream")

CONNECTING, ONLINE, OFFLINE = "connecting", "online", "offline"


def backoff_delays(first: float, ceiling: float) -> Callable[[int], float]:
    """Attempt n (0-based) waits first * 2**n seconds, at most `ceiling`."""
    return lambda n: min(ceiling, first * (2 ** min(n, 20)))


class StreamFollower(QObject):
    message = Signal(object)  # StreamMessage
    state_changed = Signal(str, str)  # CONNECTING | ONLINE | OFFLINE, and a one-line reason
    reconnected = Signal()  # back after being offline: pages should refresh what they show

    def __init__(self, client: GatewayClient, *, first_delay: float = 1.0, max_delay: float = 30.0,
                 heartbeat: int = 2) -> None:
        super().__init__()
        self._client = client
        self._delay = backoff_delays(first_delay, max_delay)
        self._heartbeat = heartbeat
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = CONNECTING
        self.retry_at = 0.0  # monotonic time of the next attempt while offline

    def start(self) -> None:
        if self._thread is not None:
            return
        # a daemon thread: quitting the app must not wait for a read to time out
        self._thread = threading.Thread(target=self._run, name="sendergate-stream", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 0.0) -> None:
        self._stop.set()
        if self._thread is not None and wait:
            self._thread.join(wait)

    def _set_state(self, state: str, reason: str = "") -> None:
        if self._stop.is_set():
            return
        was = self.state
        self.state = state
        self.state_changed.emit(state, reason)
        if state == ONLINE and was == OFFLINE:
            self.reconnected.emit()

    def _run(self) -> None:
        last_id = ""
        failures = 0
        while not self._stop.is_set():
            reason = ""
            try:
                self._client.me()  # answers at once: online, even before the first stream message
                self._set_state(ONLINE)
                failures = 0
                for msg in self._client.stream(last_id, heartbeat=self._heartbeat, stop=self._stop.is_set):
                    last_id = msg.last_id or last_id
                    if not self._stop.is_set():
                        self.message.emit(msg)
                reason = "the gateway closed the live stream"
            except ApiError as exc:  # Unreachable, Unauthorized, 5xx: all retried, with the reason shown
                reason = str(exc)
            except Exception as exc:  # a bug here must not end live updates for good: log and retry
                log.exception("live stream failed unexpectedly")
                reason = f"live stream error: {exc}"
            if self._stop.is_set():
                return
            delay = self._delay(failures)
            failures += 1
            self.retry_at = time.monotonic() + delay
            log.info("live stream offline (%s); retrying in %.1f s", reason, delay)
            self._set_state(OFFLINE, reason)
            if self._stop.wait(delay):
                return
            self._set_state(CONNECTING, "")
