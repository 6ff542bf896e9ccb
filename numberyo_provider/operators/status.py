"""Operator: ``numberyo status`` as an Airflow task, to alert when a warehouse needs attention.

Thin on purpose: it calls :func:`numberyo_provider.status.read_status` (plain Python, read-only),
logs the report, returns it as a JSON-able dict (XCom) and, with ``fail_on_attention`` (default),
fails the task when the report lists something that needs a person, so Airflow's own alerting
(``on_failure_callback``, e-mail, Slack) fires. The same report is a function call away in a
``@task``::

    from numberyo_provider.status import read_status

    @task
    def warehouse_status() -> dict:
        report = read_status("duckdb:////data/warehouse.duckdb")
        report.raise_for_attention()  # optional: fail the task
        return report.as_dict()

The report's modules are imported when the task runs, not when the DAG file is parsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from numberyo_provider.coercion import as_bool, as_int, as_text

if TYPE_CHECKING:
    from airflow.sdk import Context

#: XCom key of the report, pushed also when the task then fails for attention.
XCOM_KEY = "numberyo_status"


class NumberYoStatusOperator(BaseOperator):
    """Report on ``warehouse`` and its request ledger; fail when something needs attention.

    :param warehouse: ``duckdb:///path.duckdb`` or a SQLAlchemy URL (templated).
    :param ledger: request-ledger URL; default beside the warehouse (templated).
    :param loads: how many of the newest loads to report (templated).
    :param days: credits spent over the last this many days (templated).
    :param fail_on_attention: fail the task when the report needs attention (templated).
    :param lock_timeout: seconds to wait while another process writes the DuckDB file.
    """

    template_fields: Sequence[str] = ("warehouse", "ledger", "loads", "days", "fail_on_attention")
    ui_color = "#e8daef"

    def __init__(
        self,
        *,
        warehouse: str,
        ledger: str | None = None,
        loads: int | str = 10,
        days: int | str = 30,
        fail_on_attention: bool | str = True,
        lock_timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.warehouse = warehouse
        self.ledger = ledger
        self.loads = loads
        self.days = days
        self.fail_on_attention = fail_on_attention
        self.lock_timeout = lock_timeout

    def execute(self, context: Context) -> dict[str, Any]:
        from numberyo_provider.status import read_status

        report = read_status(
            self.warehouse,
            ledger=as_text(self.ledger),
            loads=as_int("loads", self.loads, minimum=0) or 0,
            days=as_int("days", self.days, minimum=1) or 1,
            lock_timeout=self.lock_timeout,
        )
        result = report.as_dict()
        context["ti"].xcom_push(key=XCOM_KEY, value=result)
        self.log.info("%s", report.render())
        if report.needs_attention and as_bool("fail_on_attention", self.fail_on_attention):
            codes = ", ".join(a.code for a in report.attention)
            raise AirflowException(f"{report.warehouse} needs attention ({codes}); see the log")
        return result


__all__ = ["XCOM_KEY", "NumberYoStatusOperator"]
