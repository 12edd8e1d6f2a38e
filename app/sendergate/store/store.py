"""`Store`: every table group's queries on one object, the store's one query API (synchronous SQLAlchemy
Core, for the CLI and worker threads; AsyncStore runs it for the event loop)."""

from __future__ import annotations

from .challenges import Challenges
from .confirm import Confirm
from .devices import Devices
from .digest import Digest
from .events import Events
from .history import History
from .lists import Lists
from .modes import Modes
from .sentids import SentIds
from .settings import Settings
from .tags import Tags
from .undo import Undo
from .users import Users


class Store(Users, Devices, Confirm, Undo, Challenges, Events, History, Lists, SentIds, Settings, Digest, Modes,
            Tags):
    """Users and tokens, lists, challenges and the confirmation page's state, events and their counts,
    sent Message-IDs, settings and rate counters, sign-up addresses (tags). `scope` arguments are the user
    whose data is asked for, or None for an admin who sees everything; a thing outside the scope is NotFound."""
