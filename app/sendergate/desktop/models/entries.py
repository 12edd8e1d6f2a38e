"""Allowlist or blocklist entries."""

from __future__ import annotations

from ..api_client import ListEntry
from .base import Column, exact_time, local_time, tr
from .records import RecordsModel


def source_label(source: str) -> str:
    return {"manual": tr("Added by hand"), "confirmed": tr("Confirmed (CAPTCHA)"),
            "approved": tr("Approved in the app"), "import": tr("Imported")}.get(source, source)


class EntriesModel(RecordsModel[ListEntry]):
    columns = (
        Column(lambda: tr("Entry"), lambda e: e.entry, lambda e: e.entry),
        Column(lambda: tr("Note"), lambda e: e.note, lambda e: e.note, lambda e: e.note),
        Column(lambda: tr("Source"), lambda e: source_label(e.source), lambda e: e.source),
        Column(lambda: tr("Added"), lambda e: local_time(e.created_at), lambda e: e.created_at.timestamp(),
               lambda e: exact_time(e.created_at)),
        Column(lambda: tr("Expires"), lambda e: local_time(e.expires_at) if e.expires_at else tr("never"),
               lambda e: e.expires_at.timestamp() if e.expires_at else float("inf"),
               lambda e: exact_time(e.expires_at) if e.expires_at else tr("never")),
    )
