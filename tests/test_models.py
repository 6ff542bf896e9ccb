"""Parsing the API's JSON: the documented examples, unknown fields kept, bad shapes named."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from api_reference import CREATE_201, HLR_RESULT

from numberyo_provider.api.models import (
    Check,
    CheckPage,
    CheckResults,
    CreatedCheck,
    HlrResult,
    Pagination,
    VerifyResult,
    canonical_check_type,
    normalize_check_type,
    parse_timestamp,
)
from numberyo_provider.errors import BadResponseError, ConfigurationError

# The reference's examples, verbatim.
LIST_200: dict[str, Any] = {
    "checks": [{"id": 42, "type": "HLR", "created_at": "2025-03-30T14:21:00.000000Z"}],
    "pagination": {"current_page": 1, "total_pages": 4, "total": 32},
}


def test_list_example() -> None:
    page = CheckPage.from_api(LIST_200)
    assert page.checks == [
        Check(42, "HLR", datetime(2025, 3, 30, 14, 21, tzinfo=UTC)),
    ]
    assert page.pagination == Pagination(1, 4, 32)
    assert page.extra == {}


def test_create_example() -> None:
    created = CreatedCheck.from_api(CREATE_201)
    assert created.check == Check(
        id=123,
        type="HLR",
        created_at=datetime(2025, 3, 30, 14, 10, 23, tzinfo=UTC),
        source="API",
        user_cost=Decimal("1.00"),
    )
    assert created.message == "Check successfully created."
    assert created.extra == {"status": True}
    [hlr] = created.results.results
    assert isinstance(hlr, HlrResult)
    assert (hlr.mnc, hlr.mcc, hlr.plmn, hlr.imsi) == ("01", "206", "20601", "206010000000000")
    assert (hlr.ported, hlr.reachable, hlr.valid_number) == (False, True, True)
    assert hlr.msc is None and hlr.original_operator_name is None
    assert hlr.created_at == datetime(2025, 3, 30, 12, 41, tzinfo=UTC)
    assert hlr.extra == {}


def test_verify_example_keeps_the_unknown() -> None:
    raw: dict[str, Any] = {
        "type": "Verify",
        "results": [
            {
                "e164_format": "+32456789023",
                "valid_number": True,
                "number_carrier": "Proximus NV van publiek recht",
                "number_requested": "32456789023",
                "line_type": "mobile",
                "timezones": ["Europe/Brussels"],
            }
        ],
        "meta": {"v": 2},
    }
    results = CheckResults.from_api(raw)
    [verify] = results.results
    assert isinstance(verify, VerifyResult)
    assert verify.e164_format == "+32456789023" and verify.valid_number is True
    assert verify.created_at is None
    assert verify.extra == {
        "number_requested": "32456789023",
        "line_type": "mobile",
        "timezones": ["Europe/Brussels"],
    }
    assert results.extra == {"meta": {"v": 2}}


def test_unknown_fields_everywhere_are_kept() -> None:
    raw = copy.deepcopy(CREATE_201)
    raw["request_id"] = "r-1"
    raw["check"]["risk"] = {"score": 0.2}
    raw["results"]["provider"] = "x"
    raw["results"]["results"][0]["roaming"] = False
    created = CreatedCheck.from_api(raw)
    assert created.extra == {"status": True, "request_id": "r-1"}
    assert created.check.extra == {"risk": {"score": 0.2}}
    assert created.results.extra == {"provider": "x"}
    assert created.results.results[0].extra == {"roaming": False}
    listing = copy.deepcopy(LIST_200)
    listing["links"] = {"next": None}
    listing["pagination"]["per_page"] = 10
    page = CheckPage.from_api(listing)
    assert page.extra == {"links": {"next": None}} and page.pagination.extra == {"per_page": 10}


def test_extra_is_a_copy() -> None:
    raw = {"id": 1, "type": "HLR", "created_at": "2025-03-30T14:10:23Z", "x": 1}
    check = Check.from_api(raw)
    raw["x"] = 2
    assert check.extra == {"x": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-30T14:21:00.000000Z", datetime(2025, 3, 30, 14, 21, tzinfo=UTC)),
        ("2025-03-30T14:10:23Z", datetime(2025, 3, 30, 14, 10, 23, tzinfo=UTC)),
        ("2025-03-30T14:10:23.5Z", datetime(2025, 3, 30, 14, 10, 23, 500000, UTC)),
        ("2025-03-30T14:10:23.123456789Z", datetime(2025, 3, 30, 14, 10, 23, 123456, UTC)),
        ("2025-03-30T16:10:23+02:00", datetime(2025, 3, 30, 14, 10, 23, tzinfo=UTC)),
        ("2025-03-30 14:10:23", datetime(2025, 3, 30, 14, 10, 23, tzinfo=UTC)),
        ("2025-03-30T14:10", datetime(2025, 3, 30, 14, 10, tzinfo=UTC)),
    ],
)
def test_timestamps(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected and parsed.tzinfo is UTC


def test_tolerated_variants() -> None:
    raw = dict(HLR_RESULT, msisdn=32456789023, country_code="32", ported=0, reachable="true")
    hlr = HlrResult.from_api(raw)
    assert hlr.msisdn == "32456789023" and hlr.country_code == 32
    assert hlr.ported is False and hlr.reachable is True
    check = Check.from_api({"id": "7", "type": "verify", "created_at": "2025-03-30T14:10:23Z"})
    assert (check.id, check.type) == (7, "Verify")
    # A type this version does not know does not break a listing.
    assert Check.from_api({"id": 8, "type": "CNAM", "created_at": "2025-03-30T14:10:23Z"}).type == (
        "CNAM"
    )
    cost = Check.from_api(
        {"id": 1, "type": "HLR", "created_at": "2025-03-30T14:10:23Z", "user_cost": 0.1}
    ).user_cost
    assert cost == Decimal("0.1")
    assert HlrResult.from_api({}) == HlrResult()  # every result field is optional


@pytest.mark.parametrize(
    ("model", "raw", "match"),
    [
        (Check, {"type": "HLR", "created_at": "2025-03-30T14:10:23Z"}, "required field 'id'"),
        (Check, {"id": None, "type": "HLR", "created_at": "x"}, "required field 'id'"),
        (Check, {"id": True, "type": "HLR", "created_at": "2025-03-30T14:10:23Z"}, "check.id"),
        (Check, {"id": 1.5, "type": "HLR", "created_at": "2025-03-30T14:10:23Z"}, "an integer"),
        (Check, {"id": 1, "type": 3, "created_at": "2025-03-30T14:10:23Z"}, "check.type"),
        (Check, {"id": 1, "type": "HLR", "created_at": 1711807823}, "check.created_at"),
        (Check, {"id": 1, "type": "HLR", "created_at": "2025-02-30T00:00:00Z"}, "ISO-8601"),
        (
            Check,
            {"id": 1, "type": "HLR", "created_at": "2025-03-30T14:10:23Z", "user_cost": "NaN"},
            "finite",
        ),
        (
            Check,
            {"id": 1, "type": "HLR", "created_at": "2025-03-30T14:10:23Z", "user_cost": "1,00"},
            "check.user_cost: expected a decimal amount",
        ),
        (Pagination, {"current_page": 1, "total_pages": 1}, "required field 'total'"),
        (HlrResult, {"ported": "maybe"}, "result.ported: expected true or false"),
        (HlrResult, {"ported": 2}, "result.ported"),
        (HlrResult, {"mnc": 1.5}, "result.mnc: expected a string"),
        (VerifyResult, "not an object", "result: expected a JSON object"),
        (CheckResults, {"type": "HLR"}, "required field 'results'"),
        (CheckResults, {"type": "HLR", "results": [1]}, r"results\[0\]: expected a JSON object"),
        (CreatedCheck, {"check": CREATE_201["check"]}, "required field 'results'"),
    ],
)
def test_bad_shapes_name_the_field(model: Any, raw: Any, match: str) -> None:
    with pytest.raises(BadResponseError, match=match):
        model.from_api(raw)


def test_check_types() -> None:
    assert canonical_check_type(" hlr ") == "HLR"
    assert canonical_check_type("VERIFY") == "Verify"
    with pytest.raises(ConfigurationError, match="use one of HLR, Verify"):
        canonical_check_type("lookup")


def test_the_old_name_of_canonical_check_type_still_works_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="use canonical_check_type"):
        assert normalize_check_type(" hlr ") == "HLR"
