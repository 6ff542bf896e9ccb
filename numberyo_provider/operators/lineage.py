"""OpenLineage for the operators: the core's dataset names (:mod:`numberyo_provider.lineage`) as
the OpenLineage provider's ``OperatorLineage``, returned by each operator's
``get_openlineage_facets_on_complete``. Without the provider installed, lineage is ``None``: the
provider (an optional dependency) is imported when lineage is asked for, and the operators import
this module only then."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeAlias

import sqlalchemy as sa
from airflow.sdk import BaseHook

from numberyo_provider import schema
from numberyo_provider.coercion import as_bool, as_text
from numberyo_provider.config import DEFAULT_BASE_URL
from numberyo_provider.hooks.numberyo import NumberYoHook
from numberyo_provider.lineage import (
    DatasetName,
    api_dataset,
    landing_datasets,
    source_datasets,
    warehouse_datasets,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
    from airflow.providers.openlineage.extractors import OperatorLineage

    from numberyo_provider.operators.check import (
        NumberYoCreateChecksOperator,
        NumberYoLoadLandedOperator,
    )

    #: What the operators hand the OpenLineage provider: datasets, and no facets of their own.
    Lineage: TypeAlias = OperatorLineage[Dataset, RunFacet]

#: Airflow connection types -> the URL scheme :mod:`numberyo_provider.lineage` understands.
_CONN_SCHEMES = {
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "sqlite": "sqlite",
    "duckdb": "duckdb",
}


def operator_lineage(
    inputs: Iterable[DatasetName], outputs: Iterable[DatasetName]
) -> Lineage | None:
    """``OperatorLineage(inputs, outputs)``, or None when the OpenLineage provider is absent."""
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None

    def datasets(names: Iterable[DatasetName]) -> list[Dataset]:
        unique = list(dict.fromkeys(names))  # keep the order, drop repeats
        return [Dataset(namespace=d.namespace, name=d.name) for d in unique]

    return OperatorLineage(inputs=datasets(inputs), outputs=datasets(outputs))


def api_base_url(conn_id: str) -> str:
    """The API address of a NumberYo connection (the default address when it has none or cannot
    be read: lineage never fails a task)."""
    try:
        return str(NumberYoHook(conn_id).settings.get("base_url") or DEFAULT_BASE_URL)
    except Exception:
        return DEFAULT_BASE_URL


def connection_url(conn_id: str) -> str | None:
    """A credential-free URL of an Airflow SQL connection, for dataset names (None: unknown)."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:
        return None
    scheme = _CONN_SCHEMES.get(str(conn.conn_type or "").lower())
    if scheme is None:
        return None
    if scheme in ("sqlite", "duckdb"):
        return f"{scheme}:///{conn.host or conn.schema or ''}"
    url = sa.engine.URL.create(
        scheme, host=conn.host or None, port=conn.port or None, database=conn.schema or None
    )
    return url.render_as_string(hide_password=True)


def check_lineage(op: NumberYoCreateChecksOperator) -> Lineage | None:
    """Lineage of a ``NumberYoCreateChecksOperator`` (its rendered fields)."""
    source = as_text(op.source_url) or (
        connection_url(str(op.source_conn_id)) if as_text(op.source_conn_id) else None
    )
    inputs = (
        source_datasets(
            source, table=as_text(op.table), db_schema=as_text(op.schema), sql=as_text(op.sql)
        )
        if source
        else []
    )
    if as_bool("plan_only", op.plan_only):
        return operator_lineage(inputs=inputs, outputs=[])
    api = api_dataset(api_base_url(op.numberyo_conn_id))
    results = schema.RESULTS_TABLE_BY_TYPE.get(_check_type(op.check_type))
    landed = [schema.CHECKS, *([results] if results is not None else [])]
    outputs = [api, *landing_datasets(op.parquet_path, landed)]
    if as_bool("load", op.load):
        outputs += warehouse_datasets(
            op.warehouse, [*landed, schema.CHECK_REQUESTS, schema.REJECTED_NUMBERS]
        )
    return operator_lineage(inputs=[*inputs, api], outputs=outputs)


def load_landed_lineage(op: NumberYoLoadLandedOperator) -> Lineage | None:
    """Lineage of a ``NumberYoLoadLandedOperator``."""
    data = list(schema.DATA_TABLES)
    return operator_lineage(
        inputs=[
            *landing_datasets(op.parquet_path, data),
            api_dataset(api_base_url(op.numberyo_conn_id)),
        ],
        outputs=warehouse_datasets(
            op.warehouse, [*data, schema.CHECK_REQUESTS, schema.REJECTED_NUMBERS]
        ),
    )


def _check_type(value: object) -> str:
    """``HLR`` / ``Verify`` whatever the case it was given in."""
    text = str(value or "").strip().lower()
    return {"hlr": "HLR", "verify": "Verify"}.get(text, str(value))


__all__ = [
    "api_base_url",
    "check_lineage",
    "connection_url",
    "load_landed_lineage",
    "operator_lineage",
]
