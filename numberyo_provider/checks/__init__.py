"""Paid number checks: read a source, clean the numbers, create each check once, load the results.

The public face of the checks domain; the modules behind it, one concept each:

* :mod:`~numberyo_provider.checks.options`: :class:`CheckOptions` (what a run is asked to do) and
  :class:`CheckSummary` (what it did);
* :mod:`~numberyo_provider.checks.run`: :func:`run_check`, one run end to end (CLI, operators);
* :mod:`~numberyo_provider.checks.engine`: :class:`Checker`, one run (or shard) of threaded POSTs,
  whose claims :mod:`~numberyo_provider.checks.lease` keeps alive;
* :mod:`~numberyo_provider.checks.landing`: its results landed as Parquet, then loaded in one
  transaction (:func:`commit_check_run`);
* :mod:`~numberyo_provider.checks.ledger`: the request ledger and its claims (never pay twice);
* :mod:`~numberyo_provider.checks.budget`: ``max_checks`` / ``max_credits``, reserved before a POST;
* :mod:`~numberyo_provider.checks.reconcile`: requests whose outcome is unknown, looked up;
* :mod:`~numberyo_provider.checks.numbers`: number hygiene (E.164, validity, duplicates);
* :mod:`~numberyo_provider.checks.source`: streaming, read-only reads of the numbers;
* :mod:`~numberyo_provider.checks.sharding`: which shard a number belongs to;
* :mod:`~numberyo_provider.checks.verdict`: whether a finished run did its job.

Names are imported on first use, so ``import numberyo_provider.checks.numbers`` (or a DAG file
importing the operators) does not pull in pyarrow and the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from numberyo_provider.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from numberyo_provider.checks.engine import Checker
    from numberyo_provider.checks.landing import (
        CommitReport,
        commit_check_run,
        discover_landed_files,
    )
    from numberyo_provider.checks.options import (
        DEFAULT_MAX_AGE,
        ON_INSUFFICIENT_CREDITS,
        CheckOptions,
        CheckSummary,
        check_load_id,
        default_cli_run_id,
    )
    from numberyo_provider.checks.run import CheckRun, run_check
    from numberyo_provider.errors import CheckRunError, InsufficientCreditsStop

#: Public name -> the module that defines it (imported when the name is first used).
_EXPORTS = {
    "DEFAULT_MAX_AGE": "numberyo_provider.checks.options",
    "ON_INSUFFICIENT_CREDITS": "numberyo_provider.checks.options",
    "CheckOptions": "numberyo_provider.checks.options",
    "CheckSummary": "numberyo_provider.checks.options",
    "check_load_id": "numberyo_provider.checks.options",
    "default_cli_run_id": "numberyo_provider.checks.options",
    "Checker": "numberyo_provider.checks.engine",
    "CheckRun": "numberyo_provider.checks.run",
    "run_check": "numberyo_provider.checks.run",
    "CommitReport": "numberyo_provider.checks.landing",
    "commit_check_run": "numberyo_provider.checks.landing",
    "discover_landed_files": "numberyo_provider.checks.landing",
    "CheckRunError": "numberyo_provider.errors",
    "InsufficientCreditsStop": "numberyo_provider.errors",
}

__all__ = [
    "DEFAULT_MAX_AGE",
    "ON_INSUFFICIENT_CREDITS",
    "CheckOptions",
    "CheckRun",
    "CheckRunError",
    "CheckSummary",
    "Checker",
    "CommitReport",
    "InsufficientCreditsStop",
    "check_load_id",
    "commit_check_run",
    "default_cli_run_id",
    "discover_landed_files",
    "run_check",
]


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
