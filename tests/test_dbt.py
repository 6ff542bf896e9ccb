"""The dbt project in ``dbt/``: its sources follow ``schema.py``, and ``dbt build`` passes on a real
warehouse (a DuckDB file and a PostgreSQL database) with the latest-status mart giving the right
answer, while its data tests catch broken data.

dbt runs as a subprocess (``.venv/bin/dbt``) so each run reads its environment variables afresh;
its ``target/`` and ``logs/`` go to the test's tmp dir, never into the work tree.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest
import yaml

from numberyo_provider import schema
from numberyo_provider.warehouse import connect_warehouse

REPO = Path(__file__).resolve().parents[1]
DBT_DIR = REPO / "dbt"
DBT_SCHEMA = "analytics"
MART = "numberyo_number_status"
STAGING = ("stg_numberyo__checks", "stg_numberyo__hlr_results", "stg_numberyo__verify_results")

# --------------------------------------------------------------------------------------------
# Running dbt
# --------------------------------------------------------------------------------------------


def _dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    if not candidate.exists():
        pytest.skip(f"dbt is not installed next to {sys.executable}; install the `dbt` extra")
    return str(candidate)


@dataclass
class DbtRun:
    returncode: int
    output: str
    results: dict[str, str]  # unique_id -> status, from run_results.json / sources.json

    def failed(self) -> set[str]:
        return {uid for uid, status in self.results.items() if status in {"fail", "error"}}


def run_dbt(command: Sequence[str], work: Path, env: Mapping[str, str]) -> DbtRun:
    """Run ``dbt <command>`` on the project with ``work`` for target/ and logs/."""
    target = work / "target"
    args = [
        _dbt_executable(),
        *command,
        "--project-dir",
        str(DBT_DIR),
        "--profiles-dir",
        str(DBT_DIR),
        "--log-path",
        str(work / "logs"),
        "--no-use-colors",
    ]
    full_env = {
        **os.environ,
        "DBT_TARGET_PATH": str(target),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **env,
    }
    proc = subprocess.run(
        args, capture_output=True, text=True, env=full_env, timeout=240, check=False, cwd=work
    )
    output = proc.stdout + proc.stderr
    results: dict[str, str] = {}
    for name in ("run_results.json", "sources.json"):
        path = target / name
        if path.exists():
            for item in json.loads(path.read_text())["results"]:
                results[item["unique_id"]] = item["status"]
            path.unlink()  # the next command's results only
    return DbtRun(proc.returncode, output, results)


# --------------------------------------------------------------------------------------------
# A warehouse with realistic rows, built from schema.py
# --------------------------------------------------------------------------------------------


NOW = datetime.now(UTC).replace(microsecond=0)
LOAD_ID = "20250401T000000Z-sync-0001"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _check(check_id: int, typ: str, created: str, number: str | None, **extra: Any) -> dict:
    return {
        "check_id": check_id,
        "type": typ,
        "source": extra.pop("source", None),
        "user_cost": extra.pop("user_cost", None),
        "created_at": _at(created),
        "phone_number": number,
        "extra": json.dumps(extra) if extra else None,
    }


def _hlr(check_id: int, number: str | None, *, index: int = 0, **fields: Any) -> dict:
    row: dict[str, Any] = {f.name: None for f in schema.HLR_RESULTS.schema}
    row.update(check_id=check_id, result_index=index, number_requested=number, msisdn=number)
    row.update(fields)
    return row


def _verify(check_id: int, e164: str | None, *, index: int = 0, **fields: Any) -> dict:
    row: dict[str, Any] = {f.name: None for f in schema.VERIFY_RESULTS.schema}
    row.update(check_id=check_id, result_index=index, e164_format=e164)
    row["extra"] = json.dumps({"number_requested": (e164 or "").lstrip("+"), "line_type": "mobile"})
    row.update(fields)
    return row


BE, UK, DE, FR, NL, ES = (
    "32456789023",
    "447700900123",
    "4915112345678",
    "33612345678",
    "31612345678",
    "34612345678",
)

#: Several numbers, checked more than once over time, by both check types.
CHECKS = [
    # BE: HLR, then Verify later: status from the Verify, network facts from the HLR.
    _check(101, "HLR", "2025-03-01T09:00:00", BE, source="API", user_cost=Decimal("1.0000")),
    _check(105, "Verify", "2025-03-05T09:00:00", BE, source="API", user_cost=Decimal("0.2500")),
    # UK: two HLR checks; the newer one wins (reachable again, ported).
    _check(102, "HLR", "2025-03-02T09:00:00", UK),
    _check(106, "HLR", "2025-03-30T01:30:00.123456", UK),
    # DE: one Verify, synced from the history: the check itself does not know its number.
    _check(103, "Verify", "2025-03-03T09:00:00", None),
    # FR: an HLR whose number only the results name, formatted.
    _check(104, "HLR", "2025-03-04T09:00:00", None),
    # NL: the results answered 404, none loaded: it tells nothing about the number.
    _check(107, "HLR", "2025-03-07T09:00:00", NL),
    # ES: two checks at the same second: the higher id wins; 110 returned two results.
    _check(108, "Verify", "2025-03-08T09:00:00", ES, web_only_flag=True),
    _check(110, "HLR", "2025-03-08T09:00:00", ES),
]
HLR_RESULTS = [
    _hlr(
        101,
        BE,
        country_code=32,
        country_name="Belgium",
        operator_name="Proximus NV van publiek recht",
        ported=False,
        reachable=True,
        valid_number=True,
        plmn="20601",
        mcc="206",
        mnc="01",
        imsi="206010000000000",
        local_format="456789023",
        created_at=_at("2025-03-01T09:00:01"),
    ),
    _hlr(
        102,
        UK,
        country_code=44,
        country_name="United Kingdom",
        operator_name="EE",
        ported=False,
        reachable=False,
        valid_number=True,
    ),
    _hlr(
        106,
        UK,
        country_code=44,
        country_name="United Kingdom",
        operator_name="Vodafone UK",
        original_operator_name="EE",
        ported=True,
        reachable=True,
        valid_number=True,
        extra=json.dumps({"roaming": False}),
    ),
    _hlr(
        104,
        "+33 6 12 34 56 78",
        msisdn=FR,
        country_code=33,
        country_name="France",
        operator_name="Orange",
        ported=False,
        reachable=True,
        valid_number=True,
    ),
    _hlr(
        110,
        ES,
        index=0,
        country_code=34,
        country_name="Spain",
        operator_name="Movistar",
        ported=False,
        reachable=True,
        valid_number=True,
    ),
    _hlr(
        110,
        ES,
        index=1,
        country_code=34,
        country_name="Spain",
        operator_name="Ignored",
        ported=True,
        reachable=False,
        valid_number=False,
    ),
]
VERIFY_RESULTS = [
    _verify(105, "+" + BE, valid_number=True, number_carrier="Proximus"),
    _verify(103, "+" + DE, valid_number=False, number_carrier=None),
    _verify(108, "+" + ES, valid_number=False, number_carrier="Telefonica"),
]

#: What ``numberyo_number_status`` must say about these rows, worked out by hand.
EXPECTED_STATUS: dict[str, dict[str, Any]] = {
    BE: {
        "last_check_id": 105, "last_check_type": "Verify",
        "last_checked_at": datetime(2025, 3, 5, 9, 0), "valid_number": True,
        "operator_name": "Proximus", "reachable": True, "ported": False,
        "country_code": 32, "country_name": "Belgium", "last_hlr_check_id": 101,
        "first_checked_at": datetime(2025, 3, 1, 9, 0),
        "check_count": 2, "hlr_check_count": 1, "verify_check_count": 1,
    },
    UK: {
        "last_check_id": 106, "last_check_type": "HLR",
        "last_checked_at": datetime(2025, 3, 30, 1, 30, 0, 123456), "valid_number": True,
        "operator_name": "Vodafone UK", "reachable": True, "ported": True,
        "original_operator_name": "EE", "country_code": 44, "last_hlr_check_id": 106,
        "check_count": 2, "hlr_check_count": 2, "verify_check_count": 0,
        "last_verify_checked_at": None,
    },
    DE: {
        "last_check_id": 103, "last_check_type": "Verify", "valid_number": False,
        "operator_name": None, "reachable": None, "ported": None, "country_name": None,
        "last_hlr_check_id": None, "last_hlr_checked_at": None,
        "check_count": 1, "hlr_check_count": 0, "verify_check_count": 1,
    },
    FR: {
        "last_check_id": 104, "last_check_type": "HLR", "operator_name": "Orange",
        "country_name": "France", "check_count": 1,
    },
    ES: {
        "last_check_id": 110, "last_check_type": "HLR", "valid_number": True,
        "operator_name": "Movistar", "reachable": True, "ported": False,
        "last_hlr_checked_at": datetime(2025, 3, 8, 9, 0),
        "last_verify_checked_at": datetime(2025, 3, 8, 9, 0),
        "check_count": 2, "hlr_check_count": 1, "verify_check_count": 1,
    },
}  # fmt: skip


def _with_lineage(rows: Iterable[dict], loaded_at: datetime) -> list[dict]:
    return [{**row, "_loaded_at": loaded_at, "_load_id": LOAD_ID} for row in rows]


def sample_rows(loaded_at: datetime = NOW) -> dict[str, list[dict]]:
    return {
        "checks": _with_lineage(CHECKS, loaded_at),
        "hlr_results": _with_lineage(HLR_RESULTS, loaded_at),
        "verify_results": _with_lineage(VERIFY_RESULTS, loaded_at),
        "_loads": [
            {
                "load_id": LOAD_ID,
                "kind": "sync",
                "status": "committed",
                "started_at": loaded_at - timedelta(seconds=5),
                "finished_at": loaded_at,
                "files": json.dumps([]),
                "rows": json.dumps({"checks": len(CHECKS)}),
                "errors": json.dumps([{"check_id": 107, "status": 404}]),
            }
        ],
    }


def make_duckdb_warehouse(path: Path, rows: Mapping[str, list[dict]]) -> None:
    """The loader's own tables (``ensure_schema``), filled with ``rows`` as they are."""
    with connect_warehouse(f"duckdb:///{path}") as warehouse:
        warehouse.ensure_schema()
    con = duckdb.connect(str(path))
    try:
        for table, table_rows in rows.items():
            if not table_rows:
                continue
            names = list(table_rows[0])
            sql = (
                f"INSERT INTO {schema.SCHEMA_NAME}.{table} ({', '.join(names)}) "
                f"VALUES ({', '.join('?' for _ in names)})"
            )
            con.executemany(sql, [[row[n] for n in names] for row in table_rows])
    finally:
        con.close()


def _real_sync_module() -> ModuleType | None:
    try:
        module = importlib.import_module("numberyo_provider.sync")
    except ModuleNotFoundError as exc:
        if exc.name != "numberyo_provider.sync":
            raise
        return None
    return module if hasattr(module, "run_sync") else None


@dataclass
class Warehouse:
    path: Path
    by_real_sync: bool


@pytest.fixture(params=["real_sync", "hand_made"])
def synced_duckdb(tmp_path: Path, request: pytest.FixtureRequest) -> Warehouse:
    """A DuckDB warehouse file named like the demo's (``warehouse.duckdb``), made two ways:

    - ``real_sync``: ``numberyo_provider.sync.run_sync`` over the simulator (60 seeded checks);
      skipped while that module does not exist;
    - ``hand_made``: DDL derived from ``schema.py`` and hand-made rows (numbers checked repeatedly
      by both types) whose latest status is worked out by hand in ``EXPECTED_STATUS``.
    """
    path = tmp_path / "warehouse.duckdb"
    if request.param == "hand_made":
        make_duckdb_warehouse(path, sample_rows())
        return Warehouse(path, by_real_sync=False)
    sync = _real_sync_module()
    if sync is None:
        pytest.skip("numberyo_provider.sync.run_sync does not exist yet")
    factory = request.getfixturevalue("numberyo_simulator_factory")
    simulator = factory(seed_checks=60)
    sync.run_sync(
        warehouse=f"duckdb:///{path}",
        parquet_path=str(tmp_path / "parquet"),
        token=simulator.token,
        base_url=simulator.url,
    )
    return Warehouse(path, by_real_sync=True)


# --------------------------------------------------------------------------------------------
# Checks on what the warehouse holds after a build
# --------------------------------------------------------------------------------------------


def _fetch_dicts(cursor: Any, sql: str) -> list[dict[str, Any]]:
    cursor.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def assert_status_matches_hand_worked_answer(rows: list[dict[str, Any]]) -> None:
    by_number = {row["phone_number"]: row for row in rows}
    assert set(by_number) == set(EXPECTED_STATUS), "one row per number with results, NL excluded"
    for number, expected in EXPECTED_STATUS.items():
        got = {key: by_number[number][key] for key in expected}
        assert got == expected, number


def assert_status_consistent_with_sources(con: duckdb.DuckDBPyConnection) -> None:
    """Invariants any source data must satisfy, recomputed here from the source tables."""
    catalog = con.execute("select current_database()").fetchone()
    assert catalog is not None
    source = f'"{catalog[0]}".{schema.SCHEMA_NAME}'
    checks = _fetch_dicts(con, f"select * from {source}.checks")
    hlr = _fetch_dicts(con, f"select * from {source}.hlr_results")
    verify = _fetch_dicts(con, f"select * from {source}.verify_results")
    mart = _fetch_dicts(con, f"select * from {DBT_SCHEMA}.{MART}")

    def digits(value: str | None) -> str | None:
        cleaned = "".join(c for c in (value or "") if c.isdigit())
        return cleaned or None

    result_numbers: dict[int, str | None] = {}
    for result in sorted([*hlr, *verify], key=lambda r: -r["result_index"]):
        number = result.get("number_requested") or result.get("msisdn") or result.get("e164_format")
        result_numbers[result["check_id"]] = digits(number)
    latest: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for check in checks:
        if check["check_id"] not in result_numbers:
            continue
        number = digits(check["phone_number"]) or result_numbers[check["check_id"]]
        if number is None:
            continue
        counts[number] = counts.get(number, 0) + 1
        key = (check["created_at"], check["check_id"])
        if number not in latest or key > (latest[number]["created_at"], latest[number]["check_id"]):
            latest[number] = check
    by_number = {row["phone_number"]: row for row in mart}
    assert mart, "the mart is empty"
    assert set(by_number) == set(latest)
    assert len(mart) == len(by_number), "phone_number is unique"
    for number, check in latest.items():
        row = by_number[number]
        assert row["last_check_id"] == check["check_id"], number
        assert row["last_check_type"] == check["type"], number
        assert row["last_checked_at"] == check["created_at"].astimezone(UTC).replace(tzinfo=None)
        assert row["check_count"] == counts[number], number
        assert row["check_count"] == row["hlr_check_count"] + row["verify_check_count"]


def documented_columns() -> dict[str, list[str]]:
    documented: dict[str, list[str]] = {}
    for path in (DBT_DIR / "models").rglob("schema.yml"):
        for model in yaml.safe_load(path.read_text())["models"]:
            documented[model["name"]] = [c["name"] for c in model.get("columns", [])]
    return documented


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "numberyo_dbt_generate_sources", DBT_DIR / "generate_sources.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sources_yml_is_generated_from_schema() -> None:
    generator = _load_generator()
    committed = (DBT_DIR / "models" / "sources.yml").read_text(encoding="utf-8")
    assert committed == generator.render_sources(), (
        "dbt/models/sources.yml is stale: run `python dbt/generate_sources.py`"
    )
    assert generator.main(["--check"]) == 0


def test_sources_cover_every_schema_column_with_its_description() -> None:
    source = yaml.safe_load((DBT_DIR / "models" / "sources.yml").read_text())["sources"][0]
    assert source["schema"] == schema.SCHEMA_NAME
    assert source["config"]["loaded_at_field"] == "_loaded_at"
    tables = {t["name"]: t for t in source["tables"]}
    assert set(tables) == {"checks", "hlr_results", "verify_results", "other_results", "_loads"}
    for name, table in tables.items():
        expected = [(f.name, schema.description(f)) for f in schema.TABLES_BY_NAME[name].schema]
        got = [(c["name"], c["description"]) for c in table["columns"]]
        assert got == expected, name
        assert all(description for _, description in got), name


def test_generator_check_fails_on_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = _load_generator()
    stale = tmp_path / "sources.yml"
    stale.write_text(generator.render_sources().replace("NumberYo's check id.", "Old text."))
    monkeypatch.setattr(generator, "SOURCES_PATH", stale)
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert stale.read_text() == generator.render_sources()


def test_every_model_and_column_is_described() -> None:
    models = {p.stem for p in (DBT_DIR / "models").rglob("*.sql")}
    assert set(STAGING) | {MART} <= models
    described: dict[str, dict[str, Any]] = {}
    for path in (DBT_DIR / "models").rglob("schema.yml"):
        for model in yaml.safe_load(path.read_text())["models"]:
            described[model["name"]] = model
    assert set(described) == models
    for name, model in described.items():
        assert (model.get("description") or "").strip(), name
        assert model.get("columns"), name
        for column in model["columns"]:
            assert (column.get("description") or "").strip(), f"{name}.{column['name']}"


def test_models_use_only_portable_sql() -> None:
    """DuckDB-only functions would break the Postgres target; JSON access needs a macro."""
    forbidden = ("json_extract", "->>", "::", "strftime", "epoch_ms", "list_", "struct_")
    for path in (DBT_DIR / "models").rglob("*.sql"):
        text = path.read_text().lower()
        for token in forbidden:
            assert token not in text, f"{path.name} uses {token!r}"


def _dbt_dirs_in_tree() -> dict[str, float]:
    """Files under dbt/target and dbt/logs with their mtimes (a reader's own ``dbt build`` may
    have left some: the test must neither need nor touch them)."""
    return {
        str(p): p.stat().st_mtime
        for sub in ("target", "logs")
        for p in (DBT_DIR / sub).rglob("*")
        if p.is_file()
    }


@pytest.mark.slow
def test_dbt_build_on_a_synced_duckdb(synced_duckdb: Warehouse, tmp_path: Path) -> None:
    tree_before = _dbt_dirs_in_tree()
    env = {"NUMBERYO_DUCKDB_PATH": str(synced_duckdb.path), "TZ": "America/New_York"}
    build = run_dbt(["build"], tmp_path, env)
    assert build.returncode == 0, build.output
    assert build.results and not build.failed(), build.output
    tests = [uid for uid in build.results if uid.startswith("test.")]
    assert len(tests) >= 15, tests  # keys, accepted values, relationships, composite keys

    freshness = run_dbt(["source", "freshness"], tmp_path, env)
    assert freshness.returncode == 0, freshness.output
    assert set(freshness.results.values()) == {"pass"}, freshness.results
    assert len(freshness.results) == 4

    con = duckdb.connect(str(synced_duckdb.path), read_only=True)
    try:
        assert_status_consistent_with_sources(con)
        if not synced_duckdb.by_real_sync:
            assert_status_matches_hand_worked_answer(
                _fetch_dicts(con, f"select * from {DBT_SCHEMA}.{MART}")
            )
        # The documented columns are exactly the columns each model builds, in order.
        built: dict[str, list[str]] = {}
        for table, column in con.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = ? order by table_name, ordinal_position",
            [DBT_SCHEMA],
        ).fetchall():
            built.setdefault(table, []).append(column)
        assert built == documented_columns()
        types = {
            (table, column): data_type
            for table, column, data_type in con.execute(
                "select table_name, column_name, data_type from information_schema.columns "
                "where table_schema = ?",
                [DBT_SCHEMA],
            ).fetchall()
        }
        assert types["stg_numberyo__checks", "created_at"] == "TIMESTAMP"
        assert types["stg_numberyo__checks", "check_id"] == "BIGINT"
        for column in ("check_count", "hlr_check_count", "verify_check_count"):
            assert types[MART, column] == "BIGINT", column
        assert types[MART, "last_checked_at"] == "TIMESTAMP"
    finally:
        con.close()
    assert _dbt_dirs_in_tree() == tree_before, "dbt wrote into the work tree"


@pytest.mark.slow
def test_dbt_tests_catch_broken_data_and_stale_loads(tmp_path: Path) -> None:
    rows = sample_rows(loaded_at=NOW - timedelta(days=3))
    rows["_loads"][0]["finished_at"] = NOW - timedelta(days=10)
    rows["checks"].append(
        {**rows["checks"][0], "check_id": 999, "type": "Lookup", "phone_number": "+32 1"}
    )
    rows["hlr_results"].append({**rows["hlr_results"][0]})  # (101, 0) twice
    rows["verify_results"].append({**rows["verify_results"][0], "check_id": 4242})  # no check
    rows["hlr_results"].append({**rows["hlr_results"][0], "check_id": 105})  # under a Verify
    path = tmp_path / "broken.duckdb"
    make_duckdb_warehouse(path, rows)  # the loader declares no keys on DuckDB data tables
    env = {"NUMBERYO_DUCKDB_PATH": str(path)}

    build = run_dbt(["build"], tmp_path, env)
    assert build.returncode != 0
    failed = {uid.split(".")[2] for uid in build.failed()}
    assert any(
        name.startswith("accepted_values_stg_numberyo__checks_check_type") for name in failed
    )
    assert any(
        name.startswith("unique_combination_of_columns_stg_numberyo__hlr_results")
        for name in failed
    ), failed
    assert any(name.startswith("relationships_stg_numberyo__verify_results") for name in failed)
    assert "assert_results_match_check_type" in failed
    assert not any("verify_results_check_id__result_index" in n for n in failed), failed

    freshness = run_dbt(["source", "freshness"], tmp_path, env)
    statuses = {uid.rsplit(".", 1)[1]: status for uid, status in freshness.results.items()}
    assert statuses == {
        "checks": "warn",
        "hlr_results": "warn",
        "verify_results": "warn",
        "_loads": "error",
    }


def make_postgres_warehouse(url: str, rows: Mapping[str, list[dict]]) -> None:
    import sqlalchemy as sa

    with connect_warehouse(url) as warehouse:
        warehouse.ensure_schema()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            json_columns = {t.name: set(t.json_columns()) for t in schema.ALL_TABLES}
            for table, table_rows in rows.items():
                names = list(table_rows[0])
                values = ", ".join(
                    f"CAST(:{n} AS JSONB)" if n in json_columns[table] else f":{n}" for n in names
                )
                conn.execute(
                    sa.text(
                        f"INSERT INTO {schema.SCHEMA_NAME}.{table} ({', '.join(names)}) "
                        f"VALUES ({values})"
                    ),
                    table_rows,
                )
    finally:
        engine.dispose()


def _postgres_env(url: str) -> dict[str, str]:
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    return {
        "NUMBERYO_POSTGRES_HOST": parsed.host or "127.0.0.1",
        "NUMBERYO_POSTGRES_PORT": str(parsed.port or 5432),
        "NUMBERYO_POSTGRES_USER": parsed.username or "postgres",
        "NUMBERYO_POSTGRES_PASSWORD": parsed.password or "",
        "NUMBERYO_POSTGRES_DB": parsed.database or "",
        # A session time zone far from UTC: the models must not depend on it.
        "PGTZ": "Asia/Kolkata",
    }


@pytest.mark.slow
@pytest.mark.postgres
def test_dbt_build_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    import sqlalchemy as sa

    pytest.importorskip("dbt.adapters.postgres", reason="dbt-postgres is not installed")

    make_postgres_warehouse(postgres_url, sample_rows())
    env = _postgres_env(postgres_url)
    build = run_dbt(["build", "--target", "postgres"], tmp_path, env)
    assert build.returncode == 0, build.output
    assert build.results and not build.failed(), build.output

    freshness = run_dbt(["source", "freshness", "--target", "postgres"], tmp_path, env)
    assert freshness.returncode == 0, freshness.output
    assert set(freshness.results.values()) == {"pass"}, freshness.results

    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SET TIME ZONE 'Asia/Kolkata'"))
            result = conn.execute(sa.text(f"select * from {DBT_SCHEMA}.{MART}"))
            rows = [dict(row._mapping) for row in result]
            comment: str | None = conn.execute(
                sa.text("select obj_description(to_regclass(:name), 'pg_class')"),
                {"name": f"{DBT_SCHEMA}.{MART}"},
            ).scalar_one()
    finally:
        engine.dispose()
    assert_status_matches_hand_worked_answer(rows)
    assert comment and comment.startswith("The latest known status"), comment
