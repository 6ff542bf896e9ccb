"""Trigger that waits, in the triggerer, until the account has a check newer than a watermark.

It polls ``GET /api/checks?page=1`` (free) with ``httpx.AsyncClient``. Its serialised kwargs hold
the connection id and the watermark only, never the token: the connection is loaded inside the
triggerer, so no secret lands in the metadata database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from numberyo_provider.client import CHECKS_PATH, USER_AGENT
from numberyo_provider.errors import BadResponseError
from numberyo_provider.models import Check, CheckPage, parse_timestamp

#: After this many failed polls in a row (5xx, 429, network), the trigger gives up with an error.
DEFAULT_MAX_FAILURES = 5


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


class NumberYoNewChecksTrigger(BaseTrigger):
    """Fires ``{"status": "success", "newest_check_id": ..., ...}`` once page 1 of the account's
    checks holds one newer than ``(watermark_created_at, watermark_check_id)``, or
    ``{"status": "error", "message": ...}`` on a bad token or after ``max_failures`` failed polls.
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
        super().__init__()
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

    async def _settings(self) -> dict[str, Any]:
        """The hook's client settings (base URL, token, timeouts), loaded in the triggerer."""
        from asgiref.sync import sync_to_async

        from numberyo_provider.hooks.numberyo import NumberYoHook

        def load() -> dict[str, Any]:
            return dict(NumberYoHook(self.numberyo_conn_id).settings)

        return await sync_to_async(load)()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import httpx

        from numberyo_provider.client import DEFAULT_BASE_URL

        try:
            settings = await self._settings()
        except Exception as exc:
            yield TriggerEvent({"status": "error", "message": f"connection: {exc}"})
            return
        base_url = str(settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        timeout = settings.get("timeout", (5.0, 30.0))
        connect_s, read_s = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        watermark_at = (
            parse_timestamp(self.watermark_created_at) if self.watermark_created_at else None
        )
        headers = {
            "Authorization": f"Bearer {settings['token']}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        failures = 0
        async with httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(read_s, connect=connect_s),
            verify=bool(settings.get("verify_ssl", True)),
            follow_redirects=False,
        ) as http:
            while True:
                where = f"GET {CHECKS_PATH}?page=1"
                problem: str | None = None
                try:
                    response = await http.get(CHECKS_PATH, params={"page": 1})
                except httpx.HTTPError as exc:
                    problem = f"{where}: {type(exc).__name__}"
                else:
                    status = response.status_code
                    if status in (401, 403):
                        yield TriggerEvent(
                            {
                                "status": "error",
                                "message": f"{where} -> {status}: the API token was refused; "
                                f"check the password of connection {self.numberyo_conn_id!r}",
                            }
                        )
                        return
                    if status == 200:
                        try:
                            page = CheckPage.from_api(response.json())
                        except (ValueError, BadResponseError) as exc:
                            problem = f"{where}: unexpected response: {exc}"
                        else:
                            found = newer_checks(page, self.watermark_check_id, watermark_at)
                            if found:
                                newest = max(found, key=lambda c: (c.created_at, c.id))
                                yield TriggerEvent(
                                    {
                                        "status": "success",
                                        "newest_check_id": newest.id,
                                        "newest_created_at": newest.created_at.isoformat(),
                                        "new_checks_on_first_page": len(found),
                                        "account_total": page.pagination.total,
                                    }
                                )
                                return
                            failures = 0
                    elif status == 429 or status >= 500:
                        problem = f"{where} -> {status}"
                    else:
                        yield TriggerEvent(
                            {
                                "status": "error",
                                "message": f"{where} -> {status}: {response.text[:200]}",
                            }
                        )
                        return
                if problem is not None:
                    failures += 1
                    self.log.warning(
                        "NumberYo poll failed (%d/%d): %s", failures, self.max_failures, problem
                    )
                    if failures >= self.max_failures:
                        yield TriggerEvent(
                            {
                                "status": "error",
                                "message": f"{failures} polls in a row failed; last: {problem}",
                            }
                        )
                        return
                await asyncio.sleep(self.poll_interval)


__all__ = ["NumberYoNewChecksTrigger", "newer_checks"]
