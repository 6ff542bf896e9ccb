"""A package's public names, imported on first use (:pep:`562`).

Airflow imports ``numberyo_provider`` to discover the provider and DAG files import operators at
parse time, so a package's ``__init__`` must not pull in requests, pyarrow or DuckDB just to name
what it offers. Each such ``__init__`` lists ``name -> defining module`` and gets its module
``__getattr__`` and ``__dir__`` from :func:`lazy_exports`; type checkers see the same names through
``if TYPE_CHECKING:`` imports beside the table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    namespace: dict[str, Any], homes: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package whose globals are ``namespace``."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value  # once: later lookups do not come back here
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *homes})

    return __getattr__, __dir__


__all__ = ["lazy_exports"]
