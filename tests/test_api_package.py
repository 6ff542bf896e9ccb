"""``numberyo_provider.api``: its public face, its import weight, and the old flat import paths.

The HTTP API domain moved from the top of the package into ``numberyo_provider/api/`` (issue 11);
the old paths keep working for one release, as aliases of the new modules with a
DeprecationWarning (:mod:`numberyo_provider._moved`).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import warnings

import pytest

import numberyo_provider.api as api
from numberyo_provider._moved import MOVED

API_MODULES = ("async_client", "client", "deadline", "models", "ratelimit", "retry")


@pytest.mark.parametrize("name", API_MODULES)
def test_the_old_path_is_the_new_module_with_a_deprecation_warning(name: str) -> None:
    old, new = f"numberyo_provider.{name}", f"numberyo_provider.api.{name}"
    assert MOVED[old] == new
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        __import__(old)  # a plain import statement, as user code has
    assert sys.modules[old] is importlib.import_module(new)
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert messages == [
        f"{old} moved to {new}; the old path stops working in the next release. Update the import."
    ]
    assert caught[0].filename == __file__  # the warning points at the importing line


def test_old_import_statements_still_work() -> None:
    for name in API_MODULES:
        sys.modules.pop(f"numberyo_provider.{name}", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from numberyo_provider.client import NumberYoClient  # type: ignore[import-not-found]
        from numberyo_provider.models import Check  # type: ignore[import-not-found]
    assert NumberYoClient is api.NumberYoClient
    assert Check is api.Check


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
