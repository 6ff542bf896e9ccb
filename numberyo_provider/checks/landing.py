"""A check run's results on their way to the warehouse: landed as Parquet, then loaded at once.

While a run sends, the :class:`~numberyo_provider.checks.engine.Checker` hands every created (or
reconciled) check with its results to a :class:`Sink` (a
:class:`~numberyo_provider.sync.land.ParquetLander`): :func:`land_created`, :func:`land_found`.

Loading is separate (:func:`commit_check_run`), so that shard tasks can land in parallel and one
task commits them all (DuckDB has one writer): every file of the run (those passed on, and those
an earlier try of a shard landed, found by :func:`discover_landed_files`), plus the run's
``check_requests`` and ``rejected_numbers`` from the ledger, in ONE transaction. A created check
whose results no file holds is fetched again first (a free GET), so a load is complete whatever
happened to the shards.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from numberyo_provider import schema
from numberyo_provider.api.models import Check, CheckResults, CreatedCheck
from numberyo_provider.checks.ledger import CREATED, Ledger, LedgerRow
from numberyo_provider.checks.options import check_load_id
from numberyo_provider.deprecation import renamed_keywords
from numberyo_provider.errors import (
    ConfigurationError,
    NotFoundError,
    NumberYoError,
    UnsupportedCheckTypeError,
)
from numberyo_provider.sync.land import ParquetLander, find_landed_files
from numberyo_provider.sync.normalize import normalize_checks, normalize_created
from numberyo_provider.warehouse import LoadCommit, connect_warehouse

if TYPE_CHECKING:
    from numberyo_provider.api.client import NumberYoClient
    from numberyo_provider.privacy import PrivacyPolicy
    from numberyo_provider.sync.land import LandedFile
    from numberyo_provider.warehouse import LoadResult

log = logging.getLogger(__name__)

__all__ = [
    "CommitReport",
    "Sink",
    "commit_check_run",
    "discover_landed_files",
    "land_created",
    "land_found",
]

_EXTRA_ENVELOPE_KEYS = frozenset({"status"})


class Sink(Protocol):
    """Where created checks' rows go (a :class:`~numberyo_provider.sync.land.ParquetLander`)."""

    def write(self, table: schema.Table, data: pa.Table) -> None: ...


# --- while the run sends ----------------------------------------------------------------------


def land_created(
    sink: Sink,
    items: Sequence[tuple[CreatedCheck, str]],
    *,
    load_id: str,
    privacy: PrivacyPolicy | None,
) -> None:
    """Write created checks (with the digits each was created for) and their results."""
    plain = [(c, d) for c, d in items if not (set(c.extra) - _EXTRA_ENVELOPE_KEYS)]
    special = [(c, d) for c, d in items if set(c.extra) - _EXTRA_ENVELOPE_KEYS]
    if plain:
        _write(
            sink,
            normalize_checks(
                [c.check for c, _ in plain],
                {c.check.id: c.results for c, _ in plain},
                phone_numbers={c.check.id: d for c, d in plain},
                load_id=load_id,
                privacy=privacy,
            ),
        )
    for created, digits in special:
        _write(sink, normalize_created(created, digits, load_id=load_id, privacy=privacy))


def land_found(
    sink: Sink,
    check: Check,
    results: CheckResults,
    digits: str,
    *,
    load_id: str,
    privacy: PrivacyPolicy | None,
) -> None:
    """Write a check found by reconciliation (created by a request whose answer was lost)."""
    _write(
        sink,
        normalize_checks(
            [check],
            {check.id: results},
            phone_numbers={check.id: digits},
            load_id=load_id,
            privacy=privacy,
        ),
    )


def _write(sink: Sink, tables: Mapping[str, pa.Table]) -> None:
    for name, data in tables.items():
        if data.num_rows:
            sink.write(schema.TABLES_BY_NAME[name], data)


# --- loading a run ----------------------------------------------------------------------------


@dataclass
class CommitReport:
    load: LoadResult
    #: Created checks whose results no landed file held and that were fetched again (free GETs).
    repaired: int


@renamed_keywords(
    parquet_root="parquet_path", lock_timeout_s="lock_timeout", max_workers="concurrency"
)
def commit_check_run(
    *,
    warehouse: str,
    ledger: Ledger,
    run_id: str,
    files: Sequence[LandedFile],
    started_at: datetime,
    client: NumberYoClient | None,
    parquet_path: str,
    storage_options: Mapping[str, Any] | None = None,
    privacy: PrivacyPolicy | None = None,
    lock_timeout: float = 60.0,
    concurrency: int = 8,
) -> CommitReport:
    """Load a run (all its shards' files) into the warehouse in ONE transaction (``kind`` check):
    the landed checks and results, plus the run's ``check_requests`` and ``rejected_numbers``.

    Created checks of the run whose results are neither in ``files`` nor already in the warehouse
    (a shard killed before it landed them, a lost file) are fetched again first (free GETs), so a
    load is complete whatever happened to the shards (``concurrency`` GETs at a time).
    Idempotent: loading again changes nothing. Renamed in 0.2 (the old keywords ``parquet_root``,
    ``lock_timeout_s``, ``max_workers`` still work until 0.3).
    """
    load_id = check_load_id(run_id)
    present = [f for f in files if _exists(f.path, storage_options)]
    if len(present) < len(files):
        log.warning(
            "%d landed file(s) no longer exist; their checks' results are fetched again",
            len(files) - len(present),
        )
    # Files of the run that nobody passed on (an earlier try of a shard task, whose XCom a retry
    # cleared): found by name, so their checks need no second GET.
    known_paths = {f.path for f in present}
    for found_file in discover_landed_files(parquet_path, load_id, storage_options):
        if found_file.path not in known_paths:
            present.append(found_file)
            known_paths.add(found_file.path)
    landed_ids = _landed_check_ids(present, storage_options)
    created = [r for r in ledger.touched_by(run_id, status=CREATED) if r.check_id is not None]
    unlanded = [r for r in created if r.check_id not in landed_ids]
    errors: list[dict[str, Any]] = []
    repaired = 0
    all_files = list(present)
    with connect_warehouse(warehouse, lock_timeout=lock_timeout) as wh:
        wh.ensure_schema()
        loaded = wh.existing_check_ids([r.check_id for r in unlanded if r.check_id is not None])
    missing = [r for r in unlanded if r.check_id not in loaded]
    if missing:
        if client is None:
            raise ConfigurationError(
                f"{len(missing)} created check(s) of run {run_id} have no landed results and no "
                "API client was given to fetch them"
            )
        log.info("fetching the results of %d created check(s) that were not landed", len(missing))
        lander = ParquetLander(
            parquet_path,
            f"{load_id}-repair-{uuid.uuid4().hex[:6]}",
            storage_options=storage_options,
        )
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(pool.map(lambda r: _results_or_error(client, r), missing))
        checks: list[Check] = []
        found: dict[int, CheckResults] = {}
        numbers: dict[int, str] = {}
        for row, outcome in zip(missing, results, strict=True):
            assert row.check_id is not None
            if isinstance(outcome, NumberYoError):
                errors.append(
                    {
                        "check_id": row.check_id,
                        "status": getattr(outcome, "status", None),
                        "message": one_line(outcome),
                    }
                )
            else:
                found[row.check_id] = outcome
            checks.append(
                Check(
                    id=row.check_id,
                    type=row.check_type,
                    created_at=row.check_created_at or row.updated_at,
                    user_cost=row.user_cost,
                )
            )
            numbers[row.check_id] = row.phone_number
        tables = normalize_checks(
            checks, found, phone_numbers=numbers, load_id=load_id, privacy=privacy
        )
        for name, data in tables.items():
            if data.num_rows:
                lander.write(schema.TABLES_BY_NAME[name], data)
        all_files.extend(lander.flush())
        repaired = len(found)
    with connect_warehouse(warehouse, lock_timeout=lock_timeout) as wh:
        result = wh.commit_load(
            LoadCommit(
                load_id=load_id,
                kind="check",
                started_at=started_at,
                files=all_files,
                watermark=None,
                errors=errors,
                storage_options=storage_options,
                upserts={
                    schema.CHECK_REQUESTS.name: _private(
                        ledger.iter_request_batches(run_id), "phone_number", privacy
                    ),
                    schema.REJECTED_NUMBERS.name: _private(
                        ledger.iter_rejected_batches(run_id), "raw_value", privacy
                    ),
                },
            )
        )
    return CommitReport(load=result, repaired=repaired)


@renamed_keywords(parquet_root="parquet_path")
def discover_landed_files(
    parquet_path: str, load_id: str, storage_options: Mapping[str, Any] | None = None
) -> list[LandedFile]:
    """Every file landed under ``parquet_path`` for ``load_id`` (all shards, all tries), both
    landing layouts (:func:`~numberyo_provider.sync.land.find_landed_files`)."""
    return [
        found
        for table in schema.DATA_TABLES
        for found in find_landed_files(parquet_path, table, load_id, storage_options)
    ]


def _results_or_error(client: NumberYoClient, row: LedgerRow) -> CheckResults | NumberYoError:
    assert row.check_id is not None
    try:
        return client.get_results(row.check_id)
    except (NotFoundError, UnsupportedCheckTypeError) as exc:
        return exc


def _private(
    batches: Iterable[pa.Table], column: str, privacy: PrivacyPolicy | None
) -> Iterable[pa.Table]:
    """The ledger's numbers as the warehouse may hold them (the privacy policy applied)."""
    if privacy is None or getattr(privacy, "mode", "keep") == "keep":
        yield from batches
        return
    for batch in batches:
        values = [privacy.protect(v) for v in batch.column(column).to_pylist()]
        index = batch.schema.get_field_index(column)
        yield batch.set_column(index, batch.schema.field(index), pa.array(values, pa.string()))


def _exists(path: str, storage_options: Mapping[str, Any] | None) -> bool:
    fs, local = fsspec.core.url_to_fs(path, **dict(storage_options or {}))
    return bool(fs.exists(local))


def _landed_check_ids(
    files: Sequence[LandedFile], storage_options: Mapping[str, Any] | None
) -> set[int]:
    ids: set[int] = set()
    for f in files:
        if f.table != schema.CHECKS.name:
            continue
        with fsspec.open(f.path, "rb", **dict(storage_options or {})) as handle:
            column = pq.read_table(handle, columns=["check_id"]).column("check_id")
        ids.update(int(v) for v in column.to_pylist() if v is not None)
    return ids


def one_line(exc: BaseException) -> str:
    """``exc`` as one line (for ``stop_message`` and the load's ``errors``)."""
    return " ".join(str(exc).split()) or type(exc).__name__
