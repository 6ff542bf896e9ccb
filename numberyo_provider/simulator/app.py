"""The simulator's HTTP face: a FastAPI app answering like the NumberYo (Laravel) API.

Handlers take the raw ``Request`` (no pydantic models): the API's own validation format must be
reproduced exactly, and per-request CPU must stay small so that many concurrent clients with
simulated latency overlap on one event loop. The ``before_request`` hook runs in a worker thread,
so it may block or even call this server.

Latency is the time from a request's arrival to its answer, as a client sees a remote API: the
simulator's own work happens inside it, and :class:`_Pacer` learns the event loop's timer overshoot
and sleeps that much less. Without both, "20 ms" answered in about 21 ms and no client could reach
the ``requests x latency / workers`` ideal that the benchmarks measure against.
``charge_delay_s`` is added after the latency for charged requests.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from numberyo_provider.simulator.state import (
    MSG_SERVER_ERROR,
    MSG_UNAUTHENTICATED,
    Reply,
    RequestLogEntry,
    Simulator,
    parse_page,
)


def _response(reply: Reply) -> Response:
    return Response(
        content=reply.content(),
        status_code=reply.status,
        headers=dict(reply.headers),
        media_type=reply.media_type or "application/json",
    )


async def _payload(request: Request) -> dict[str, Any]:
    """Laravel's ``$request->input()``: query string, overridden by a JSON object body."""
    data: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            data.update(parsed)
    return data


class _Pacer:
    """Sleeps until a deadline, less the timer's learnt overshoot (about 0.25 ms with uvloop).

    The correction is capped, so an overloaded event loop still answers late, as it should.
    """

    MAX_CORRECTION_S = 0.002

    def __init__(self) -> None:
        self.late = 0.0

    async def until(self, deadline: float) -> None:
        now = time.perf_counter()
        delay = deadline - now - self.late
        if delay <= 0:
            return
        await asyncio.sleep(delay)
        overshoot = time.perf_counter() - (now + delay)
        learnt = self.late + 0.05 * (overshoot - self.late)
        self.late = min(self.MAX_CORRECTION_S, max(0.0, learnt))


def build_app(sim: Simulator) -> FastAPI:
    """A FastAPI app serving ``sim`` (one app per simulator; the state lives in ``sim``)."""
    app = FastAPI(
        title="NumberYo simulator",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    pacer = _Pacer()

    async def serve(
        request: Request,
        endpoint: str,
        arrived: float,
        *,
        page: int | None = None,
        raw_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Response:
        account = sim._authenticate(request.headers.get("authorization"))
        phone = payload.get("phone_number") if payload else None
        check_type = payload.get("type") if payload else None
        phone_text = str(phone) if phone is not None else None
        type_text = str(check_type) if check_type is not None else None
        hook = sim.before_request
        if hook is not None:
            info = {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "account": account.label if account else None,
                "page": page,
                "check_id": int(raw_id)
                if raw_id and raw_id.isascii() and raw_id.isdigit()
                else None,
                "phone_number": phone_text,
                "check_type": type_text,
            }
            await asyncio.to_thread(hook, endpoint, info)

        charged = False
        check_id: int | None = None
        reply: Reply | None
        if account is None:
            reply = Reply(401, {"message": MSG_UNAUTHENTICATED})
        else:
            reply = sim._draw_fault(endpoint)
        if reply is None and account is not None:
            if endpoint == "list":
                reply = sim._api_list(account, page or 1)
            elif endpoint == "results":
                reply, check_id = sim._api_results(account, raw_id or "")
            else:
                reply, charged, check_id = sim._api_create(account, payload or {})
        assert reply is not None
        sim._record(
            RequestLogEntry(
                method=request.method,
                path=request.url.path,
                endpoint=endpoint,
                account=account.label if account else None,
                status=reply.status,
                phone_number=phone_text,
                check_type=type_text,
                check_id=check_id,
                charged=charged,
                at=time.time(),
            )
        )
        if sim.latency_ms > 0:
            await pacer.until(arrived + sim.latency_ms / 1000.0)
        if charged and sim.charge_delay_s > 0:
            await asyncio.sleep(sim.charge_delay_s)
        return _response(reply)

    async def checks(request: Request) -> Response:
        # One route for both methods, so that a 405 names both in ``Allow``.
        arrived = time.perf_counter()
        if request.method == "POST":
            return await serve(request, "create", arrived, payload=await _payload(request))
        page = parse_page(request.query_params.get("page"))
        return await serve(request, "list", arrived, page=page)

    async def check_results(request: Request) -> Response:
        arrived = time.perf_counter()
        return await serve(request, "results", arrived, raw_id=request.path_params["check_id"])

    # Plain Starlette routes: FastAPI's dependency machinery would only add per-request CPU.
    app.router.add_route("/api/checks", checks, methods=["GET", "POST"], include_in_schema=False)
    app.router.add_route(
        "/api/checks/{check_id}/results", check_results, methods=["GET"], include_in_schema=False
    )

    async def http_error(request: Request, exc: Exception) -> Response:
        # Routing errors only (unknown path, wrong method): Laravel's JSON wording.
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        route = request.url.path.lstrip("/")
        headers: dict[str, str] = {}
        if status == 404:
            message = f"The route {route} could not be found."
        elif status == 405:
            allow = (getattr(exc, "headers", None) or {}).get("Allow", "")
            methods = ", ".join(sorted(m.strip() for m in allow.split(",") if m.strip()))
            message = (
                f"The {request.method} method is not supported for route {route}. "
                f"Supported methods: {methods}."
            )
            headers["Allow"] = allow
        else:
            message = str(getattr(exc, "detail", "")) or MSG_SERVER_ERROR
        account = sim._authenticate(request.headers.get("authorization"))
        sim._record(
            RequestLogEntry(
                method=request.method,
                path=request.url.path,
                endpoint="other",
                account=account.label if account else None,
                status=status,
                phone_number=None,
                check_type=None,
                check_id=None,
                charged=False,
                at=time.time(),
            )
        )
        return _response(Reply(status, {"message": message}, headers))

    async def server_error(request: Request, exc: Exception) -> Response:
        return _response(Reply(500, {"message": MSG_SERVER_ERROR}))

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, server_error)
    return app
