"""Store rows (plain dicts, times as epoch seconds) to the API's response models, and API times back."""

from datetime import datetime, timezone
from typing import Any

from .models import Challenge, Event, ListEntryOut, ScreenedSender, TagOut
from .sender_context import sender_context


def to_datetime(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


def to_epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:  # a time without zone is taken as UTC, like every time in this API
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def _times(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {**row, **{n: to_datetime(row[n]) for n in names if n in row}}


def event_out(row: dict[str, Any]) -> Event:
    return Event.model_validate(_times(row, "ts"))


def challenge_out(row: dict[str, Any], history: dict[str, Any] | None = None) -> Challenge:
    out = {**_times(row, "created_at", "updated_at", "expires_at"), **sender_context(row)}
    if history is not None:
        out["history"] = {**history, "first_refused": to_datetime(history["first_refused"])}
    return Challenge.model_validate(out)


def entry_out(row: dict[str, Any]) -> ListEntryOut:
    return ListEntryOut.model_validate(_times(row, "created_at", "expires_at"))


def screened_out(row: dict[str, Any]) -> ScreenedSender:
    return ScreenedSender.model_validate(_times(row, "first_seen", "last_seen"))


def tag_out(row: dict[str, Any]) -> TagOut:
    return TagOut.model_validate(_times(row, "created_at", "expires_at", "revoked_at", "last_received_at"))
