"""Streaming numbers out of real SQLite, DuckDB and PostgreSQL databases."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from numberyo_provider.checks.source import (
    MAX_IDENTIFIER_LENGTH,
    SourceSpec,
    iter_source_values,
    iter_values_from_connection,
    open_source,
)
from numberyo_provider.errors import ConfigurationError

ROWS = 100_000
BASE = 32_400_000_000


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

    def scalar(self, statement: str) -> Any:
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return conn.exec_driver_sql(statement).scalar()
        finally:
            engine.dispose()

    def make_contacts(self, rows: int) -> None:
        """``contacts(id, phone)`` with ``phone = BASE + id`` as text, generated in the database."""
        if self.kind == "duckdb":
            select = (
                f"SELECT range AS id, CAST({BASE} + range AS VARCHAR) AS phone FROM range({rows})"
            )
        elif self.kind == "postgres":
            select = (
                f"SELECT g AS id, CAST({BASE} + g AS TEXT) AS phone "
                f"FROM generate_series(0, {rows - 1}) AS g"
            )
        else:
            select = (
                f"WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < "
                f"{rows - 1}) SELECT i AS id, CAST({BASE} + i AS TEXT) AS phone FROM r"
            )
        self.run(f"CREATE TABLE contacts AS {select}")


@pytest.fixture(params=["sqlite", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    kind = request.param
    if kind == "postgres":
        return Db(kind, request.getfixturevalue("postgres_url"))
    suffix = "duckdb" if kind == "duckdb" else "db"
    return Db(kind, f"{kind}:///{tmp_path / f'source.{suffix}'}")


@pytest.fixture
def contacts(db: Db) -> Db:
    db.make_contacts(1_000)
    return db


def _values(spec: SourceSpec, chunk_size: int = 1_000) -> list[object]:
    return [value for chunk in iter_source_values(spec, chunk_size=chunk_size) for value in chunk]


# --- streaming ---------------------------------------------------------------------------------


def test_streams_every_row_in_bounded_chunks(db: Db) -> None:
    db.make_contacts(ROWS)
    chunks = list(iter_source_values(SourceSpec(db.url, "contacts", "phone"), chunk_size=1_000))
    assert len(chunks) == ROWS // 1_000
    assert {len(chunk) for chunk in chunks} == {1_000}
    values = [v for chunk in chunks for v in chunk]
    assert len(values) == ROWS
    assert sum(int(str(v)) for v in values) == ROWS * BASE + ROWS * (ROWS - 1) // 2
    assert Counter(values) == Counter(str(BASE + i) for i in range(ROWS))


def test_a_partial_last_chunk_and_an_empty_table(contacts: Db) -> None:
    chunks = list(iter_source_values(SourceSpec(contacts.url, "contacts", "phone"), chunk_size=300))
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    contacts.run("CREATE TABLE nobody (phone TEXT)")
    assert list(iter_source_values(SourceSpec(contacts.url, "nobody", "phone"))) == []


def test_values_keep_their_types_and_nulls(db: Db) -> None:
    db.run(
        "CREATE TABLE mixed (id INTEGER, phone TEXT, as_number BIGINT)",
        "INSERT INTO mixed VALUES (1, '+32 456 78 90 23', 32456789023), (2, NULL, NULL)",
    )
    assert _values(SourceSpec(db.url, "mixed", "phone")) == ["+32 456 78 90 23", None]
    assert _values(SourceSpec(db.url, "mixed", "as_number")) == [32456789023, None]


@pytest.mark.postgres
def test_postgres_reads_through_a_server_side_cursor(postgres_url: str) -> None:
    Db("postgres", postgres_url).make_contacts(5_000)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            chunks = iter_values_from_connection(
                conn, table="contacts", column="phone", chunk_size=1_000
            )
            assert len(next(chunks)) == 1_000
            cursors: list[str] = list(
                conn.exec_driver_sql("SELECT statement FROM pg_cursors").scalars()
            )
            assert len(cursors) == 1 and "DECLARE" in cursors[0] and "contacts" in cursors[0]
            chunks.close()  # stopping early closes the cursor
            assert conn.exec_driver_sql("SELECT count(*) FROM pg_cursors").scalar() == 0

            chunks = iter_values_from_connection(conn, sql="SELECT phone FROM contacts")
            next(chunks)
            assert conn.exec_driver_sql("SELECT count(*) FROM pg_cursors").scalar() == 1
            assert sum(len(c) for c in chunks) == 0  # 5,000 rows fit the default chunk
    finally:
        engine.dispose()


def test_duckdb_file_is_read_only_and_can_be_read_twice_at_once(tmp_path: Path) -> None:
    path = tmp_path / "contacts.duckdb"
    Db("duckdb", f"duckdb:///{path}").make_contacts(2_000)
    spec = SourceSpec(f"duckdb:///{path}", "contacts", "phone")
    first = iter_source_values(spec, chunk_size=500)
    second = iter_source_values(spec, chunk_size=500)
    a, b = next(first), next(second)
    assert a == b  # both readers open at the same time (parallel shard tasks)
    assert sum(len(c) for c in first) + len(a) == 2_000
    assert sum(len(c) for c in second) + len(b) == 2_000
    # A writing sql= is refused before it runs (tests/test_source_readonly.py has the rest).
    with pytest.raises(ConfigurationError, match="read-only"):
        SourceSpec(f"duckdb:///{path}", sql="INSERT INTO contacts VALUES (0, 'x') RETURNING phone")
    assert Db("duckdb", f"duckdb:///{path}").scalar("SELECT count(*) FROM contacts") == 2_000


def test_duckdb_file_already_open_for_writing_in_this_process(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    writer = duckdb.connect(str(path))
    try:
        writer.execute("CREATE TABLE contacts AS SELECT '+32456789023' AS phone")
        spec = SourceSpec(f"duckdb:///{path}", "contacts", "phone")
        assert _values(spec) == ["+32456789023"]
        writer.execute("SELECT 1")  # the writer's connection is untouched
    finally:
        writer.close()


# --- the sql= path -----------------------------------------------------------------------------


def test_sql_is_passed_as_is(contacts: Db) -> None:
    tail = "|%s|:x|%%|?|; DROP TABLE contacts; --"
    sql = f"SELECT phone || '{tail}' AS v FROM contacts WHERE id < 3 ORDER BY id;  "
    assert _values(SourceSpec(contacts.url, sql=sql)) == [f"{BASE + i}{tail}" for i in range(3)]
    assert contacts.scalar("SELECT count(*) FROM contacts") == 1_000


def test_a_broken_query_is_a_configuration_error(contacts: Db) -> None:
    # sqlite3 raises OperationalError for everything, "database is locked" included; its
    # "no such table" is told apart by its words.
    spec = SourceSpec(contacts.url, sql="SELECT phone FROM nope")
    with pytest.raises(ConfigurationError, match=r"sql= failed in the source database: .*nope"):
        _values(spec)
    with pytest.raises(ConfigurationError, match=r"sql= failed in the source database: .*nope"):
        open_source(spec)  # up front, before anything is created


def test_sql_with_several_columns_needs_column(contacts: Db) -> None:
    sql = "SELECT id, phone FROM contacts WHERE id < 2 ORDER BY id"
    with pytest.raises(ConfigurationError, match=r"returns 2 columns \('id', 'phone'\)"):
        _values(SourceSpec(contacts.url, sql=sql))
    assert _values(SourceSpec(contacts.url, sql=sql, column="phone")) == [
        str(BASE),
        str(BASE + 1),
    ]
    assert _values(SourceSpec(contacts.url, sql=sql, column="PHONE")) == [str(BASE), str(BASE + 1)]
    with pytest.raises(ConfigurationError, match=r"'phon' is not among.*did you mean 'phone'"):
        _values(SourceSpec(contacts.url, sql=sql, column="phon"))


# --- names: injection, quoting, resolution -----------------------------------------------------


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("x; DROP TABLE contacts; --", "phone"),
        ("contacts; DROP TABLE contacts; --", "phone"),
        ('contacts"; DROP TABLE contacts; --', "phone"),
        ("contacts", "phone FROM contacts; DROP TABLE contacts; --"),
        ("contacts", 'phone" FROM contacts; DROP TABLE contacts; --'),
    ],
)
def test_injection_through_names_is_never_executed(contacts: Db, table: str, column: str) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        _values(SourceSpec(contacts.url, table, column))
    assert contacts.scalar("SELECT count(*) FROM contacts") == 1_000


def test_names_with_quotes_and_semicolons_are_quoted_safely(db: Db) -> None:
    db.run(
        'CREATE TABLE "a""b;c" ("c""d" TEXT, "select" TEXT)',
        """INSERT INTO "a""b;c" VALUES ('+32456789023', 'kw')""",
        "CREATE TABLE t (p TEXT)",
        "INSERT INTO t VALUES ('+33612345678')",
    )
    assert _values(SourceSpec(db.url, 'a"b;c', 'c"d')) == ["+32456789023"]
    assert _values(SourceSpec(db.url, 'a"b;c', "select")) == ["kw"]  # a reserved word
    assert _values(SourceSpec(db.url, "t", "p")) == ["+33612345678"]
    assert db.scalar("SELECT count(*) FROM t") == 1


def test_names_are_resolved_case_insensitively(contacts: Db) -> None:
    assert len(_values(SourceSpec(contacts.url, "CONTACTS", "Phone"))) == 1_000


def test_missing_table_lists_close_names(contacts: Db) -> None:
    with pytest.raises(ConfigurationError) as err:
        _values(SourceSpec(contacts.url, "contact", "phone"))
    message = str(err.value)
    assert "'contact' not found" in message and "did you mean 'contacts'" in message
    with pytest.raises(ConfigurationError, match="available: 'contacts'"):
        _values(SourceSpec(contacts.url, "zzz", "phone"))


def test_missing_column_lists_close_names(contacts: Db) -> None:
    with pytest.raises(ConfigurationError, match=r"column 'phones' not found.*'phone'"):
        _values(SourceSpec(contacts.url, "contacts", "phones"))
    with pytest.raises(ConfigurationError, match="available: 'id', 'phone'"):
        _values(SourceSpec(contacts.url, "contacts", "zzz"))


def test_errors_come_at_call_time_for_a_caller_owned_connection(contacts: Db) -> None:
    engine = sa.create_engine(contacts.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            with pytest.raises(ConfigurationError, match="not found"):
                iter_values_from_connection(conn, table="nope", column="phone")
            chunks = iter_values_from_connection(conn, table="contacts", column="phone")
            assert sum(len(c) for c in chunks) == 1_000
    finally:
        engine.dispose()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def schema_db(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    if request.param == "postgres":
        db = Db("postgres", request.getfixturevalue("postgres_url"))
    else:
        db = Db("duckdb", f"duckdb:///{tmp_path / 'schemas.duckdb'}")
    db.run(
        "CREATE SCHEMA crm",
        "CREATE TABLE crm.people (mobile TEXT)",
        "INSERT INTO crm.people VALUES ('+32456789023'), ('+33612345678')",
        "CREATE VIEW crm.people_view AS SELECT mobile FROM crm.people WHERE mobile LIKE '+32%'",
    )
    return db


def test_tables_and_views_in_a_schema(schema_db: Db) -> None:
    url = schema_db.url
    both = ["+32456789023", "+33612345678"]
    assert sorted(_values(SourceSpec(url, "people", "mobile", schema="crm"))) == both  # type: ignore[type-var]
    assert sorted(_values(SourceSpec(url, "crm.people", "mobile"))) == both  # type: ignore[type-var]
    assert _values(SourceSpec(url, "people_view", "mobile", schema="crm")) == ["+32456789023"]
    with pytest.raises(ConfigurationError, match=r"schema 'crm'.*did you mean 'people'"):
        _values(SourceSpec(url, "peple", "mobile", schema="crm"))
    with pytest.raises(ConfigurationError, match=r"'peple' in schema 'crm'.*did you mean 'people'"):
        _values(SourceSpec(url, "crm.peple", "mobile"))
    with pytest.raises(ConfigurationError, match="schema 'nope'"):
        _values(SourceSpec(url, "people", "mobile", schema="nope"))


# --- arguments and URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "no source given"),
        ({"table": "contacts"}, "without column="),
        ({"column": "phone"}, "column= was given without table="),
        ({"table": "contacts", "column": "phone", "sql": "SELECT 1"}, "both table= and sql="),
        ({"sql": "SELECT 1", "schema": "crm"}, "schema= only applies to table="),
        ({"sql": "  ;  "}, "sql= is empty"),
        ({"table": "con\x00tacts", "column": "phone"}, "control character"),
        ({"table": "contacts", "column": "pho\nne"}, "control character"),
        ({"table": "", "column": "phone"}, "table name is empty"),
        ({"table": "contacts", "column": "phone", "schema": "c" * 129}, "at most 128"),
        ({"table": "t" * (MAX_IDENTIFIER_LENGTH + 1), "column": "phone"}, "at most 128"),
        ({"table": 7, "column": "phone"}, "must be a string"),
    ],
)
def test_bad_arguments_are_configuration_errors(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        SourceSpec("sqlite://", **kwargs)


@pytest.mark.parametrize("chunk_size", [0, -5, True, 1.5])
def test_bad_chunk_size(chunk_size: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="chunk_size"):
        iter_source_values(SourceSpec("sqlite://", "t", "p"), chunk_size=chunk_size)


def test_missing_database_files_are_not_created(tmp_path: Path) -> None:
    for url in (f"duckdb:///{tmp_path / 'nope.duckdb'}", f"sqlite:///{tmp_path / 'nope.db'}"):
        with pytest.raises(ConfigurationError, match="database file not found"):
            iter_source_values(SourceSpec(url, "contacts", "phone"))
    assert list(tmp_path.iterdir()) == []


def test_bad_urls_never_echo_a_password() -> None:
    with pytest.raises(ConfigurationError, match="not a SQLAlchemy URL") as err:
        iter_source_values(SourceSpec("not a url s3cret", "t", "p"))
    assert "s3cret" not in str(err.value)
    spec = SourceSpec("nosuchdb+driver://user:s3cret@host/db", "t", "p")
    assert "s3cret" not in repr(spec)
    with pytest.raises(ConfigurationError, match="unknown database 'nosuchdb'") as err:
        iter_source_values(spec)
    assert "s3cret" not in str(err.value)
