"""Source values to E.164, validated and deduplicated, before any paid check."""

from __future__ import annotations

from decimal import Decimal

import pytest

from numberyo_provider.checks.numbers import (
    Deduplicator,
    E164Number,
    RejectedNumber,
    check_region,
    to_e164,
)
from numberyo_provider.errors import ConfigurationError

# (raw value, default_region, expected digits, expected region)
VALID = [
    # Belgium
    ("+32 456 78 90 23", None, "32456789023", "BE"),
    ("0456 78 90 23", "BE", "32456789023", "BE"),
    ("0032 456 78 90 23", None, "32456789023", "BE"),
    ("+32.456.78.90.23", None, "32456789023", "BE"),
    ("+32 (0)456 78 90 23", None, "32456789023", "BE"),
    ("  \t+32 456-78-90-23 \n", None, "32456789023", "BE"),
    ("\u00a0+32\u00a0456 78 90 23", None, "32456789023", "BE"),
    ("32456789023", "BE", "32456789023", "BE"),  # own country code in front of a national number
    # France
    ("+33 6 12 34 56 78", None, "33612345678", "FR"),
    ("06 12 34 56 78", "FR", "33612345678", "FR"),
    ("0033612345678", "DE", "33612345678", "FR"),  # 00 is international whatever the region
    # Germany
    ("+49 151 23456789", None, "4915123456789", "DE"),
    ("0151 23456789", "DE", "4915123456789", "DE"),
    ("030 1234567", "DE", "49301234567", "DE"),
    # United Kingdom
    ("+44 7400 123456", None, "447400123456", "GB"),
    ("07400 123456", "GB", "447400123456", "GB"),
    ("020 7946 0018", "gb", "442079460018", "GB"),  # region code is case-insensitive
    # United States
    ("+1 (201) 555-0123", None, "12015550123", "US"),
    ("(201) 555-0123", "US", "12015550123", "US"),
    ("1 201 555 0123", "US", "12015550123", "US"),
    ("011 32 456 78 90 23", "US", "32456789023", "BE"),  # the US international prefix
    # India
    ("+91 98765 43210", None, "919876543210", "IN"),
    ("98765 43210", "IN", "919876543210", "IN"),
    ("098765 43210", "IN", "919876543210", "IN"),
    # Brazil
    ("+55 11 91234-5678", None, "5511912345678", "BR"),
    ("(11) 91234-5678", "BR", "5511912345678", "BR"),
    # Bare E.164 digits (the API's own format) without a default region
    ("32456789023", None, "32456789023", "BE"),
    ("33612345678", None, "33612345678", "FR"),
    # Non-geographic numbers have no region
    ("+800 1234 5678", None, "80012345678", None),
]


@pytest.mark.parametrize(("raw", "region", "digits", "number_region"), VALID)
def test_valid_numbers_normalise_to_e164_digits(
    raw: str, region: str | None, digits: str, number_region: str | None
) -> None:
    result = to_e164(raw, region)
    assert isinstance(result, E164Number), result
    assert result.digits == digits
    assert result.e164 == "+" + digits
    assert result.region == number_region
    assert result.raw == raw  # the source value, untouched
    assert result.extension is None


# (raw value, default_region, a fragment the reason must contain)
INVALID = [
    (None, None, "empty"),
    ("", "BE", "empty"),
    ("   \t ", "BE", "empty"),
    ("hello", "BE", "not a phone number"),
    ("12", None, "not a phone number"),
    ("0456789023", None, "no country"),  # national number, no region to read it in
    ("32 456 78 90 23", None, "no country"),  # formatted without + and no region
    ("+32 456", None, "too short for region BE"),
    ("+32 456 78 90 23 45 67 89", None, "too long for region BE"),
    ("+1 201 555 01234", None, "too long for region US"),
    ("+44 20 7946 001", None, "invalid for region GB"),
    ("04567890231", "BE", "too long for region BE"),  # a mistyped national number
    ("+999 1234567", None, "not a phone number"),  # no such country code
    ("3.2456789023E+10", "BE", "scientific notation"),
    ("3.24568e10", None, "scientific notation"),
    ("12345", None, "read as international digits +12345"),
]


@pytest.mark.parametrize(("raw", "region", "fragment"), INVALID)
def test_invalid_values_are_rejected_with_a_reason(
    raw: str | None, region: str | None, fragment: str
) -> None:
    result = to_e164(raw, region)
    assert isinstance(result, RejectedNumber), result
    assert fragment in result.reason
    assert result.raw == ("" if raw is None else raw)


def test_national_number_depends_on_the_region() -> None:
    """One national string is a different number in each region: the region is never guessed."""
    be = to_e164("0456 78 90 23", "BE")
    fr = to_e164("0456 78 90 23", "FR")
    assert isinstance(be, E164Number) and isinstance(fr, E164Number)
    assert (be.digits, fr.digits) == ("32456789023", "33456789023")
    # A bare national number without a region is refused, not read in some default region.
    assert isinstance(to_e164("0456789023"), RejectedNumber)


def test_a_mistyped_national_number_is_not_reread_as_another_country() -> None:
    # "4567890231" is not a Belgian number; as +45... it would be a valid Danish one. With a
    # default region it is read as national only, so no stranger's number is charged.
    result = to_e164("4567890231", "BE")
    assert isinstance(result, RejectedNumber)
    assert "region BE" in result.reason


def test_duplicates_in_different_formats_give_the_same_digits() -> None:
    formats: list[object] = [
        "+32 456 78 90 23",
        "+32456789023",
        "0032456789023",
        "0032 456 78 90 23",
        "0456 78 90 23",
        "0456/78.90.23",
        "(0456) 78-90-23",
        "32456789023",
        32456789023,
        32456789023.0,
        3.2456789023e10,
        Decimal("32456789023"),
        "+32 456 78 90 23 ext. 12",
    ]
    results = [to_e164(raw, "BE") for raw in formats]
    assert all(isinstance(r, E164Number) for r in results), results
    assert {r.digits for r in results if isinstance(r, E164Number)} == {"32456789023"}


@pytest.mark.parametrize(
    ("raw", "digits", "extension"),
    [
        ("+1 201-555-0123 ext. 12", "12015550123", "12"),
        ("+32 456 78 90 23 x 5", "32456789023", "5"),
        ("+32 456 78 90 23;ext=77", "32456789023", "77"),
    ],
)
def test_extensions_are_stripped_and_kept_aside(raw: str, digits: str, extension: str) -> None:
    result = to_e164(raw)
    assert isinstance(result, E164Number)
    assert (result.digits, result.extension) == (digits, extension)


@pytest.mark.parametrize(
    ("raw", "digits", "raw_text"),
    [
        (32456789023, "32456789023", "32456789023"),
        (33612345678, "33612345678", "33612345678"),
        (3.2456789023e10, "32456789023", "32456789023.0"),
        (Decimal("32456789023"), "32456789023", "32456789023"),
        (Decimal("32456789023.000"), "32456789023", "32456789023.000"),
    ],
)
def test_numbers_stored_as_numbers(raw: object, digits: str, raw_text: str) -> None:
    result = to_e164(raw)
    assert isinstance(result, E164Number), result
    assert result.digits == digits
    assert result.raw == raw_text


def test_integers_with_a_region_are_national_numbers() -> None:
    # A spreadsheet drops the leading 0 of 0456789023; the region still reads it.
    result = to_e164(456789023, "BE")
    assert isinstance(result, E164Number)
    assert result.digits == "32456789023"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (3.5, "non-integral float"),
        (float("nan"), "non-integral float"),
        (float("inf"), "non-integral float"),
        (Decimal("32456789023.5"), "non-integral Decimal"),
        (Decimal("NaN"), "non-integral Decimal"),
        (-32456789023, "negative integer"),
        (-3.2456789023e10, "negative float"),
        (True, "not a string: bool"),
        (b"+32456789023", "not a string: bytes"),
        (["+32456789023"], "not a string: list"),
    ],
)
def test_values_of_other_types_are_rejected(raw: object, fragment: str) -> None:
    result = to_e164(raw)
    assert isinstance(result, RejectedNumber), result
    assert fragment in result.reason
    assert isinstance(result.raw, str)


def test_unknown_default_region_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="'XX'"):
        to_e164("+32456789023", "XX")
    with pytest.raises(ConfigurationError, match="'GB'"):
        to_e164("+32456789023", "UK")
    with pytest.raises(ConfigurationError, match="string"):
        to_e164("+32456789023", 32)  # type: ignore[arg-type]
    assert check_region(" be ") == "BE"
    assert check_region(None) is None


def test_the_cache_never_mixes_up_raw_values() -> None:
    """The outcome is cached per text; each result still carries its own raw value."""
    first = to_e164("32456789023")
    second = to_e164(32456789023)
    third = to_e164("32456789023", "FR")  # another region: not the BE answer from the cache
    assert isinstance(first, E164Number) and isinstance(second, E164Number)
    assert first.raw == second.raw == "32456789023"
    assert isinstance(third, RejectedNumber) and "region FR" in third.reason


def test_deduplicator_counts_each_number_once() -> None:
    dedup = Deduplicator()
    raws = ["+32 456 78 90 23", "0456789023", "+33 6 12 34 56 78", "0032456789023"]
    fresh = []
    for raw in raws:
        result = to_e164(raw, "BE")
        assert isinstance(result, E164Number)
        if not dedup.seen(result.digits):
            fresh.append(result.digits)
    assert fresh == ["32456789023", "33612345678"]
    assert len(dedup) == 2
    assert "32456789023" in dedup
    assert "32456789024" not in dedup


def test_deduplicator_keeps_text_that_is_not_e164_distinct() -> None:
    dedup = Deduplicator()
    assert dedup.seen("0123") is False
    assert dedup.seen("123") is False  # int("0123") == 123: must not collide
    assert dedup.seen("0123") is True
    assert dedup.seen("") is False
    assert dedup.seen("") is True
    assert len(dedup) == 3
