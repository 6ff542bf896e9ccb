"""API models -> Arrow tables with exactly the warehouse schemas of :mod:`numberyo_provider.schema`.

The one converter both writers use: the history sync (listed checks + fetched results) and the
paid-check runner (a POST's answer). Nothing is dropped: fields this version does not model go to
the ``extra`` JSON column (sorted keys, compact), money stays an exact decimal, timestamps are UTC,
and the privacy policy is applied here, before any row can reach a file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from numberyo_provider import schema
from numberyo_provider.api.models import Check, CheckResults, CreatedCheck, HlrResult, VerifyResult
from numberyo_provider.errors import BadResponseError

if TYPE_CHECKING:
    from numberyo_provider.privacy import PrivacyPolicy


@dataclass(frozen=True)
class UntypedResults:
    """The results of a check whose type this version does not model (``Email``, say), whole
    as the API sent them: they go to ``other_results`` as JSON instead of failing the run."""

    type: str
    body: Mapping[str, Any]


#: Every data table a normalisation produces, always all three (possibly empty), by table name.
Normalized = dict[str, pa.Table]


def _typed_fields(table: schema.Table, model: type) -> tuple[str, ...]:
    """The table's columns that are typed fields of the API model (``extra`` aside)."""
    fields = {f.name for f in dataclasses.fields(model)} - {"extra"}
    return tuple(f.name for f in table.schema if f.name in fields)


_HLR_FIELDS = _typed_fields(schema.HLR_RESULTS, HlrResult)
_VERIFY_FIELDS = _typed_fields(schema.VERIFY_RESULTS, VerifyResult)
#: Envelope keys of a POST answer that describe the request, not the check.
_CREATED_ENVELOPE = frozenset({"status"})
_MONEY_SCALE = schema.MONEY.scale
_MONEY_DIGITS = schema.MONEY.precision - schema.MONEY.scale


def extra_json(extra: Mapping[str, Any]) -> str | None:
    """Unmodelled fields as a compact JSON object with sorted keys; ``None`` when there are none.

    Sorted and compact so the same answer always gives the same text (reloads compare equal).
    """
    if not extra:
        return None
    return json.dumps(extra, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def phone_digits(value: object) -> str | None:
    """``"+32 456 789023"`` -> ``"32456789023"``; ``None`` for anything without digits."""
    if value is None:
        return None
    text = "".join(str(value).split())
    text = text.removeprefix("+")
    return text or None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _money(value: Decimal | None, check_id: int) -> Decimal | None:
    """Exact or an error: a cost with more than 4 decimals must not be silently rounded."""
    if value is None:
        return None
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):  # NaN / infinity: the model already refuses these
        raise BadResponseError(f"check {check_id}: user_cost {value!r} is not a finite amount")
    if exponent < -_MONEY_SCALE:
        normalized = value.normalize()
        exp = normalized.as_tuple().exponent
        if not isinstance(exp, int) or exp < -_MONEY_SCALE:
            raise BadResponseError(
                f"check {check_id}: user_cost {value} has more than {_MONEY_SCALE} decimals; "
                "the warehouse keeps costs exact to 4 decimals"
            )
        value = normalized
    if value.adjusted() >= _MONEY_DIGITS:
        raise BadResponseError(f"check {check_id}: user_cost {value} is too large to store")
    return value


def _phone_from_results(results: CheckResults | None) -> str | None:
    """The number checked, as the results tell it: ``number_requested`` first (HLR field or Verify
    extra), then a Verify result's ``e164_format`` without ``+``."""
    if results is None:
        return None
    for result in results.results:
        if isinstance(result, HlrResult):
            found = phone_digits(result.number_requested)
        else:
            found = phone_digits(result.extra.get("number_requested"))
        if found:
            return found
    for result in results.results:
        if isinstance(result, VerifyResult):
            found = phone_digits(result.e164_format)
            if found:
                return found
    return None


class _Columns:
    """Column-wise row buffer for one table (faster than a list of dicts for Arrow)."""

    def __init__(self, table: schema.Table) -> None:
        self.table = table
        self.columns: dict[str, list[Any]] = {name: [] for name in table.schema.names}

    def add(self, row: Mapping[str, Any]) -> None:
        for name, values in self.columns.items():
            values.append(row.get(name))

    def to_arrow(self, load_id: str, loaded_at: datetime) -> pa.Table:
        rows = len(self.columns["check_id"])
        self.columns["_load_id"] = [load_id] * rows
        self.columns["_loaded_at"] = [loaded_at] * rows
        return pa.Table.from_pydict(self.columns, schema=self.table.schema)


def _finish(
    buffers: Iterable[_Columns],
    *,
    load_id: str,
    loaded_at: datetime | None,
    privacy: PrivacyPolicy | None,
) -> Normalized:
    if not load_id:
        raise ValueError("load_id must be a non-empty string")
    when = _utc(loaded_at) or datetime.now(UTC)
    out: Normalized = {}
    for buffer in buffers:
        data = buffer.to_arrow(load_id, when)
        if privacy is not None:
            data = privacy.apply(buffer.table, data)
        out[buffer.table.name] = data
    return out


def _add_untyped(
    buffers: dict[str, _Columns],
    check: Check,
    results: UntypedResults,
    privacy: PrivacyPolicy | None,
) -> None:
    """The ``checks`` row and the whole results as JSON; withheld under a privacy mode other than
    ``keep``, since which of their fields are personal is unknown."""
    _add_check(buffers, check, None, phone_number=None)
    keep = privacy is None or privacy.mode == "keep"
    buffers[schema.OTHER_RESULTS.name].add(
        {
            "check_id": check.id,
            "type": check.type,
            "created_at": _utc(check.created_at),
            "results": (
                json.dumps(
                    results.body,
                    sort_keys=True,
                    separators=(",", ":"),
                    ensure_ascii=False,
                    default=str,
                )
                if keep
                else None
            ),
        }
    )


def _add_check(
    buffers: dict[str, _Columns],
    check: Check,
    results: CheckResults | None,
    *,
    phone_number: str | None,
    envelope_extra: Mapping[str, Any] | None = None,
) -> None:
    extra: dict[str, Any] = dict(check.extra)
    if results is not None and results.extra:
        extra["results_extra"] = dict(results.extra)
    if envelope_extra:
        extra["response_extra"] = dict(envelope_extra)
    buffers["checks"].add(
        {
            "check_id": check.id,
            "type": check.type,
            "source": check.source,
            "user_cost": _money(check.user_cost, check.id),
            "created_at": _utc(check.created_at),
            "phone_number": phone_digits(phone_number) or _phone_from_results(results),
            "extra": extra_json(extra),
        }
    )
    if results is None:
        return
    for index, result in enumerate(results.results):
        if isinstance(result, HlrResult):
            row: dict[str, Any] = {f: getattr(result, f) for f in _HLR_FIELDS}
            target = buffers["hlr_results"]
        else:
            row = {f: getattr(result, f) for f in _VERIFY_FIELDS}
            target = buffers["verify_results"]
        row["created_at"] = _utc(row["created_at"])
        row["check_id"] = check.id
        row["result_index"] = index
        row["extra"] = extra_json(result.extra)
        target.add(row)


def _buffers() -> dict[str, _Columns]:
    return {t.name: _Columns(t) for t in schema.DATA_TABLES}


def normalize_checks(
    checks: Iterable[Check],
    results_by_id: Mapping[int, CheckResults | UntypedResults],
    *,
    load_id: str,
    loaded_at: datetime | None = None,
    privacy: PrivacyPolicy | None = None,
    phone_numbers: Mapping[int, str] | None = None,
) -> Normalized:
    """Rows for ``checks`` (one each) and the results found for them in ``results_by_id`` (a check
    without an entry gets its row in ``checks`` and no result rows).

    ``phone_numbers`` (check id -> number as requested) wins over what the results say.
    ``loaded_at`` defaults to now; the lineage columns carry ``load_id``/``loaded_at``.
    :class:`UntypedResults` go to ``other_results``.
    """
    buffers = _buffers()
    numbers = phone_numbers or {}
    for check in checks:
        results = results_by_id.get(check.id)
        if isinstance(results, UntypedResults):
            _add_untyped(buffers, check, results, privacy)
            continue
        _add_check(buffers, check, results, phone_number=numbers.get(check.id))
    return _finish(buffers.values(), load_id=load_id, loaded_at=loaded_at, privacy=privacy)


def normalize_created(
    created: CreatedCheck,
    phone_number: str,
    *,
    load_id: str,
    loaded_at: datetime | None = None,
    privacy: PrivacyPolicy | None = None,
) -> Normalized:
    """Rows for the answer of a paid ``POST /api/checks`` (the check and its results at once).

    ``phone_number`` is the number as sent; unknown envelope keys (not ``status``/``message``) are
    kept under ``response_extra`` in the check's ``extra``.
    """
    buffers = _buffers()
    envelope = {k: v for k, v in created.extra.items() if k not in _CREATED_ENVELOPE}
    _add_check(
        buffers,
        created.check,
        created.results,
        phone_number=phone_number,
        envelope_extra=envelope,
    )
    return _finish(buffers.values(), load_id=load_id, loaded_at=loaded_at, privacy=privacy)


def empty_tables() -> Normalized:
    """Zero-row tables of every data table (the shape callers can concatenate onto)."""
    return {t.name: t.schema.empty_table() for t in schema.DATA_TABLES}


__all__ = [
    "Normalized",
    "UntypedResults",
    "empty_tables",
    "extra_json",
    "normalize_checks",
    "normalize_created",
    "phone_digits",
]
