"""The checks domain is one package: what the old ``checker`` module offered is still there, and
its public face (``numberyo_provider.checks``) imports the engine only when a name of it is used.

Every old import path (``_moved.MOVED``) is tested in ``tests/test_moved.py``."""

from __future__ import annotations

import subprocess
import sys

import pytest

import numberyo_provider.checks


def test_what_the_old_checker_module_offered_is_still_there() -> None:
    """Everything docs, tests and DAGs imported from ``numberyo_provider.checker``."""
    sys.modules.pop("numberyo_provider.checker", None)
    with pytest.warns(DeprecationWarning):
        from numberyo_provider.checker import (
            ON_INSUFFICIENT_CREDITS,
            Checker,
            CheckOptions,
            CheckRunError,
            CheckSummary,
            check_load_id,
            commit_check_run,
            default_cli_run_id,
            discover_landed_files,
            run_check,
        )
    assert CheckOptions is numberyo_provider.checks.CheckOptions
    assert all(
        callable(x)
        for x in (
            Checker,
            CheckRunError,
            CheckSummary,
            check_load_id,
            commit_check_run,
            default_cli_run_id,
            discover_landed_files,
            run_check,
        )
    )
    assert "fail" in ON_INSUFFICIENT_CREDITS


def test_every_public_name_resolves() -> None:
    for name in numberyo_provider.checks.__all__:
        assert getattr(numberyo_provider.checks, name) is not None, name
    with pytest.raises(AttributeError):
        numberyo_provider.checks.no_such_name  # noqa: B018


def test_number_hygiene_and_the_operators_module_stay_light() -> None:
    """A DAG file importing the check operator, or a script importing the number hygiene, does
    not import pyarrow or the engine: ``numberyo_provider.checks`` imports names on first use."""
    code = (
        "import sys\n"
        "import numberyo_provider.checks.numbers, numberyo_provider.checks.budget\n"
        "import numberyo_provider.checks.sharding\n"
        "print(sorted(m for m in ('pyarrow', 'duckdb', 'numberyo_provider.checks.engine') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
