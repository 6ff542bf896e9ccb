"""The sync pipeline: the account's check history into a warehouse, incrementally.

One module per stage, in the order the data flows (as in dlt): :mod:`.extract` (page the history
and fetch results, safe under drift), :mod:`.normalize` (API models -> Arrow tables of
:mod:`numberyo_provider.schema`, privacy applied), :mod:`.land` (Parquet files a reader can
trust), then the warehouse's one-transaction commit (:mod:`numberyo_provider.warehouse`).
:mod:`.run` drives them, :mod:`.pipeline` overlaps them, :mod:`.summary` reports; a run's
settings are one :class:`.options.SyncOptions`.
"""

from numberyo_provider.cancellation import cancellable_sleep
from numberyo_provider.errors import SyncCancelled
from numberyo_provider.sync.options import SyncOptions
from numberyo_provider.sync.run import STAGES, new_load_id, run_sync
from numberyo_provider.sync.summary import SyncSummary

__all__ = [
    "STAGES",
    "SyncCancelled",
    "SyncOptions",
    "SyncSummary",
    "cancellable_sleep",
    "new_load_id",
    "run_sync",
]
