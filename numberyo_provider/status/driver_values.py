"""What database drivers hand back, made uniform for the status report.

DuckDB, SQLite (through SQLAlchemy) and PostgreSQL return the same column as different Python
values: a timestamp as an aware or a naive datetime or as ISO text, a date as a date or a
datetime, a JSON column as parsed JSON or as text; and their errors carry the statement and
links over several lines. These turn each into one form, for both the warehouse and the ledger
side.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _utc(value: datetime | str) -> datetime:
    """A timestamp column (an aware or naive datetime, or ISO text) as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _one_line(exc: object) -> str:
    """The driver's own words on one line, without SQLAlchemy's statement dump and links."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).split("\n[SQL:")[0].split("(Background on this error")[0]
    return " ".join(text.split()) or type(inner).__name__
