"""``make demo`` (``scripts/demo.py``) end to end, in a temporary work directory: it exits 0, and
what it reports is what the warehouse and the simulator hold, and what the generated contacts
should have produced (their truth is known: which rows are invalid, which numbers distinct).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "demo.py"


def _demo_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("numberyo_demo_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


def _clean_env() -> dict[str, str]:
    drop = ("AIRFLOW__", "AIRFLOW_CONN_", "NUMBERYO_", "DBT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.pop("AIRFLOW_HOME", None)
    return env


def test_contacts_are_messy_and_their_truth_is_what_the_checker_will_find() -> None:
    from numberyo_provider.checks.numbers import E164Number, to_e164

    demo = _demo_module()
    contacts = demo.make_contacts(300)
    truth = contacts.truth()
    assert truth["rows"] == 300
    valid: set[str] = set()
    invalid = 0
    for _, _, phone in contacts.rows:
        result = to_e164(phone, demo.DEFAULT_REGION)
        if isinstance(result, E164Number):
            valid.add(result.digits)
        else:
            invalid += 1
    assert valid == set(contacts.valid_numbers)
    assert invalid == truth["invalid_rows"] > 0
    assert truth["duplicate_rows"] > 0
    assert len({d[:2] for d in valid}) >= 8, "numbers from several countries"
    phones = [p for _, _, p in contacts.rows if p]
    assert any(p.startswith("00") for p in phones) and any("-" in p for p in phones)
    assert any(p.startswith("0") and not p.startswith("00") for p in phones), "national format"
    assert contacts.rows == demo.make_contacts(300).rows, "deterministic"


def test_real_api_needs_a_token(tmp_path: Path) -> None:
    proc = _run(["--real-api", "--workdir", str(tmp_path / "d")], _clean_env(), 60)
    assert proc.returncode == 2
    assert "NUMBERYO_API_TOKEN" in proc.stderr
    assert not (tmp_path / "d").exists(), "nothing is started or written"


def test_refuses_to_delete_a_directory_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    proc = _run(["--workdir", str(precious)], _clean_env(), 60)
    assert proc.returncode == 1
    assert "not made by the demo" in proc.stderr
    assert (precious / "thesis.tex").read_text() == "do not delete"


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        db = con.execute("SELECT current_database()").fetchall()[0][0]
        return con.execute(sql.format(nb=f'"{db}".numberyo', an=f'"{db}".analytics')).fetchall()
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_end_to_end(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env = _clean_env()
    # A token in the environment must not send the demo to the real API.
    env["NUMBERYO_API_TOKEN"] = "live-token-that-must-not-be-used"
    proc = _run(["--workdir", str(workdir)], env, 840)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "NOT used" in proc.stdout

    report = json.loads((workdir / "report.json").read_text())
    truth = report["generated"]
    demo = _demo_module()
    contacts = demo.make_contacts(truth["rows"])
    assert truth == contacts.truth()

    # What the contacts should have produced.
    assert report["source_rows"] == truth["rows"]
    assert report["rejected_rows"] == truth["invalid_rows"]
    assert report["checks_created"] == truth["distinct_valid_numbers"]
    assert Decimal(report["credits_spent"]) == truth["distinct_valid_numbers"]  # HLR: 1.00 each
    assert report["account_checks_before"] == demo.SIM_SEED_CHECKS
    assert report["account_checks_after"] == demo.SIM_SEED_CHECKS + report["checks_created"]

    # What the warehouse holds, asked independently of the demo's own queries.
    wh = Path(report["warehouse"])
    assert wh.parent == workdir
    created = {
        r[0]
        for r in _query(wh, "SELECT phone_number FROM {nb}.check_requests WHERE status = 'created'")
    }
    assert created == set(contacts.valid_numbers)
    total = demo.SIM_SEED_CHECKS + len(created)
    assert _query(wh, "SELECT count(*) FROM {nb}.checks") == [(total,)]
    assert report["tables"]["checks"] == total
    hlr_for_contacts = _query(
        wh,
        "SELECT count(DISTINCT r.check_id) FROM {nb}.hlr_results r JOIN {nb}.check_requests q "
        "ON q.check_id = r.check_id",
    )[0][0]
    assert hlr_for_contacts == len(created)
    mart = {r[0] for r in _query(wh, "SELECT phone_number FROM {an}.numberyo_number_status")}
    assert created <= mart
    assert report["models"]["numberyo_number_status"] == len(mart)
    by_country = report["reachable_by_country"]
    assert sum(row["numbers"] for row in by_country) == len(created)
    reachable = _query(
        wh,
        "SELECT count(*) FILTER (WHERE reachable) FROM {an}.numberyo_number_status "
        "WHERE phone_number IN (SELECT phone_number FROM {nb}.check_requests)",
    )[0][0]
    assert sum(row["reachable"] for row in by_country) == reachable
    kinds = [(load["kind"], load["status"]) for load in report["loads"]]
    assert kinds == [("sync", "committed"), ("check", "committed")]

    # The printed report shows those numbers, and every step was timed.
    out = proc.stdout
    assert f"checks created       {report['checks_created']:>7}" in out
    assert f"rejected             {report['rejected_rows']:>7}" in out
    assert set(report["timings_s"]) == {
        "Start the NumberYo simulator",
        f"Write {truth['rows']} messy contacts",
        "airflow db migrate (SQLite metadata)",
        "airflow dags test numberyo_sync",
        "airflow dags test numberyo_check_numbers",
        "airflow dags test numberyo_dbt",
        "Read the report back",
    }
    # The simulator was stopped: nothing of the demo keeps running.
    log = (workdir / "logs" / "simulator.log").read_text()
    assert "NumberYo simulator stopped" in log
