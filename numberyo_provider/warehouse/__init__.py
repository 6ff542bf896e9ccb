"""Warehouse backends: DuckDB (native) and any SQLAlchemy database.

``connect_warehouse(url)`` picks the backend from the URL; every backend implements
:class:`~numberyo_provider.warehouse.base.Warehouse`. A backend's module (and its driver: DuckDB,
SQLAlchemy) is imported when a warehouse of its kind is opened, so a DuckDB sync never loads
SQLAlchemy (about 0.15 s) and a PostgreSQL one never loads DuckDB.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from numberyo_provider.deprecation import renamed_keywords
from numberyo_provider.errors import (
    ConfigurationError,
    LoadError,
    WarehouseError,
    WarehouseLockedError,
)
from numberyo_provider.warehouse.base import (
    ACCEPTED_URLS,
    COALESCE_ON_MERGE,
    LoadCommit,
    LoadResult,
    Warehouse,
    Watermark,
)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (also for URLs SQLAlchemy cannot parse)."""
    import sqlalchemy as sa  # here, not above: a DuckDB sync never needs SQLAlchemy
    from sqlalchemy.exc import ArgumentError

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


@renamed_keywords(lock_timeout_s="lock_timeout")
def connect_warehouse(url: str, *, lock_timeout: float = 60.0) -> Warehouse:
    """The warehouse at ``url``: ``duckdb:///...`` is native DuckDB, anything else SQLAlchemy.

    ``lock_timeout``: seconds to wait for another writer (its 0.1 name ``lock_timeout_s`` still
    works until 0.3, with a warning).
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"no warehouse URL given; use {ACCEPTED_URLS}")
    url = url.strip()
    if url.split(":", 1)[0].lower() == "duckdb":
        from numberyo_provider.warehouse.duckdb import DuckDBWarehouse

        match = re.fullmatch(r"duckdb:///([^?#]+)(?:\?([^#]*))?", url, flags=re.IGNORECASE)
        if match is None:
            raise ConfigurationError(
                f"bad DuckDB warehouse URL {mask_url(url)!r}: use {ACCEPTED_URLS} (three slashes "
                "then the path, then optional DuckDB settings such as ?memory_limit=1GB)"
            )
        config = dict(parse_qsl(match.group(2) or "", keep_blank_values=True))
        return DuckDBWarehouse(match.group(1), lock_timeout=lock_timeout, config=config)
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = sa.engine.make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError(
            f"bad warehouse URL {mask_url(url)!r} ({exc}); use {ACCEPTED_URLS}"
        ) from exc
    from numberyo_provider.warehouse.sql import SqlWarehouse

    return SqlWarehouse(parsed, lock_timeout=lock_timeout)


__all__ = [
    "ACCEPTED_URLS",
    "COALESCE_ON_MERGE",
    "LoadCommit",
    "LoadError",
    "LoadResult",
    "Warehouse",
    "WarehouseError",
    "WarehouseLockedError",
    "Watermark",
    "connect_warehouse",
    "mask_url",
]
