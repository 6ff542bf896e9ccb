"""Sources are read, never written; a usage error about the source writes nothing.

Two guards, each tested on its own: the lexical check of ``--sql`` (refused before anything
runs) and the read-only connection (the database itself refuses a write, tested by bypassing the
lexical check). Real SQLite and DuckDB files, the real PostgreSQL server and MariaDB when one
answers on 127.0.0.1:3306; ``numberyo check`` runs against the simulator, whose request log must
stay empty.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.checks import CheckOptions, run_check
from numberyo_provider.checks.source import (
    Source,
    SourceSpec,
    iter_source_values,
    iter_values_from_connection,
    open_source,
)
from numberyo_provider.checks.source import read_only as read_only_module
from numberyo_provider.checks.source import spec as spec_module
from numberyo_provider.checks.source import stream as stream_module
from numberyo_provider.checks.source.read_only_sql import read_only_statement
from numberyo_provider.cli import main
from numberyo_provider.errors import ConfigurationError

PHONES = ["+32456000001", "+32456000002", "+32456000003"]
MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/"


# --- the lexical check -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "dialect", "expected"),
    [
        ("SELECT phone FROM contacts", None, "SELECT phone FROM contacts"),
        ("  select phone from contacts ;; -- the end\n", "sqlite", "select phone from contacts"),
        (
            "SELECT phone || '; DROP TABLE c; --' FROM c",
            None,
            "SELECT phone || '; DROP TABLE c; --' FROM c",
        ),
        ("SELECT 'it''s; DELETE FROM c' FROM c", None, "SELECT 'it''s; DELETE FROM c' FROM c"),
        ('SELECT "delete", "x;y" FROM c', "postgresql", 'SELECT "delete", "x;y" FROM c'),
        (
            "SELECT REPLACE (phone, ' ', '') FROM c",
            "mysql",
            "SELECT REPLACE (phone, ' ', '') FROM c",
        ),
        (
            "SELECT INSERT(phone, 1, 0, '+') FROM c",
            "mysql",
            "SELECT INSERT(phone, 1, 0, '+') FROM c",
        ),
        ("SELECT c.update FROM c", "postgresql", "SELECT c.update FROM c"),
        ("WITH x AS (SELECT phone FROM c) SELECT phone FROM x", None, None),
        ("(SELECT p FROM a) UNION (SELECT p FROM b)", None, None),
        ("VALUES ('+32456000001')", "postgresql", None),
        ("TABLE contacts", "postgresql", None),
        ("SELECT p FROM c /* ; DELETE FROM c */ WHERE 1 = 1", None, None),
        ("SELECT $tag$; DELETE FROM c$tag$", "postgresql", None),
        ("SELECT E'\\'; DELETE FROM c' FROM c", "postgresql", None),
        ("SELECT 1 /* /* */ ; DELETE FROM c */", "postgresql", "SELECT 1"),  # nested comment
        ("SELECT 1 /*! ; DELETE FROM c */", "postgresql", "SELECT 1"),  # a comment there
        ("SELECT [a;b] FROM c", "sqlite", None),
        ("SELECT `a;b` FROM c", "mysql", None),
        ("SELECT 1--1; DELETE FROM c", "postgresql", "SELECT 1"),  # a comment there
        ("FROM contacts SELECT phone", "duckdb", None),
    ],
)
def test_read_only_queries_pass(sql: str, dialect: str | None, expected: str | None) -> None:
    assert read_only_statement(sql, dialect) == (expected if expected is not None else sql)


@pytest.mark.parametrize(
    ("sql", "dialect", "fragment"),
    [
        ("DROP TABLE victim", None, "starting with 'DROP'"),
        ("DELETE FROM victim RETURNING phone", None, "starting with 'DELETE'"),
        ("UPDATE victim SET phone = '1' RETURNING phone", None, "starting with 'UPDATE'"),
        ("WITH d AS (DELETE FROM victim RETURNING phone) SELECT phone FROM d", None, "DELETE"),
        ("WITH d AS (UPDATE victim SET p = 1 RETURNING p) SELECT p FROM d", None, "UPDATE"),
        ("WITH d AS (SELECT 1) INSERT INTO victim SELECT * FROM d", None, "INSERT"),
        (
            "WITH m AS (MERGE INTO victim USING s ON true WHEN MATCHED THEN DELETE) SELECT 1",
            None,
            "MERGE",
        ),
        ("SELECT phone FROM victim; DROP TABLE victim", None, "2 statements"),
        ("SELECT 1;SELECT 2", "sqlite", "2 statements"),
        ("SELECT phone INTO backup FROM victim", "postgresql", "INTO"),
        ("SELECT phone FROM victim INTO OUTFILE '/tmp/x'", "mysql", "INTO"),
        ("SELECT phone FROM victim FOR UPDATE", "postgresql", "UPDATE"),
        ("SELECT phone FROM victim FOR SHARE", "postgresql", "locks rows"),
        ("SELECT phone FROM victim LOCK IN SHARE MODE", "mysql", "locks rows"),
        ("PRAGMA writable_schema = 1", "sqlite", "starting with 'PRAGMA'"),
        ("ATTACH 'x.db' AS x", "sqlite", "starting with 'ATTACH'"),
        ("COPY victim TO '/tmp/x'", "duckdb", "starting with 'COPY'"),
        ("SELECT 'unterminated", None, "unterminated"),
        ("SELECT 1 /* unterminated", None, "unterminated"),
        ("  ; ; ", None, "empty"),
        # Where databases lex differently, every rule set the database may use must pass:
        ("SELECT 'a\\'; DELETE FROM victim; -- '", "mysql", "2 statements"),  # NO_BACKSLASH_ESCAPES
        ("SELECT 'a\\'; DELETE FROM victim; -- '", None, "2 statements"),
        ("SELECT 1 /* /* */ ; DELETE FROM victim */", "sqlite", "2 statements"),  # not nested
        ("SELECT 1 /* /* */ ; DELETE FROM victim */", None, "2 statements"),
        ("SELECT 1 /*! ; DELETE FROM victim */", "mysql", "2 statements"),  # MySQL runs /*! */
        ("SELECT 1 # ' \n; DELETE FROM victim", "mysql", "2 statements"),  # a MySQL comment
        ("SELECT 1--1; DELETE FROM victim", "mysql", "2 statements"),  # MySQL: minus minus 1
        ("SELECT [x'] FROM t; DELETE FROM victim; --']", "sqlite", "2 statements"),
        ("FROM contacts SELECT phone", "postgresql", "starting with 'FROM'"),
    ],
)
def test_anything_but_one_read_only_query_is_refused(
    sql: str, dialect: str | None, fragment: str
) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        read_only_statement(sql, dialect)


# --- real databases ----------------------------------------------------------------------------


@dataclass
class Db:
    kind: str
    url: str

    def run(self, *statements: str) -> None:
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
        finally:
            engine.dispose()

    def victim(self) -> list[Any]:
        """The victim table's rows, or an error string if it is gone."""
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return list(conn.exec_driver_sql("SELECT phone FROM victim ORDER BY id").scalars())
        except sa.exc.DBAPIError as exc:
            return [f"gone: {exc.orig}"]
        finally:
            engine.dispose()


def _make_victim(db: Db) -> Db:
    text = "VARCHAR(20)" if db.kind == "mariadb" else "TEXT"
    values = ", ".join(f"({i}, '{p}')" for i, p in enumerate(PHONES))
    db.run(f"CREATE TABLE victim (id INTEGER, phone {text})", f"INSERT INTO victim VALUES {values}")
    return db


def _mariadb_url(name: str) -> str:
    """A fresh database on the local MariaDB/MySQL, or a skip saying why there is none."""
    pytest.importorskip("pymysql", reason="pymysql is not installed (pip install pymysql)")
    admin = sa.create_engine(
        MARIADB_ADMIN, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 2}
    )
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as exc:
        pytest.skip(f"no MariaDB/MySQL server answers on 127.0.0.1:3306 as root: {exc.orig}")
    finally:
        admin.dispose()
    return MARIADB_ADMIN + name


@pytest.fixture(params=["sqlite", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    kind = request.param
    if kind == "postgres":
        return _make_victim(Db(kind, request.getfixturevalue("postgres_url")))
    suffix = "duckdb" if kind == "duckdb" else "db"
    return _make_victim(Db(kind, f"{kind}:///{tmp_path / 'source' / f'crm.{suffix}'}"))


@pytest.fixture
def mariadb() -> Iterator[Db]:
    name = f"numberyo_source_{uuid.uuid4().hex[:12]}"
    yield _make_victim(Db("mariadb", _mariadb_url(name)))
    admin = sa.create_engine(MARIADB_ADMIN, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    admin.dispose()


@pytest.fixture(autouse=True)
def _source_dir(tmp_path: Path) -> None:
    (tmp_path / "source").mkdir()


@pytest.fixture
def env(numberyo_simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("NUMBERYO_BASE_URL", numberyo_simulator.url)
    monkeypatch.setenv("NUMBERYO_API_TOKEN", numberyo_simulator.token)
    monkeypatch.delenv("NUMBERYO_PRIVACY_MODE", raising=False)
    return numberyo_simulator


def _check_args(tmp_path: Path, source: str, *selection: str) -> list[str]:
    return [
        "check",
        "--source", source,
        *selection,
        "--type", "hlr",
        "--default-region", "BE",
        "--warehouse", f"duckdb:///{tmp_path / 'out' / 'wh.duckdb'}",
        "--parquet-path", str(tmp_path / "out" / "landing"),
        "--no-progress",
    ]  # fmt: skip


def _assert_usage_error_wrote_nothing(
    code: int, captured: pytest.CaptureResult[str], server: Any, tmp_path: Path
) -> str:
    """Exit 2, one line on stderr, no summary, no request, and no warehouse/ledger/landing."""
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("numberyo check: error:"), captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""  # no run summary
    assert server.sim.requests() == [] and server.sim.charges() == []
    out = tmp_path / "out"
    assert not out.exists() or list(out.rglob("*")) == [], list(out.rglob("*"))
    return lines[0]


WRITES = [
    "DROP TABLE victim",
    "DELETE FROM victim RETURNING phone",
    "UPDATE victim SET phone = '+32499999999' RETURNING phone",
    "WITH d AS (DELETE FROM victim RETURNING phone) SELECT phone FROM d",
    "SELECT phone FROM victim; DROP TABLE victim",
    "SELECT phone FROM victim; DELETE FROM victim",
]


@pytest.mark.parametrize("sql", WRITES)
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_writing_sql_is_refused_before_anything_runs(
    env: Any,
    db: Db,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    sql: str,
    dry_run: bool,
) -> None:
    # Seen on main: --sql "DROP TABLE victim" --dry-run dropped the table; DELETE ... RETURNING
    # was rolled back but its rows were read as numbers to send.
    argv = _check_args(tmp_path, db.url, "--sql", sql) + (["--dry-run"] if dry_run else [])
    line = _assert_usage_error_wrote_nothing(main(argv), capsys.readouterr(), env, tmp_path)
    assert "read-only query" in line or "statements" in line
    assert db.victim() == PHONES


def _bypass_lexical_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let any statement through to the database, as if the lexical check had a hole."""
    for module in (spec_module, stream_module):  # the selection check, then each query
        monkeypatch.setattr(
            module,
            "read_only_statement",
            lambda sql, dialect=None: sql.strip().rstrip(";"),
        )


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM victim RETURNING phone",
        "UPDATE victim SET phone = '+32499999999' RETURNING phone",
        "INSERT INTO victim VALUES (9, '+32499999999') RETURNING phone",
        "DROP TABLE victim",
    ],
)
@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_the_database_refuses_a_write_even_past_the_lexical_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str, sql: str
) -> None:
    suffix = "duckdb" if kind == "duckdb" else "db"
    db = _make_victim(Db(kind, f"{kind}:///{tmp_path / f'crm.{suffix}'}"))
    _bypass_lexical_check(monkeypatch)
    spec = SourceSpec(db.url, sql=sql)  # accepted: the check is bypassed
    with pytest.raises(ConfigurationError, match="opened read-only, and the database refused"):
        list(iter_source_values(spec))
    assert db.victim() == PHONES


@pytest.mark.postgres
def test_postgres_read_only_transaction_refuses_writes_the_lexical_check_cannot_see(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _make_victim(Db("postgres", postgres_url))
    db.run(
        "CREATE SEQUENCE ids",
        "CREATE FUNCTION wipe() RETURNS TEXT LANGUAGE sql AS 'DELETE FROM victim RETURNING phone'",
    )
    # Both are plain SELECTs to the lexical check: only the read-only transaction stops them.
    for sql in ("SELECT wipe()", "SELECT CAST(nextval('ids') AS TEXT)"):
        assert read_only_statement(sql, "postgresql") == sql
        source = open_source(SourceSpec(postgres_url, sql=sql))  # the probe computes no row
        with pytest.raises(ConfigurationError, match="read-only transaction"):
            list(source)
    # Past the lexical check, PostgreSQL refuses DML through the named cursor...
    _bypass_lexical_check(monkeypatch)
    for sql in WRITES:
        with pytest.raises(ConfigurationError, match="sql= "):
            list(iter_source_values(SourceSpec(postgres_url, sql=sql)))
    # ... and the read-only transaction alone refuses it too, without a cursor around it.
    with (
        read_only_module.read_only_connection(sa.make_url(postgres_url)) as conn,
        pytest.raises(sa.exc.DBAPIError, match="read-only transaction"),
    ):
        conn.exec_driver_sql("DELETE FROM victim RETURNING phone")
    assert db.victim() == PHONES
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT last_value FROM ids").scalar() == 1
        assert conn.exec_driver_sql("SELECT is_called FROM ids").scalar() is False
    engine.dispose()


@pytest.mark.postgres
def test_postgres_autocommit_connection_is_refused_not_trusted(postgres_url: str) -> None:
    _make_victim(Db("postgres", postgres_url))
    engine = sa.create_engine(
        postgres_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as conn, pytest.raises(ConfigurationError, match="autocommit"):
            iter_values_from_connection(conn, table="victim", column="phone")
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_streams_through_a_named_cursor_in_a_read_only_transaction(
    postgres_url: str,
) -> None:
    _make_victim(Db("postgres", postgres_url))
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            chunks = iter_values_from_connection(conn, sql="SELECT phone FROM victim", chunk_size=1)
            assert next(chunks) == [PHONES[0]]
            assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
            cursors = list(conn.exec_driver_sql("SELECT statement FROM pg_cursors").scalars())
            assert len(cursors) == 1 and "DECLARE" in cursors[0]
            assert [v for c in chunks for v in c] == PHONES[1:]
    finally:
        engine.dispose()


def test_duckdb_file_held_read_write_by_this_process_is_still_read_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The warehouse and the contacts in one file: the source shares the writer's instance, so
    # only the read-only transaction keeps it from writing.
    path = tmp_path / "both.duckdb"
    db = _make_victim(Db("duckdb", f"duckdb:///{path}"))
    writer = duckdb.connect(str(path))
    try:
        assert [v for c in open_source(SourceSpec(db.url, "victim", "phone")) for v in c] == PHONES
        writer.execute("CREATE SEQUENCE ids")
        with pytest.raises(ConfigurationError, match="read-only"):
            list(iter_source_values(SourceSpec(db.url, sql="SELECT nextval('ids')")))
        _bypass_lexical_check(monkeypatch)
        with pytest.raises(ConfigurationError, match="read-only"):
            list(iter_source_values(SourceSpec(db.url, sql="DELETE FROM victim RETURNING phone")))
        assert writer.execute("SELECT count(*) FROM victim").fetchone() == (3,)
        assert writer.execute("SELECT nextval('ids')").fetchone() == (1,)  # never advanced
    finally:
        writer.close()


def test_sqlite_caller_connection_is_query_only_while_read_and_restored_after(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = _make_victim(Db("sqlite", f"sqlite:///{tmp_path / 'crm.db'}"))
    _bypass_lexical_check(monkeypatch)
    engine = sa.create_engine(db.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            with pytest.raises(ConfigurationError, match="readonly"):
                iter_values_from_connection(conn, sql="DELETE FROM victim RETURNING phone")
            chunks = iter_values_from_connection(conn, table="victim", column="phone")
            assert conn.exec_driver_sql("PRAGMA query_only").scalar() == 1
            assert [v for c in chunks for v in c] == PHONES
            assert conn.exec_driver_sql("PRAGMA query_only").scalar() == 0  # the caller's again
    finally:
        engine.dispose()
    assert db.victim() == PHONES


def test_a_sqlite_file_with_spaces_and_percent_in_its_name_is_read(tmp_path: Path) -> None:
    db = _make_victim(Db("sqlite", f"sqlite:///{tmp_path / 'my crm %20#1.db'}"))
    assert [v for c in open_source(SourceSpec(db.url, "victim", "phone")) for v in c] == PHONES


# --- MariaDB / MySQL ---------------------------------------------------------------------------


def test_mariadb_streams_in_a_read_only_transaction(mariadb: Db) -> None:
    source = open_source(SourceSpec(mariadb.url, "victim", "phone"), chunk_size=2)
    assert [len(c) for c in source] == [2, 1]
    # A query the probe cannot wrap (duplicate column names) is checked by starting it.
    spec = SourceSpec(
        mariadb.url, sql="SELECT phone, phone FROM victim ORDER BY id", column="phone"
    )
    assert [v for c in open_source(spec) for v in c] == PHONES


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM victim RETURNING phone",
        "DROP TABLE victim",  # DDL commits implicitly: only the session setting stops it
        "TRUNCATE TABLE victim",
        "SELECT phone FROM victim FOR UPDATE",
    ],
)
def test_mariadb_refuses_a_write_even_past_the_lexical_check(
    mariadb: Db, monkeypatch: pytest.MonkeyPatch, sql: str
) -> None:
    with pytest.raises(ConfigurationError):
        SourceSpec(mariadb.url, sql=sql)
    _bypass_lexical_check(monkeypatch)
    with pytest.raises(ConfigurationError, match="READ ONLY"):
        list(iter_source_values(SourceSpec(mariadb.url, sql=sql)))
    assert mariadb.victim() == PHONES


def test_mariadb_caller_connection_with_an_open_transaction_is_refused(mariadb: Db) -> None:
    engine = sa.create_engine(mariadb.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")  # a transaction is open: it cannot turn read-only
            with pytest.raises(ConfigurationError, match="already has a transaction open"):
                iter_values_from_connection(conn, table="victim", column="phone")
    finally:
        engine.dispose()


# --- usage errors write nothing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("selection", "fragment"),
    [
        (["--table", "victm", "--column", "phone"], "did you mean 'victim'?"),
        (["--table", "victim", "--column", "phon"], "did you mean 'phone'?"),
        (["--table", "victim", "--column", "phone", "--schema", "nope"], "schema 'nope'"),
        (["--sql", "SELECT phone FROM nope"], "--sql failed in the source database"),
        (["--sql", "SELECT id, phone FROM victim"], "returns 2 columns"),
        (["--sql", "DELETE FROM victim"], "read-only query"),
    ],
)
def test_a_source_usage_error_writes_nothing(
    env: Any,
    db: Db,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    selection: list[str],
    fragment: str,
) -> None:
    # Seen on main: a wrong --table answered "did you mean" with exit 2, but first created the
    # warehouse and its ledger, printed a summary and committed an empty _loads row.
    code = main(_check_args(tmp_path, db.url, *selection))
    line = _assert_usage_error_wrote_nothing(code, capsys.readouterr(), env, tmp_path)
    assert fragment in line
    assert db.victim() == PHONES


def test_run_check_validates_a_source_before_creating_anything(
    numberyo_simulator: Any, tmp_path: Path
) -> None:
    db = _make_victim(Db("duckdb", f"duckdb:///{tmp_path / 'source' / 'crm.duckdb'}"))
    source = Source(SourceSpec(db.url, "victm", "phone"))  # not validated yet
    client = NumberYoClient(numberyo_simulator.token, numberyo_simulator.url)
    try:
        with pytest.raises(ConfigurationError, match="did you mean 'victim'"):
            run_check(
                client=client,
                options=CheckOptions(check_type="HLR", run_id="r", default_region="BE"),
                chunks=source,
                warehouse=f"duckdb:///{tmp_path / 'out' / 'wh.duckdb'}",
                parquet_path=str(tmp_path / "out" / "landing"),
            )
    finally:
        client.close()
    assert not (tmp_path / "out").exists()
    assert numberyo_simulator.sim.requests() == []


# --- malformed source URLs ---------------------------------------------------------------------


def _malformed(tmp_path: Path) -> list[tuple[str, str]]:
    return [
        ("duckdb://crm.duckdb", "three slashes"),
        ("duckdb://localhost/crm.duckdb", "names a file, not a host"),
        ("sqlite://crm.db", "three slashes"),
        ("crm.duckdb", "write duckdb:///crm.duckdb"),
        ("crm.db", "write sqlite:///crm.db"),
        ("duckdb:crm.duckdb", "no '//' after 'duckdb:'"),
        ("duckbd:///crm.duckdb", "did you mean 'duckdb'?"),
        ("postgres://user@127.0.0.1/crm", "did you mean 'postgresql'?"),
        ("postgresql+psycopg3://user@127.0.0.1/crm", "no driver 'psycopg3' for postgresql"),
        ("mssql+pyodbc://user@host/crm", "pip install pyodbc"),
        ("sqlite://", "names no database file"),
        (f"duckdb:///{tmp_path}", "is a directory"),
        (f"sqlite:///{tmp_path / 'nope.db'}", "database file not found"),
        ("postgresql://user:s3cret@host:notaport/crm", "not a valid SQLAlchemy URL"),
        ("user:s3cret@host/crm", "not a SQLAlchemy URL"),
    ]


def test_malformed_source_urls_are_one_clear_line(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("duckdb_engine")
    if _importable("pyodbc"):
        pytest.skip("pyodbc is installed here: the missing-driver case cannot be shown with it")
    for url, fragment in _malformed(tmp_path):
        code = main(_check_args(tmp_path, url, "--table", "contacts", "--column", "phone"))
        line = _assert_usage_error_wrote_nothing(code, capsys.readouterr(), env, tmp_path)
        assert fragment in line, (url, line)
        assert "s3cret" not in line


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def test_two_slashes_in_a_real_cli_process_is_one_line(tmp_path: Path) -> None:
    # Seen on main: TypeError: connect(): incompatible function arguments.
    argv = _check_args(tmp_path, "duckdb://contacts.duckdb", "--table", "t", "--column", "p")
    done = subprocess.run(
        [sys.executable, "-m", "numberyo_provider.cli", *argv, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "three slashes" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "TypeError" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]


@pytest.mark.parametrize("through", ["source_url", "source_conn_id"])
@pytest.mark.parametrize(
    ("selection", "fragment"),
    [
        ({"table": "victm", "column": "phone"}, "did you mean 'victim'?"),
        ({"sql": "DELETE FROM victim RETURNING phone"}, "read-only query"),
    ],
)
def test_the_check_operator_checks_its_source_before_creating_anything(
    numberyo_simulator: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    through: str,
    selection: dict[str, str],
    fragment: str,
) -> None:
    from numberyo_provider.operators.check import NumberYoCreateChecksOperator

    db = _make_victim(Db("sqlite", f"sqlite:///{tmp_path / 'source' / 'crm.db'}"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_NUMBERYO_DEFAULT",
        f'{{"conn_type": "numberyo", "host": "{numberyo_simulator.url}", '
        f'"password": "{numberyo_simulator.token}"}}',
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRM", f'{{"conn_type": "sqlite", "host": "{tmp_path / "source" / "crm.db"}"}}'
    )
    where = {"source_url": db.url} if through == "source_url" else {"source_conn_id": "crm"}
    op = NumberYoCreateChecksOperator(
        task_id="check",
        run_id="r",
        warehouse=f"duckdb:///{tmp_path / 'out' / 'wh.duckdb'}",
        parquet_path=str(tmp_path / "out" / "landing"),
        **where,
        **selection,
    )
    with pytest.raises(ConfigurationError, match=re.escape(fragment)):
        op.execute({})  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()
    assert numberyo_simulator.sim.requests() == []
    assert db.victim() == PHONES


def test_contacts_inside_the_warehouse_file_are_checked(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One DuckDB file is both the source and the warehouse: the source is opened read-only
    # (checked up front, then streamed) around the run's read-write opens of the same file.
    path = tmp_path / "out" / "wh.duckdb"
    path.parent.mkdir()
    db = _make_victim(Db("duckdb", f"duckdb:///{path}"))
    argv = _check_args(tmp_path, db.url, "--table", "victim", "--column", "phone")
    assert main(argv) == 0, capsys.readouterr()
    assert sorted(e.phone_number for e in env.sim.charges()) == [p[1:] for p in PHONES]
    assert main(argv) == 0  # the same run again: nothing new is sent
    assert len(env.sim.charges()) == 3
    assert db.victim() == PHONES
