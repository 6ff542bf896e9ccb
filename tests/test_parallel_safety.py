"""`make test` runs the suite in pytest-xdist workers: each must get its own Airflow home and
metadata DB, whatever the environment says (``airflow_db`` resets that DB: sharing one made tests
fail with "no such table" while another worker was resetting it, and it must never be a real
deployment's DB)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import os

import pytest


@pytest.mark.parametrize("i", range(6))
def test_probe(i):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(os.path.join(os.environ["PROBE_OUT"], f"{worker}-{i}"), "w") as f:
        db_url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        f.write(db_url + "\\n" + os.environ["AIRFLOW_HOME"])
"""


@pytest.mark.slow
def test_each_worker_has_its_own_airflow_home_and_db(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(REPO / "tests" / "conftest.py", suite / "conftest.py")
    (suite / "test_probe.py").write_text(textwrap.dedent(PROBE))
    (suite / "pytest.ini").write_text("[pytest]\n")
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "PROBE_OUT": str(out),
        # A deployment's DB in the environment must not be what the tests reset.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow@prod-db/airflow",
        "AIRFLOW_HOME": str(tmp_path / "someones-airflow-home"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", str(suite)],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    seen: dict[str, set[tuple[str, str]]] = {}
    for probe in out.iterdir():
        worker = probe.name.rsplit("-", 1)[0]
        db_url, home = probe.read_text().splitlines()
        seen.setdefault(worker, set()).add((db_url, home))
    assert set(seen) == {"gw0", "gw1"}, seen
    [(db0, home0)], [(db1, home1)] = seen["gw0"], seen["gw1"]
    assert db0 != db1 and home0 != home1
    for db_url, home in ((db0, home0), (db1, home1)):
        assert db_url == f"sqlite:///{home}/airflow.db"
        assert "someones-airflow-home" not in home
