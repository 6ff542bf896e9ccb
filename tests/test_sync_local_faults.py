"""Local faults of the Parquet landing during ``numberyo sync`` (and the operator): a directory
that is not writable, a regular file where the directory should be, a full disk. Each ends in one
line on stderr and exit 1, never a traceback; the warehouse is unchanged and no half-written file
is visible.

The faults are real where the machine allows it: permissions are enforced on a real directory
(as root, the child process drops the capabilities that bypass them with ``setpriv``), a full disk
is a 64 KiB tmpfs mounted for the test (needs root; skipped otherwise). The same ENOSPC is also
injected at the file-write boundary (``land._write_rows``) in-process, which runs everywhere.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from numberyo_provider.cli import main
from numberyo_provider.errors import LandingError
from numberyo_provider.schema import ALL_TABLES, SCHEMA_NAME
from numberyo_provider.sync import land

NUMBER = "32456789023"


def snapshot(wh: Path, *, committed_only: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the warehouse, sorted. ``committed_only`` leaves out the
    ``_loads`` rows of failed loads (a failed run's note, not data)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with duckdb.connect(str(wh), read_only=True) as con:
        for t in ALL_TABLES:
            sql = f'SELECT * FROM "{SCHEMA_NAME}"."{t.name}"'
            if committed_only and t.name == "_loads":
                sql += " WHERE status <> 'failed'"
            out[t.name] = sorted(con.execute(sql).fetchall(), key=repr)
    return out


def failed_loads(wh: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute(
            f'SELECT load_id, cleaned_at IS NOT NULL FROM "{SCHEMA_NAME}"."_loads" '
            "WHERE status = 'failed'"
        ).fetchall()


def visible_files(root: Path) -> list[str]:
    """Parquet files and temp files a reader of the landing could see."""
    if not root.is_dir():
        return []
    return sorted(
        glob.glob(str(root / "**" / "*.parquet"), recursive=True)
        + glob.glob(str(root / "**" / ".*.tmp"), recursive=True)
    )


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("numberyo sync: error: cannot write Parquet files under "), err
    return lines[0]


def sync_cli(
    server: Any, wh: Path, landing: Path, *, drop_privileges: bool = False
) -> subprocess.CompletedProcess[str]:
    """``numberyo sync`` in a child process. ``drop_privileges``: as root, without the
    capabilities that ignore file permissions, so a 0o555 directory really refuses writes."""
    cmd = [
        sys.executable,
        "-m",
        "numberyo_provider.cli",
        "sync",
        "--warehouse",
        f"duckdb:///{wh}",
        "--parquet-path",
        str(landing),
        "--no-progress",
        "--concurrency",
        "4",
    ]
    if drop_privileges and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permissions cannot be enforced")
        cmd = [
            setpriv,
            "--bounding-set=-dac_override,-dac_read_search,-fowner",
            "--inh-caps=-all",
            "--",
            *cmd,
        ]
    env = {**os.environ, "NUMBERYO_BASE_URL": server.url, "NUMBERYO_API_TOKEN": server.token}
    env.pop("NUMBERYO_PRIVACY_MODE", None)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def synced(
    numberyo_simulator_factory: Callable[..., Any], tmp_path: Path
) -> Iterator[tuple[Any, Path]]:
    """A warehouse holding a first sync of 30 checks, and 12 new checks waiting in the API."""
    server = numberyo_simulator_factory(seed_checks=30)
    wh = tmp_path / "wh.duckdb"
    first = sync_cli(server, wh, tmp_path / "good-landing")
    assert first.returncode == 0, first.stderr
    for t in ("HLR", "Verify") * 6:
        server.sim.create_check(server.token, NUMBER, t)
    yield server, wh


def api_requests(server: Any) -> int:
    return len(server.sim.requests())


@pytest.mark.slow
def test_parquet_path_that_is_a_regular_file(synced: tuple[Any, Path], tmp_path: Path) -> None:
    server, wh = synced
    before = snapshot(wh)
    landing = tmp_path / "landing-file"
    landing.write_text("not a directory")
    requests = api_requests(server)
    done = sync_cli(server, wh, landing)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"{landing} is a file, not a directory" in line
    assert "Nothing was committed" in line
    assert snapshot(wh) == before  # found before the warehouse was touched: not even a note
    assert api_requests(server) == requests  # and before any request
    assert landing.read_text() == "not a directory"


@pytest.mark.slow
def test_parquet_path_below_a_regular_file(synced: tuple[Any, Path], tmp_path: Path) -> None:
    server, wh = synced
    before = snapshot(wh)
    (tmp_path / "plain").write_text("x")
    done = sync_cli(server, wh, tmp_path / "plain" / "landing")
    assert done.returncode == 1
    assert f"{tmp_path / 'plain'} is a file, not a directory" in one_line(done.stderr)
    assert snapshot(wh) == before


@pytest.mark.slow
def test_parquet_path_not_writable(synced: tuple[Any, Path], tmp_path: Path) -> None:
    server, wh = synced
    before = snapshot(wh)
    landing = tmp_path / "locked"
    landing.mkdir()
    landing.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        done = sync_cli(server, wh, landing, drop_privileges=True)
    finally:
        landing.chmod(0o755)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"permission denied on {landing}" in line and "write access" in line
    assert snapshot(wh) == before
    assert visible_files(landing) == []


@pytest.mark.slow
def test_table_directory_not_writable_mid_run(synced: tuple[Any, Path], tmp_path: Path) -> None:
    """The root takes files (the early probe passes) but ``checks/`` does not: the run fails
    while landing, deletes what it landed and commits nothing."""
    server, wh = synced
    before = snapshot(wh, committed_only=True)
    landing = tmp_path / "landing"
    (landing / "checks").mkdir(parents=True)
    (landing / "checks").chmod(0o555)
    try:
        done = sync_cli(server, wh, landing, drop_privileges=True)
    finally:
        (landing / "checks").chmod(0o755)
    assert done.returncode == 1
    assert f"permission denied on {landing / 'checks'}" in one_line(done.stderr)
    assert snapshot(wh, committed_only=True) == before
    assert visible_files(landing) == []
    assert len(failed_loads(wh)) == 1  # the failed run noted, with no file to clean


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 8 KiB tmpfs (root only): two pages, less than one landed file of 600 checks."""
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None:
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "tiny"
    where.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


@pytest.mark.slow
def test_disk_full_for_real(
    numberyo_simulator_factory: Callable[..., Any], tmp_path: Path, tiny_disk: Path
) -> None:
    """ENOSPC from a real full file system (an 8 KiB tmpfs): 600 checks do not fit."""
    server = numberyo_simulator_factory(seed_checks=40)
    wh = tmp_path / "wh.duckdb"
    assert sync_cli(server, wh, tmp_path / "good").returncode == 0
    before = snapshot(wh, committed_only=True)
    server.sim.seed_checks(600)
    done = sync_cli(server, wh, tiny_disk)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"no space left on the disk holding {tiny_disk}" in line
    assert snapshot(wh, committed_only=True) == before
    assert visible_files(tiny_disk) == []


def test_disk_full_injected_at_the_write(
    numberyo_simulator_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ENOSPC injected at the file-write boundary (``land._write_rows``, monkeypatched): the
    third write of rows into a landing file fails as a full disk would. Runs without root."""
    server = numberyo_simulator_factory(seed_checks=40)
    wh = tmp_path / "wh.duckdb"
    landing = tmp_path / "landing"
    monkeypatch.setenv("NUMBERYO_BASE_URL", server.url)
    monkeypatch.setenv("NUMBERYO_API_TOKEN", server.token)
    monkeypatch.delenv("NUMBERYO_PRIVACY_MODE", raising=False)
    args = ["sync", "--warehouse", f"duckdb:///{wh}", "--parquet-path", str(landing)]
    assert main([*args, "--no-progress"]) == 0
    before = snapshot(wh, committed_only=True)
    server.sim.seed_checks(30)
    real_write = land._write_rows
    calls = {"n": 0}

    def write_until_full(writer: Any, data: Any) -> None:
        calls["n"] += 1
        if calls["n"] < 3:
            real_write(writer, data)
            return
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(landing))

    monkeypatch.setattr(land, "_write_rows", write_until_full)
    capsys.readouterr()
    code = main([*args, "--no-progress", "--full-refresh"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"no space left on the disk holding {landing}" in one_line(err)
    assert calls["n"] == 3
    assert snapshot(wh, committed_only=True) == before
    committed = json.loads(snapshot(wh, committed_only=True)["_loads"][0][5])
    assert sorted(visible_files(landing)) == sorted(committed)  # only the first load's files


@pytest.mark.slow
def test_the_operator_raises_the_same_error(
    numberyo_simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from numberyo_provider.operators.sync import NumberYoSyncOperator

    monkeypatch.setenv(
        "AIRFLOW_CONN_NUMBERYO_DEFAULT",
        json.dumps(
            {
                "conn_type": "numberyo",
                "host": numberyo_simulator.url,
                "password": numberyo_simulator.token,
            }
        ),
    )
    numberyo_simulator.sim.seed_checks(5)
    landing = tmp_path / "landing-file"
    landing.write_text("x")
    op = NumberYoSyncOperator(
        task_id="sync",
        warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}",
        parquet_path=str(landing),
    )
    with pytest.raises(LandingError, match="is a file, not a directory") as info:
        op.execute(context={})  # type: ignore[arg-type]
    assert info.value.errno in (errno.EEXIST, errno.ENOTDIR)
    assert not (tmp_path / "wh.duckdb").exists()


def test_the_error_travels_between_processes() -> None:
    """Airflow pickles task exceptions; the message and the errno survive."""
    import pickle

    error = LandingError.from_os_error(
        OSError(errno.ENOSPC, "No space left on device", "/data/pq/x"), "/data/pq"
    )
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.errno == errno.ENOSPC
    assert "no space left on the disk holding /data/pq" in str(copy)
