"""Privacy modes: exact masks, keyed pseudonyms that still join, clear configuration errors."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from numberyo_provider.errors import ConfigurationError
from numberyo_provider.privacy import (
    ENV_MODE,
    ENV_SECRET,
    PERSONAL_COLUMNS,
    PrivacyPolicy,
    mask_value,
)
from numberyo_provider.schema import CHECKS, HLR_RESULTS, VERIFY_RESULTS
from numberyo_provider.sync.land import ParquetLander

SECRET = "0123456789abcdef0123456789abcdef"


def hlr_rows() -> pa.Table:
    return pa.table(
        {
            "check_id": pa.array([1, 2, 3], pa.int64()),
            "result_index": pa.array([0, 0, 0], pa.int32()),
            "country_name": ["Belgium", "United States", None],
            "msisdn": ["32456789023", "12025550123", None],
            "mcc": ["206", "310", None],
            "mnc": ["01", "260", None],
            "imsi": ["206010000000000", "310260123456789", None],
            "local_format": ["456789023", "2025550123", None],
            "number_requested": ["32456789023", "12025550123", None],
        }
    )


@pytest.mark.parametrize(
    ("value", "kind", "mnc", "expected"),
    [
        ("32456789023", "international", None, "32*******23"),
        ("+32456789023", "international", None, "+32*******23"),
        ("+32 456 78 90 23", "international", None, "+32 *** ** ** 23"),
        ("12025550123", "international", None, "1********23"),
        ("35312345678", "international", None, "353******78"),
        ("456789023", "national", None, "*******23"),
        ("0456 78 90 23", "national", None, "**** ** ** 23"),
        ("206010000000000", "imsi", "01", "20601**********"),
        ("310260123456789", "imsi", "260", "310260*********"),
        ("310260123456789", "imsi", None, "31026**********"),
        ("123456", "international", None, "1*****"),  # too short to keep the tail
        ("123", "international", None, "***"),  # too short to keep anything
        ("unknown", "international", None, "*******"),
    ],
)
def test_mask_rules(value: str, kind: str, mnc: str | None, expected: str) -> None:
    assert mask_value(value, kind, mnc=mnc) == expected  # type: ignore[arg-type]


def test_keep_changes_nothing() -> None:
    data = hlr_rows()
    assert PrivacyPolicy().apply(HLR_RESULTS, data) is data


def test_mask_applies_to_every_personal_column_and_nothing_else() -> None:
    data = hlr_rows()
    out = PrivacyPolicy("mask").apply(HLR_RESULTS, data)
    assert out.column("msisdn").to_pylist() == ["32*******23", "1********23", None]
    assert out.column("number_requested").to_pylist() == ["32*******23", "1********23", None]
    assert out.column("local_format").to_pylist() == ["*******23", "********23", None]
    assert out.column("imsi").to_pylist() == ["20601**********", "310260*********", None]
    for name in ("check_id", "result_index", "country_name", "mcc", "mnc"):
        assert out.column(name).equals(data.column(name))
    assert out.schema.equals(data.schema)


def test_hmac_is_keyed_deterministic_and_joins_across_forms() -> None:
    policy = PrivacyPolicy("hmac", SECRET)
    hlr = policy.apply(HLR_RESULTS, hlr_rows())
    verify = policy.apply(
        VERIFY_RESULTS,
        pa.table({"check_id": [9], "result_index": [0], "e164_format": ["+32456789023"]}),
    )
    checks = policy.apply(CHECKS, pa.table({"check_id": [1], "phone_number": ["32456789023"]}))
    expected = "hmac:" + hmac.new(SECRET.encode(), b"32456789023", hashlib.sha256).hexdigest()
    assert hlr.column("msisdn")[0].as_py() == expected
    assert verify.column("e164_format")[0].as_py() == expected
    assert checks.column("phone_number")[0].as_py() == expected
    assert hlr.column("msisdn")[2].as_py() is None
    other = PrivacyPolicy("hmac", SECRET.upper()).apply(HLR_RESULTS, hlr_rows())
    assert other.column("msisdn")[0].as_py() != expected
    # Never the unkeyed hash.
    assert hashlib.sha256(b"32456789023").hexdigest() not in expected


def test_extra_json_keys_are_protected_and_unknown_keys_kept() -> None:
    extra = {
        "number_requested": "32456789023",
        "national_format": "0456 78 90 23",
        "international_format": "+32 456 78 90 23",
        "line_type": "mobile",
    }
    data = pa.table(
        {
            "check_id": [1, 2, 3],
            "result_index": [0, 0, 0],
            "extra": [json.dumps(extra), '{"line_type": "fixed"}', "not json, 32456789023"],
        }
    )
    out = PrivacyPolicy("mask").apply(VERIFY_RESULTS, data)
    first = json.loads(out.column("extra")[0].as_py())
    assert first == {
        "number_requested": "32*******23",
        "national_format": "**** ** ** 23",
        "international_format": "+32 *** ** ** 23",
        "line_type": "mobile",
    }
    assert out.column("extra")[1].as_py() == '{"line_type": "fixed"}'
    assert out.column("extra")[2].as_py() == "not json, 32456789023"
    hashed = json.loads(
        PrivacyPolicy("hmac", SECRET).apply(VERIFY_RESULTS, data)["extra"][0].as_py()
    )
    assert hashed["international_format"].startswith("hmac:")
    assert hashed["international_format"] == hashed["number_requested"]


@pytest.mark.parametrize("mode", ["mask", "hmac"])
def test_applying_twice_changes_nothing_more(mode: str) -> None:
    policy = PrivacyPolicy(mode, SECRET)  # type: ignore[arg-type]
    once = policy.apply(HLR_RESULTS, hlr_rows())
    assert policy.apply(HLR_RESULTS, once).equals(once)


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match=ENV_SECRET):
        PrivacyPolicy("hmac")
    with pytest.raises(ConfigurationError, match="at least 16"):
        PrivacyPolicy("hmac", "short")
    with pytest.raises(ConfigurationError, match="keep, mask, hmac"):
        PrivacyPolicy("scramble")  # type: ignore[arg-type]


def test_from_env() -> None:
    assert PrivacyPolicy.from_env({}).mode == "keep"
    assert PrivacyPolicy.from_env({ENV_MODE: " MASK "}).mode == "mask"
    policy = PrivacyPolicy.from_env({ENV_MODE: "hmac", ENV_SECRET: SECRET})
    assert policy.mode == "hmac"
    assert SECRET not in repr(policy)
    with pytest.raises(ConfigurationError, match=ENV_SECRET):
        PrivacyPolicy.from_env({ENV_MODE: "hmac"})


def test_protect_single_values() -> None:
    assert PrivacyPolicy("mask").protect("32456789023") == "32*******23"
    assert PrivacyPolicy().protect("32456789023") == "32456789023"
    assert PrivacyPolicy("mask").protect(None) is None


def test_every_personal_column_exists_in_the_schema() -> None:
    tables = {t.name: t for t in (CHECKS, HLR_RESULTS, VERIFY_RESULTS)}
    for table, columns in PERSONAL_COLUMNS.items():
        for column in columns:
            assert column in tables[table].schema.names


def test_masked_rows_land_without_the_clear_number(tmp_path: Path) -> None:
    data = PrivacyPolicy("mask").apply(
        HLR_RESULTS,
        hlr_rows().append_column(
            "created_at",
            pa.array([datetime(2025, 3, 30, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC")),
        ),
    )
    lander = ParquetLander(str(tmp_path), "load-1")
    lander.write(HLR_RESULTS, data)
    (f,) = lander.flush()
    landed = pq.read_table(f.path)
    text = json.dumps(landed.to_pylist(), default=str)
    assert "32456789023" not in text and "206010000000000" not in text
    assert landed.column("msisdn").to_pylist() == ["32*******23", "1********23", None]
