"""Airflow hook: turns a ``numberyo`` connection into a configured :class:`NumberYoClient`.

The hook only wires configuration; every behaviour (retries, errors, rate limit) is the client's.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import BaseHook

from numberyo_provider.client import DEFAULT_BASE_URL, NumberYoClient
from numberyo_provider.coercion import as_bool
from numberyo_provider.errors import ConfigurationError, NumberYoError

_HTTPS_PORT = 443

#: Connection extras the hook understands, with how to coerce them (they may arrive as strings
#: from a URI-form connection).
_EXTRA_TYPES: dict[str, type] = {
    "timeout": float,
    "connect_timeout": float,
    "max_retries": int,
    "requests_per_second": float,
    "verify_ssl": bool,
}


def _coerce(name: str, value: Any, typ: type) -> Any:
    if value is None or value == "":
        return None
    if typ is bool:
        return as_bool(f"connection extra {name!r}", value)
    try:
        return typ(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"connection extra {name!r} must be a {typ.__name__}, got {value!r}"
        ) from None


class NumberYoHook(BaseHook):
    """Connection to the NumberYo API.

    Host is the base URL (empty: production ``https://www.numberyo.tech``), password is the API
    token. Extras: ``timeout`` (read timeout, s), ``connect_timeout`` (s), ``max_retries``,
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
        token = conn.password or ""
        if not token:
            raise ConfigurationError(
                f"connection {self.numberyo_conn_id!r} has no API token: put the token in the "
                "connection's password field (labelled 'API token')"
            )
        self._mask(token)
        extra = conn.extra_dejson or {}
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
            kwargs["timeout"] = (opts["connect_timeout"] or 5.0, opts["timeout"] or 30.0)
        for key in ("max_retries", "requests_per_second", "verify_ssl"):
            if opts[key] is not None:
                kwargs[key] = opts[key]
        if extra.get("privacy_secret"):
            self._mask(str(extra["privacy_secret"]))
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

    @staticmethod
    def _mask(secret: str) -> None:
        """Airflow masks passwords it fetched itself; mask again so any copy is hidden too."""
        try:
            from airflow.sdk.log import mask_secret
        except ImportError:  # pragma: no cover - older task SDKs
            return
        mask_secret(secret)

    def get_client(self, *, pool_size: int | None = None, **overrides: Any) -> NumberYoClient:
        """A client configured from the connection; ``pool_size`` should match your workers."""
        kwargs = {**self.settings, **overrides}
        if pool_size is not None:
            kwargs["pool_size"] = pool_size
        return NumberYoClient(**kwargs)

    def get_conn(self) -> NumberYoClient:
        return self.get_client()

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
