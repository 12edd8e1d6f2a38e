"""Allow/block list matching (SPEC §4.1): most specific wins, block beats allow at a tie."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .address import Address, Pattern, domain_suffixes

ALLOW = "allow"
BLOCK = "block"


@dataclass(frozen=True, slots=True)
class ListEntry:
    id: int
    action: str  # ALLOW | BLOCK
    pattern: Pattern
    expires_at: datetime | None = None
    user_id: int | None = None  # None: a global (admin) entry
    source: str = "manual"

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


def specificity(pattern: Pattern) -> int:
    """An address beats any domain; a longer domain beats its parent."""
    if pattern.kind == "address":
        return 1000
    if pattern.kind == "domain":
        return pattern.value.count(".") + 1
    return 0


def candidate_patterns(sender: Address) -> list[Pattern]:
    """Every pattern that could match this sender, most specific first (what the store looks up)."""
    return [Pattern("address", sender.key)] + [Pattern("domain", d) for d in domain_suffixes(sender.domain)]


def match_sender(entries: list[ListEntry], sender: Address | None, now: datetime) -> ListEntry | None:
    """The entry that decides for this sender, or None when no entry applies."""
    if sender is None:
        return None
    wanted = {p: specificity(p) for p in candidate_patterns(sender)}
    best: ListEntry | None = None
    best_rank = (-1, -1)
    for entry in entries:
        if entry.pattern not in wanted or not entry.active(now):
            continue
        rank = (wanted[entry.pattern], 1 if entry.action == BLOCK else 0)
        if rank > best_rank:
            best, best_rank = entry, rank
    return best


def match_list(entries: list[ListEntry], list_id: str | None, list_post: Address | None,
               now: datetime) -> ListEntry | None:
    """A `list:<id>` allow entry for the List-Id, or an address entry for the List-Post address."""
    found: ListEntry | None = None
    if list_id:
        for e in entries:
            if e.pattern.kind == "list" and e.pattern.value == list_id and e.active(now):
                if e.action == BLOCK:
                    return e
                found = found or e
    if found is None and list_post is not None:
        post = match_sender(entries, list_post, now)
        if post is not None:
            return post
    return found
