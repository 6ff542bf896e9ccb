"""Parquet landing: the data of a load, as files a reader can trust, before it reaches a warehouse.

Layout (Hive-style, readable with ``read_parquet(..., hive_partitioning=true)`` in DuckDB or
``pyarrow.dataset(..., partitioning="hive")``)::

    <root>/<table>/type=<HLR|Verify>/created_date=<YYYY-MM-DD>/<load_id>-<seq>.parquet

``type`` is the check type (the ``type`` column of ``checks``, the table's own type for the
results tables); ``created_date`` is the UTC date of the row's ``created_at``
(``__HIVE_DEFAULT_PARTITION__`` when it is null). Partition values are percent-encoded when they
hold anything but letters, digits, ``_`` and ``-`` (Hive readers decode them), so the path key
always equals the ``type`` column kept inside the ``checks`` files. Every file carries the table's
exact Arrow schema (descriptions included) and zstd compression.

No reader ever sees half a file:

* local directories: written to a hidden ``.<name>.tmp`` next to the target, fsynced, then
  ``os.replace``-d into place (atomic rename within one directory), then the directory is fsynced;
* object stores whose PUT is atomic (S3, GCS, Azure Blob): the file is written to a local spool
  file, then uploaded in one ``put_file`` to its final key. The object only becomes visible when
  the upload completes (single PUT or CompleteMultipartUpload); a failed upload leaves no object
  (an aborted multipart upload is invisible; a bucket lifecycle rule reclaims its parts). A temp
  key + copy would double the traffic for no extra safety;
* any other fsspec filesystem: uploaded to ``<root>/_tmp/<load_id>/<name>`` (outside every table
  directory), then moved to its final path.

Memory stays flat however much a load holds: rows are buffered per partition and written as soon as
a partition reaches ``rows_per_file``; when all buffers together exceed ``max_buffered_rows`` the
largest ones are written early (as smaller files).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import re
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from numberyo_provider.errors import ConfigurationError, NumberYoError
from numberyo_provider.private_files import create_private_file, make_private_dirs
from numberyo_provider.schema import CHECKS, HLR_RESULTS, OTHER_RESULTS, VERIFY_RESULTS, Table

log = logging.getLogger(__name__)

#: Partition value for a null ``created_at`` (the Hive convention; DuckDB reads it as NULL).
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"

#: Rows per Parquet row group: DuckDB's own row-group size, so its scans parallelise per group.
ROW_GROUP_ROWS = 122_880

#: fsspec protocols whose object PUT is atomic (the object appears only once complete).
ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})

_TYPE_OF_RESULTS_TABLE = {HLR_RESULTS.name: "HLR", VERIFY_RESULTS.name: "Verify"}
#: Tables whose rows carry their check type in a ``type`` column (the partition value).
_TYPED_BY_COLUMN = (CHECKS.name, OTHER_RESULTS.name)
_LOAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_-]+")


class SchemaMismatchError(NumberYoError, ValueError):
    """Data handed to the lander does not fit the table's schema; names the column."""


@dataclass(frozen=True)
class LandedFile:
    """One Parquet file a load wrote. ``path`` is absolute (local) or a full URL (``s3://...``)."""

    table: str
    path: str
    rows: int
    partition: dict[str, str] = field(default_factory=dict)


def conform(
    table: Table,
    data: pa.Table | pa.RecordBatch,
    *,
    load_id: str | None = None,
    loaded_at: datetime | None = None,
) -> pa.Table:
    """``data`` with exactly ``table``'s schema: columns in order, safe casts, nulls checked.

    Missing nullable columns become typed nulls (the list endpoint knows only a few columns);
    unknown columns, missing NOT NULL columns, lossy casts and nulls in NOT NULL columns are a
    :class:`SchemaMismatchError` naming the column. The lineage columns ``_load_id`` /
    ``_loaded_at`` are filled from ``load_id`` / ``loaded_at`` when absent or null.
    """
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if not isinstance(data, pa.Table):
        raise SchemaMismatchError(
            f"{table.name}: expected a pyarrow Table or RecordBatch, got {type(data).__name__}"
        )
    names = data.column_names
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchemaMismatchError(f"{table.name}: column(s) {', '.join(dupes)} appear twice")
    unknown = [n for n in names if n not in table.schema.names]
    if unknown:
        raise SchemaMismatchError(
            f"{table.name}: column(s) {', '.join(unknown)} are not in the schema of "
            f"{table.name} ({', '.join(table.schema.names)}); put fields the model does not know "
            "into the `extra` JSON column instead"
        )
    n = data.num_rows
    fill: dict[str, Any] = {}
    if load_id is not None:
        fill["_load_id"] = pa.scalar(load_id, pa.string())
    if loaded_at is not None:
        fill["_loaded_at"] = pa.scalar(loaded_at, table.schema.field("_loaded_at").type)
    columns: list[pa.ChunkedArray] = []
    for f in table.schema:
        if f.name in names:
            col = data.column(f.name)
            if col.type != f.type:
                try:
                    col = col.cast(f.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                    raise SchemaMismatchError(
                        f"{table.name}.{f.name}: cannot convert {col.type} to {f.type} "
                        f"without loss: {exc}"
                    ) from exc
            if f.name in fill and col.null_count:
                col = pc.fill_null(col, fill[f.name])
        elif f.name in fill:
            col = pa.chunked_array([pc.fill_null(pa.nulls(n, f.type), fill[f.name])])
        elif f.nullable:
            col = pa.chunked_array([pa.nulls(n, f.type)])
        else:
            raise SchemaMismatchError(
                f"{table.name}: required column {f.name} ({f.type}) is missing"
            )
        if not f.nullable and col.null_count:
            raise SchemaMismatchError(
                f"{table.name}.{f.name}: {col.null_count} null value(s) in a NOT NULL column"
            )
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=table.schema)


def encode_partition_value(value: str) -> str:
    """A partition value as it appears in a path (percent-encoded unless plain)."""
    if value == NULL_PARTITION or _PLAIN_VALUE.fullmatch(value):
        return value
    return urllib.parse.quote(value, safe="")


@dataclass
class _Buffer:
    table: Table
    partition: tuple[str, str]
    chunks: list[pa.Table] = field(default_factory=list)
    rows: int = 0


class ParquetLander:
    """Writes one load's rows as partitioned Parquet files under ``root`` (not thread-safe).

    ``root`` is a local directory or an fsspec URL (``s3://bucket/prefix``), ``storage_options``
    the fsspec options for it (credentials, ``client_kwargs={"endpoint_url": ...}``).
    """

    def __init__(
        self,
        root: str,
        load_id: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        rows_per_file: int = 250_000,
        max_buffered_rows: int = 500_000,
    ) -> None:
        if not isinstance(load_id, str) or not _LOAD_ID.fullmatch(load_id):
            raise ConfigurationError(
                f"load id {load_id!r} cannot name files: use 1-128 letters, digits, '_', '.' or "
                "'-', starting with a letter or digit"
            )
        if rows_per_file < 1 or max_buffered_rows < 1:
            raise ConfigurationError(
                f"rows_per_file ({rows_per_file}) and max_buffered_rows ({max_buffered_rows}) "
                "must be positive"
            )
        self.root = root
        self.load_id = load_id
        self.storage_options = dict(storage_options or {})
        self.rows_per_file = rows_per_file
        self.max_buffered_rows = max_buffered_rows
        self._fs, self._root = _filesystem(root, self.storage_options)
        self._local = isinstance(self._fs, LocalFileSystem)
        self._atomic_put = bool(_protocols(self._fs) & ATOMIC_PUT_PROTOCOLS)
        self._buffers: dict[tuple[str, str, str], _Buffer] = {}
        self._buffered_rows = 0
        self._seq = 0
        self._landed_at = datetime.now(timezone.utc)
        self._aborted = False
        self.files: list[LandedFile] = []

    # -- public ---------------------------------------------------------------------------

    @property
    def buffered_rows(self) -> int:
        """Rows held in memory, not yet in a file (never above ``max_buffered_rows`` after a
        ``write`` returns)."""
        return self._buffered_rows

    def write(self, table: Table, data: pa.Table | pa.RecordBatch) -> None:
        """Buffer ``data`` for ``table``; files are written as partitions fill up."""
        self._check_open()
        if not table.landed or table.name not in (*_TYPED_BY_COLUMN, *_TYPE_OF_RESULTS_TABLE):
            raise ConfigurationError(
                f"table {table.name!r} is not landed as Parquet (only checks, hlr_results, "
                "verify_results and other_results are)"
            )
        conformed = conform(table, data, load_id=self.load_id, loaded_at=self._landed_at)
        if conformed.num_rows == 0:
            return
        for partition, part in self._split(table, conformed):
            self._append(table, partition, part)

    def flush(self) -> list[LandedFile]:
        """Write everything buffered; return every file of this load so far."""
        self._check_open()
        for buf in list(self._buffers.values()):
            while buf.rows:
                self._write_from(buf, min(buf.rows, self.rows_per_file))
        self._buffers.clear()
        return list(self.files)

    def abort(self) -> None:
        """Remove this load's files and temp files (best effort); the lander is then unusable.

        ``files`` keeps listing what the load wrote, so a caller can still record them.
        """
        self._aborted = True
        self._buffers.clear()
        self._buffered_rows = 0
        for f in self.files:
            try:
                _remove_one(self._fs, self._local, self._root, f.path)
            except OSError:
                continue
        if not self._local:
            tmp = posixpath.join(self._root, "_tmp", self.load_id)
            try:
                if self._fs.exists(tmp):
                    self._fs.rm(tmp, recursive=True)
            except OSError:
                pass

    # -- internals ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._aborted:
            raise ConfigurationError(f"load {self.load_id} was aborted; start a new lander")

    def _split(self, table: Table, data: pa.Table) -> Iterator[tuple[tuple[str, str], pa.Table]]:
        # Partition key as one integer per row: type code * number of dates + date code. The
        # UTC date comes from a cast (the timestamps are UTC), much cheaper than strftime.
        utc_dates = pc.cast(pc.cast(data.column("created_at"), pa.timestamp("us")), pa.date32())
        date_codes, dates = _codes(utc_dates)
        date_names = [d.isoformat() for d in dates] + [NULL_PARTITION]
        date_codes = pc.fill_null(date_codes, len(dates))
        if table.name in _TYPED_BY_COLUMN:
            type_codes, type_names = _codes(data.column("type"))
            keys = pc.add(pc.multiply(type_codes, len(date_names)), date_codes)
        else:
            type_names = [_TYPE_OF_RESULTS_TABLE[table.name]]
            keys = date_codes

        def name(code: int) -> tuple[str, str]:
            return str(type_names[code // len(date_names)]), date_names[code % len(date_names)]

        distinct = pc.unique(keys).to_pylist()
        if len(distinct) == 1:
            yield name(distinct[0]), data
            return
        # Stable sort by partition, then one compact copy per partition (no slice keeps the
        # whole batch alive in a buffer).
        order = pc.sort_indices(keys)
        runs = pc.run_end_encode(keys.take(order))
        start = 0
        for end, code in zip(runs.run_ends.to_pylist(), runs.values.to_pylist(), strict=True):
            yield name(code), data.take(order.slice(start, end - start))
            start = end

    def _append(self, table: Table, partition: tuple[str, str], part: pa.Table) -> None:
        key = (table.name, *partition)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = _Buffer(table, partition)
        buf.chunks.append(part)
        buf.rows += part.num_rows
        self._buffered_rows += part.num_rows
        while buf.rows >= self.rows_per_file:
            self._write_from(buf, self.rows_per_file)
        while self._buffered_rows > self.max_buffered_rows:
            largest = max(self._buffers.values(), key=lambda b: b.rows)
            self._write_from(largest, largest.rows)

    def _write_from(self, buf: _Buffer, rows: int) -> None:
        combined = pa.concat_tables(buf.chunks)
        head = combined.slice(0, rows)
        rest = combined.slice(rows)
        buf.chunks = [rest] if rest.num_rows else []
        buf.rows -= rows
        self._buffered_rows -= rows
        self._write_file(buf.table, buf.partition, head)

    def _write_file(self, table: Table, partition: tuple[str, str], data: pa.Table) -> None:
        self._seq += 1
        name = f"{self.load_id}-{self._seq:05d}.parquet"
        typ, date = partition
        rel = posixpath.join(
            table.name,
            f"type={encode_partition_value(typ)}",
            f"created_date={encode_partition_value(date)}",
        )
        if self._local:
            path = self._write_local(os.path.join(self._root, *rel.split("/")), name, data)
        else:
            path = self._write_remote(posixpath.join(self._root, rel), name, data)
        self.files.append(
            LandedFile(table.name, path, data.num_rows, {"type": typ, "created_date": date})
        )

    def _write_local(self, directory: str, name: str, data: pa.Table) -> str:
        make_private_dirs(directory)
        final = os.path.join(directory, name)
        tmp = os.path.join(directory, f".{name}.tmp")
        try:
            create_private_file(tmp)  # numbers in clear: 0600; pyarrow keeps the mode
            _write_parquet(data, tmp)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        _fsync_dir(directory)
        return final

    def _write_remote(self, directory: str, name: str, data: pa.Table) -> str:
        final = posixpath.join(directory, name)
        fd, spool = tempfile.mkstemp(prefix="numberyo-", suffix=".parquet")
        os.close(fd)
        try:
            _write_parquet(data, spool)
            if self._atomic_put:
                self._fs.put_file(spool, final)
            else:
                tmp_dir = posixpath.join(self._root, "_tmp", self.load_id)
                tmp = posixpath.join(tmp_dir, name)
                self._fs.makedirs(tmp_dir, exist_ok=True)
                self._fs.makedirs(directory, exist_ok=True)
                self._fs.put_file(spool, tmp)
                self._fs.mv(tmp, final)
        finally:
            _unlink_quietly(spool)
        return str(self._fs.unstrip_protocol(final))


def remove_files(
    root: str, paths: Iterable[str], storage_options: Mapping[str, Any] | None = None
) -> list[str]:
    """Delete landed files (e.g. a failed load's) and their temp files; missing ones are fine.

    Returns the paths that are gone now. Paths that are not ``.parquet`` files under ``root`` are
    never touched (logged and skipped, not returned): after a change of landing root, old
    manifests must not make a run fail, nor delete elsewhere.
    """
    fs, root_path = _filesystem(root, dict(storage_options or {}))
    local = isinstance(fs, LocalFileSystem)
    gone: list[str] = []
    for p in paths:
        if _relative_to_root(fs, root_path, p) is None or not p.endswith(".parquet"):
            log.warning("not deleting %s: not a .parquet file under the landing root %s", p, root)
            continue
        _remove_one(fs, local, root_path, p)
        gone.append(p)
    return gone


# --- helpers -------------------------------------------------------------------------------


def _filesystem(root: str, storage_options: Mapping[str, Any]) -> tuple[Any, str]:
    if not root:
        raise ConfigurationError("the landing root is empty: give a directory or an fsspec URL")
    try:
        fs, path = fsspec.core.url_to_fs(root, **storage_options)
    except (ValueError, ImportError) as exc:
        raise ConfigurationError(f"cannot open landing root {root!r}: {exc}") from exc
    if isinstance(fs, LocalFileSystem):
        path = os.path.abspath(path)
    return fs, str(path).rstrip("/") or "/"


def _protocols(fs: Any) -> set[str]:
    proto = fs.protocol
    return {proto} if isinstance(proto, str) else set(proto)


def _codes(values: pa.ChunkedArray) -> tuple[pa.Array, list[Any]]:
    """Dictionary codes (int64, null where the value is null) and the distinct values."""
    encoded = pc.dictionary_encode(values.combine_chunks())
    return encoded.indices.cast(pa.int64()), encoded.dictionary.to_pylist()


def _write_parquet(data: pa.Table, where: str) -> None:
    pq.write_table(data, where, compression="zstd", row_group_size=ROW_GROUP_ROWS)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_dir(directory: str) -> None:
    """Make the rename durable (POSIX); harmless no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _relative_to_root(fs: Any, root_path: str, path: str) -> str | None:
    stripped = fs._strip_protocol(path)
    if isinstance(fs, LocalFileSystem):
        stripped = os.path.abspath(stripped)
    norm = posixpath.normpath(str(stripped))
    root = posixpath.normpath(root_path)
    prefix = root.rstrip("/") + "/"
    if not norm.startswith(prefix):
        return None
    return norm[len(prefix) :]


def _remove_one(fs: Any, local: bool, root_path: str, path: str) -> None:
    rel = _relative_to_root(fs, root_path, path)
    if rel is None:
        return
    name = posixpath.basename(rel)
    if local:
        target = os.path.join(root_path, *rel.split("/"))
        directory = os.path.dirname(target)
        for p in (target, os.path.join(directory, f".{name}.tmp")):
            _unlink_quietly(p)
        # Prune emptied partition directories, never the table directory or the root.
        for _ in range(2):
            if os.path.normpath(directory) == os.path.normpath(root_path):
                break
            try:
                os.rmdir(directory)
            except OSError:
                break
            directory = os.path.dirname(directory)
        return
    target = posixpath.join(root_path, rel)
    load_id = name.rsplit("-", 1)[0]
    for p in (target, posixpath.join(root_path, "_tmp", load_id, name)):
        try:
            fs.rm_file(p)
        except FileNotFoundError:
            continue
