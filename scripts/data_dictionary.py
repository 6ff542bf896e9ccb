"""The data dictionary (Markdown), rendered from :mod:`numberyo_provider.schema` so it cannot drift.

    python scripts/data_dictionary.py > docs/data-dictionary.md

A documentation generator, so it lives with the repository's scripts, not in the installed package
(until 0.2 it was ``numberyo_provider.data_dictionary``). ``tests/test_data_dictionary.py`` fails
when the committed page differs from what this renders.
"""

from __future__ import annotations

import sys

import pyarrow as pa

from numberyo_provider.privacy import PERSONAL_COLUMNS, PERSONAL_EXTRA_KEYS
from numberyo_provider.schema import ALL_TABLES, SCHEMA_NAME, Table, description
from numberyo_provider.warehouse import ddl
from numberyo_provider.warehouse.base import COALESCE_ON_MERGE

_MASKS = {
    "international": "personal (mask keeps country code + last 2 digits)",
    "national": "personal (mask keeps last 2 digits)",
    "imsi": "personal (mask keeps MCC + MNC)",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _arrow_type(field: pa.Field) -> str:
    text = str(field.type)
    return f"{text} (JSON text)" if ddl.is_json(field) else text


def _privacy(table: Table, field: pa.Field) -> str:
    kind = PERSONAL_COLUMNS.get(table.name, {}).get(field.name)
    if kind is not None:
        return _MASKS[kind]
    if ddl.is_json(field) and table.name in PERSONAL_COLUMNS:
        return "some keys personal (see privacy)"
    return ""


def _merge_rule(table: Table) -> str:
    keep = COALESCE_ON_MERGE.get(table.name)
    if not table.landed:
        return "written by the loader / check runner, not from landed files."
    if keep:
        cols = ", ".join(f"`{c}`" for c in keep)
        return (
            f"upsert by key; a later load never erases a known {cols} with NULL "
            "(`COALESCE(new, old)`), every other column takes the newer value."
        )
    return "upsert by key; a result row is replaced as a whole by the newer load."


def render_table(table: Table) -> str:
    key = ", ".join(f"`{k}`" for k in table.primary_key)
    lines = [f"## `{table.name}`", "", table.description, ""]
    lines.append(f"- Primary key: {key}")
    if table.landed:
        lines.append(
            f"- Parquet: `<root>/{table.name}/type=<type>/landed_date=<YYYY-MM-DD>/"
            "<load_id>-<seq>.parquet` (`landed_date`: the UTC day the load started; older "
            "versions wrote `created_date=<YYYY-MM-DD>` instead, see sync.md)"
        )
    lines.append(f"- Merge: {_merge_rule(table)}")
    lines += [
        "",
        "| Column | Arrow | DuckDB | PostgreSQL | Null | Privacy | Description |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in table.schema:
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{f.name}`",
                    _cell(_arrow_type(f)),
                    ddl.duckdb_type(f),
                    ddl.postgres_type(f),
                    "yes" if f.nullable else "no",
                    _privacy(table, f),
                    _cell(description(f)),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def render() -> str:
    extra_keys = ", ".join(f"`{k}`" for k in PERSONAL_EXTRA_KEYS)
    head = [
        "# Data dictionary",
        "",
        "<!-- Generated from numberyo_provider/schema.py by "
        "`python scripts/data_dictionary.py > docs/data-dictionary.md`. "
        "Do not edit by hand: a test fails when it differs from the schema. -->",
        "",
        f"Every table lives in the `{SCHEMA_NAME}` schema in DuckDB and PostgreSQL; in other SQL "
        f"databases the tables carry the prefix `{ddl.TABLE_PREFIX}` instead (e.g. "
        f"`{ddl.TABLE_PREFIX}checks`).",
        "",
        "- Timestamps are UTC (`TIMESTAMPTZ`), with microseconds.",
        "- `user_cost` is an exact decimal (`DECIMAL(18,4)`), never a float.",
        "- JSON columns are JSON text in Parquet and the database's JSON type in the warehouse. "
        "`extra` keeps every field the API sent that this version does not model.",
        "- `_loaded_at` / `_load_id`: the load that last wrote the row (join `_loads.load_id`); "
        "`_loaded_at` is that load's commit time.",
        "- Privacy: columns marked *personal* hold phone numbers or IMSIs; what they contain "
        "depends on the privacy mode (`keep`, `mask`, `hmac`, see [privacy.md](privacy.md)). In "
        f"`extra`, the top-level keys {extra_keys} are treated the same way.",
        "- In DuckDB only `_loads` and `_sync_state` declare their `PRIMARY KEY`: the loader keeps "
        "the key of every other table unique (DuckDB's index would slow bulk loads about twofold "
        "and must fit in memory whole); every table in other databases declares it.",
        "",
        "| Table | Primary key | Landed as Parquet | Description |",
        "|---|---|---|---|",
    ]
    for t in ALL_TABLES:
        key = ", ".join(f"`{k}`" for k in t.primary_key)
        head.append(
            f"| [`{t.name}`](#{t.name}) | {key} | {'yes' if t.landed else 'no'} | "
            f"{_cell(t.description)} |"
        )
    return "\n".join(head) + "\n\n" + "\n".join(render_table(t) for t in ALL_TABLES)


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
