"""The store: users, their addresses and tokens, allow/block lists, challenges, events.

One query API, `Store` (store.py), composed from the table groups' modules: users.py (users, aliases,
tokens), lists.py (entries, imports, which entry decides), challenges.py (challenges, links, decisions),
confirm.py (the confirmation page's state), events.py (events, daily counts, pruning), sentids.py,
settings.py (settings, rate counters); engine.py sets up the database, paging.py reads every keyset page,
fast_sqlite.py is the SMTP hot path in SQLite's own SQL. `AsyncStore` runs the store for the event loop
with a group-committing writer. One exception family (errors.py): StoreError and its kinds.
"""

from ..policy.address import hash_message_id
from .async_store import AsyncStore
from .challenges import auth_summary
from .confirm import LinkState
from .devices import Device
from .engine import hash_secret, new_token, now_ts, to_dt
from .errors import Conflict, Forbidden, Invalid, NotFound, StoreError
from .events import DAY, SEARCH_BUDGET, SEARCH_STEP, SEARCH_WINDOW
from .store import Store
from .users import User

__all__ = ["DAY", "SEARCH_BUDGET", "SEARCH_STEP", "SEARCH_WINDOW", "AsyncStore", "Conflict", "Device", "Forbidden",
           "Invalid",
           "LinkState", "NotFound", "Store", "StoreError", "User", "auth_summary", "hash_message_id", "hash_secret",
           "new_token", "now_ts", "to_dt"]
