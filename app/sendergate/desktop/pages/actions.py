"""List decisions made from a row (Activity, Screened): allow the sender, allow the domain, block."""

from __future__ import annotations

from ...policy.address import AddressError, parse
from ..i18n import tr


def sender_pattern(sender: str, scope: str) -> str:
    """'bob@x.org', scope 'sender' -> 'bob@x.org'; scope 'domain' -> '@x.org'. Raises AddressError."""
    address = parse(sender, unwrap=True)
    return "@" + address.domain if scope == "domain" else address.key


def describe(action: str, pattern: str) -> str:
    if action == "allow":
        return tr("Allowed %1: their mail now reaches the inbox.").replace("%1", pattern)
    return tr("Blocked %1.").replace("%1", pattern)


def undone_label(action: str, pattern: str) -> str:
    """What the undo toast and Edit > Undo name: "Allowed bob@x.org", "Blocked @x.org"."""
    return (tr("Allowed %1") if action == "allow" else tr("Blocked %1")).replace("%1", pattern)


__all__ = ["AddressError", "sender_pattern", "describe", "undone_label"]
