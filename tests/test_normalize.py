"""API models -> Arrow rows: exact schemas, nothing dropped, exact money, UTC, privacy first."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from api_reference import CREATE_201, HLR_RESULT

from numberyo_provider import schema
from numberyo_provider.api.models import Check, CheckResults, CreatedCheck
from numberyo_provider.errors import BadResponseError
from numberyo_provider.privacy import PrivacyPolicy
from numberyo_provider.sync.normalize import (
    empty_tables,
    extra_json,
    normalize_checks,
    normalize_created,
    phone_digits,
)

LOADED_AT = datetime(2025, 4, 1, 8, 0, tzinfo=UTC)


def _check(
    check_id: int, check_type: str, created_at: str = "2025-03-30T14:21:00.000000Z"
) -> Check:
    return Check.from_api({"id": check_id, "type": check_type, "created_at": created_at})


def _rows(tables: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return tables[name].to_pylist()


def test_created_hlr_check_matches_the_reference_example() -> None:
    tables = normalize_created(
        CreatedCheck.from_api(CREATE_201), "+32 456789023", load_id="load-1", loaded_at=LOADED_AT
    )
    for table in schema.DATA_TABLES:
        assert tables[table.name].schema.equals(table.schema, check_metadata=True)
    [check] = _rows(tables, "checks")
    assert check == {
        "check_id": 123,
        "type": "HLR",
        "source": "API",
        "user_cost": Decimal("1.0000"),
        "created_at": datetime(2025, 3, 30, 14, 10, 23, tzinfo=UTC),
        "phone_number": "32456789023",
        "extra": None,
        "_loaded_at": LOADED_AT,
        "_load_id": "load-1",
    }
    [hlr] = _rows(tables, "hlr_results")
    assert hlr["check_id"] == 123 and hlr["result_index"] == 0
    assert hlr["mnc"] == "01" and hlr["mcc"] == "206"  # identifiers stay text
    assert hlr["imsi"] == "206010000000000"
    assert hlr["ported"] is False and hlr["reachable"] is True
    assert hlr["created_at"] == datetime(2025, 3, 30, 12, 41, tzinfo=UTC)
    assert hlr["msc"] is None and hlr["extra"] is None
    assert _rows(tables, "verify_results") == []


def test_unknown_verify_fields_are_kept_in_extra_sorted_and_compact() -> None:
    results = CheckResults.from_api(
        {
            "type": "Verify",
            "results": [
                {
                    "e164_format": "+32456789023",
                    "valid_number": True,
                    "number_carrier": "Proximus",
                    "timezones": ["Europe/Brussels"],
                    "line_type": "mobile",
                    "country_name": "Belgique é",
                    "number_requested": "32456789023",
                }
            ],
        }
    )
    tables = normalize_checks([_check(7, "Verify")], {7: results}, load_id="l")
    [row] = _rows(tables, "verify_results")
    assert row["e164_format"] == "+32456789023"
    assert row["extra"] == (
        '{"country_name":"Belgique é","line_type":"mobile","number_requested":"32456789023",'
        '"timezones":["Europe/Brussels"]}'
    )
    [check] = _rows(tables, "checks")
    assert check["phone_number"] == "32456789023"


def test_phone_number_precedence() -> None:
    def verify(**fields: Any) -> CheckResults:
        return CheckResults.from_api({"type": "Verify", "results": [fields]})

    check = _check(1, "Verify")
    # The number as requested wins, then the results' number_requested, then e164 without '+'.
    by_request = normalize_checks(
        [check],
        {1: verify(e164_format="+111", number_requested="222")},
        load_id="l",
        phone_numbers={1: "+333"},
    )
    assert _rows(by_request, "checks")[0]["phone_number"] == "333"
    by_requested = normalize_checks(
        [check], {1: verify(e164_format="+111", number_requested="222")}, load_id="l"
    )
    assert _rows(by_requested, "checks")[0]["phone_number"] == "222"
    by_e164 = normalize_checks([check], {1: verify(e164_format="+111")}, load_id="l")
    assert _rows(by_e164, "checks")[0]["phone_number"] == "111"
    unknown = normalize_checks([check], {}, load_id="l")
    assert _rows(unknown, "checks")[0]["phone_number"] is None
    assert phone_digits(" +32 456 ") == "32456"


def test_check_without_results_still_gets_its_row() -> None:
    tables = normalize_checks([_check(5, "HLR"), _check(6, "CNAM")], {}, load_id="l")
    assert [r["check_id"] for r in _rows(tables, "checks")] == [5, 6]
    assert _rows(tables, "checks")[1]["type"] == "CNAM"
    assert tables["hlr_results"].num_rows == 0


def test_timestamps_are_utc_whatever_the_offset() -> None:
    check = _check(9, "HLR", "2025-03-30T16:21:00+02:00")
    results = CheckResults.from_api(
        {"type": "HLR", "results": [{**HLR_RESULT, "created_at": "2025-03-30T14:21:00-01:30"}]}
    )
    tables = normalize_checks([check], {9: results}, load_id="l")
    assert _rows(tables, "checks")[0]["created_at"] == datetime(2025, 3, 30, 14, 21, tzinfo=UTC)
    assert _rows(tables, "hlr_results")[0]["created_at"] == datetime(
        2025, 3, 30, 15, 51, tzinfo=UTC
    )


def test_money_is_exact() -> None:
    body = json.loads(json.dumps(CREATE_201))
    body["check"]["user_cost"] = "0.1235"
    tables = normalize_created(CreatedCheck.from_api(body), "32456789023", load_id="l")
    assert _rows(tables, "checks")[0]["user_cost"] == Decimal("0.1235")
    body["check"]["user_cost"] = "0.50000000"  # trailing zeros are not precision
    tables = normalize_created(CreatedCheck.from_api(body), "32456789023", load_id="l")
    assert _rows(tables, "checks")[0]["user_cost"] == Decimal("0.5")
    body["check"]["user_cost"] = "0.12345"
    with pytest.raises(BadResponseError, match="more than 4 decimals"):
        normalize_created(CreatedCheck.from_api(body), "32456789023", load_id="l")


def test_unknown_check_and_envelope_fields_are_kept() -> None:
    body = json.loads(json.dumps(CREATE_201))
    body["check"]["channel"] = "batch"
    body["results"]["provider"] = "x"
    body["request_id"] = "abc"
    tables = normalize_created(CreatedCheck.from_api(body), "32456789023", load_id="l")
    extra = json.loads(_rows(tables, "checks")[0]["extra"])
    assert extra == {
        "channel": "batch",
        "results_extra": {"provider": "x"},
        "response_extra": {"request_id": "abc"},
    }


def test_privacy_is_applied_before_anything_leaves() -> None:
    tables = normalize_created(
        CreatedCheck.from_api(CREATE_201),
        "32456789023",
        load_id="l",
        privacy=PrivacyPolicy(mode="mask"),
    )
    assert _rows(tables, "checks")[0]["phone_number"] == "32*******23"
    hlr = _rows(tables, "hlr_results")[0]
    assert hlr["msisdn"] == "32*******23"
    assert hlr["imsi"].startswith("20601") and "0000000000" not in hlr["imsi"]
    hashed = normalize_created(
        CreatedCheck.from_api(CREATE_201),
        "32456789023",
        load_id="l",
        privacy=PrivacyPolicy(mode="hmac", secret="s" * 32),
    )
    assert _rows(hashed, "checks")[0]["phone_number"].startswith("hmac:")


def test_multiple_results_are_indexed_in_order() -> None:
    results = CheckResults.from_api(
        {
            "type": "HLR",
            "results": [HLR_RESULT, {**HLR_RESULT, "msisdn": "32456789024", "extra_field": 1}],
        }
    )
    tables = normalize_checks([_check(3, "HLR")], {3: results}, load_id="l")
    rows = _rows(tables, "hlr_results")
    assert [(r["result_index"], r["msisdn"], r["extra"]) for r in rows] == [
        (0, "32456789023", None),
        (1, "32456789024", '{"extra_field":1}'),
    ]


def test_helpers() -> None:
    assert extra_json({}) is None
    assert extra_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert all(t.num_rows == 0 for t in empty_tables().values())
    with pytest.raises(ValueError, match="load_id"):
        normalize_checks([], {}, load_id="")
