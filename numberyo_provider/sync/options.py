"""What one sync run does and within which limits: :class:`SyncOptions`, the match of the checks'
``CheckOptions``.

Every setting of a run is validated here, once, whoever builds it: ``run_sync``'s keyword
arguments, ``numberyo sync`` and ``NumberYoSyncOperator`` (both through
:func:`numberyo_provider.config.resolve_sync_options`, which adds the defaults that come from the
environment). Text is accepted where a number or a flag is expected, by the rules of
:mod:`numberyo_provider.coercion` (Airflow templates render ``"8"`` and ``"True"``), and stored as
the typed value; a bad value is a :class:`~numberyo_provider.errors.ConfigurationError` naming the
setting.

What is not a setting stays out: the API side (a client, or token and base URL), the warehouse URL
(the run's target, given next to the options), and the run's collaborators (``progress``,
``cancel``, ``on_stage``), which are objects of one call rather than values one could reuse.

The privacy policy's class and the lander's rule for a load id are imported by the checks that
need them, only when those settings are given: both modules bring pyarrow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from numberyo_provider.coercion import as_bool, as_int, as_seconds
from numberyo_provider.errors import ConfigurationError

if TYPE_CHECKING:
    from numberyo_provider.privacy import PrivacyPolicy

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_MAX_BUFFERED_ROWS",
    "DEFAULT_ROWS_PER_FILE",
    "SyncOptions",
]

#: Parallel API requests (list pages and result fetches share them).
DEFAULT_CONCURRENCY = 8
#: Seconds to wait for another writer of the warehouse (a DuckDB file, a PostgreSQL lock).
DEFAULT_LOCK_TIMEOUT = 60.0
#: Checks listed, filtered, fetched and landed together; three batches are in flight at most.
DEFAULT_BATCH_SIZE = 1000
#: Rows the lander holds in memory before writing a row group to its open file (bounds memory,
#: not the number of files: a run lands one file per table and check type, and one more per
#: ``DEFAULT_ROWS_PER_FILE`` rows, however many days its checks span).
DEFAULT_MAX_BUFFERED_ROWS = 20_000
DEFAULT_ROWS_PER_FILE = 250_000


@dataclass(frozen=True)
class SyncOptions:
    """The settings of one sync run; see the module docstring for what is (not) in here.

    :param parquet_path: the landing: a local directory or an fsspec URL (``s3://bucket/prefix``).
    :param full_refresh: re-read every check and its results (the watermark is ignored).
    :param concurrency: parallel API requests.
    :param privacy: what the warehouse keeps of phone numbers and IMSIs; ``None`` keeps them
        (build one with :func:`numberyo_provider.config.resolve_privacy`).
    :param storage_options: fsspec options for an object-store ``parquet_path``.
    :param lock_timeout: seconds to wait for another writer of the warehouse.
    :param batch_size: checks listed, fetched and landed together.
    :param load_id: the run's id (in file names and ``_loads``); default: a new one per run.
    :param rows_per_file: rows in one landed file at most (another file is started after).
    :param max_buffered_rows: rows held in memory before a row group is written.
    """

    parquet_path: str
    full_refresh: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    privacy: PrivacyPolicy | None = None
    storage_options: Mapping[str, Any] | None = None
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    batch_size: int = DEFAULT_BATCH_SIZE
    load_id: str | None = None
    rows_per_file: int = DEFAULT_ROWS_PER_FILE
    max_buffered_rows: int = DEFAULT_MAX_BUFFERED_ROWS

    def __post_init__(self) -> None:
        path = self.parquet_path
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str) or not path.strip():
            raise ConfigurationError(
                "no parquet path given: pass a directory (or s3://bucket/prefix) to land files in"
            )
        self._set("parquet_path", path)
        self._set("full_refresh", as_bool("full_refresh", self.full_refresh))
        for name in ("concurrency", "batch_size", "rows_per_file", "max_buffered_rows"):
            self._set(name, as_int(name, getattr(self, name), minimum=1))
        self._set("lock_timeout", as_seconds("lock_timeout", self.lock_timeout))
        if self.privacy is not None:
            from numberyo_provider.privacy import PrivacyPolicy

            if not isinstance(self.privacy, PrivacyPolicy):
                raise ConfigurationError(
                    f"privacy must be a PrivacyPolicy or None, got {self.privacy!r}: for a mode "
                    "name use numberyo_provider.config.resolve_privacy(mode)"
                )
        if self.storage_options is not None:
            if not isinstance(self.storage_options, Mapping):
                raise ConfigurationError(
                    f"storage_options must be a mapping of fsspec options, got "
                    f"{type(self.storage_options).__name__}"
                )
            # A copy (the caller's stays theirs); empty is none: fsspec's defaults.
            self._set("storage_options", dict(self.storage_options) or None)
        if self.load_id is not None:
            # The lander's own rule (a load id names files), checked before anything is touched.
            from numberyo_provider.sync.land import _LOAD_ID

            if not isinstance(self.load_id, str) or not _LOAD_ID.fullmatch(self.load_id):
                raise ConfigurationError(
                    f"load_id {self.load_id!r} cannot name files: use 1-128 letters, digits, "
                    "'_', '.' or '-', starting with a letter or digit"
                )

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """The names a setting can be given by (``run_sync``'s keyword arguments)."""
        return frozenset(f.name for f in fields(cls))
