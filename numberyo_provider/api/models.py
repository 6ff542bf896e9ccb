"""Typed views of the API's JSON, parsed strictly where it matters and never lossy.

Each model's ``from_api`` raises :class:`~numberyo_provider.errors.BadResponseError` naming the
field that was missing or had the wrong type. Every key a model does not know is kept in its
``extra`` mapping: the API's Verify results carry more fields than documented, and a new API field
must reach the warehouse, not vanish here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, overload

from numberyo_provider.deprecation import warn_renamed
from numberyo_provider.errors import BadResponseError, ConfigurationError

#: The check types the API documents, spelled as it spells them.
CHECK_TYPES: tuple[str, ...] = ("HLR", "Verify")
_CHECK_TYPES_BY_LOWER = {t.lower(): t for t in CHECK_TYPES}


def canonical_check_type(value: str) -> str:
    """``"hlr"`` -> ``"HLR"``; anything else the API does not document is a ConfigurationError."""
    canonical = _CHECK_TYPES_BY_LOWER.get(str(value).strip().lower())
    if canonical is None:
        raise ConfigurationError(
            f"unknown check type {value!r}: use one of {', '.join(CHECK_TYPES)} "
            "(case does not matter)"
        )
    return canonical


def normalize_check_type(value: str) -> str:
    """Deprecated: :func:`canonical_check_type` (renamed in 0.2; "normalize" names only the sync's
    stage from API models to Arrow tables)."""
    warn_renamed(
        "normalize_check_type", "canonical_check_type", where="numberyo_provider.api.models"
    )
    return canonical_check_type(value)


def _api_check_type(value: str, where: str) -> str:
    canonical = _CHECK_TYPES_BY_LOWER.get(value.lower())
    if canonical is None:
        raise BadResponseError(
            f"{where}: check type {value!r} is not one this version knows "
            f"({', '.join(CHECK_TYPES)}); upgrade airflow-provider-numberyo"
        )
    return canonical


# --- field parsers: each names the offending field -------------------------------------------

_MISSING = object()

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)


def parse_timestamp(value: str) -> datetime:
    """An ISO-8601 timestamp as a tz-aware UTC datetime; naive input is taken as UTC.

    Handles ``2025-03-30T14:21:00.000000Z`` and ``2025-03-30T14:10:23Z``. Written when 3.10's
    ``fromisoformat`` knew neither ``Z`` nor 1-5 fraction digits; 3.11's knows both, but not a
    lower-case ``t`` or ``z``, which this one takes too.
    """
    m = _TIMESTAMP.fullmatch(value.strip())
    if m is None:
        raise ValueError(f"not an ISO-8601 timestamp: {value!r}")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = UTC
    if zone and zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        tz = timezone(sign * offset)
    parsed = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, tz
    )
    return parsed.astimezone(UTC)


def _bad(where: str, expected: str, value: object) -> BadResponseError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return BadResponseError(f"{where}: expected {expected}, got {shown}")


def _mapping(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise _bad(where, "a JSON object", data)
    return data


def _get(data: Mapping[str, Any], key: str, where: str, *, required: bool) -> Any:
    value = data.get(key, _MISSING)
    if value is _MISSING or (required and value is None):
        if required:
            raise BadResponseError(f"{where}: required field {key!r} is missing")
        return None
    return value


#: Every integer the API sends lands in a BIGINT column (or is a page number): it must fit.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@overload
def _int(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    required: Literal[True],
    minimum: int = ...,
    maximum: int = ...,
) -> int: ...
@overload
def _int(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    required: bool = ...,
    minimum: int = ...,
    maximum: int = ...,
) -> int | None: ...
def _int(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    required: bool = False,
    minimum: int = INT64_MIN,
    maximum: int = INT64_MAX,
) -> int | None:
    value = _get(data, key, where, required=required)
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    # A string of at most 40 digits: int() of thousands of digits is slow (refused past 4300).
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,40}", value.strip())
    ):
        number = int(value)
    if number is None:
        raise _bad(f"{where}.{key}", "an integer", value)
    if not minimum <= number <= maximum:
        bits = "32" if maximum == INT32_MAX else "64"
        raise _bad(f"{where}.{key}", f"an integer from {minimum} to {maximum} ({bits} bits)", value)
    return number


@overload
def _str(
    data: Mapping[str, Any], key: str, where: str, *, required: Literal[True], digits: bool = ...
) -> str: ...
@overload
def _str(
    data: Mapping[str, Any], key: str, where: str, *, required: bool = ..., digits: bool = ...
) -> str | None: ...
def _str(
    data: Mapping[str, Any], key: str, where: str, *, required: bool = False, digits: bool = False
) -> str | None:
    value = _get(data, key, where, required=required)
    if value is None or isinstance(value, str):
        return value
    # Identifiers sent as JSON numbers (a msisdn, an mcc) are still identifiers: keep them as text.
    if digits and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _bad(f"{where}.{key}", "a string", value)


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _bool(data: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = _get(data, key, where, required=False)
    if value is None or isinstance(value, bool):
        return value
    # Laravel on MySQL often serialises booleans as 0/1.
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _bad(f"{where}.{key}", "true or false", value)


@overload
def _timestamp(
    data: Mapping[str, Any], key: str, where: str, *, required: Literal[True]
) -> datetime: ...
@overload
def _timestamp(
    data: Mapping[str, Any], key: str, where: str, *, required: bool = ...
) -> datetime | None: ...
def _timestamp(
    data: Mapping[str, Any], key: str, where: str, *, required: bool = False
) -> datetime | None:
    value = _get(data, key, where, required=required)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(f"{where}.{key}", "an ISO-8601 timestamp string", value)
    try:
        return parse_timestamp(value)
    except ValueError:
        raise _bad(f"{where}.{key}", "an ISO-8601 timestamp", value) from None


def _decimal(data: Mapping[str, Any], key: str, where: str) -> Decimal | None:
    value = _get(data, key, where, required=False)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _bad(f"{where}.{key}", "a decimal amount", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(f"{where}.{key}", "a finite decimal amount", value)
    try:
        # str() first: Decimal(0.1) would keep the float's binary noise.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise _bad(f"{where}.{key}", "a decimal amount", value) from None
    if not amount.is_finite():
        raise _bad(f"{where}.{key}", "a finite decimal amount", value)
    return amount


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = _get(data, key, where, required=True)
    if not isinstance(value, list):
        raise _bad(f"{where}.{key}", "a JSON array", value)
    return value


def _extra(data: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in known}


# --- models ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One check as listed or created (``source``/``user_cost`` only come with a creation)."""

    id: int
    type: str
    created_at: datetime
    source: str | None = None
    user_cost: Decimal | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset({"id", "type", "created_at", "source", "user_cost"})

    @classmethod
    def from_api(cls, data: Mapping[str, Any], *, where: str = "check") -> Check:
        data = _mapping(data, where)
        check_type = _str(data, "type", where, required=True)
        return cls(
            id=_int(data, "id", where, required=True, minimum=1),
            # A type this version does not know must not break a whole listing: keep it as sent.
            type=_CHECK_TYPES_BY_LOWER.get(check_type.lower(), check_type),
            created_at=_timestamp(data, "created_at", where, required=True),
            source=_str(data, "source", where),
            user_cost=_decimal(data, "user_cost", where),
            extra=_extra(data, cls._KNOWN),
        )


@dataclass(frozen=True)
class Pagination:
    current_page: int
    total_pages: int
    total: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset({"current_page", "total_pages", "total"})

    @classmethod
    def from_api(cls, data: Mapping[str, Any], *, where: str = "pagination") -> Pagination:
        data = _mapping(data, where)
        return cls(
            current_page=_int(data, "current_page", where, required=True),
            total_pages=_int(data, "total_pages", where, required=True),
            total=_int(data, "total", where, required=True),
            extra=_extra(data, cls._KNOWN),
        )


@dataclass(frozen=True)
class CheckPage:
    """One page of ``GET /api/checks``: newest first, 10 a page."""

    checks: list[Check]
    pagination: Pagination
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset({"checks", "pagination"})

    @classmethod
    def from_api(cls, data: Mapping[str, Any], *, where: str = "body") -> CheckPage:
        data = _mapping(data, where)
        items = _list(data, "checks", where)
        return cls(
            checks=[Check.from_api(c, where=f"checks[{i}]") for i, c in enumerate(items)],
            pagination=Pagination.from_api(
                _get(data, "pagination", where, required=True), where="pagination"
            ),
            extra=_extra(data, cls._KNOWN),
        )


@dataclass(frozen=True)
class HlrResult:
    """A live network lookup. Identifiers stay text: leading zeros (mnc "01") matter."""

    country_code: int | None = None
    country_name: str | None = None
    operator_name: str | None = None
    msisdn: str | None = None
    ported: bool | None = None
    reachable: bool | None = None
    valid_number: bool | None = None
    plmn: str | None = None
    mcc: str | None = None
    mnc: str | None = None
    imsi: str | None = None
    local_format: str | None = None
    msc: str | None = None
    original_operator_name: str | None = None
    number_requested: str | None = None
    created_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _STRINGS = ("country_name", "operator_name", "msc", "original_operator_name")
    #: Identifiers made of digits: a JSON number is accepted and turned into text.
    _DIGITS = ("msisdn", "plmn", "mcc", "mnc", "imsi", "local_format", "number_requested")
    _BOOLS = ("ported", "reachable", "valid_number")
    _KNOWN = frozenset({"country_code", "created_at", *_STRINGS, *_DIGITS, *_BOOLS})

    @classmethod
    def from_api(cls, data: Mapping[str, Any], *, where: str = "result") -> HlrResult:
        data = _mapping(data, where)
        values: dict[str, Any] = {k: _str(data, k, where) for k in cls._STRINGS}
        values.update({k: _str(data, k, where, digits=True) for k in cls._DIGITS})
        values.update({k: _bool(data, k, where) for k in cls._BOOLS})
        return cls(
            # An INTEGER column (a calling code has 1 to 3 digits).
            country_code=_int(data, "country_code", where, minimum=INT32_MIN, maximum=INT32_MAX),
            created_at=_timestamp(data, "created_at", where),
            extra=_extra(data, cls._KNOWN),
            **values,
        )


@dataclass(frozen=True)
class VerifyResult:
    """A validity/format check. The API sends more than these fields; they all stay in extra."""

    e164_format: str | None = None
    valid_number: bool | None = None
    number_carrier: str | None = None
    created_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset({"e164_format", "valid_number", "number_carrier", "created_at"})

    @classmethod
    def from_api(cls, data: Mapping[str, Any], *, where: str = "result") -> VerifyResult:
        data = _mapping(data, where)
        return cls(
            e164_format=_str(data, "e164_format", where, digits=True),
            valid_number=_bool(data, "valid_number", where),
            number_carrier=_str(data, "number_carrier", where),
            created_at=_timestamp(data, "created_at", where),
            extra=_extra(data, cls._KNOWN),
        )


_RESULT_MODELS: dict[str, type[HlrResult] | type[VerifyResult]] = {
    "HLR": HlrResult,
    "Verify": VerifyResult,
}


@dataclass(frozen=True)
class CheckResults:
    """``GET /api/checks/{id}/results`` (also embedded in a creation's answer)."""

    type: str
    results: list[HlrResult | VerifyResult]
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset({"type", "results"})

    @classmethod
    def from_api(cls, data: Mapping[str, Any], *, where: str = "body") -> CheckResults:
        data = _mapping(data, where)
        check_type = _api_check_type(_str(data, "type", where, required=True), f"{where}.type")
        model = _RESULT_MODELS[check_type]
        prefix = "results" if where == "body" else f"{where}.results"
        items = _list(data, "results", where)
        return cls(
            type=check_type,
            results=[model.from_api(r, where=f"{prefix}[{i}]") for i, r in enumerate(items)],
            extra=_extra(data, cls._KNOWN),
        )


@dataclass(frozen=True)
class CreatedCheck:
    """``POST /api/checks`` (201): the new check and its results, at once."""

    check: Check
    results: CheckResults
    message: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset({"check", "results", "message"})

    @classmethod
    def from_api(cls, data: Mapping[str, Any], *, where: str = "body") -> CreatedCheck:
        data = _mapping(data, where)
        return cls(
            check=Check.from_api(_get(data, "check", where, required=True), where="check"),
            results=CheckResults.from_api(
                _get(data, "results", where, required=True), where="results"
            ),
            message=_str(data, "message", where),
            extra=_extra(data, cls._KNOWN),
        )


__all__ = [
    "CHECK_TYPES",
    "Check",
    "CheckPage",
    "CheckResults",
    "CreatedCheck",
    "HlrResult",
    "Pagination",
    "VerifyResult",
    "canonical_check_type",
    "parse_timestamp",
]
