"""What is in a warehouse and what happened to it: the report behind ``numberyo status``.

The counterpart of ``dlt pipeline info`` / ``trace``, read from what the sync and the check runs
already write: ``_sync_state`` (the watermark), ``_loads`` (one row per load, committed or
failed), the data tables, and the request ledger (:mod:`numberyo_provider.checks.ledger`).
Nothing is written: DuckDB is opened read-only, PostgreSQL in a read-only transaction, and a
warehouse or a ledger that does not exist is reported as such, never created.

:func:`read_status` returns a :class:`StatusReport` (``as_dict()`` for JSON, ``render()`` for
people). Its :attr:`StatusReport.attention` lists what needs a person, each with a stable code
(see :data:`ATTENTION_CODES`); a report with an empty list is healthy. Phone numbers are masked
and URLs carry no password.

**Where it lives.** Reading the status is an operation *on* a warehouse and its request ledger,
not part of either: it only reads what the sync and the check runs wrote, through both, and is
used alike by the CLI (``numberyo status``) and the Airflow layer (``NumberYoStatusOperator``). So
it is a package of its own beside ``warehouse/``, named for what it produces; it kept the import
path it had as a module (``from numberyo_provider.status import read_status``). One concept a
module:

- ``report``: the report model (:class:`StatusReport` and its parts) and the rules of what needs
  a person (:data:`ATTENTION_CODES`);
- ``read``: :func:`read_status`, which gathers the facts of both sides into a report;
- ``warehouse_facts``: the facts a warehouse holds (DuckDB or SQLAlchemy, read-only);
- ``ledger_facts``: the facts the request ledger holds (pending requests, claims, credits);
- ``driver_values``: what database drivers hand back, made uniform (UTC datetimes, dates, JSON
  text, errors on one line);
- ``render``: the report as text for people and as JSON.
"""

from __future__ import annotations

from numberyo_provider.errors import NeedsAttention, StatusError
from numberyo_provider.status.read import read_status
from numberyo_provider.status.report import (
    ATTENTION_CODES,
    DEFAULT_DAYS,
    DEFAULT_LOADS,
    SAMPLE,
    Attention,
    ClaimInfo,
    CreditDay,
    LoadInfo,
    PendingRequest,
    StatusReport,
    UnloadedResults,
)

__all__ = [
    "ATTENTION_CODES",
    "DEFAULT_DAYS",
    "DEFAULT_LOADS",
    "SAMPLE",
    "Attention",
    "ClaimInfo",
    "CreditDay",
    "LoadInfo",
    "NeedsAttention",
    "PendingRequest",
    "StatusError",
    "StatusReport",
    "UnloadedResults",
    "read_status",
]
