"""The NumberYo HTTP API: the clients, the typed answers and the rules of sending a request.

The public face, importable from here::

    from numberyo_provider.api import NumberYoClient, Check, CheckResults

- :class:`NumberYoClient` (http.client, threads) and :class:`AsyncNumberYoClient` (httpx,
  asyncio: the trigger's path), one set of rules behind two transports;
- the models users get back (``models``): :class:`Check`, :class:`CheckPage`, :class:`Pagination`,
  :class:`CheckResults`, :class:`HlrResult`, :class:`VerifyResult`, :class:`CreatedCheck`;
- :class:`RateLimiter` (``ratelimit``), to share one request rate between several clients, and
  :class:`RetryPolicy` (``retry``), the backoff a client follows.

The modules behind them, one concept each:

- ``core``: the rules both clients share (the settings every attempt follows, and what an
  attempt's result means: the decoded body, a retry, or which exception);
- ``client`` and ``async_client``: the two transports (http.client, or urllib3 through a proxy;
  and httpx), each sending one attempt, and the API's calls; ``connections``: the keep-alive
  connections of the first;
- ``answers``: what an attempt comes back with, read under the size limit, and the JSON guards;
- ``inputs``: the arguments' defaults and their checks, before anything is sent;
- ``auth``: the token, cleaned once and never shown;
- ``retry`` (when to send again), ``ratelimit``, ``deadline`` (the total time limit of one sync
  attempt) and ``models``.

Every exception is in :mod:`numberyo_provider.errors`.

Names are resolved on first use (:pep:`562`), so this package costs nothing to import: importing
``numberyo_provider.api.models`` does not import requests, and importing the sync client does not
import httpx (the async client's, about 0.1 s); nothing here imports pyarrow or DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from numberyo_provider.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from numberyo_provider.api.async_client import AsyncNumberYoClient
    from numberyo_provider.api.client import DEFAULT_BASE_URL, NumberYoClient
    from numberyo_provider.api.models import (
        CHECK_TYPES,
        Check,
        CheckPage,
        CheckResults,
        CreatedCheck,
        HlrResult,
        Pagination,
        VerifyResult,
    )
    from numberyo_provider.api.ratelimit import RateLimiter
    from numberyo_provider.api.retry import RetryPolicy

#: Exported name -> the module that defines it.
_HOMES: dict[str, str] = {
    "AsyncNumberYoClient": "numberyo_provider.api.async_client",
    "DEFAULT_BASE_URL": "numberyo_provider.api.client",
    "NumberYoClient": "numberyo_provider.api.client",
    "CHECK_TYPES": "numberyo_provider.api.models",
    "Check": "numberyo_provider.api.models",
    "CheckPage": "numberyo_provider.api.models",
    "CheckResults": "numberyo_provider.api.models",
    "CreatedCheck": "numberyo_provider.api.models",
    "HlrResult": "numberyo_provider.api.models",
    "Pagination": "numberyo_provider.api.models",
    "VerifyResult": "numberyo_provider.api.models",
    "RateLimiter": "numberyo_provider.api.ratelimit",
    "RetryPolicy": "numberyo_provider.api.retry",
}

__all__ = [
    "CHECK_TYPES",
    "DEFAULT_BASE_URL",
    "AsyncNumberYoClient",
    "Check",
    "CheckPage",
    "CheckResults",
    "CreatedCheck",
    "HlrResult",
    "NumberYoClient",
    "Pagination",
    "RateLimiter",
    "RetryPolicy",
    "VerifyResult",
]


__getattr__, __dir__ = lazy_exports(globals(), _HOMES)
