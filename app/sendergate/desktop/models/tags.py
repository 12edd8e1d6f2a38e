"""Sign-up addresses (issue 19): one row per tag, with how much mail it brought and from whom."""

from __future__ import annotations

import html

from ..api_client import Tag
from ..dates import exact, when
from .base import Column, RichText, tr
from .records import RecordsModel

TOP_SENDERS_SHOWN = 2  # in the cell; the tooltip lists all the gateway gave (its top 5)
STATUS_ORDER = {"live": 0, "expired": 1, "revoked": 2}  # live ones first when sorted by status


def folder_label(folder: str) -> str:
    return {"inbox": tr("Inbox"), "tag": tr("A folder of its own"), "screened": tr("Screened folder")}.get(folder,
                                                                                                        folder)


def status_label(status: str) -> str:
    return {"live": tr("Live"), "expired": tr("Expired"), "revoked": tr("Revoked")}.get(status, status)


def senders_text(tag: Tag) -> str:
    """The first senders with their counts; "and N more" for the rest the gateway named."""
    if not tag.senders:
        return ""
    shown = ", ".join(f"{sender} ({count})" for sender, count in tag.senders[:TOP_SENDERS_SHOWN])
    rest = len(tag.senders) - TOP_SENDERS_SHOWN
    return shown if rest <= 0 else tr("%1 and %n more", None, rest).replace("%1", shown)


def senders_tooltip(tag: Tag) -> str:
    """Every top sender with its count. Senders are what strangers put in MAIL FROM, and Qt renders a
    tooltip that looks like HTML as HTML: escaped, inside an explicit rich-text document."""
    if not tag.senders:
        return ""
    return RichText("<qt>" + "<br>".join(f"{html.escape(sender)}: {count}" for sender, count in tag.senders) + "</qt>")


def expiry_text(tag: Tag) -> str:
    if tag.revoked_at is not None:
        return tr("Revoked %1").replace("%1", when(tag.revoked_at))
    if tag.expires_at is None:
        return tr("Never")
    return when(tag.expires_at)


class TagsModel(RecordsModel[Tag]):
    columns = (
        Column(lambda: tr("Site"), lambda t: t.name, lambda t: t.name.lower()),
        Column(lambda: tr("Address"), lambda t: t.address, lambda t: t.address, lambda t: t.address),
        Column(lambda: tr("Status"), lambda t: status_label(t.status), lambda t: STATUS_ORDER.get(t.status, 3)),
        Column(lambda: tr("Mail received"), lambda t: t.received, lambda t: t.received),
        Column(lambda: tr("Refused"), lambda t: t.refused, lambda t: t.refused,
               lambda t: tr("Spam, viruses, and mail after it was revoked or expired")),
        Column(lambda: tr("From"), senders_text, lambda t: senders_text(t).lower(), senders_tooltip),
        Column(lambda: tr("Last mail"), lambda t: when(t.last_received_at) or "—",
               lambda t: t.last_received_at.timestamp() if t.last_received_at else 0.0,
               lambda t: exact(t.last_received_at)),
        Column(lambda: tr("Mail goes to"), lambda t: folder_label(t.folder) if t.folder else "",
               lambda t: t.folder or ""),
        Column(lambda: tr("Ends"), expiry_text,
               lambda t: t.expires_at.timestamp() if t.expires_at else float("inf"),
               lambda t: exact(t.revoked_at or t.expires_at)),
    )
