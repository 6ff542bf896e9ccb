"""airflow-provider-numberyo: the NumberYo phone-number checking API for Airflow, SQL and dbt.

The core's public face, for code that does not go through Airflow::

    from numberyo_provider import NumberYoClient, run_sync, run_check, CheckOptions, errors

- :class:`NumberYoClient` / :class:`AsyncNumberYoClient`: the HTTP API (:mod:`.api`);
- :func:`run_sync` with :class:`SyncOptions`: the check history into a warehouse (:mod:`.sync`);
- :func:`run_check` with :class:`CheckOptions`: paid checks of a table's numbers, never paid
  twice (:mod:`.checks`);
- :mod:`errors`: every exception, rooted at :class:`NumberYoError`.

The core imports nothing from Airflow; the Airflow layer lives in ``hooks``, ``operators``,
``sensors`` and ``triggers``, and how the packages fit is drawn in ``docs/architecture.md``. Names
resolve on first use (:pep:`562`): ``import numberyo_provider`` (which Airflow does to discover
the provider) imports neither requests, pyarrow nor DuckDB.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from numberyo_provider import _moved, errors
from numberyo_provider.errors import NumberYoError
from numberyo_provider.lazy_exports import lazy_exports

_moved.install()

if TYPE_CHECKING:
    from numberyo_provider.api import AsyncNumberYoClient, NumberYoClient
    from numberyo_provider.checks import CheckOptions, CheckSummary, run_check
    from numberyo_provider.sync import SyncOptions, SyncSummary, run_sync

#: Exported name -> the package that defines it.
_HOMES: dict[str, str] = {
    "NumberYoClient": "numberyo_provider.api",
    "AsyncNumberYoClient": "numberyo_provider.api",
    "run_sync": "numberyo_provider.sync",
    "SyncOptions": "numberyo_provider.sync",
    "SyncSummary": "numberyo_provider.sync",
    "run_check": "numberyo_provider.checks",
    "CheckOptions": "numberyo_provider.checks",
    "CheckSummary": "numberyo_provider.checks",
}

__all__ = [
    "AsyncNumberYoClient",
    "CheckOptions",
    "CheckSummary",
    "NumberYoClient",
    "NumberYoError",
    "SyncOptions",
    "SyncSummary",
    "__version__",
    "errors",
    "run_check",
    "run_sync",
]


__getattr__, __dir__ = lazy_exports(globals(), _HOMES)
