"""Sensor: succeed once the account has checks the warehouse does not have yet.

"New" means newer than the sync watermark (``numberyo._sync_state``), read with a short-lived
warehouse connection at every poke (so a sync committing meanwhile is seen); an empty warehouse
means any check is new. One free ``GET /api/checks?page=1`` per poke. ``deferrable=True`` hands the
wait to :class:`~numberyo_provider.triggers.new_checks.NumberYoNewChecksTrigger` in the triggerer.
The XCom value is ``{"newest_check_id": ..., "newest_created_at": ..., ...}``, built by
:func:`~numberyo_provider.triggers.new_checks.new_checks_event`, the trigger's own decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException

from numberyo_provider.errors import AuthenticationError, NumberYoError
from numberyo_provider.hooks.numberyo import NumberYoHook
from numberyo_provider.triggers.new_checks import NumberYoNewChecksTrigger, new_checks_event

if TYPE_CHECKING:
    from airflow.sdk import Context

    from numberyo_provider.warehouse.base import Watermark


def read_watermark(warehouse: str, *, lock_timeout: float = 60.0) -> Watermark | None:
    """The sync watermark of ``warehouse``, ``None`` when nothing was synced yet.

    Opens and closes its own connection: never holds a DuckDB file between pokes. A warehouse
    without the numberyo tables gets them (``ensure_schema``, idempotent), exactly as the first
    sync would create them.
    """
    # Here, not above: the warehouse brings pyarrow, which parsing the DAG file does not need.
    from numberyo_provider.warehouse import WarehouseError, connect_warehouse

    with connect_warehouse(warehouse, lock_timeout=lock_timeout) as wh:
        try:
            return wh.get_watermark("checks")
        except WarehouseError:
            wh.ensure_schema()
            return wh.get_watermark("checks")


class NumberYoNewChecksSensor(BaseSensorOperator):
    """Wait until the NumberYo account has a check newer than what ``warehouse`` holds.

    :param numberyo_conn_id: the NumberYo connection (base URL, token).
    :param warehouse: the warehouse URL the sync writes to (templated).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param lock_timeout: seconds to wait for a busy DuckDB file when reading the watermark.
    """

    template_fields: Sequence[str] = ("warehouse", "numberyo_conn_id")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        numberyo_conn_id: str = NumberYoHook.default_conn_name,
        warehouse: str,
        deferrable: bool = False,
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float = 60 * 60 * 24,
        lock_timeout: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.numberyo_conn_id = numberyo_conn_id
        self.warehouse = warehouse
        self.deferrable = deferrable
        self.lock_timeout = lock_timeout

    def _watermark(self) -> Watermark | None:
        try:
            return read_watermark(self.warehouse, lock_timeout=self.lock_timeout)
        except NumberYoError as exc:
            raise AirflowException(f"cannot read the sync watermark: {exc}") from None

    def poke(self, context: Context) -> bool | PokeReturnValue:
        watermark = self._watermark()
        try:
            with NumberYoHook(self.numberyo_conn_id).get_client(pool_size=1) as client:
                page = client.list_checks(1)
        except AuthenticationError as exc:
            raise AirflowException(str(exc)) from None  # waiting will not fix a bad token
        event = new_checks_event(
            page,
            watermark.check_id if watermark else None,
            watermark.created_at if watermark else None,
        )
        if event is None:
            self.log.info(
                "No check newer than the watermark %s yet (account holds %d)",
                f"{watermark.check_id}" if watermark else "(none: empty warehouse)",
                page.pagination.total,
            )
            return False
        return PokeReturnValue(is_done=True, xcom_value=event)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        watermark = self._watermark()
        self.defer(
            trigger=NumberYoNewChecksTrigger(
                numberyo_conn_id=self.numberyo_conn_id,
                watermark_check_id=watermark.check_id if watermark else None,
                watermark_created_at=watermark.created_at.isoformat() if watermark else None,
                poll_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )
        return None  # not reached: defer() raises

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if not event or event.get("status") != "success":
            message = (event or {}).get("message", "the trigger ended without an event")
            raise AirflowException(f"NumberYo new-checks trigger failed: {message}")
        return event


__all__ = ["NumberYoNewChecksSensor", "read_watermark"]
