"""Operator: the incremental check-history sync as an Airflow task.

Thin on purpose: it turns the connection into a client, the arguments into one
:class:`~numberyo_provider.sync.SyncOptions` (through
:func:`numberyo_provider.config.resolve_sync_options`, as ``numberyo sync`` does) and calls
:func:`numberyo_provider.sync.run_sync`; the returned summary dict is the XCom. The tables it
updates are declared as Airflow Assets (``outlets``, URIs from :mod:`numberyo_provider.assets`) so
dbt DAGs can be scheduled on them.

Cheap to import, as Airflow asks of operators (a DAG file imports it at every parse): the sync
itself and the lineage helpers are imported by the methods that use them, when the task runs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, BaseOperator

from numberyo_provider.assets import sync_asset_uris, sync_tables
from numberyo_provider.cancellation import cancellable_sleep
from numberyo_provider.config import resolve_sync_options
from numberyo_provider.hooks.numberyo import NumberYoHook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from numberyo_provider.operators.lineage import Lineage
    from numberyo_provider.privacy import PrivacyPolicy
    from numberyo_provider.sync import SyncOptions


def sync_assets(warehouse: str) -> list[Asset]:
    """The Assets a sync of ``warehouse`` updates (one per data table)."""
    return [Asset(uri) for uri in sync_asset_uris(warehouse).values()]


def default_outlets(kwargs: dict[str, Any], warehouse: str | None) -> None:
    """Set ``kwargs["outlets"]`` to ``warehouse``'s Assets unless given, or unless ``warehouse``
    is a template (its value, hence its Assets, is unknown when the DAG is parsed)."""
    if "outlets" not in kwargs and warehouse and "{{" not in warehouse:
        kwargs["outlets"] = sync_assets(warehouse)


class NumberYoSyncOperator(BaseOperator):
    """Sync the account's check history into ``warehouse`` (first run: backfill; then only new).

    :param numberyo_conn_id: the NumberYo connection (base URL in host, token in password).
    :param warehouse: ``duckdb:///path.duckdb`` or a SQLAlchemy URL (templated).
    :param parquet_path: landing directory or ``s3://bucket/prefix`` (templated).
    :param full_refresh: re-read every check and its results (templated).
    :param concurrency: parallel API requests.
    :param privacy: ``keep``, ``mask`` or ``hmac`` for phone numbers and IMSIs (templated); default
        ``NUMBERYO_PRIVACY_MODE``, else ``keep`` (:mod:`numberyo_provider.config`).
    :param privacy_secret: HMAC key; default: the connection extra ``privacy_secret``, then the
        ``NUMBERYO_PRIVACY_SECRET`` environment variable.
    :param lock_timeout: seconds to wait for another writer of a DuckDB file.
    :param storage_options: fsspec options for an object-store ``parquet_path``.

    ``outlets`` default to the Assets of the three data tables of ``warehouse`` (see
    :mod:`numberyo_provider.assets`); when ``warehouse`` is a template they cannot be known when
    the DAG is parsed, so pass ``outlets=sync_assets("<the URL>")`` yourself.
    """

    template_fields: Sequence[str] = (
        "warehouse",
        "parquet_path",
        "full_refresh",
        "concurrency",
        "privacy",
        "numberyo_conn_id",
    )
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        numberyo_conn_id: str = NumberYoHook.default_conn_name,
        warehouse: str,
        parquet_path: str,
        full_refresh: bool | str = False,
        concurrency: int | str = 8,
        privacy: str | None = None,
        privacy_secret: str | None = None,
        lock_timeout: float = 60.0,
        storage_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        default_outlets(kwargs, warehouse)
        super().__init__(**kwargs)
        self.numberyo_conn_id = numberyo_conn_id
        self.warehouse = warehouse
        self.parquet_path = parquet_path
        self.full_refresh = full_refresh
        self.concurrency = concurrency
        self.privacy = privacy
        self.privacy_secret = privacy_secret
        self.lock_timeout = lock_timeout
        self.storage_options = storage_options
        self._cancel = threading.Event()
        self._base_url: str | None = None

    def _policy(self, hook: NumberYoHook) -> PrivacyPolicy:
        return hook.privacy_policy(self.privacy, self.privacy_secret)

    def _sync_options(self, hook: NumberYoHook) -> SyncOptions:
        """The run's settings from the (rendered) arguments, by the one resolver."""
        return resolve_sync_options(
            warehouse=self.warehouse,
            parquet_path=self.parquet_path,
            privacy=self._policy(hook),
            full_refresh=self.full_refresh,
            concurrency=self.concurrency,
            storage_options=self.storage_options,
            lock_timeout=self.lock_timeout,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from numberyo_provider.sync import run_sync

        hook = NumberYoHook(self.numberyo_conn_id)
        options = self._sync_options(hook)
        self._cancel = threading.Event()
        client = hook.get_client(
            pool_size=options.concurrency, sleep=cancellable_sleep(self._cancel)
        )
        self._base_url = client.base_url
        try:
            summary = run_sync(self.warehouse, options, client=client, cancel=self._cancel)
        finally:
            client.close()
        self.log.info("%s", summary.render())
        return summary.as_dict()

    def on_kill(self) -> None:
        """Stop the workers promptly; nothing of the interrupted run becomes visible."""
        self._cancel.set()

    def get_openlineage_facets_on_complete(self, task_instance: object) -> Lineage | None:
        """Lineage for the OpenLineage provider: the API's checks -> the Parquet landing and the
        three warehouse tables (names: :mod:`numberyo_provider.lineage`). ``None`` without the
        provider."""
        from numberyo_provider.lineage import api_dataset, landing_datasets, warehouse_datasets
        from numberyo_provider.operators.lineage import api_base_url, operator_lineage

        tables = sync_tables()
        api = api_dataset(self._base_url or api_base_url(self.numberyo_conn_id))
        return operator_lineage(
            inputs=[api],
            outputs=[
                *landing_datasets(self.parquet_path, tables),
                *warehouse_datasets(self.warehouse, tables),
            ],
        )


__all__ = ["NumberYoSyncOperator", "sync_assets"]
