"""Files holding numbers in clear are born 0600 (directories 0700), unless the umask is stricter.

Real components: a SQLite ledger file, a DuckDB warehouse file, Parquet landed on a local disk, and
``numberyo check`` in a real process against the simulator.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from numberyo_provider.checks.ledger import Ledger
from numberyo_provider.private_files import (
    create_private_file,
    create_private_with,
    make_private_dirs,
    private_umask,
)
from numberyo_provider.warehouse import connect_warehouse


@pytest.fixture
def umask() -> Iterator[Any]:
    """Set the process umask for the test; the old one comes back afterwards."""
    old = os.umask(0o022)

    def set_to(value: int) -> None:
        os.umask(value)

    yield set_to
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# (umask, file mode, directory mode)
UMASKS = [(0o022, 0o600, 0o700), (0o077, 0o600, 0o700), (0o277, 0o400, 0o500)]


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), UMASKS, ids=lambda v: oct(v))
def test_the_helpers_give_private_modes_and_a_stricter_umask_wins(
    tmp_path: Path, umask: Any, mask: int, file_mode: int, dir_mode: int
) -> None:
    umask(mask)
    make_private_dirs(tmp_path / "a" / "b" / "c")
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [dir_mode] * 3
    assert create_private_file(tmp_path / "f") is True
    assert mode(tmp_path / "f") == file_mode
    assert create_private_file(tmp_path / "f") is False  # exists: left alone

    def build(path: str) -> None:
        Path(path).write_text("x")

    assert create_private_with(str(tmp_path / "g"), build) is True
    assert mode(tmp_path / "g") == file_mode and (tmp_path / "g").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "f", "g"]  # no scratch left


def test_existing_files_and_directories_are_not_chmodded(tmp_path: Path, umask: Any) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    ledger_file = folder / "ledger.sqlite"
    ledger_file.touch()
    os.chmod(ledger_file, 0o644)
    with Ledger(f"sqlite:///{ledger_file}") as ledger:
        ledger.mark_pending("run", "HLR", [("r1", "32456000001")])
    assert mode(ledger_file) == 0o644 and mode(folder) == 0o755
    make_private_dirs(folder / "sub")
    assert mode(folder) == 0o755 and mode(folder / "sub") == 0o700


@pytest.mark.parametrize("mask", [0o022, 0o077], ids=oct)
def test_the_sqlite_ledger_and_its_wal_and_shm_are_private(
    tmp_path: Path, umask: Any, mask: int
) -> None:
    umask(mask)
    path = tmp_path / "private" / "deep" / "ledger.sqlite"
    with Ledger(f"sqlite:///{path}") as ledger:
        ledger.mark_pending("run", "HLR", [("r1", "32456000001")])
        # While the ledger is open, SQLite keeps its WAL and shared-memory files beside it.
        sidecars = [path.with_name(path.name + s) for s in ("-wal", "-shm")]
        assert all(p.exists() for p in sidecars)
        assert [mode(p) for p in (path, *sidecars)] == [0o600] * 3
    assert mode(tmp_path / "private") == 0o700 and mode(path.parent) == 0o700


@pytest.mark.parametrize("mask", [0o022, 0o077], ids=oct)
def test_the_duckdb_warehouse_file_and_spill_directory_are_private(
    tmp_path: Path, umask: Any, mask: int
) -> None:
    umask(mask)
    path = tmp_path / "wh" / "warehouse.duckdb"
    with connect_warehouse(f"duckdb:///{path}") as wh:
        wh.ensure_schema()
        with wh.connection():
            spill = Path(f"{path}.tmp")
            assert spill.is_dir() and mode(spill) == 0o700
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert not spill.exists()  # ours, empty: removed again
    with duckdb.connect(str(path), read_only=True) as con:  # a real DuckDB file
        assert con.execute("SELECT count(*) FROM numberyo.checks").fetchone() == (0,)


@pytest.mark.parametrize("mask", [0o022, 0o077], ids=oct)
def test_landed_parquet_files_and_their_directories_are_private(
    tmp_path: Path, umask: Any, mask: int
) -> None:
    import pyarrow as pa

    from numberyo_provider.schema import HLR_RESULTS
    from numberyo_provider.sync.land import ParquetLander

    umask(mask)
    root = tmp_path / "landing"
    lander = ParquetLander(str(root), "load-1")
    created = datetime(2025, 3, 30, tzinfo=UTC)
    lander.write(
        HLR_RESULTS,
        pa.table(
            {
                "check_id": [1],
                "result_index": [0],
                "msisdn": ["32456789023"],
                "created_at": pa.array([created], pa.timestamp("us", tz="UTC")),
            }
        ),
    )
    (landed,) = lander.flush()
    tree = [root, *root.rglob("*")]
    assert Path(landed.path) in tree
    assert {str(p): oct(mode(p)) for p in tree if p.is_file()} == {landed.path: oct(0o600)}
    assert {oct(mode(p)) for p in tree if p.is_dir()} == {oct(0o700)}


def test_an_existing_duckdb_file_keeps_its_mode(tmp_path: Path, umask: Any) -> None:
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    os.chmod(path, 0o640)
    with connect_warehouse(f"duckdb:///{path}") as wh:
        wh.ensure_schema()
    assert mode(path) == 0o640


def test_without_hard_links_the_file_is_made_private_before_use(
    tmp_path: Path, umask: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: str, dst: str) -> None:
        raise PermissionError("this filesystem has no hard links")

    monkeypatch.setattr(os, "link", no_link)
    target = tmp_path / "warehouse.duckdb"
    with connect_warehouse(f"duckdb:///{target}") as wh:
        wh.ensure_schema()
    assert mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]


def test_private_umask_adds_077_keeps_a_stricter_one_and_restores(umask: Any) -> None:
    umask(0o002)
    with private_umask():
        assert os.umask(0o077) == 0o077
    assert os.umask(0o272) == 0o002
    with private_umask():
        assert os.umask(0o277) == 0o277
    assert os.umask(0o022) == 0o272


@pytest.mark.slow
def test_numberyo_check_leaves_only_private_files_with_a_permissive_umask(
    numberyo_simulator: Any, tmp_path: Path
) -> None:
    """A real process with umask 022: warehouse, ledger (and sidecars), landing tree."""
    source = tmp_path / "crm.duckdb"
    with duckdb.connect(str(source)) as con:
        con.execute("CREATE TABLE contacts (phone VARCHAR)")
        con.executemany(
            "INSERT INTO contacts VALUES (?)", [(f"+3245600{i:04d}",) for i in range(30)]
        )
    out = tmp_path / "out"
    env = {
        **os.environ,
        "NUMBERYO_BASE_URL": numberyo_simulator.url,
        "NUMBERYO_API_TOKEN": numberyo_simulator.token,
    }
    env.pop("NUMBERYO_PRIVACY_MODE", None)
    command = [
        sys.executable, "-m", "numberyo_provider.cli", "check",
        "--source", f"duckdb:///{source}", "--table", "contacts", "--column", "phone",
        "--type", "hlr", "--no-progress",
        "--warehouse", f"duckdb:///{out / 'db' / 'wh.duckdb'}",
        "--parquet-path", str(out / "landing"),
    ]  # fmt: skip
    done = subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$@"', "sh", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    created = [out, *out.rglob("*")]
    files = [p for p in created if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(
        p.name.endswith(".ledger.sqlite") for p in files
    )
    wrong = {str(p): oct(mode(p)) for p in files if mode(p) != 0o600}
    wrong |= {str(p): oct(mode(p)) for p in created if p.is_dir() and mode(p) != 0o700}
    assert wrong == {}
