"""Phone-number hygiene before any money is spent: to E.164, validate and deduplicate.

Every paid check is for one number, so a value that is not a valid phone number, or the same number
written twice in different formats, must be caught here, for free. The rules:

* Strings are parsed by ``phonenumbers`` after stripping surrounding whitespace. Spaces, dots,
  dashes, parentheses, ``+``, a ``00`` international prefix (always read as international, in every
  region) and the default region's own international prefix (``011`` in the US) are understood.
* A national number (``0456 78 90 23``) needs ``default_region`` (ISO 3166-1 alpha-2, e.g. ``BE``).
* A bare run of digits without ``default_region`` is read as E.164 digits without ``+``
  (``32456789023``), the API's own format; with ``default_region`` it is read as a national number
  (``phonenumbers`` still recognises the region's own country code in front). A bare run starting
  with ``0`` and no ``default_region`` is rejected: it is a national number of an unknown country.
  We never guess a second reading when the first one is invalid: a mistyped national number can be
  a valid number of another country, and checking it would spend money on a stranger's number.
* Extensions (``ext. 12``, ``x 12``, ``;ext=12``) are stripped: the API checks the line, and two
  extensions of one line are one check. The extension is kept in :attr:`E164Number.extension`.
* Integers (a spreadsheet column stored as numbers) are read as bare digits. Floats and decimals are
  accepted only when integral (``3.2456789023e10``); any fraction is rejected. Strings in scientific
  notation (``3.24568E+10``) are rejected: spreadsheets round them, so digits may be lost.
* Only numbers that ``phonenumbers.is_valid_number`` accepts pass. The API is sent
  :attr:`E164Number.digits`: E.164 without ``+``.

:func:`to_e164` applies them to one value. Renamed in 0.2: ``normalize`` and ``NormalizedNumber``
still work until 0.3, with a DeprecationWarning ("normalize" now names only the sync's stage
from API models to Arrow tables).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from numberyo_provider.deprecation import warn_renamed
from numberyo_provider.errors import ConfigurationError

__all__ = [
    "CACHE_SIZE",
    "Deduplicator",
    "E164Number",
    "RejectedNumber",
    "check_region",
    "to_e164",
]

#: Distinct (value, region) pairs whose outcome is remembered (under 20 MB when full); bounded so
#: a 10-million-row source cannot grow it. Sources repeat numbers (one contact in several lists).
CACHE_SIZE = 65_536

_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d*)?[eE][+-]?\d+")
_NON_GEOGRAPHIC = frozenset({"001", "ZZ"})


@dataclass(frozen=True)
class E164Number:
    """A valid number, ready to be checked."""

    #: The value as read from the source, as text.
    raw: str
    #: E.164 with ``+``: ``+32456789023``.
    e164: str
    #: E.164 digits without ``+``: what the API is sent and the warehouse stores.
    digits: str
    #: ISO region of the number (``BE``), None for non-geographic numbers (``+800``).
    region: str | None
    #: An extension found in the value and stripped from :attr:`digits`.
    extension: str | None = None


@dataclass(frozen=True)
class RejectedNumber:
    """A source value that will not be sent to the API, and why (a sentence for humans)."""

    raw: str
    reason: str


@dataclass(frozen=True, slots=True)
class _Parsed:
    e164: str
    region: str | None
    extension: str | None


def check_region(default_region: str | None) -> str | None:
    """Validate ``default_region`` once, upper-cased; a typo must not reject a whole source."""
    if default_region is None:
        return None
    if not isinstance(default_region, str):
        raise ConfigurationError(
            f"default_region must be a string such as 'BE', not {type(default_region).__name__}"
        )
    region = default_region.strip().upper()
    if region in phonenumbers.SUPPORTED_REGIONS:
        return region
    hint = " (the United Kingdom is 'GB')" if region == "UK" else ""
    raise ConfigurationError(
        f"unknown default_region {default_region!r}{hint}: pass an ISO 3166-1 alpha-2 region code "
        "such as 'BE', 'FR' or 'US', or None when every number has a + or 00 prefix"
    )


def to_e164(raw: object, default_region: str | None = None) -> E164Number | RejectedNumber:
    """One source value as an E.164 number, or why it is not one; never raises for bad data, only
    for a bad ``default_region``."""
    region = check_region(default_region)
    text, rejection = _as_text(raw)
    raw_text = raw if isinstance(raw, str) else ("" if raw is None else str(raw))
    if rejection is not None:
        return RejectedNumber(raw=raw_text, reason=rejection)
    outcome = _parse_text(text, region)
    if isinstance(outcome, str):
        return RejectedNumber(raw=raw_text, reason=outcome)
    return E164Number(
        raw=raw_text,
        e164=outcome.e164,
        digits=outcome.e164[1:],
        region=outcome.region,
        extension=outcome.extension,
    )


def _as_text(raw: object) -> tuple[str, str | None]:
    """The text to parse, or a rejection reason for values that cannot be a phone number."""
    if raw is None:
        return "", "empty"
    if isinstance(raw, str):
        text = raw.strip()
        return text, (None if text else "empty")
    if isinstance(raw, bool):  # before int: bool is an int subclass
        return "", "not a string: bool"
    if isinstance(raw, int):
        if raw < 0:
            return "", "not a phone number: negative integer"
        return str(raw), None
    if isinstance(raw, (float, Decimal)):
        finite = raw.is_finite() if isinstance(raw, Decimal) else math.isfinite(raw)
        if not finite or raw != int(raw):
            return "", (
                f"not a phone number: non-integral {type(raw).__name__} {raw}; "
                "store phone numbers as text"
            )
        if raw < 0:
            return "", f"not a phone number: negative {type(raw).__name__}"
        return str(int(raw)), None
    return "", f"not a string: {type(raw).__name__}"


@lru_cache(maxsize=CACHE_SIZE)
def _parse_text(text: str, region: str | None) -> _Parsed | str:
    """Parse stripped, non-empty text; returns the parsed number or a rejection reason."""
    if _SCIENTIFIC.fullmatch(text):
        return (
            f"not a phone number: scientific notation {text!r} (a spreadsheet may have rounded "
            "away digits); export the column as text"
        )
    as_digits = False
    if text.startswith("00"):
        text = "+" + text[2:]
    elif region is None and text.isascii() and text.isdigit():
        if text.startswith("0"):
            return _NO_COUNTRY
        text = "+" + text
        as_digits = True
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        if (
            exc.error_type == NumberParseException.INVALID_COUNTRY_CODE
            and region is None
            and not text.startswith("+")
        ):
            return _NO_COUNTRY
        message = exc.args[0] if exc.args else str(exc)
        return f"not a phone number: {message}"
    if not phonenumbers.is_valid_number(number):
        reason = _invalid_reason(number)
        if as_digits:
            reason += (
                f" (read as international digits {text}; pass default_region=... if the source "
                "holds national numbers)"
            )
        return reason
    number_region = phonenumbers.region_code_for_number(number)
    return _Parsed(
        e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
        region=None if number_region in _NON_GEOGRAPHIC else number_region,
        extension=number.extension or None,
    )


_NO_COUNTRY = (
    "no country: national number without default_region; pass default_region=... "
    "(e.g. 'BE') or store numbers with a + or 00 prefix"
)


def _invalid_reason(number: phonenumbers.PhoneNumber) -> str:
    code = number.country_code or 0
    where = phonenumbers.region_code_for_country_code(code)
    target = f"region {where}" if where not in _NON_GEOGRAPHIC else f"country code +{code}"
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == ValidationResult.INVALID_COUNTRY_CODE or where == "ZZ":
        return f"invalid country code +{code}"
    if possible in (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        return f"too short for {target}"
    if possible == ValidationResult.TOO_LONG:
        return f"too long for {target}"
    if possible == ValidationResult.INVALID_LENGTH:
        return f"invalid length for {target}"
    return f"invalid for {target}"


class Deduplicator:
    """Remembers the numbers of one run so that each is checked (and paid for) once.

    Memory grows with the distinct numbers seen: E.164 digits never start with ``0``, so they are
    kept as Python ints (a 12-15 digit int is 32 bytes, plus about 30-60 bytes of set slot), about
    70-90 bytes per distinct number: ~80 MB per million, ~0.8 GB for ten million. Split bigger
    sources into shards (:mod:`numberyo_provider.checks.sharding`); each shard task deduplicates
    its own numbers, and a number always lands in the same shard.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: set[int | str] = set()

    @staticmethod
    def _key(digits: str) -> int | str:
        # A leading zero (not E.164) or non-digits would not survive int(): keep the text.
        if digits.isascii() and digits.isdigit() and not digits.startswith("0"):
            return int(digits)
        return digits

    def seen(self, digits: str) -> bool:
        """True if ``digits`` was already seen in this run; records it either way."""
        key = self._key(digits)
        if key in self._seen:
            return True
        self._seen.add(key)
        return False

    def __contains__(self, digits: object) -> bool:
        return isinstance(digits, str) and self._key(digits) in self._seen

    def __len__(self) -> int:
        return len(self._seen)


def normalize(raw: object, default_region: str | None = None) -> E164Number | RejectedNumber:
    """Deprecated: :func:`to_e164` (renamed in 0.2)."""
    warn_renamed("normalize", "to_e164", where=__name__)
    return to_e164(raw, default_region)


def __getattr__(name: str) -> object:
    if name == "NormalizedNumber":  # renamed in 0.2
        warn_renamed("NormalizedNumber", "E164Number", where=__name__)
        return E164Number
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
