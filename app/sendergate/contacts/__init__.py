"""Contacts importers: address-book files and the user's IMAP account (no Qt).

Used by the desktop app's Import page and by `sendergate allow import`.
Every address is validated and normalised like the gateway does
(`sendergate.policy.address`), so what is imported matches what arrives.

    result = read_file("contacts.vcf", own_addresses=["me@example.org"])
    result.contacts   # [Contact(address, name, source, count, last_seen)], allowlist keys
    result.skipped    # [Skipped(raw, reason)]: invalid, own address, machine role, duplicate
    result.warnings   # readable notes: truncated card, legacy encoding, no e-mail column

    harvest = ImapHarvester("imap.example.org", security="tls", username="me@example.org",
                            password=app_password, own_addresses=["me@example.org"]
                            ).harvest(saved_state, progress=on_progress, cancelled=is_cancelled)
    harvest.sent_message_id_hashes   # for POST /api/v1/sent-ids
    harvest.state                    # JSON: save it, pass it next time to read only new mail

Every mistake a user can make raises ContactsError (one readable line);
`ContactsError.partial` keeps what an interrupted IMAP harvest had read.
"""

from sendergate.contacts.files import read_bytes, read_file
from sendergate.contacts.imap import ImapHarvester
from sendergate.contacts.model import (
    DUPLICATE,
    INVALID,
    MACHINE_ROLE,
    OWN_ADDRESS,
    Contact,
    ContactsError,
    HarvestResult,
    ImportResult,
    Skipped,
)

__all__ = [
    "Contact", "ContactsError", "DUPLICATE", "HarvestResult", "ImapHarvester", "ImportResult",
    "INVALID", "MACHINE_ROLE", "OWN_ADDRESS", "Skipped", "read_bytes", "read_file",
]
