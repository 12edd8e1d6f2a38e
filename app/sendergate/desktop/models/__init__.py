"""Read-only table models (like Vorta's *_table_model.py): rows come from the API, never edited in place."""

from .challenges import PendingModel
from .entries import EntriesModel
from .events import EventsModel
from .screened import ScreenedModel, SenderGroup, group_by_sender

__all__ = ["EventsModel", "PendingModel", "EntriesModel", "ScreenedModel", "SenderGroup", "group_by_sender"]
