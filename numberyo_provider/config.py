"""Where each setting comes from: one resolver for the CLI, the operators, the hook and the DAGs.

Every setting is resolved with the same precedence, highest first:

1. **explicit**: a CLI flag, an operator argument, a keyword argument;
2. **the Airflow connection**, when one is used (password, host, extras);
3. **the environment**: ``NUMBERYO_API_TOKEN``, ``NUMBERYO_BASE_URL``, ``NUMBERYO_PRIVACY_MODE``,
   ``NUMBERYO_PRIVACY_SECRET``, ``NUMBERYO_PARQUET_PATH``;
4. **the default**: production API, privacy ``keep``, Parquet beside the DuckDB warehouse.

Renamed in 0.2: ``NUMBERYO_PARQUET_DIR`` is ``NUMBERYO_PARQUET_PATH``; the old variable is still
read, with a ``DeprecationWarning`` (one line on stderr from the CLI), until 0.3.

A sync run's settings are resolved as one :class:`~numberyo_provider.sync.options.SyncOptions`
by :func:`resolve_sync_options`, the one path of ``numberyo sync`` and ``NumberYoSyncOperator``.

Before this module the CLIs and the operators each decided, and disagreed: the operators took the
HMAC secret from the connection before the environment while ``numberyo sync`` did the opposite,
and the operators ignored ``NUMBERYO_PRIVACY_MODE``. ``docs/configuration.md`` has the table.
Plain Python: the Airflow layer passes what it read from the connection in. Light to import (the
CLI's ``--help`` and the DAG files read it): the privacy policy and ``SyncOptions`` (pyarrow) are
imported by the functions that build them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from numberyo_provider.deprecation import warn_renamed
from numberyo_provider.errors import ConfigurationError

if TYPE_CHECKING:
    from numberyo_provider.privacy import PrivacyPolicy
    from numberyo_provider.sync.options import SyncOptions

__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "PARQUET_DEFAULT_TEXT",
    "PARQUET_DIR_ENV",
    "PARQUET_PATH_ENV",
    "PRIVACY_MODES",
    "PRIVACY_MODE_ENV",
    "PRIVACY_SECRET_ENV",
    "TOKEN_ENV",
    "PrivacyMode",
    "default_parquet_dir",
    "default_parquet_path",
    "resolve_base_url",
    "resolve_parquet_path",
    "resolve_privacy",
    "resolve_sync_options",
    "resolve_token",
]

TOKEN_ENV = "NUMBERYO_API_TOKEN"  # noqa: S105 - the name of a variable, not a secret
#: The production API: the address when nothing says otherwise (``api/`` takes it from here).
DEFAULT_BASE_URL = "https://www.numberyo.tech"
BASE_URL_ENV = "NUMBERYO_BASE_URL"
PRIVACY_MODE_ENV = "NUMBERYO_PRIVACY_MODE"
PRIVACY_SECRET_ENV = "NUMBERYO_PRIVACY_SECRET"  # noqa: S105 - a variable name
PARQUET_PATH_ENV = "NUMBERYO_PARQUET_PATH"
#: :data:`PARQUET_PATH_ENV`'s name before 0.2, still read (with a warning) until 0.3.
PARQUET_DIR_ENV = "NUMBERYO_PARQUET_DIR"
#: What the warehouse keeps of phone numbers and IMSIs (:mod:`numberyo_provider.privacy` says what
#: each mode does). The words live here, with the setting, so that a command line can offer them
#: without importing the policy (pyarrow, phonenumbers): ``numberyo simulate`` builds every
#: subcommand's flags.
PrivacyMode = Literal["keep", "mask", "hmac"]
PRIVACY_MODES: tuple[str, ...] = get_args(PrivacyMode)
#: The landing directory's name when nothing says where it is.
PARQUET_DIR_NAME = "numberyo-parquet"
#: :func:`default_parquet_path` in words, for help texts and docs.
PARQUET_DEFAULT_TEXT = (
    f"${PARQUET_PATH_ENV}, else {PARQUET_DIR_NAME}/ beside a DuckDB warehouse file, else "
    f"./{PARQUET_DIR_NAME}"
)


def _first(*values: object) -> str | None:
    """The first value that is not None and not blank, as stripped text."""
    for value in values:
        if value is None:
            continue
        text = str(value).strip()
        if text:
            return text
    return None


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def resolve_token(
    explicit: str | None = None,
    *,
    connection: str | None = None,
    environ: Mapping[str, str] | None = None,
    required: bool = True,
    hint: str = "",
) -> str | None:
    """The API token: explicit, the connection's password, ``NUMBERYO_API_TOKEN``.

    The token is returned as given (``Bearer x`` included): cleaning it is the client's one rule.
    """
    token = _first(explicit, connection, _env(environ).get(TOKEN_ENV))
    if token is None and required:
        raise ConfigurationError(
            f"no API token: set {TOKEN_ENV} (generate one on the NumberYo dashboard){hint}"
        )
    return token


def resolve_base_url(
    explicit: str | None = None,
    *,
    connection: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The API address: explicit, the connection's host, ``NUMBERYO_BASE_URL``, production."""
    return _first(explicit, connection, _env(environ).get(BASE_URL_ENV)) or DEFAULT_BASE_URL


def resolve_privacy(
    mode: str | None = None,
    secret: str | None = None,
    *,
    connection_secret: str | Callable[[], str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> PrivacyPolicy:
    """The privacy policy. Mode: explicit, ``NUMBERYO_PRIVACY_MODE``, ``keep``. HMAC secret:
    explicit, the connection extra ``privacy_secret``, ``NUMBERYO_PRIVACY_SECRET``.

    ``connection_secret`` may be a callable, asked only when the mode is ``hmac`` and no explicit
    secret was given (reading a connection can cost a round trip to the metadata database).
    """
    from numberyo_provider.privacy import PrivacyPolicy

    env = _env(environ)
    chosen = (_first(mode, env.get(PRIVACY_MODE_ENV)) or "keep").lower()
    from_connection = connection_secret
    if callable(from_connection):
        from_connection = from_connection() if chosen == "hmac" and not _first(secret) else None
    key = _first(secret, from_connection, env.get(PRIVACY_SECRET_ENV))
    return PrivacyPolicy(mode=chosen, secret=key)  # type: ignore[arg-type]


def default_parquet_path(
    warehouse: str | None = None, *, environ: Mapping[str, str] | None = None
) -> str:
    """Where Parquet lands when nobody says: ``NUMBERYO_PARQUET_PATH``, else ``numberyo-parquet``
    beside a DuckDB warehouse file (so the two travel together), else in the working directory.

    ``NUMBERYO_PARQUET_DIR``, the variable's name before 0.2, is still read when the new one is
    not set, with a :class:`DeprecationWarning`."""
    env = _env(environ)
    configured = _first(env.get(PARQUET_PATH_ENV))
    if configured:
        return configured
    configured = _first(env.get(PARQUET_DIR_ENV))
    if configured:
        warnings.warn(
            f"the environment variable {PARQUET_DIR_ENV} is deprecated, use {PARQUET_PATH_ENV} "
            "(renamed in 0.2; the old name stops working in 0.3)",
            DeprecationWarning,
            stacklevel=2,
        )
        return configured
    path = _duckdb_file(warehouse)
    if path is not None:
        return str(path.parent / PARQUET_DIR_NAME)
    return f"./{PARQUET_DIR_NAME}"


def default_parquet_dir(
    warehouse: str | None = None, *, environ: Mapping[str, str] | None = None
) -> str:
    """:func:`default_parquet_path`'s name before 0.2: works until 0.3, with a warning."""
    warn_renamed("default_parquet_dir()", "default_parquet_path()", where=__name__)
    return default_parquet_path(warehouse, environ=environ)


def resolve_parquet_path(
    explicit: str | None = None,
    *,
    warehouse: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Where Parquet lands: explicit (``--parquet-path``, ``parquet_path=``), else
    :func:`default_parquet_path`."""
    return _first(explicit) or default_parquet_path(warehouse, environ=environ)


def resolve_sync_options(
    *,
    warehouse: str | None = None,
    parquet_path: str | None = None,
    privacy: PrivacyPolicy | str | None = None,
    privacy_secret: str | None = None,
    connection_secret: str | Callable[[], str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> SyncOptions:
    """A sync run's settings, resolved: ``parquet_path`` by :func:`resolve_parquet_path` (beside
    ``warehouse`` by default), the privacy policy by :func:`resolve_privacy` (``privacy`` is its
    mode; a ready policy is taken as it is), every other ``SyncOptions`` field as given (``None``
    is not given: the field's default). Validated, text included, by ``SyncOptions``."""
    from numberyo_provider.privacy import PrivacyPolicy
    from numberyo_provider.sync.options import SyncOptions

    policy = (
        privacy
        if isinstance(privacy, PrivacyPolicy)
        else resolve_privacy(
            privacy, privacy_secret, connection_secret=connection_secret, environ=environ
        )
    )
    given = {name: value for name, value in settings.items() if value is not None}
    return SyncOptions(
        parquet_path=resolve_parquet_path(parquet_path, warehouse=warehouse, environ=environ),
        privacy=policy,
        **given,
    )


def _duckdb_file(warehouse: str | None) -> Path | None:
    text = (warehouse or "").strip()
    if not text.lower().startswith("duckdb:///"):
        return None
    path = text[len("duckdb:///") :].split("?", 1)[0]
    if not path or path.startswith(":memory:"):
        return None
    # duckdb:///rel/file.duckdb is relative; duckdb:////abs/file.duckdb is absolute.
    return Path(path).expanduser()
