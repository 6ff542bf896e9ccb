"""The committed data dictionary is exactly what the schema renders (docs never drift)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from numberyo_provider.schema import ALL_TABLES

REPO = Path(__file__).parents[1]
DOC = REPO / "docs" / "data-dictionary.md"
SCRIPT = REPO / "scripts" / "data_dictionary.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("numberyo_data_dictionary_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _generator().render


def test_committed_dictionary_matches_the_schema() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/data-dictionary.md is stale: run "
        "`python scripts/data_dictionary.py > docs/data-dictionary.md`"
    )


def test_every_table_and_column_is_documented() -> None:
    text = render()
    for table in ALL_TABLES:
        assert f"## `{table.name}`" in text
        for field in table.schema:
            assert f"| `{field.name}` |" in text


def test_the_script_prints_the_dictionary() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out == render()


def test_the_generator_is_not_in_the_installed_package() -> None:
    import numberyo_provider

    package = Path(numberyo_provider.__file__).parent
    assert not (package / "data_dictionary.py").exists()
