"""The committed data dictionary is exactly what the schema renders (docs never drift)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from numberyo_provider.data_dictionary import render
from numberyo_provider.schema import ALL_TABLES

DOC = Path(__file__).parents[1] / "docs" / "data-dictionary.md"


def test_committed_dictionary_matches_the_schema() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/data-dictionary.md is stale: run "
        "`python -m numberyo_provider.data_dictionary > docs/data-dictionary.md`"
    )


def test_every_table_and_column_is_documented() -> None:
    text = render()
    for table in ALL_TABLES:
        assert f"## `{table.name}`" in text
        for field in table.schema:
            assert f"| `{field.name}` |" in text


def test_module_entry_point_prints_the_dictionary() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "numberyo_provider.data_dictionary"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out == render()
