"""``numberyo_provider.api``: its public face and its import weight.

The HTTP API domain moved from the top of the package into ``numberyo_provider/api/`` (issue 11);
``tests/test_moved.py`` checks that the old paths keep working, with a DeprecationWarning.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import numberyo_provider.api as api


def test_the_public_face() -> None:
    from numberyo_provider.api.async_client import AsyncNumberYoClient
    from numberyo_provider.api.client import NumberYoClient
    from numberyo_provider.api.models import CheckResults
    from numberyo_provider.api.ratelimit import RateLimiter

    assert api.NumberYoClient is NumberYoClient
    assert api.AsyncNumberYoClient is AsyncNumberYoClient
    assert api.CheckResults is CheckResults
    assert api.RateLimiter is RateLimiter
    for name in api.__all__:
        assert getattr(api, name) is not None
        assert name in dir(api)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = api.Nope  # type: ignore[attr-defined]


def _modules_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return {name.split(".")[0] for name in json.loads(out)}


def test_the_api_package_imports_no_arrow_or_duckdb() -> None:
    """The CLI, the workers and the triggerer import the clients: no pyarrow, DuckDB or
    SQLAlchemy comes with them; the sync client does not pay for httpx either."""
    heavy = {"pyarrow", "duckdb", "sqlalchemy", "pandas"}
    loaded = _modules_after(
        "from numberyo_provider.api import NumberYoClient, AsyncNumberYoClient, Check"
    )
    assert "httpx" in loaded and not loaded & heavy
    loaded = _modules_after("from numberyo_provider.api.client import NumberYoClient")
    assert not loaded & (heavy | {"httpx"})
    loaded = _modules_after("import numberyo_provider.api.models")
    assert not loaded & (heavy | {"httpx", "requests"})
