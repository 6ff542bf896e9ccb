"""The lexical check that a user's ``sql=`` is one read-only query, before anything runs.

This is the first of two guards: the source is also opened read-only by the database itself
(:mod:`numberyo_provider.checks.source`), which is the real guarantee. The check exists so that a
query that would write is refused with a clear message before any connection, warehouse, ledger or
request, and so that a write is refused even where the database cannot enforce read-only (a
dialect this package has no read-only mode for).

It is a tokenizer, not a parser: it knows where strings, quoted names and comments begin and end
(``'...'``, ``"..."``, backticks, ``[...]``, ``--``, ``#``, ``/* */``, ``$tag$...$tag$``,
``E'...'``), so a ``;`` or a keyword inside them is ignored. Lexing rules differ between databases
(MySQL's backslash escapes and ``#`` comments, PostgreSQL's nested comments and dollar quotes), and
a tokenizer that sees a string where the database sees code would miss a statement, so a query is
checked under every rule set its database might use (all of them for an unknown dialect) and must
pass each one. The price is a rare false refusal, never a missed write.

What it refuses: more than one statement; a statement that does not start with ``SELECT``,
``WITH``, ``VALUES``, ``TABLE`` or ``(`` (DuckDB also ``FROM``); and anywhere in it a data-changing
keyword (``INSERT``, ``UPDATE``, ``DELETE``, ``MERGE``, ``REPLACE``, ``UPSERT``, ``TRUNCATE``,
``DROP``, ``ALTER``, ``CREATE``, ``GRANT``, ``REVOKE``), ``RETURNING``, ``INTO`` (``SELECT ...
INTO`` creates a table or writes a file) or a row-locking clause (``FOR UPDATE``, ``FOR SHARE``,
``LOCK IN SHARE MODE``). A keyword followed by ``(`` is a function call (MySQL's ``INSERT(str,
...)``, ``REPLACE(phone, ' ', '')``) and a name after a ``.`` is a qualified name; neither counts.
What it cannot see: a function that writes (``SELECT nextval('s')``, a user function running
``DELETE``); the read-only connection refuses those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from numberyo_provider.errors import ConfigurationError

__all__ = ["read_only_statement"]

#: A statement must start with one of these (after any opening parentheses).
_STARTS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
#: Keywords that change data or schema; inside a SELECT/WITH they mean a write (a DML CTE, a
#: ``WITH ... DELETE``, ``SELECT ... INTO``).
_WRITES = frozenset(
    {
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "REPLACE",
        "UPSERT",
        "TRUNCATE",
        "DROP",
        "ALTER",
        "CREATE",
        "GRANT",
        "REVOKE",
        "RETURNING",
        "INTO",
    }
)
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_WHAT = "one read-only query (SELECT ..., WITH ... SELECT ..., VALUES or TABLE)"


@dataclass(frozen=True)
class _Rules:
    """How one database splits text into tokens (only what matters for hiding code)."""

    backslash_escapes: bool = False  # MySQL: 'it\'s' is one string
    e_strings: bool = False  # PostgreSQL/DuckDB: E'it\'s' is one string
    hash_comments: bool = False  # MySQL: # to end of line
    dash_needs_space: bool = False  # MySQL: "--" starts a comment only before a space
    nested_comments: bool = False  # PostgreSQL/DuckDB: /* /* */ */
    executable_comments: bool = False  # MySQL: /*! ... */ is code
    dollar_quotes: bool = False  # PostgreSQL/DuckDB: $tag$ ... $tag$
    brackets: bool = False  # SQLite/SQL Server: [name]
    backticks: bool = False  # MySQL/SQLite: `name`


_POSTGRES = _Rules(e_strings=True, nested_comments=True, dollar_quotes=True)
_SQLITE = _Rules(brackets=True, backticks=True)
_MYSQL = _Rules(
    backslash_escapes=True,
    hash_comments=True,
    dash_needs_space=True,
    executable_comments=True,
    backticks=True,
)
#: MySQL with sql_mode NO_BACKSLASH_ESCAPES: the client cannot know which, so both must pass.
_MYSQL_NO_BACKSLASH = _Rules(
    hash_comments=True, dash_needs_space=True, executable_comments=True, backticks=True
)
#: PostgreSQL with standard_conforming_strings off (a legacy setting): backslashes escape.
_POSTGRES_BACKSLASH = _Rules(
    backslash_escapes=True, e_strings=True, nested_comments=True, dollar_quotes=True
)
_ANSI = _Rules()
_BY_DIALECT: dict[str, tuple[_Rules, ...]] = {
    "postgresql": (_POSTGRES, _POSTGRES_BACKSLASH),
    "duckdb": (_POSTGRES,),
    "sqlite": (_SQLITE,),
    "mysql": (_MYSQL, _MYSQL_NO_BACKSLASH),
    "mariadb": (_MYSQL, _MYSQL_NO_BACKSLASH),
    "mssql": (_Rules(brackets=True),),
}
_EVERY = (
    _POSTGRES,
    _POSTGRES_BACKSLASH,
    _SQLITE,
    _MYSQL,
    _MYSQL_NO_BACKSLASH,
    _ANSI,
    _Rules(brackets=True),
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "punct" or "quoted" (a string or quoted name: never code)
    text: str
    start: int
    end: int


class _Unterminated(Exception):
    pass


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def _skip_quoted(sql: str, i: int, close: str, backslash: bool) -> int:
    """Index after the literal opened at ``i``; a doubled closing character is an escape."""
    j = i + 1
    while j < len(sql):
        ch = sql[j]
        if backslash and ch == "\\":
            j += 2
            continue
        if ch == close:
            if close != "]" and j + 1 < len(sql) and sql[j + 1] == close:
                j += 2
                continue
            return j + 1
        j += 1
    raise _Unterminated


def _skip_block_comment(sql: str, i: int, nested: bool) -> int:
    depth, j = 1, i + 2
    while j < len(sql):
        if nested and sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    raise _Unterminated


def _starts_line_comment(sql: str, i: int, rules: _Rules) -> bool:
    if sql.startswith("--", i):
        return not rules.dash_needs_space or i + 2 >= len(sql) or sql[i + 2].isspace()
    return sql[i] == "#" and rules.hash_comments


def _tokens(sql: str, rules: _Rules) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif _starts_line_comment(sql, i, rules):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            if rules.executable_comments and sql.startswith("/*!", i):
                # MySQL runs what is inside: lex it as code (the closing */ is then punctuation).
                i += 3
                continue
            i = _skip_block_comment(sql, i, rules.nested_comments)
        elif ch == "'":
            previous = out[-1] if out else None
            e_string = (
                rules.e_strings
                and previous is not None
                and previous.end == i
                and previous.text.upper() == "E"
            )
            end = _skip_quoted(sql, i, "'", rules.backslash_escapes or e_string)
            out.append(_Token("quoted", sql[i:end], i, end))
            i = end
        elif ch == '"':
            end = _skip_quoted(sql, i, '"', rules.backslash_escapes)
            out.append(_Token("quoted", sql[i:end], i, end))
            i = end
        elif ch == "`" and rules.backticks:
            end = _skip_quoted(sql, i, "`", False)
            out.append(_Token("quoted", sql[i:end], i, end))
            i = end
        elif ch == "[" and rules.brackets:
            end = _skip_quoted(sql, i, "]", False)
            out.append(_Token("quoted", sql[i:end], i, end))
            i = end
        elif ch == "$" and rules.dollar_quotes and (i == 0 or not _is_word_char(sql[i - 1])):
            tag = _DOLLAR_TAG.match(sql, i)
            if tag is None:
                out.append(_Token("punct", ch, i, i + 1))
                i += 1
                continue
            close = sql.find(tag.group(), tag.end())
            if close < 0:
                raise _Unterminated
            end = close + len(tag.group())
            out.append(_Token("quoted", sql[i:end], i, end))
            i = end
        elif _is_word_char(ch):
            j = i + 1
            while j < n and _is_word_char(sql[j]):
                j += 1
            out.append(_Token("word", sql[i:j], i, j))
            i = j
        else:
            out.append(_Token("punct", ch, i, i + 1))
            i += 1
    return out


def _check(sql: str, tokens: list[_Token], *, duckdb: bool) -> tuple[int, int]:
    """(start, end) of the one statement in ``tokens``; raises if it is not a read-only query."""
    statements: list[list[_Token]] = [[]]
    for token in tokens:
        if token.kind == "punct" and token.text == ";":
            statements.append([])
        else:
            statements[-1].append(token)
    found = [s for s in statements if s]
    if not found:
        raise ConfigurationError(f"sql= is empty: give {_WHAT}")
    if len(found) > 1:
        raise ConfigurationError(
            f"sql= holds {len(found)} statements separated by ';': give {_WHAT}; the source is "
            "only ever read"
        )
    statement = found[0]
    first = next((t for t in statement if not (t.kind == "punct" and t.text == "(")), None)
    starts = _STARTS | {"FROM"} if duckdb else _STARTS
    if first is None or first.kind != "word" or first.text.upper() not in starts:
        shown = first.text[:20] if first is not None else statement[0].text
        raise ConfigurationError(
            f"sql= must be {_WHAT}, not a statement starting with {shown!r}: the source is only "
            "ever read"
        )
    for index, token in enumerate(statement):
        if token.kind != "word":
            continue
        word = token.text.upper()
        after = statement[index + 1] if index + 1 < len(statement) else None
        before = statement[index - 1] if index else None
        if after is not None and after.kind == "punct" and after.text == "(":
            continue  # a function call: INSERT(str, ...), REPLACE(phone, ' ', '')
        if before is not None and before.kind == "punct" and before.text == ".":
            continue  # a qualified name: t.update
        next_word = after.text.upper() if after is not None and after.kind == "word" else ""
        if word in _WRITES:
            raise ConfigurationError(
                f"sql= contains {word}: only a read-only query is allowed (no INSERT, UPDATE, "
                "DELETE, MERGE, RETURNING or SELECT ... INTO, not even inside WITH); the source "
                "is only ever read"
            )
        if (word == "FOR" and next_word in ("SHARE", "KEY", "NO")) or (
            word == "LOCK" and next_word == "IN"
        ):
            raise ConfigurationError(
                f"sql= locks rows ({word} {next_word} ...): drop the locking clause; the source "
                "is only read"
            )
    return statement[0].start, statement[-1].end


def read_only_statement(sql: str, dialect: str | None = None) -> str:
    """``sql`` as one read-only statement (trailing ``;`` and comments dropped), or a
    :class:`ConfigurationError` saying why it is refused.

    ``dialect``: SQLAlchemy's name (``postgresql``, ``sqlite``, ``duckdb``, ``mysql``, ...);
    unknown or None checks the query under every lexing rule set.
    """
    if not isinstance(sql, str):
        raise ConfigurationError(f"sql= must be a string, not {type(sql).__name__}")
    variants = _BY_DIALECT.get(dialect or "", _EVERY)
    span: tuple[int, int] | None = None
    for rules in variants:
        try:
            tokens = _tokens(sql, rules)
        except _Unterminated:
            raise ConfigurationError(
                "sql= has an unterminated string, quoted name or comment: close it (the check "
                "that the query only reads cannot tell where it ends)"
            ) from None
        found = _check(sql, tokens, duckdb=dialect == "duckdb")
        span = span or found
    assert span is not None
    return sql[span[0] : span[1]]
