"""Contacts importers: address-book files and the user's IMAP account (no Qt).

Used by the desktop app's Import page and by `sendergate allow import`.
Every address is validated and normalised like the gateway does
(`sendergate.policy.address`), so what is imported matches what arrives.
"""

from sendergate.contacts.files import read_bytes, read_file
from sendergate.contacts.imap import ImapHarvester
from sendergate.contacts.model import (
    DUPLICATE, INVALID, MACHINE_ROLE, OWN_ADDRESS, Contact, ContactsError, HarvestResult,
    ImportResult, Skipped,
)

__all__ = [
    "Contact", "ContactsError", "DUPLICATE", "HarvestResult", "ImapHarvester", "ImportResult",
    "INVALID", "MACHINE_ROLE", "OWN_ADDRESS", "Skipped", "read_bytes", "read_file",
]
