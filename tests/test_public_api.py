"""The core's public face: ``from numberyo_provider import ...`` (issue 11), light to import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import numberyo_provider


def test_the_public_names_are_the_packages_own_objects() -> None:
    from numberyo_provider import (
        AsyncNumberYoClient,
        CheckOptions,
        CheckSummary,
        NumberYoClient,
        NumberYoError,
        SyncOptions,
        SyncSummary,
        api,
        checks,
        errors,
        run_check,
        run_sync,
        sync,
    )

    assert NumberYoClient is api.NumberYoClient and AsyncNumberYoClient is api.AsyncNumberYoClient
    assert run_sync is sync.run_sync and SyncOptions is sync.SyncOptions
    assert SyncSummary is sync.SyncSummary
    assert run_check is checks.run_check and CheckOptions is checks.CheckOptions
    assert CheckSummary is checks.CheckSummary
    assert errors is numberyo_provider.errors and NumberYoError is errors.NumberYoError
    assert set(numberyo_provider.__all__) <= set(dir(numberyo_provider))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'run_everything'"):
        numberyo_provider.run_everything  # noqa: B018


def test_importing_the_package_imports_no_heavy_library() -> None:
    """Airflow imports it to discover the provider; a DAG file may import it at parse time."""
    heavy = ("requests", "urllib3", "httpx", "pyarrow", "duckdb", "sqlalchemy", "airflow")
    code = (
        f"import sys, numberyo_provider\nprint(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
