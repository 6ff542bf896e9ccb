"""Airflow hook: turns a ``numberyo`` connection into a configured :class:`NumberYoClient`.

The hook only wires configuration; every behaviour (retries, errors, rate limit) is the client's.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import BaseHook
from asgiref.sync import sync_to_async

from numberyo_provider.api.async_client import AsyncNumberYoClient
from numberyo_provider.api.auth import _clean_token
from numberyo_provider.api.client import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_MB,
    DEFAULT_TIMEOUT,
    NumberYoClient,
)
from numberyo_provider.coercion import as_bool, as_decimal, as_int, as_text
from numberyo_provider.config import resolve_privacy
from numberyo_provider.errors import ConfigurationError, NumberYoError

# The async half of the Task SDK, imported here rather than on first use: an import inside a
# trigger's run() is file I/O on the event loop.
try:
    from airflow.providers.common.compat.connection import (
        get_async_connection,
        get_async_extra_dejson,
    )
except ImportError:  # pragma: no cover - an older common-compat provider
    get_async_connection = get_async_extra_dejson = None  # type: ignore[assignment]
try:
    from airflow.sdk.log import amask_secret
except ImportError:  # pragma: no cover - task SDKs before the async masker
    amask_secret = None  # type: ignore[assignment]
try:
    from airflow.sdk.log import mask_secret
except ImportError:  # pragma: no cover - older task SDKs
    mask_secret = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from numberyo_provider.privacy import PrivacyPolicy

_HTTPS_PORT = 443

#: Connection extras the hook understands, with how to coerce them (they may arrive as strings
#: from a URI-form connection): "positive" (a number > 0), "count" or "flag".
_EXTRA_TYPES: dict[str, str] = {
    "timeout": "positive",
    "connect_timeout": "positive",
    "max_response_mb": "positive",
    "max_retries": "count",
    "requests_per_second": "positive",
    "verify_ssl": "flag",
}


def _coerce(name: str, value: object, kind: str) -> bool | int | float | None:
    """One extra, by the rules of :mod:`numberyo_provider.coercion`; ``None`` when empty."""
    label = f"connection extra {name!r}"
    if value is None or value == "":
        return None
    if kind == "flag":
        return as_bool(label, value)
    if kind == "count":
        return as_int(label, value, minimum=0)
    if isinstance(value, bool):
        raise ConfigurationError(f"{label} must be a number > 0, got {value!r}")
    amount = as_decimal(label, value)
    if amount is None or amount <= 0:
        raise ConfigurationError(f"{label} must be a number > 0, got {value!r}")
    return float(amount)


def _cleaned(token: str) -> str:
    """The token as the client sends it (a pasted ``Bearer`` prefix removed): Airflow masks the
    password as stored, which would leave the bare token visible in a log line."""
    try:
        return _clean_token(token)
    except ConfigurationError:
        return token  # the client will refuse it with a clear message


async def _aget_connection(hook: BaseHook, conn_id: str) -> Connection:
    """The connection without blocking the loop: the Task SDK's async lookup where it masks
    asynchronously (via common-compat), else the sync lookup in a worker thread."""
    if get_async_connection is None:  # pragma: no cover - an older common-compat provider
        return await sync_to_async(hook.get_connection)(conn_id)
    return await get_async_connection(conn_id, hook=hook)


async def _aextra(conn: Connection) -> dict[str, Any]:
    if get_async_extra_dejson is None:  # pragma: no cover - an older common-compat provider
        return await sync_to_async(lambda: conn.extra_dejson)() or {}
    return await get_async_extra_dejson(conn) or {}


async def _amask(secret: str) -> None:
    if amask_secret is None:  # pragma: no cover - task SDKs before the async masker
        await sync_to_async(NumberYoHook._mask)(secret)
    else:
        await amask_secret(secret)


class NumberYoHook(BaseHook):
    """Connection to the NumberYo API.

    Host is the base URL (empty: production ``https://www.numberyo.tech``), password is the API
    token. Extras: ``timeout`` (total seconds of one request, connect plus the whole answer),
    ``connect_timeout`` (s), ``max_response_mb`` (the largest answer read), ``max_retries``,
    ``requests_per_second`` (client-side rate limit, off when empty), ``verify_ssl``,
    ``privacy_secret`` (the HMAC key for the ``hmac`` privacy mode).
    """

    conn_name_attr = "numberyo_conn_id"
    default_conn_name = "numberyo_default"
    conn_type = "numberyo"
    hook_name = "NumberYo"

    def __init__(self, numberyo_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.numberyo_conn_id = numberyo_conn_id

    @cached_property
    def settings(self) -> dict[str, Any]:
        """Client keyword arguments from the connection (token included: never log this)."""
        conn = self.get_connection(self.numberyo_conn_id)
        token = self._token(conn)
        self._mask(token)
        self._mask(_cleaned(token))
        extra = conn.extra_dejson or {}
        if extra.get("privacy_secret"):
            self._mask(str(extra["privacy_secret"]))
        return self._client_kwargs(conn, token, extra)

    async def asettings(self) -> dict[str, Any]:
        """:attr:`settings` for code on an event loop (a trigger): the connection is read and the
        secrets are masked through the Task SDK's async calls, never blocking the loop."""
        conn = await _aget_connection(self, self.numberyo_conn_id)
        token = self._token(conn)
        await _amask(token)
        await _amask(_cleaned(token))
        extra = await _aextra(conn)
        if extra.get("privacy_secret"):
            await _amask(str(extra["privacy_secret"]))
        return self._client_kwargs(conn, token, extra)

    def _token(self, conn: Connection) -> str:
        token = conn.password or ""
        if not token:
            raise ConfigurationError(
                f"connection {self.numberyo_conn_id!r} has no API token: put the token in the "
                "connection's password field (labelled 'API token')"
            )
        return token

    def _client_kwargs(self, conn: Connection, token: str, extra: dict[str, Any]) -> dict[str, Any]:
        """The one reading of a connection, for the sync and the async path alike."""
        unknown = sorted(set(extra) - set(_EXTRA_TYPES) - {"privacy_secret"})
        if unknown:
            self.log.warning(
                "Connection %s: ignoring unknown extras %s", self.numberyo_conn_id, unknown
            )
        opts = {k: _coerce(k, extra.get(k), t) for k, t in _EXTRA_TYPES.items()}
        kwargs: dict[str, Any] = {"token": token}
        base_url = self._base_url(conn.host, conn.port)
        if base_url:
            kwargs["base_url"] = base_url
        if opts["timeout"] is not None or opts["connect_timeout"] is not None:
            kwargs["timeout"] = (
                opts["connect_timeout"] or DEFAULT_CONNECT_TIMEOUT,
                opts["timeout"] or DEFAULT_TIMEOUT,
            )
        if opts["max_response_mb"] not in (None, DEFAULT_MAX_RESPONSE_MB):
            kwargs["max_response_mb"] = opts["max_response_mb"]
        for key in ("max_retries", "requests_per_second", "verify_ssl"):
            if opts[key] is not None:
                kwargs[key] = opts[key]
        return kwargs

    def _base_url(self, host: str | None, port: int | None) -> str | None:
        """The Base URL field, with the Port field merged in (None: production).

        The form shows Port so that Airflow 3.3.2's Test button works (docs/connection.md); a
        Port that contradicts the Base URL is an error rather than silently ignored.
        """
        host = (host or "").strip()
        if not host:
            if port and port != _HTTPS_PORT:
                raise ConfigurationError(
                    f"connection {self.numberyo_conn_id!r} has Port {port} but no Base URL: "
                    f"production is {DEFAULT_BASE_URL} (port {_HTTPS_PORT}); set the Base URL "
                    "or empty the Port"
                )
            return None
        if "://" not in host:
            host = f"https://{host}"
        if not port:
            return host
        parts = urlsplit(host)
        try:
            url_port = parts.port
        except ValueError:  # a malformed port in the URL: the client names it
            return host
        if url_port is None:
            return urlunsplit(parts._replace(netloc=f"{parts.netloc}:{port}"))
        if url_port != port:
            raise ConfigurationError(
                f"connection {self.numberyo_conn_id!r}: Port {port} differs from the port of the "
                f"Base URL {host!r} ({url_port}); make them equal or empty the Port"
            )
        return host

    @property
    def privacy_secret(self) -> str | None:
        secret = self.get_connection(self.numberyo_conn_id).extra_dejson.get("privacy_secret")
        return str(secret) if secret else None

    def privacy_policy(self, mode: object = None, secret: object = None) -> PrivacyPolicy:
        """The privacy policy of an operator's (rendered) ``privacy`` and ``privacy_secret``,
        resolved like everywhere (:mod:`numberyo_provider.config`): mode from the argument or
        ``NUMBERYO_PRIVACY_MODE``; secret from the argument, this connection's extra
        ``privacy_secret`` (read only when the mode needs one) or ``NUMBERYO_PRIVACY_SECRET``.
        The secret is masked in the task's log."""
        policy = resolve_privacy(
            as_text(mode), as_text(secret), connection_secret=lambda: self.privacy_secret
        )
        if isinstance(policy.secret, str) and policy.secret:
            self._mask(policy.secret)
        return policy

    @staticmethod
    def _mask(secret: str) -> None:
        """Airflow masks passwords it fetched itself; mask again so any copy is hidden too."""
        if mask_secret is not None:
            mask_secret(secret)

    def get_client(self, *, pool_size: int | None = None, **overrides: Any) -> NumberYoClient:
        """A client configured from the connection; ``pool_size`` should match your workers."""
        kwargs = {**self.settings, **overrides}
        if pool_size is not None:
            kwargs["pool_size"] = pool_size
        return NumberYoClient(**kwargs)

    def get_conn(self) -> NumberYoClient:
        return self.get_client()

    async def aget_async_client(self, **overrides: Any) -> AsyncNumberYoClient:
        """An :class:`AsyncNumberYoClient` from the connection, for a trigger: the connection
        is read asynchronously and the client built in a worker thread (it loads the CA bundle),
        so the event loop never blocks. Close it with ``async with`` or ``await aclose()``."""
        return await AsyncNumberYoClient.open(**{**await self.asettings(), **overrides})

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's Test button: one cheap, free request (``GET /api/checks?page=1``)."""
        try:
            with self.get_client(max_retries=0) as client:
                page = client.list_checks(1)
        except NumberYoError as exc:
            return False, str(exc)
        except Exception as exc:  # the UI wants a message, never a traceback
            return False, f"{type(exc).__name__}: {exc}"
        return True, (
            f"Connected to {client.base_url}: the account has {page.pagination.total} checks."
        )
