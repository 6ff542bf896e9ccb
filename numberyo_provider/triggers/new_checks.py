"""Trigger that waits, in the triggerer, until the account has a check newer than a watermark.

It polls ``GET /api/checks?page=1`` (free) through the client's async path
(:class:`~numberyo_provider.api.async_client.AsyncNumberYoClient`), so token cleaning, timeouts,
size limits, retries and error classes are the sync client's. Nothing in :meth:`run` blocks the
event loop: the connection is read with the Task SDK's async lookup and the client is built in a
worker thread. Its serialised kwargs hold the connection id and the watermark only, never the
token: the connection is loaded inside the triggerer, so no secret lands in the metadata database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from numberyo_provider.api.models import Check, CheckPage, parse_timestamp
from numberyo_provider.errors import (
    AuthenticationError,
    BadResponseError,
    NumberYoError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from numberyo_provider.hooks.numberyo import NumberYoHook

#: After this many failed polls in a row (5xx, 429, network), the trigger gives up with an error.
DEFAULT_MAX_FAILURES = 5
#: Failures that waiting may fix: counted, and the next poll comes after ``poll_interval``.
_TRANSIENT = (RateLimitedError, ServerError, TransportError, BadResponseError)


def newer_checks(
    page: CheckPage, watermark_check_id: int | None, watermark_created_at: datetime | None
) -> list[Check]:
    """The checks of ``page`` newer than the watermark (all of them when there is none)."""
    if watermark_check_id is None and watermark_created_at is None:
        return list(page.checks)
    out = []
    for check in page.checks:
        if watermark_created_at is not None:
            if (check.created_at, check.id) > (watermark_created_at, watermark_check_id or 0):
                out.append(check)
        elif watermark_check_id is not None and check.id > watermark_check_id:
            out.append(check)
    return out


def new_checks_event(
    page: CheckPage, watermark_check_id: int | None, watermark_created_at: datetime | None
) -> dict[str, Any] | None:
    """The success event (and the sensor's XCom) for ``page``, or ``None`` while nothing is new:
    the one decision the sensor's ``poke`` and the trigger share."""
    found = newer_checks(page, watermark_check_id, watermark_created_at)
    if not found:
        return None
    newest = max(found, key=lambda c: (c.created_at, c.id))
    return {
        "status": "success",
        "newest_check_id": newest.id,
        "newest_created_at": newest.created_at.isoformat(),
        "new_checks_on_first_page": len(found),
        "account_total": page.pagination.total,
    }


class NumberYoNewChecksTrigger(BaseTrigger):
    """Fires ``{"status": "success", "newest_check_id": ..., ...}`` once page 1 of the account's
    checks holds one newer than ``(watermark_created_at, watermark_check_id)``, or
    ``{"status": "error", "message": ...}`` on a bad token or configuration, another 4xx, or
    after ``max_failures`` failed polls in a row.
    """

    def __init__(
        self,
        *,
        numberyo_conn_id: str = "numberyo_default",
        watermark_check_id: int | None = None,
        watermark_created_at: str | None = None,
        poll_interval: float = 60.0,
        max_failures: int = DEFAULT_MAX_FAILURES,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow left it untyped
        self.numberyo_conn_id = numberyo_conn_id
        self.watermark_check_id = watermark_check_id
        self.watermark_created_at = watermark_created_at
        self.poll_interval = float(poll_interval)
        self.max_failures = int(max_failures)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "numberyo_conn_id": self.numberyo_conn_id,
                "watermark_check_id": self.watermark_check_id,
                "watermark_created_at": self.watermark_created_at,
                "poll_interval": self.poll_interval,
                "max_failures": self.max_failures,
            },
        )

    def _error(self, message: str) -> TriggerEvent:
        return TriggerEvent({"status": "error", "message": message})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        conn_id = self.numberyo_conn_id
        try:
            client = await NumberYoHook(conn_id).aget_async_client()
        except NumberYoError as exc:
            yield self._error(f"connection {conn_id!r}: {exc}")
            return
        except Exception as exc:  # not found, unreadable: the event carries the message
            yield self._error(f"connection {conn_id!r}: {type(exc).__name__}: {exc}")
            return
        watermark_at = (
            parse_timestamp(self.watermark_created_at) if self.watermark_created_at else None
        )
        failures = 0
        async with client:
            while True:
                try:
                    page = await client.list_checks(1)
                except AuthenticationError as exc:  # waiting will not fix a refused token
                    yield self._error(
                        f"{exc} The API token was refused: check the password of connection "
                        f"{conn_id!r}"
                    )
                    return
                except _TRANSIENT as exc:
                    failures += 1
                    self.log.warning(
                        "NumberYo poll failed (%d/%d): %s", failures, self.max_failures, exc
                    )
                    if failures >= self.max_failures:
                        yield self._error(f"{failures} polls in a row failed; last: {exc}")
                        return
                except NumberYoError as exc:  # another 4xx, or bad settings: will not heal
                    yield self._error(str(exc))
                    return
                else:
                    event = new_checks_event(page, self.watermark_check_id, watermark_at)
                    if event is not None:
                        yield TriggerEvent(event)
                        return
                    failures = 0
                await asyncio.sleep(self.poll_interval)


__all__ = ["NumberYoNewChecksTrigger", "new_checks_event", "newer_checks"]
