"""Parquet landing: the data of a load, as files a reader can trust, before it reaches a warehouse.

Layout (Hive-style, readable with ``read_parquet('<root>/<table>/**/*.parquet',
hive_partitioning=true)`` in DuckDB or ``pyarrow.dataset(..., partitioning="hive")``)::

    <root>/<table>/type=<HLR|Verify>/landed_date=<YYYY-MM-DD>/<load_id>-<seq>.parquet

Partitioned by load, not by the data's own dates: ``landed_date`` is the UTC date the load
started (every file of a load shares it, even one finished after midnight), and ``type`` the check
type (the ``type`` column of ``checks``, the table's own type for the results tables). A load
therefore writes one file per table and type, plus one more per ``rows_per_file`` rows, however
many days or years its rows were created over: a three-year backfill is a handful of files, not
one per created day (which made the warehouse merge of a first backfill run out of memory on
thousands of tiny files). Files of one load are sorted as the rows came (the sync lists newest
first), so Parquet's row-group statistics on ``created_at`` still let readers skip by date.
Partition values are percent-encoded when they hold anything but letters, digits, ``_`` and
``-`` (Hive readers decode them), so the path key always equals the ``type`` column kept inside
the ``checks`` files. Every file carries the table's exact Arrow schema (descriptions included)
and zstd compression.

Older versions wrote ``.../type=<type>/created_date=<YYYY-MM-DD>/...`` (one directory per day).
Their files stay valid: the warehouse loads files by explicit path, clean-up deletes them by path,
and :func:`find_landed_files` finds both layouts. A Hive reader over
a root holding both must read one layout at a time (DuckDB refuses mixed partition keys); see
docs/sync.md.

No reader ever sees half a file, and memory stays flat however much a load holds: each
(table, type) has one open file, fed a row group at a time from a small buffer; when all buffers
together exceed ``max_buffered_rows`` the largest is written early (as a smaller row group of the
same file, not as another file). A file is finished at ``rows_per_file`` rows or at ``flush()``:

* local directories: written under a hidden ``.<name>.tmp`` next to the target, fsynced once
  when finished, then ``os.replace``-d into place (atomic rename within one directory); each
  directory written to (and the parent of each one created) is fsynced once per ``flush()``;
* object stores whose PUT is atomic (S3, GCS, Azure Blob): the file is written to a local spool
  file, then uploaded in one ``put_file`` to its final key. The object only becomes visible when
  the upload completes (single PUT or CompleteMultipartUpload); a failed upload leaves no object
  (an aborted multipart upload is invisible; a bucket lifecycle rule reclaims its parts). A temp
  key + copy would double the traffic for no extra safety;
* any other fsspec filesystem: uploaded to ``<root>/_tmp/<load_id>/<name>`` (outside every table
  directory), then moved to its final path.

A process killed while landing (kill -9, OOM) may leave its unfinished ``.<name>.tmp`` files;
``*.parquet`` globs never match them. Their writer holds an exclusive ``flock`` on each for as
long as it writes it, and the kernel drops the lock with the process, so
:func:`~numberyo_provider.sync.temp_files.sweep_abandoned_temp_files` (run by every sync before it
lands) can tell an abandoned temp
file from one a live run is writing, without guessing from its age.
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
from datetime import UTC, datetime
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from numberyo_provider.errors import ConfigurationError, SchemaMismatchError
from numberyo_provider.private_files import create_private_file, make_private_dirs
from numberyo_provider.schema import CHECKS, HLR_RESULTS, OTHER_RESULTS, VERIFY_RESULTS, Table
from numberyo_provider.sync.temp_files import hold, release

log = logging.getLogger(__name__)

#: The Hive convention for a null partition value (DuckDB reads it as NULL); the old
#: ``created_date=`` layout used it for a null ``created_at``.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"

#: Rows per Parquet row group: DuckDB's own row-group size, so its scans parallelise per group.
ROW_GROUP_ROWS = 122_880

#: fsspec protocols whose object PUT is atomic (the object appears only once complete).
ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})

_TYPE_OF_RESULTS_TABLE = {HLR_RESULTS.name: "HLR", VERIFY_RESULTS.name: "Verify"}
#: Tables whose rows carry their check type in a ``type`` column (the partition value).
_TYPED_BY_COLUMN = (CHECKS.name, OTHER_RESULTS.name)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_LOAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_-]+")


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
class _Partition:
    """One (table, type) of a load: its row buffer and the file being written, if any."""

    table: Table
    type: str
    directory: str
    chunks: list[pa.Table] = field(default_factory=list)
    rows: int = 0
    #: The open file: its final name, where its bytes go meanwhile, and the rows it holds.
    name: str | None = None
    temp: str | None = None
    writer: pq.ParquetWriter | None = None
    file_rows: int = 0
    #: A descriptor holding the ``flock`` that marks ``temp`` as being written (local only).
    lock_fd: int | None = None


class ParquetLander:
    """Writes one load's rows as partitioned Parquet files under ``root`` (not thread-safe).

    ``root`` is a local directory or an fsspec URL (``s3://bucket/prefix``), ``storage_options``
    the fsspec options for it (credentials, ``client_kwargs={"endpoint_url": ...}``).
    ``rows_per_file`` caps a file; ``max_buffered_rows`` caps the rows held in memory (the rest
    is in the open files' written row groups).
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
        self._partitions: dict[tuple[str, str], _Partition] = {}
        self._buffered_rows = 0
        self._seq = 0
        self._landed_at = datetime.now(UTC)
        #: Every file of the load lands under this date, whenever it is finished.
        self.landed_date = self._landed_at.date().isoformat()
        self._aborted = False
        #: Local directories with a renamed file or a new entry, fsynced once at ``flush()``.
        self._dirty_dirs: set[str] = set()
        self.files: list[LandedFile] = []

    # -- public ---------------------------------------------------------------------------

    @property
    def buffered_rows(self) -> int:
        """Rows held in memory, not yet in a file (never above ``max_buffered_rows`` after a
        ``write`` returns)."""
        return self._buffered_rows

    def write(self, table: Table, data: pa.Table | pa.RecordBatch) -> None:
        """Buffer ``data`` for ``table``; row groups and files are written as buffers fill up."""
        self._check_open()
        if not table.landed or table.name not in (*_TYPED_BY_COLUMN, *_TYPE_OF_RESULTS_TABLE):
            raise ConfigurationError(
                f"table {table.name!r} is not landed as Parquet (only checks, hlr_results, "
                "verify_results and other_results are)"
            )
        conformed = conform(table, data, load_id=self.load_id, loaded_at=self._landed_at)
        if conformed.num_rows == 0:
            return
        for check_type, part in self._split(table, conformed):
            self._append(self._partition(table, check_type), part)

    def flush(self) -> list[LandedFile]:
        """Write everything buffered and finish every open file; return every file of this load
        so far. Files are visible (and durable) only from here on, or once full."""
        self._check_open()
        for part in list(self._partitions.values()):
            self._write_row_group(part, part.rows)
            if part.writer is not None:
                self._finish(part)
        self._sync_dirs()
        # The buffers are written: hand what Arrow's allocator kept of them back to the OS now,
        # before the warehouse merge adds its own memory on top (-24 MB peak RSS at 10,000
        # checks with the default mimalloc pool; docs/benchmarks.md).
        pa.default_memory_pool().release_unused()
        return list(self.files)

    def abort(self) -> None:
        """Remove this load's files and temp files (best effort); the lander is then unusable.

        ``files`` keeps listing what the load wrote, so a caller can still record them.
        """
        self._aborted = True
        self._buffered_rows = 0
        for part in self._partitions.values():
            part.chunks.clear()
            part.rows = 0
            self._discard_open_file(part)
        self._partitions.clear()
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

    def _split(self, table: Table, data: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        if table.name not in _TYPED_BY_COLUMN:
            yield _TYPE_OF_RESULTS_TABLE[table.name], data
            return
        codes, names = _codes(data.column("type"))
        if len(names) == 1:
            yield str(names[0]), data
            return
        # One compact copy per type (no slice keeps the whole batch alive in a buffer).
        for code, name in enumerate(names):
            yield str(name), data.filter(pc.equal(codes, code))

    def _partition(self, table: Table, check_type: str) -> _Partition:
        key = (table.name, check_type)
        part = self._partitions.get(key)
        if part is None:
            rel = posixpath.join(
                table.name,
                f"type={encode_partition_value(check_type)}",
                f"landed_date={self.landed_date}",
            )
            if self._local:
                directory = os.path.join(self._root, *rel.split("/"))
            else:
                directory = posixpath.join(self._root, rel)
            part = self._partitions[key] = _Partition(table, check_type, directory)
        return part

    def _append(self, part: _Partition, data: pa.Table) -> None:
        part.chunks.append(data)
        part.rows += data.num_rows
        self._buffered_rows += data.num_rows
        while part.rows >= ROW_GROUP_ROWS:
            self._write_row_group(part, ROW_GROUP_ROWS)
        while self._buffered_rows > self.max_buffered_rows:
            largest = max(self._partitions.values(), key=lambda p: p.rows)
            self._write_row_group(largest, largest.rows)

    def _write_row_group(self, part: _Partition, rows: int) -> None:
        """Move ``rows`` buffered rows into the partition's open file(s), finishing full ones."""
        if rows <= 0:
            return
        combined = pa.concat_tables(part.chunks) if len(part.chunks) > 1 else part.chunks[0]
        rest = combined.slice(rows)
        part.chunks = [rest] if rest.num_rows else []
        part.rows -= rows
        self._buffered_rows -= rows
        offset = 0
        while offset < rows:
            if part.writer is None:
                self._open(part)
            assert part.writer is not None
            take = min(rows - offset, self.rows_per_file - part.file_rows)
            _write_rows(part.writer, combined.slice(offset, take))
            part.file_rows += take
            offset += take
            if part.file_rows >= self.rows_per_file:
                self._finish(part)

    def _open(self, part: _Partition) -> None:
        self._seq += 1
        part.name = f"{self.load_id}-{self._seq:05d}.parquet"
        if self._local:
            self._makedirs_local(part.directory)
            part.temp = os.path.join(part.directory, f".{part.name}.tmp")
            create_private_file(part.temp)  # numbers in clear: 0600; pyarrow keeps the mode
            part.lock_fd = hold(part.temp)
        else:
            fd, part.temp = tempfile.mkstemp(prefix="numberyo-", suffix=".parquet")
            os.close(fd)
        part.file_rows = 0
        try:
            part.writer = pq.ParquetWriter(part.temp, part.table.schema, compression="zstd")
        except BaseException:
            _unlink_quietly(part.temp)
            _release(part)
            part.temp = part.name = None
            raise

    def _finish(self, part: _Partition) -> None:
        """Close the open file and move it into place; on failure nothing of it remains."""
        writer, temp, name = part.writer, part.temp, part.name
        assert writer is not None and temp is not None and name is not None
        part.writer = part.temp = part.name = None
        rows, part.file_rows = part.file_rows, 0
        try:
            writer.close()
            if self._local:
                path = self._publish_local(part.directory, temp, name)
            else:
                path = self._publish_remote(part.directory, temp, name)
        finally:
            _unlink_quietly(temp)
            _release(part)
        self.files.append(
            LandedFile(
                part.table.name,
                path,
                rows,
                {"type": part.type, "landed_date": self.landed_date},
            )
        )

    def _discard_open_file(self, part: _Partition) -> None:
        writer, temp = part.writer, part.temp
        part.writer = part.temp = part.name = None
        part.file_rows = 0
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        if temp is not None:
            _unlink_quietly(temp)
        _release(part)

    def _makedirs_local(self, directory: str) -> None:
        """Create ``directory``; note each new entry's parent for the fsync at ``flush()``."""
        missing: list[str] = []
        current = directory
        while not os.path.isdir(current) and os.path.normpath(current) != os.path.dirname(current):
            missing.append(current)
            current = os.path.dirname(current)
        make_private_dirs(directory)  # 0700: the files below hold numbers in clear
        for created in missing:
            self._dirty_dirs.add(os.path.dirname(created))

    def _publish_local(self, directory: str, temp: str, name: str) -> str:
        final = os.path.join(directory, name)
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, final)
        self._dirty_dirs.add(directory)
        return final

    def _publish_remote(self, directory: str, spool: str, name: str) -> str:
        final = posixpath.join(directory, name)
        if self._atomic_put:
            self._fs.put_file(spool, final)
        else:
            tmp_dir = posixpath.join(self._root, "_tmp", self.load_id)
            tmp = posixpath.join(tmp_dir, name)
            self._fs.makedirs(tmp_dir, exist_ok=True)
            self._fs.makedirs(directory, exist_ok=True)
            self._fs.put_file(spool, tmp)
            self._fs.mv(tmp, final)
        return str(self._fs.unstrip_protocol(final))

    def _sync_dirs(self) -> None:
        # Deepest first: a new directory's own entries are durable before its parent's entry.
        for directory in sorted(self._dirty_dirs, key=len, reverse=True):
            _fsync_dir(directory)
        self._dirty_dirs.clear()


def find_landed_files(
    root: str, table: Table, load_id: str, storage_options: Mapping[str, Any] | None = None
) -> list[LandedFile]:
    """The files of ``table`` landed under ``root`` by load ``load_id``, or by any lander whose id
    extends it (``<load_id>-...``: the shards and tries of a check run), sorted by path.

    Both layouts: ``type=*/landed_date=*`` (this version) and ``type=*/created_date=*`` (files an
    older version landed). Rows are read from each file's footer.
    """
    fs, root_path = _filesystem(root, dict(storage_options or {}))
    local = isinstance(fs, LocalFileSystem)
    base = root_path.rstrip("/")
    paths = {
        str(p)
        for partition in ("landed_date", "created_date")
        for p in fs.glob(f"{base}/{table.name}/type=*/{partition}=*/{load_id}-*.parquet")
    }
    out: list[LandedFile] = []
    for path in sorted(paths):
        partition = {
            key: urllib.parse.unquote(value)
            for key, _, value in (p.partition("=") for p in path.split("/")[-3:-1])
        }
        with fs.open(path, "rb") as handle:
            rows = pq.ParquetFile(handle).metadata.num_rows
        shown = path if local else str(fs.unstrip_protocol(path))
        out.append(LandedFile(table.name, shown, rows, partition))
    return out


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


def _release(part: _Partition) -> None:
    fd, part.lock_fd = part.lock_fd, None
    release(fd)


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


def _protocols(fs: fsspec.AbstractFileSystem) -> set[str]:
    proto = fs.protocol
    return {proto} if isinstance(proto, str) else set(proto)


def _codes(values: pa.ChunkedArray) -> tuple[pa.Array, list[Any]]:
    """Dictionary codes (int64, null where the value is null) and the distinct values."""
    encoded = pc.dictionary_encode(values.combine_chunks())
    return encoded.indices.cast(pa.int64()), encoded.dictionary.to_pylist()


def _write_rows(writer: pq.ParquetWriter, data: pa.Table) -> None:
    """The one place landed rows reach a file (disk-fault tests inject ENOSPC here)."""
    writer.write_table(data, row_group_size=ROW_GROUP_ROWS)


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


def _relative_to_root(fs: fsspec.AbstractFileSystem, root_path: str, path: str) -> str | None:
    stripped = fs._strip_protocol(path)
    if isinstance(fs, LocalFileSystem):
        stripped = os.path.abspath(stripped)
    norm = posixpath.normpath(str(stripped))
    root = posixpath.normpath(root_path)
    prefix = root.rstrip("/") + "/"
    if not norm.startswith(prefix):
        return None
    return norm[len(prefix) :]


def _remove_one(fs: fsspec.AbstractFileSystem, local: bool, root_path: str, path: str) -> None:
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
