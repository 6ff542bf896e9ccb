"""``numberyo simulate --write-contacts``: the quick start's source table, shared with ``make
demo``; written whole or not at all, never over an existing file."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from numberyo_provider.cli import main
from numberyo_provider.simulator import contacts as sample


def _rows(path: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT * FROM contacts ORDER BY contact_id").fetchall()
    finally:
        con.close()


def test_writes_the_demo_contacts_and_exits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "contacts.duckdb"
    assert main(["simulate", "--write-contacts", str(path)]) == 0
    assert _rows(path) == sample.make_contacts().rows
    out = capsys.readouterr().out
    assert "Wrote 300 contacts" in out and "225 distinct numbers" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contacts.duckdb"], "no leftovers"


def test_never_overwrites_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "crm.duckdb"
    path.write_bytes(b"someone's data")
    assert main(["simulate", "--write-contacts", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("numberyo simulate: ") and "already exists" in err
    assert err.count("\n") == 1, "one line"
    assert path.read_bytes() == b"someone's data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crm.duckdb"]


def test_a_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "contacts.duckdb"
    rows = sample.make_contacts(40)
    rows.rows.append((1, "duplicate key", "+32 470 12 34 56"))  # the PRIMARY KEY refuses it
    with pytest.raises(duckdb.ConstraintException):
        sample.write_contacts(path, rows)
    assert list(tmp_path.iterdir()) == [], "neither the file nor a temporary one is left"


def test_an_unwritable_place_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "no-such-dir" / "contacts.duckdb"
    assert main(["simulate", "--write-contacts", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"numberyo simulate: cannot write {path}") and err.count("\n") == 1
