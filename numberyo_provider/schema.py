"""The warehouse model, once: Arrow schemas from which Parquet files, every backend's DDL and the
data dictionary in ``docs/`` are derived.

Every table lives in the ``numberyo`` schema (DuckDB and PostgreSQL schema; a prefix elsewhere).
Column comments are kept in the Arrow field metadata (``description``) so that DDL comments, docs
and dbt descriptions cannot drift from the code. A field whose metadata says ``logical: json`` is a
JSON document stored as text in Parquet and as the backend's JSON type in the warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_NAME = "numberyo"

#: Seconds resolution is not enough: the API sends microseconds ("2025-03-30T14:21:00.000000Z").
TIMESTAMP = pa.timestamp("us", tz="UTC")
#: ``user_cost`` comes as a string such as "1.00"; a decimal keeps it exact.
MONEY = pa.decimal128(18, 4)


def _f(
    name: str, typ: pa.DataType, description: str, *, nullable: bool = True, json: bool = False
) -> pa.Field:
    meta = {"description": description}
    if json:
        meta["logical"] = "json"
    return pa.field(name, typ, nullable=nullable, metadata=meta)


def _lineage() -> list[pa.Field]:
    return [
        _f(
            "_loaded_at",
            TIMESTAMP,
            "When the load that last wrote this row committed (UTC).",
            nullable=False,
        ),
        _f(
            "_load_id",
            pa.string(),
            "The load that last wrote this row; joins `_loads.load_id`.",
            nullable=False,
        ),
    ]


def _result_key() -> list[pa.Field]:
    """The key every results table shares: one row per result of a check."""
    return [
        _f(
            "check_id",
            pa.int64(),
            "The check these results belong to; joins `checks`.",
            nullable=False,
        ),
        _f(
            "result_index",
            pa.int32(),
            "Position of the result in the API's `results` list.",
            nullable=False,
        ),
    ]


@dataclass(frozen=True)
class Table:
    """One warehouse table: its Arrow schema, key and how it is landed."""

    name: str
    schema: pa.Schema
    primary_key: tuple[str, ...]
    description: str
    #: Landed as Parquet under ``<root>/<name>/`` (the data tables); bookkeeping tables are not.
    landed: bool = True

    def json_columns(self) -> list[str]:
        return [f.name for f in self.schema if (f.metadata or {}).get(b"logical") == b"json"]


CHECKS = Table(
    name="checks",
    description="One row per NumberYo check the account ran (HLR or Verify).",
    primary_key=("check_id",),
    schema=pa.schema(
        [
            _f("check_id", pa.int64(), "NumberYo's check id.", nullable=False),
            _f("type", pa.string(), "Check type: `HLR` or `Verify`.", nullable=False),
            _f(
                "source",
                pa.string(),
                "Where the check was created (`API`, dashboard, ...); only "
                "known for checks created through this package or when the API lists it.",
            ),
            _f(
                "user_cost",
                MONEY,
                "Credits the check cost; only known for checks created through "
                "this package or when the API lists it.",
            ),
            _f("created_at", TIMESTAMP, "When NumberYo created the check (UTC).", nullable=False),
            _f(
                "phone_number",
                pa.string(),
                "The number checked, digits without `+`, when known "
                "(from the request or the results' `number_requested`).",
            ),
            _f(
                "extra",
                pa.string(),
                "Fields the API sent for the check that this version does not "
                "model, as a JSON object (never dropped).",
                json=True,
            ),
            *_lineage(),
        ]
    ),
)

HLR_RESULTS = Table(
    name="hlr_results",
    description="HLR (live network lookup) results, one row per result of an HLR check.",
    primary_key=("check_id", "result_index"),
    schema=pa.schema(
        [
            *_result_key(),
            _f("country_code", pa.int32(), "Country calling code, e.g. 32 for Belgium."),
            _f("country_name", pa.string(), "Country name."),
            _f("operator_name", pa.string(), "Operator currently serving the number."),
            _f(
                "msisdn",
                pa.string(),
                "The MSISDN, digits as text (leading zeros matter). Personal "
                "data: see the privacy option.",
            ),
            _f("ported", pa.bool_(), "Whether the number was ported to another operator."),
            _f("reachable", pa.bool_(), "Whether the handset was reachable on the network."),
            _f("valid_number", pa.bool_(), "Whether the number is valid."),
            _f("plmn", pa.string(), "PLMN code (MCC + MNC), text."),
            _f("mcc", pa.string(), "Mobile country code, text (leading zeros matter)."),
            _f("mnc", pa.string(), "Mobile network code, text (leading zeros matter)."),
            _f("imsi", pa.string(), "IMSI, text. Personal data: see the privacy option."),
            _f("local_format", pa.string(), "The number in national format, text."),
            _f("msc", pa.string(), "Mobile switching centre, when the network tells."),
            _f("original_operator_name", pa.string(), "Operator before porting, when ported."),
            _f("number_requested", pa.string(), "The number as it was requested, digits."),
            _f("created_at", TIMESTAMP, "When NumberYo produced the result (UTC)."),
            _f(
                "extra",
                pa.string(),
                "Result fields this version does not model, as a JSON object.",
                json=True,
            ),
            *_lineage(),
        ]
    ),
)

VERIFY_RESULTS = Table(
    name="verify_results",
    description="Verify (validity and format) results, one row per result of a Verify check.",
    primary_key=("check_id", "result_index"),
    schema=pa.schema(
        [
            *_result_key(),
            _f("e164_format", pa.string(), "The number in E.164 format, with `+`."),
            _f("valid_number", pa.bool_(), "Whether the number is valid."),
            _f("number_carrier", pa.string(), "Carrier of the number."),
            _f("created_at", TIMESTAMP, "When NumberYo produced the result (UTC), when it says."),
            _f(
                "extra",
                pa.string(),
                "Every other field of the result (the API's Verify results "
                "carry more than the three documented ones), as a JSON object.",
                json=True,
            ),
            *_lineage(),
        ]
    ),
)

OTHER_RESULTS = Table(
    name="other_results",
    description="Results of checks whose type this version does not model (a type NumberYo added "
    "later, e.g. `Email`), kept whole as the API's JSON, one row per check; a later release that "
    "models the type reads them again into a typed table.",
    primary_key=("check_id",),
    schema=pa.schema(
        [
            _f(
                "check_id",
                pa.int64(),
                "The check these results belong to; joins `checks`.",
                nullable=False,
            ),
            _f("type", pa.string(), "The check type as the API spells it.", nullable=False),
            _f(
                "created_at",
                TIMESTAMP,
                "When NumberYo created the check (UTC), as listed.",
                nullable=False,
            ),
            _f(
                "results",
                pa.string(),
                "The whole answer of `GET /api/checks/{id}/results` (`type`, `results` and any "
                "other key), as a JSON object. NULL under the privacy modes `mask` and `hmac`: "
                "which of its fields are personal is unknown.",
                json=True,
            ),
            *_lineage(),
        ]
    ),
)

LOADS = Table(
    name="_loads",
    description="Load manifest: one row per sync or check run that wrote to the warehouse.",
    primary_key=("load_id",),
    landed=False,
    schema=pa.schema(
        [
            _f(
                "load_id",
                pa.string(),
                "Unique id of the load (also in every landed file name).",
                nullable=False,
            ),
            _f("kind", pa.string(), "What wrote it: `sync` or `check`.", nullable=False),
            _f(
                "status",
                pa.string(),
                "`committed` (the tables hold its rows) or `failed`.",
                nullable=False,
            ),
            _f("started_at", TIMESTAMP, "When the run started.", nullable=False),
            _f("finished_at", TIMESTAMP, "When the run committed or failed."),
            _f("files", pa.string(), "JSON list of the Parquet files the load landed.", json=True),
            _f("rows", pa.string(), "JSON object: rows written per table.", json=True),
            _f(
                "errors",
                pa.string(),
                "JSON list of per-check errors that were recorded, not fatal "
                "(e.g. a listed check whose results answered 404).",
                json=True,
            ),
            _f(
                "cleaned_at",
                TIMESTAMP,
                "For a failed load: when its landed files were deleted, by the failed run "
                "itself or by a later sync (NULL: not yet).",
            ),
        ]
    ),
)

SYNC_STATE = Table(
    name="_sync_state",
    description="Where the incremental sync stands: the newest check already loaded.",
    primary_key=("stream",),
    landed=False,
    schema=pa.schema(
        [
            _f("stream", pa.string(), "Which history: `checks`.", nullable=False),
            _f("watermark_check_id", pa.int64(), "Id of the newest check loaded."),
            _f("watermark_created_at", TIMESTAMP, "`created_at` of the newest check loaded."),
            _f("load_id", pa.string(), "The load that moved the watermark last.", nullable=False),
            _f("updated_at", TIMESTAMP, "When the watermark moved last.", nullable=False),
        ]
    ),
)

CHECK_REQUESTS = Table(
    name="check_requests",
    description="Request ledger of `numberyo check`: written before each paid POST and updated "
    "after it, so that no rerun charges a number twice.",
    primary_key=("request_id",),
    landed=False,
    schema=pa.schema(
        [
            _f(
                "request_id",
                pa.string(),
                "Stable id: hash of run id, check type and number.",
                nullable=False,
            ),
            _f("run_id", pa.string(), "The run (Airflow run id or CLI run name).", nullable=False),
            _f("phone_number", pa.string(), "E.164 digits without `+`, as sent.", nullable=False),
            _f("check_type", pa.string(), "`HLR` or `Verify`.", nullable=False),
            _f(
                "status",
                pa.string(),
                "`pending` (about to send or outcome unknown), `created`, "
                "`failed` or `not_checked`.",
                nullable=False,
            ),
            _f("check_id", pa.int64(), "The check created, once known."),
            _f("attempts", pa.int32(), "POSTs sent for this request.", nullable=False),
            _f("error", pa.string(), "Why it failed or was not checked."),
            _f("requested_at", TIMESTAMP, "When the row was first written.", nullable=False),
            _f("updated_at", TIMESTAMP, "When the row last changed.", nullable=False),
        ]
    ),
)

REJECTED_NUMBERS = Table(
    name="rejected_numbers",
    description="Source values that were never sent to the API because they are not valid "
    "phone numbers.",
    primary_key=("run_id", "raw_value"),
    landed=False,
    schema=pa.schema(
        [
            _f("run_id", pa.string(), "The run that read the value.", nullable=False),
            _f("raw_value", pa.string(), "The value as read from the source.", nullable=False),
            _f("reason", pa.string(), "Why it was rejected.", nullable=False),
            _f("rejected_at", TIMESTAMP, "When it was rejected.", nullable=False),
        ]
    ),
)

DATA_TABLES: tuple[Table, ...] = (CHECKS, HLR_RESULTS, VERIFY_RESULTS, OTHER_RESULTS)
ALL_TABLES: tuple[Table, ...] = (
    *DATA_TABLES,
    LOADS,
    SYNC_STATE,
    CHECK_REQUESTS,
    REJECTED_NUMBERS,
)
TABLES_BY_NAME = {t.name: t for t in ALL_TABLES}
RESULTS_TABLE_BY_TYPE = {"HLR": HLR_RESULTS, "Verify": VERIFY_RESULTS}


def description(field: pa.Field) -> str:
    text: bytes = (field.metadata or {}).get(b"description", b"")
    return text.decode()
